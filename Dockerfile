# syntax=docker/dockerfile:1
# The `fulfillment` binary (ingress, projector, migrate, serve, ...) in a small Debian image.
# docker-compose.yml builds it for its migrate, ingress and projector services and passes the
# subcommand as `command`, so the entrypoint stays the bare binary.

# --- builder ---------------------------------------------------------------------------------
# rdkafka builds librdkafka from source with its ./configure + make (no CMake, no SSL, no
# curl with the features this workspace enables) and links zlib through pkg-config.
FROM rust:1.95-bookworm AS builder
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential pkg-config zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The registry and target/ are cache mounts (BuildKit): a rebuild after a source change only
# recompiles what changed. The binary is copied out of the cache mount in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin fulfillment \
    && cp target/release/fulfillment /usr/local/bin/fulfillment

# --- runtime ---------------------------------------------------------------------------------
# Same Debian release as the builder, so the glibc the binary was linked against is there.
FROM debian:bookworm-slim AS runtime
# ca-certificates for TLS to external endpoints, curl for the compose healthchecks (/readyz),
# zlib1g for librdkafka's compression.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl zlib1g \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --user-group --uid 10001 --home-dir /var/lib/fulfillment --create-home \
    --shell /usr/sbin/nologin fulfillment
COPY --from=builder /usr/local/bin/fulfillment /usr/local/bin/fulfillment
# Relative paths (./fulfillment.toml, ./data) resolve here, in a directory the user owns.
WORKDIR /var/lib/fulfillment
USER fulfillment:fulfillment
ENV FULFILLMENT_LOG_FORMAT=json
# 8080: `fulfillment ingress` / `serve` HTTP; 8081: the projector's health endpoint (compose).
EXPOSE 8080 8081
ENTRYPOINT ["fulfillment"]
CMD ["--help"]
