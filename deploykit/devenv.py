"""The device environment of a target: one source of truth for what a device image installs.

A bundle's arm64 ``Dockerfile`` (rendered from this) and the emulated root of ``deploykit verify
--emulate`` (:mod:`deploykit.emulate`) install the same thing: Debian's runtime libraries from
:attr:`DeviceEnv.apt_packages`, then a virtual environment at :data:`VENV` into which pip installs
the bundle's ``requirements.txt`` with :data:`PIP_FLAGS` (binary wheels only, as a device without
compilers needs). A profile's ``[emulation]`` table says which Debian suite and CPU stand for the
device (see ``deploykit/targets.py``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

VENV = "/opt/venv"
PIP_FLAGS = ("--no-cache-dir", "--only-binary=:all:")
# Runtime libraries every LiteRT/tflite-runtime wheel needs beside the Python standard library: the
# C++ runtime (numpy's and LiteRT's extensions fail to load without it) and the CA certificates pip uses.
APT_PACKAGES = ("libstdc++6", "ca-certificates")
# What the emulated root adds to them: Debian's Python with venv (device images start from an image
# that already has Python).
ROOT_PYTHON_PACKAGES = ("python3", "python3-venv")
DEBIAN_ARCH = {"aarch64": "arm64", "x86_64": "amd64", "armv7l": "armhf"}


@dataclass(frozen=True)
class DeviceEnv:
    """What runs a bundle of ``target`` on (emulated) device hardware.

    :ivar debian: Debian suite of the root (``bookworm`` for Raspberry Pi OS 12).
    :ivar arch: Debian architecture (``arm64``).
    :ivar cpu: QEMU CPU model of the device's cores (``cortex-a72``).
    :ivar requirements: pip lines installed into :data:`VENV`; the bundle's own ``requirements.txt``
        unless the profile names stand-ins (the device's runtime is not on PyPI).
    :ivar role: ``"bundle"`` (the runtime the bundle's requirements name) or ``"fallback"`` (the
        runtime the runner falls back to on the device, e.g. tflite-runtime).
    :ivar note: why this environment differs from the device's, when it does.
    """

    target: str
    debian: str
    arch: str
    cpu: str
    requirements: tuple[str, ...]
    role: str = "bundle"
    note: str = ""
    apt_packages: tuple[str, ...] = field(default=APT_PACKAGES)

    @property
    def venv(self) -> str:
        """Where a device image puts the runtime's virtual environment."""
        return VENV

    @property
    def root_packages(self) -> tuple[str, ...]:
        """Debian packages of the emulated root."""
        return ROOT_PYTHON_PACKAGES + self.apt_packages

    @property
    def root_key(self) -> str:
        """Names the cached root: suite, architecture and packages."""
        digest = hashlib.sha256(json.dumps(self.root_packages).encode()).hexdigest()[:10]
        return f"{self.debian}-{self.arch}-{digest}"

    @property
    def venv_key(self) -> str:
        """Names the cached virtual environment: what pip installs, and how."""
        return hashlib.sha256(json.dumps([self.requirements, PIP_FLAGS]).encode()).hexdigest()[:16]

    def pip_install_command(self, requirements_file: str) -> list[str]:
        """The one pip command both the Dockerfile and the emulated root run."""
        return [f"{VENV}/bin/pip", "install", *PIP_FLAGS, "-r", requirements_file]


def requirement_lines(text: str) -> tuple[str, ...]:
    """The requirement lines of a requirements.txt (comments and blank lines dropped)."""
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return tuple(line for line in lines if line)


def device_env(profile, requirements: tuple[str, ...] | list[str] | None = None, role: str = "bundle") -> DeviceEnv | None:
    """The device environment of ``profile`` (``None`` when its profile has no ``[emulation]``).

    ``requirements``: the bundle's requirement lines (default: the profile's). ``role="fallback"``
    gives the runner's fallback runtime (``options.fallback_runtime``) instead, with numpy < 2.
    """
    em = getattr(profile, "emulation", None) or {}
    if not em:
        return None
    note = em.get("note", "")
    if role == "fallback":
        fallback = (profile.options or {}).get("fallback_runtime")
        if not fallback:
            return None
        reqs: tuple[str, ...] = (str(fallback), "numpy<2")
    elif em.get("requirements"):
        reqs = tuple(em["requirements"])
    else:
        reqs = tuple(requirements if requirements is not None else profile.requirements)
        note = ""
    return DeviceEnv(target=profile.name, debian=em["debian"], arch=DEBIAN_ARCH.get(profile.arch, profile.arch),
                     cpu=em["cpu"], requirements=reqs, role=role, note=note)
