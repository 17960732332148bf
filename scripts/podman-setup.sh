#!/usr/bin/env bash
# Best-effort set-up of podman for the container-image tests (tests/images) and benchmarks/images:
# writes the two containers.conf settings some machines need, and makes sure the qemu-aarch64 binfmt
# handler is registered. Called by .ci/run (as root); deploykit itself never edits system configuration.
#   - [engine] runtime = "runc": crun refuses hybrid cgroup v1/v2 hosts ("crun: cgroups in hybrid mode not supported")
#   - [containers] default_ulimits: podman's default rlimits cannot be applied in some sandboxes
#     ("setrlimit RLIMIT_NOFILE: Operation not permitted"; nproc 65536 fails, 32768 works)
# Exit code 0 always; prints what it did or why it could not.
set -u
say() { echo "podman-setup: $*" >&2; }
if ! command -v podman >/dev/null 2>&1; then
  say "podman is not installed; the images tests will skip"; exit 0
fi
if [ "$(id -u)" != 0 ]; then
  say "not root: leaving containers.conf alone (set runtime/default_ulimits yourself if podman fails)"; exit 0
fi
conf=/etc/containers/containers.conf
settings='# written by deploykit scripts/podman-setup.sh
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
'
if [ ! -e "$conf" ]; then
  mkdir -p /etc/containers && printf '%s' "$settings" > "$conf" && say "wrote $conf (runtime = runc, default_ulimits)"
elif grep -q 'default_ulimits' "$conf" && grep -q '^[[:space:]]*runtime[[:space:]]*=' "$conf"; then
  say "$conf already sets runtime and default_ulimits: left as is"
else
  mkdir -p /etc/containers/containers.conf.d
  printf '%s' "$settings" > /etc/containers/containers.conf.d/50-deploykit.conf
  say "$conf exists: wrote the settings to /etc/containers/containers.conf.d/50-deploykit.conf instead"
fi
command -v runc >/dev/null 2>&1 || say "runc is not installed (apt-get install runc): podman may fail with crun here"
# qemu binfmt for arm64 images (the handler is registered by qemu-user-static once binfmt_misc is mounted)
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || say "cannot mount binfmt_misc: arm64 image tests will skip"
fi
if [ -e /proc/sys/fs/binfmt_misc/register ] && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  if command -v update-binfmts >/dev/null 2>&1; then
    update-binfmts --enable qemu-aarch64 2>/dev/null || say "could not register qemu-aarch64: arm64 image tests will skip"
  else
    say "no update-binfmts (apt-get install binfmt-support qemu-user-static): arm64 image tests will skip"
  fi
fi
if podman info --format '{{.Host.OCIRuntime.Name}}' >/dev/null 2>&1; then
  say "podman works (runtime $(podman info --format '{{.Host.OCIRuntime.Name}}' 2>/dev/null))"
else
  say "podman info fails: $(podman info 2>&1 | tail -1)"
fi
exit 0
