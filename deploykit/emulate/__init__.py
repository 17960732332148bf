"""Verification on an emulated device: the bundle's own runner in an arm64 Debian root under QEMU
user mode, with the device's CPU model, cpuinfo, Python and runtime wheels
(facts/arm64-emulation.md).

``cpus``    the emulated cores and the ``/proc/cpuinfo`` each device shows
``root``    can this machine emulate (root, binfmt, mmdebstrap); the cached root and its venvs
``run``     one run of the bundle's runner inside the root (private mount/pid namespace)
``driver``  the script that runs inside the root
``verify``  emulated verification of a bundle, recorded in its manifest
"""
