#!/usr/bin/env bash
# Builds the two images from the Containerfile with podman (Debian's podman/buildah 4.3):
#   botfleet-bot:<version> and botfleet-operator:<version>, <version> from Cargo.toml,
# and saves each as an OCI archive: target/images/botfleet-{bot,operator}-<version>.tar.
#
# The release binaries are built (or found up to date) by scripts/build-binaries.sh first; the
# Containerfile's BINARIES=prebuilt stage only copies them, so nothing is pulled from a registry.
# Push an archive with: skopeo copy oci-archive:target/images/botfleet-bot-<version>.tar \
#   docker://registry.example.com/team/botfleet-bot:<version>
set -euo pipefail
cd "$(dirname "$0")/.."

version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)"
[ -n "${version}" ] || { echo "images: no [workspace.package] version in Cargo.toml" >&2; exit 1; }
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"

# shellcheck source=scripts/podman-env.sh
. scripts/podman-env.sh

[ "${SKIP_BINARIES:-0}" = 1 ] || scripts/build-binaries.sh

for image in bot operator; do
  name="botfleet-${image}:${version}"
  archive="target/images/botfleet-${image}-${version}.tar"
  podman build --quiet --file Containerfile --target "${image}" \
    --build-arg BINARIES=prebuilt \
    --build-arg VERSION="${version}" --build-arg REVISION="${revision}" \
    --tag "${name}" . >/dev/null
  rm -f "${archive}"
  podman save --quiet --format oci-archive --output "${archive}" "${name}"
  size="$(podman image inspect --format '{{.Size}}' "${name}")"
  printf 'images: %-26s %9s bytes (%s MB) -> %s\n' "${name}" "${size}" \
    "$(awk -v s="${size}" 'BEGIN { printf "%.1f", s / 1e6 }')" "${archive}"
done
