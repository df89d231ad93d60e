# The node image: a statically linked testnet-node, built on the host, on the base.
# BASE is substituted by the orchestrator with the base image it built or pulled.
FROM BASE
COPY testnet-node /usr/local/bin/testnet-node
# libfaketime at a path that does not depend on the architecture: `up` copies
# it into a foreign node's container when its testnet asks for `faketime`.
RUN mkdir -p /etc/testnet /var/lib/testnet /usr/local/lib/testnet \
 && cp /usr/lib/*/faketime/libfaketime.so.1 /usr/local/lib/testnet/libfaketime.so.1
EXPOSE 7000 8000
ENTRYPOINT ["/usr/local/bin/testnet-node"]
