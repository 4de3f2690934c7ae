# syntax=docker/dockerfile:1
# The botfleet operator image: build from the repository root with
#   docker build -f docker/operator.Dockerfile -t botfleet-operator:0.1.0 .
# Stage 1 builds the release binary; stage 2 is distroless (glibc, CA certificates, no shell,
# no package manager) running as the nonroot user, uid/gid 65532, as the chart's and the
# operator's pod security contexts expect.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
# The whole workspace: cargo resolves every member's manifest, and sqlx embeds migrations/.
COPY . .
# Cache mounts keep the registry and target dir between builds; the binary is copied out of
# the cache mount so the next stage can see it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p botfleet-operator --bin botfleet-operator \
 && install -D -m 0755 target/release/botfleet-operator /out/botfleet-operator

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="botfleet-operator" \
      org.opencontainers.image.source="https://github.com/botfleet/botfleet" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/botfleet-operator /usr/local/bin/botfleet-operator
USER 65532:65532
# Metrics, /healthz and /readyz.
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/botfleet-operator"]
CMD ["run"]
