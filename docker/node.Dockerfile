# The node image: a statically linked testnet-node, built on the host, on the base.
# BASE is substituted by the orchestrator with the base image it built or pulled.
FROM BASE
COPY testnet-node /usr/local/bin/testnet-node
RUN mkdir -p /etc/testnet /var/lib/testnet
EXPOSE 7000 8000
ENTRYPOINT ["/usr/local/bin/testnet-node"]
