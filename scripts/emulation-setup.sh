#!/usr/bin/env bash
# Best effort, as root: what `deploykit verify --emulate` needs on a Debian/Ubuntu machine
# (facts/arm64-emulation.md): qemu-user-static + binfmt-support (arm64 programs through binfmt,
# flags PF), mmdebstrap (the device roots), and binfmt_misc mounted. Prints why when it cannot;
# the emulated tests then skip with that reason. Never fails.
set -u
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "emulation-setup: needs root and apt-get; emulated-device tests will skip"
  exit 0
fi
need=""
command -v qemu-aarch64-static >/dev/null 2>&1 || need="$need qemu-user-static"
command -v update-binfmts >/dev/null 2>&1 || need="$need binfmt-support"
command -v mmdebstrap >/dev/null 2>&1 || need="$need mmdebstrap"
if [ -n "$need" ]; then
  # shellcheck disable=SC2086
  timeout 900 apt-get install -y -q $need >/dev/null 2>&1 \
    || { timeout 600 apt-get update -q >/dev/null 2>&1 && timeout 900 apt-get install -y -q $need >/dev/null 2>&1; } \
    || echo "emulation-setup: could not install$need"
fi
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null \
    || echo "emulation-setup: cannot mount binfmt_misc (not allowed in this sandbox?)"
fi
if [ -e /proc/sys/fs/binfmt_misc/status ] && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || echo "emulation-setup: cannot register qemu-aarch64"
fi
if [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  echo "emulation-setup: arm64 emulation ready ($(sed -n 's/^flags: //p' /proc/sys/fs/binfmt_misc/qemu-aarch64))"
fi
exit 0
