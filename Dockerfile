# syntax=docker/dockerfile:1
# upbit-exporter container image: one static binary on an empty base.
#
#   docker build -t upbit-exporter:0.1.0 .
#   docker run --rm -p 8081:8081 upbit-exporter:0.1.0            # connects to wss://api.upbit.com
#   docker run --rm -p 8081:8081 upbit-exporter:0.1.0 demo --http 0.0.0.0:8081   # offline simulator
#
# Where the binary comes from is the build argument BINARY:
#   build     (default) the `build` stage compiles it from source in the rust image;
#   prebuilt  the `prebuilt` stage takes dist/ from the build context, as scripts/image lays it
#             out (dist/upbit-exporter, a static x86_64-unknown-linux-musl build, and an empty
#             dist/state/): `scripts/image` builds the image this way, offline.
# Both feed the one `runtime` stage, so the image users build and the image CI runs share it.
ARG BINARY=build

FROM rust:1-slim-bookworm AS build
# musl-tools: ring's C parts for the static x86_64-unknown-linux-musl target.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
# Dependencies only: the manifest, the lock file and stub targets (src/main.rs, src/lib.rs and
# the two [[bench]] targets, which Cargo needs to read the manifest); cached until they change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && echo 'fn main() {}' > benches/decode.rs \
 && echo 'fn main() {}' > benches/e2e.rs \
 && cargo build --release --locked --target x86_64-unknown-linux-musl \
 && rm -rf src
# The crate itself. The defaults (config/default.toml) are compiled into the binary.
COPY src ./src
COPY config ./config
# Newer mtimes than the stubs' so Cargo rebuilds the crate rather than reusing the stub build.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --target x86_64-unknown-linux-musl \
 && install -D -m 0755 target/x86_64-unknown-linux-musl/release/upbit-exporter /out/upbit-exporter \
 && strip /out/upbit-exporter \
 && install -d /out/state

FROM scratch AS prebuilt
COPY dist/ /out/

# hadolint ignore=DL3006
FROM ${BINARY} AS binary

FROM scratch AS runtime
# Static (musl), TLS roots compiled in (rustls + webpki-roots): nothing else is needed, not even
# a shell. The state directory is the only writable path; mount a volume there (Kubernetes: an
# emptyDir) to keep `control.state_file` across container restarts.
COPY --from=binary /out/upbit-exporter /usr/local/bin/upbit-exporter
COPY --from=binary --chown=10001:10001 /out/state /var/lib/upbit-exporter
ENV UPBIT_EXPORTER__HTTP__LISTEN=0.0.0.0:8081 \
    RUST_LOG=info
USER 10001:10001
WORKDIR /var/lib/upbit-exporter
EXPOSE 8081
# Exec form: the binary is PID 1 and handles SIGTERM itself (closes the Upbit link, exits 0).
ENTRYPOINT ["/usr/local/bin/upbit-exporter"]
CMD ["run"]
