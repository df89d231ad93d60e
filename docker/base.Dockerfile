# Online path of the node's base image: Debian slim plus the tools the fault agent
# needs (libfaketime: copied into foreign nodes for clock faults). The offline
# path builds the same base with mmdebstrap (see image.rs).
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 iptables libfaketime \
 && rm -rf /var/lib/apt/lists/*
