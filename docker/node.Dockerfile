# The node image: a statically linked testnet-node, built on the host, on the base.
# BASE is substituted by the orchestrator with the base image it built or pulled.
# The orchestrator does not `docker build` this: it copies the file into a
# container of the base and commits it once (image.rs, `derive`), so only FROM,
# COPYs of a file to its full path and config instructions may appear here. The
# base holds the node's directories, libfaketime's copy, its ports and its
# entrypoint.
FROM BASE
COPY testnet-node /usr/local/bin/testnet-node
