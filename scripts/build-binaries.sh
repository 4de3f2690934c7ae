#!/usr/bin/env bash
# Builds the images' release binaries, botfleet-bot and botfleet-operator, and stages the images'
# root file system under target/images/rootfs/ (the Containerfile copies it from there):
#
#   usr/local/bin/botfleet-bot, usr/local/bin/botfleet-operator
#   etc/passwd, etc/group, etc/nsswitch.conf   (docker/rootfs/: the nonroot user 65532)
#   etc/ssl/certs/ca-certificates.crt          (this machine's CA bundle)
#   data/                                      (empty; owned by 65532 in the image)
#
# The binaries are statically linked glibc (`+crt-static`; --target makes RUSTFLAGS apply to
# them only, not to build scripts and proc macros) and stripped (the `image` profile), so the
# image needs no libc, no shell and no NSS modules. Run from anywhere; idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-gnu
profile=image
ca_bundle="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
bins=(botfleet-bot botfleet-operator)

[ -s "${ca_bundle}" ] || {
  echo "build-binaries: no CA bundle at ${ca_bundle} (install ca-certificates or set CA_BUNDLE)" >&2
  exit 1
}

RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
  cargo build --locked --profile "${profile}" --target "${target}" \
  -p botfleet-bot -p botfleet-operator --bin botfleet-bot --bin botfleet-operator

out="target/${target}/${profile}"
rootfs=target/images/rootfs
rm -rf "${rootfs}"
mkdir -p "${rootfs}/usr/local/bin" "${rootfs}/etc/ssl/certs" "${rootfs}/data"
for bin in "${bins[@]}"; do
  # A binary that still needs a dynamic loader would fail in the scratch image at exec time.
  if LC_ALL=C readelf -l "${out}/${bin}" | grep -q 'Requesting program interpreter'; then
    echo "build-binaries: ${out}/${bin} is dynamically linked" >&2
    exit 1
  fi
  install -m 0755 "${out}/${bin}" "${rootfs}/usr/local/bin/${bin}"
done
cp -a docker/rootfs/etc/. "${rootfs}/etc/"
install -m 0644 "${ca_bundle}" "${rootfs}/etc/ssl/certs/ca-certificates.crt"

for bin in "${bins[@]}"; do
  printf 'build-binaries: %-18s %s bytes\n' "${bin}" "$(stat -c %s "${rootfs}/usr/local/bin/${bin}")"
done
