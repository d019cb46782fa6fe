# syntax=docker/dockerfile:1
# The switchboard service with the KurrentDB backend, for docker-compose.yml.
#   docker build -t switchboard .

# --- build: the release binary, with --features kurrentdb --------------------------------
# The Rust image carries gcc, which is all the KurrentDB client's TLS (aws-lc-sys) needs.
FROM rust:1.95-slim-trixie AS build
WORKDIR /src
COPY . .
# Caches keep the registry and compiled dependencies between builds; the binary is copied
# out of the cache mount so the next stage can take it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p switchboard-cli --features kurrentdb \
    && cp target/release/switchboard /usr/local/bin/switchboard

# --- runtime: Debian slim, the binary, a non-root user ------------------------------------
FROM debian:trixie-slim
# CA certificates for TLS to KurrentDB or PostgreSQL; curl for the health check.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/switchboard switchboard
COPY --from=build /usr/local/bin/switchboard /usr/local/bin/switchboard
USER switchboard
# The data dir holds the read models (SQLite) whatever the store, and the events for the
# embedded store.
ENV SWITCHBOARD_LISTEN=0.0.0.0:8080 \
    SWITCHBOARD_DATA_DIR=/var/lib/switchboard \
    SWITCHBOARD_LOG_FORMAT=json
VOLUME ["/var/lib/switchboard"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["curl", "--fail", "--silent", "--show-error", "--output", "/dev/null", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["switchboard"]
CMD ["serve"]
