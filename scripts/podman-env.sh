# Sourced by scripts/images.sh and scripts/image-tests.sh: makes podman and buildah work on this
# kind of machine without touching /etc, through a containers.conf of our own (CONTAINERS_CONF):
#   - runtime runc: Debian's podman 4.3 defaults to crun, which refuses the host's cgroup layout;
#   - default ulimits at or under the hard limits: podman's defaults (nofile 1048576,
#     nproc 4194304) exceed what this machine allows and every container would fail to start;
#   - cgroupfs and a file event log: there is no systemd to talk to.
# Set CONTAINERS_STORAGE_DRIVER=vfs if overlay is not available (slower, more disk).

podman_conf_dir="${PODMAN_CONF_DIR:-$(pwd)/target/images}"
mkdir -p "${podman_conf_dir}"
nofile="$(ulimit -Hn)"
nproc="$(ulimit -Hu)"
[ "${nofile}" = unlimited ] && nofile=1048576
if [ "${nproc}" = unlimited ] || [ "${nproc}" -gt 32768 ]; then nproc=32768; fi
cat >"${podman_conf_dir}/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_CONF="${podman_conf_dir}/containers.conf"
if [ -n "${CONTAINERS_STORAGE_DRIVER:-}" ]; then
  export STORAGE_DRIVER="${CONTAINERS_STORAGE_DRIVER}"
fi
unset podman_conf_dir nofile nproc
