# syntax=docker/dockerfile:1
# upbit-exporter container image.
#
#   docker build -t upbit-exporter:0.1.0 .
#   docker run --rm -p 8081:8081 upbit-exporter:0.1.0            # connects to wss://api.upbit.com
#   docker run --rm -p 8081:8081 upbit-exporter:0.1.0 demo --http 0.0.0.0:8081   # offline simulator
#
# Stage 1 builds the dependencies alone (cached until Cargo.toml or Cargo.lock change), then the
# crate; stage 2 is a small Debian with CA certificates, a non-root user and the binary.

FROM rust:1-slim-bookworm AS builder
WORKDIR /src

# Dependencies only: the manifest, the lock file and stub targets (src/main.rs, src/lib.rs and the
# two [[bench]] targets, which Cargo needs to exist to read the manifest).
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && echo 'fn main() {}' > benches/decode.rs \
 && echo 'fn main() {}' > benches/e2e.rs \
 && cargo build --release --locked \
 && rm -rf src

# The crate itself. The defaults (config/default.toml) are compiled into the binary.
COPY src ./src
COPY config ./config
# Newer mtimes than the stubs' so Cargo rebuilds the crate rather than reusing the stub build.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked \
 && install -D -m 0755 target/release/upbit-exporter /out/upbit-exporter

FROM debian:bookworm-slim AS runtime
# ca-certificates: TLS to wss://api.upbit.com (rustls with bundled webpki roots works without it,
# but tools and proxies in the image expect the system store).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 upbit \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin upbit \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/upbit-exporter

COPY --from=builder /out/upbit-exporter /usr/local/bin/upbit-exporter
# The documented defaults, as a starting point for --config /etc/upbit-exporter/default.toml.
COPY config /etc/upbit-exporter

ENV UPBIT_EXPORTER__HTTP__LISTEN=0.0.0.0:8081 \
    RUST_LOG=info
USER 10001:10001
WORKDIR /var/lib/upbit-exporter
EXPOSE 8081
# Exec form: the binary is PID 1 and receives SIGTERM directly (it exits cleanly within seconds).
ENTRYPOINT ["/usr/local/bin/upbit-exporter"]
CMD ["run"]
