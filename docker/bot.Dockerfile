# syntax=docker/dockerfile:1
# The botfleet bot image: build from the repository root with
#   docker build -f docker/bot.Dockerfile -t botfleet-bot:0.1.0 .
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
    cargo build --release --locked -p botfleet-bot --bin botfleet-bot \
 && install -D -m 0755 target/release/botfleet-bot /out/botfleet-bot \
 && install -d -m 0750 /out/data

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="botfleet-bot" \
      org.opencontainers.image.source="https://github.com/botfleet/botfleet" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/botfleet-bot /usr/local/bin/botfleet-bot
# /data, writable by the nonroot user, for `docker run` without a volume (the quickstart).
COPY --from=builder --chown=65532:65532 /out/data /data
USER 65532:65532
# The default DATABASE_URL is ./botfleet.db: run where the nonroot user can write.
WORKDIR /data
# 8080: the Telegram webhook; 9090: /metrics, /healthz, /readyz, /api/v1/usage.
EXPOSE 8080 9090
# Embedded SQLite lives in /data (a PersistentVolumeClaim in Kubernetes; a volume with docker run).
ENV BOTFLEET_LOG_FORMAT=json
ENTRYPOINT ["/usr/local/bin/botfleet-bot"]
CMD ["serve"]
