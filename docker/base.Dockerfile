# Online path of the node's base image: Debian slim plus the tools the fault agent
# needs (libfaketime: copied into foreign nodes for clock faults), with the node's
# directories and libfaketime at a path that does not depend on the architecture
# (`up` copies it into a foreign node's container when its testnet asks for
# `faketime`). The offline path builds the same base with mmdebstrap (see
# image.rs, whose extract hook does what the last RUN does).
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 iptables libfaketime \
 && rm -rf /var/lib/apt/lists/*
RUN mkdir -p /etc/testnet /var/lib/testnet /usr/local/lib/testnet \
 && cp /usr/lib/*/faketime/libfaketime.so.1 /usr/local/lib/testnet/libfaketime.so.1
# The node's config (the offline path sets it on import: NODE_CONFIG in image.rs).
EXPOSE 7000 8000
ENTRYPOINT ["/usr/local/bin/testnet-node"]
