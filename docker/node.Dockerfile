# The node image: a statically linked testnet-node, built on the host, on the base.
# BASE is substituted by the orchestrator with the base image it built or pulled.
# One COPY and nothing else: the base holds the node's directories, libfaketime's
# copy, its ports and its entrypoint (each config instruction here would run and
# commit a container of its own: seconds, on every new node binary).
FROM BASE
COPY testnet-node /usr/local/bin/testnet-node
