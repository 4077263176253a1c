# syntax=docker/dockerfile:1
# Stinger in a container: built on rust:bookworm (RocksDB's bindings need libclang), run on
# debian:bookworm-slim with nmap, as the unprivileged `stinger` user, the store in the volume
# /var/lib/stinger, serving on 7864.
#   docker build -t stinger .
#   docker run -d -p 7864:7864 -v stinger-data:/var/lib/stinger \
#       -v "$PWD/stinger.toml:/etc/stinger/stinger.toml:ro" stinger --config.file /etc/stinger/stinger.toml
#   docker run --rm -v "$PWD/stinger.toml:/etc/stinger/stinger.toml:ro" stinger check-config --config.file /etc/stinger/stinger.toml
# Without --config.file it runs the embedded default (the container's own loopback). The store's
# path is set by the entrypoint; keep web.listen_address on all interfaces (the default) so the
# published port reaches it. nmap's raw scans (scan.nmap.udp_ports, os_detection) need CAP_NET_RAW,
# which a non-root user gets only as an ambient capability: Docker grants none, so run those with
# --user root (Docker's default capability set includes NET_RAW). Namespace scanning does not fit
# a container; use the Debian package on the network node.

FROM rust:1-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libclang-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The caches keep the registry and RocksDB's C++ objects between builds (the first one compiles
# RocksDB for ~15 minutes on 2 cores); the binary is copied out of the cached target directory.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin stinger \
    && cp target/release/stinger /usr/local/bin/stinger

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends nmap ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --user-group --home-dir /var/lib/stinger --no-create-home \
        --shell /usr/sbin/nologin stinger \
    && install -d -o stinger -g stinger -m 0750 /var/lib/stinger \
    && install -d -m 0755 /etc/stinger
COPY --from=build /usr/local/bin/stinger /usr/bin/stinger
COPY alerts/ /usr/share/stinger/alerts/
COPY dashboards/ /usr/share/stinger/dashboards/
USER stinger
WORKDIR /var/lib/stinger
VOLUME ["/var/lib/stinger"]
EXPOSE 7864
# SIGTERM stops the scan, drains HTTP and flushes the store (docker stop's default signal).
ENTRYPOINT ["/usr/bin/stinger", "--storage.path=/var/lib/stinger"]
