"""Target profiles: declarative device descriptions (one TOML file per device).

A profile names its backend and states device facts. Schema (unknown keys are errors)::

    [target]
    name = "rpi4"                       # unique, lowercase, [a-z0-9-]
    description = "Raspberry Pi 4 Model B"
    backend = "tflite"                  # name of a registered backend
    default_precision = "int8"          # one of precisions
    precisions = ["fp32", "fp16", "int8"]

    [device]
    arch = "aarch64"                    # aarch64 | armv7l | x86_64
    cpu = "Cortex-A72 @ 1.8 GHz"
    cores = 4
    memory_mb = 4096
    os = "Raspberry Pi OS 12 (bookworm) 64-bit"
    python = "3.11"                     # the Python the device ships
    accelerator = "none"                # none | edgetpu | gpu | vpu | npu
    int8_accumulator = "int32"          # optional: how the CPU sums int8 dot products for CPU runtimes:
                                        # int32 (ARM, x86 with VNNI), int16 (x86 without VNNI: saturates
                                        # 8-bit weights), build-machine (the device is the machine building);
                                        # default int16 on x86_64, else int32

    [runtime]
    name = "ai-edge-litert"             # runtime package the bundle's runner uses
    version = "1.2.0"
    threads = 4
    requirements = ["ai-edge-litert==2.3.0", "numpy>=1.24"]   # pip lines for requirements.txt

    [docker]
    base_image = "python:3.11-slim-bookworm" # pinned by tag
    platform = "linux/arm64"

    [options]                           # free-form, read by the backend (e.g. workspace_mb)

    [emulation]                         # optional: how `deploykit verify --emulate` runs the bundle
    cpu = "cortex-a72"                  # QEMU CPU model of the device's cores (never "max")
    debian = "bookworm"                 # Debian suite of the emulated root (the device OS's base)
    requirements = [...]                # only when the device's own runtime is not on PyPI: stand-ins
    note = "..."                        # why the emulated environment differs from the device, if it does

Profiles are loaded from plugins through the ``register_targets`` hook; the built-in ones live in
the top-level ``targets/`` folder (package ``deploykit_profiles``).
"""

from __future__ import annotations

import difflib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from deploykit.errors import TargetError

PRECISIONS = ("fp32", "fp16", "int8")
ARCHES = ("aarch64", "armv7l", "x86_64")
ACCELERATORS = ("none", "edgetpu", "gpu", "vpu", "npu")
INT8_ACCUMULATORS = ("int32", "int16", "build-machine")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


@dataclass(frozen=True)
class TargetProfile:
    """A validated device profile."""

    name: str
    description: str
    backend: str
    default_precision: str
    precisions: tuple[str, ...]
    arch: str
    cpu: str
    cores: int
    memory_mb: int
    os: str
    python: str
    accelerator: str
    runtime: str
    runtime_version: str
    threads: int
    requirements: tuple[str, ...]
    docker_base_image: str
    docker_platform: str
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    source: str = ""
    emulation: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    int8_accumulator: str = ""

    @property
    def int8_sums_in_int32(self) -> bool:
        """The device's CPU runtimes sum int8 dot products in int32, so 8-bit weights cannot
        saturate there (see :mod:`deploykit.cpu`). ``build-machine`` asks this machine's CPU;
        an x86-64 device that does not say is taken to lack VNNI."""
        acc = self.int8_accumulator or ("int16" if self.arch == "x86_64" else "int32")
        if acc == "build-machine":
            from deploykit.cpu import cpu_class

            return not cpu_class().int8_saturates
        return acc == "int32"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "backend": self.backend,
            "default_precision": self.default_precision,
            "precisions": list(self.precisions),
            "device": {
                "arch": self.arch,
                "cpu": self.cpu,
                "cores": self.cores,
                "memory_mb": self.memory_mb,
                "os": self.os,
                "python": self.python,
                "accelerator": self.accelerator,
                **({"int8_accumulator": self.int8_accumulator} if self.int8_accumulator else {}),
            },
            "runtime": {
                "name": self.runtime,
                "version": self.runtime_version,
                "threads": self.threads,
                "requirements": list(self.requirements),
            },
            "docker": {"base_image": self.docker_base_image, "platform": self.docker_platform},
            "options": self.options,
        }


# section -> {field: (type, required)}
_SCHEMA: dict[str, dict[str, tuple[type | tuple[type, ...], bool]]] = {
    "target": {
        "name": (str, True),
        "description": (str, True),
        "backend": (str, True),
        "default_precision": (str, True),
        "precisions": (list, True),
    },
    "device": {
        "arch": (str, True),
        "cpu": (str, True),
        "cores": (int, True),
        "memory_mb": (int, True),
        "os": (str, True),
        "python": (str, True),
        "accelerator": (str, False),
        "int8_accumulator": (str, False),
    },
    "runtime": {
        "name": (str, True),
        "version": (str, True),
        "threads": (int, False),
        "requirements": (list, False),
    },
    "docker": {"base_image": (str, True), "platform": (str, True)},
    "options": {},
    "emulation": {"cpu": (str, True), "debian": (str, True), "requirements": (list, False), "note": (str, False)},
}
OPTIONAL_SECTIONS = ("options", "emulation")


def _fail(source: str, fieldname: str, problem: str) -> TargetError:
    return TargetError(f"target profile {source}: field '{fieldname}' {problem}")


def profile_from_dict(data: dict[str, Any], source: str = "<profile>") -> TargetProfile:
    """Validate a parsed profile; raises :class:`TargetError` naming the file and field."""
    for section in data:
        if section not in _SCHEMA:
            raise _fail(source, section, f"is not a known section (known: {', '.join(_SCHEMA)})")
    values: dict[str, Any] = {}
    for section, fields in _SCHEMA.items():
        table = data.get(section, {})
        if section == "options":
            if not isinstance(table, dict):
                raise _fail(source, "options", "must be a table")
            continue
        if section not in data:
            if section in OPTIONAL_SECTIONS:
                continue
            raise _fail(source, section, "is missing (a [" + section + "] table is required)")
        if not isinstance(table, dict):
            raise _fail(source, section, "must be a table")
        for key in table:
            if key not in fields:
                raise _fail(source, f"{section}.{key}", f"is unknown (known: {', '.join(fields)})")
        for key, (typ, required) in fields.items():
            full = f"{section}.{key}"
            if key not in table:
                if required:
                    raise _fail(source, full, "is missing")
                continue
            value = table[key]
            if isinstance(value, bool) or not isinstance(value, typ):
                want = " or ".join(t.__name__ for t in (typ if isinstance(typ, tuple) else (typ,)))
                raise _fail(source, full, f"must be a {want}, got {type(value).__name__} {value!r}")
            values[full] = value
    name = values["target.name"]
    if not _NAME_RE.match(name):
        raise _fail(source, "target.name", f"{name!r} must be lowercase letters, digits and '-'")
    precisions = values["target.precisions"]
    if not precisions or any(p not in PRECISIONS for p in precisions):
        raise _fail(source, "target.precisions", f"must be a non-empty subset of {list(PRECISIONS)}, got {precisions}")
    if len(set(precisions)) != len(precisions):
        raise _fail(source, "target.precisions", f"lists a precision twice: {precisions}")
    if values["target.default_precision"] not in precisions:
        raise _fail(source, "target.default_precision", f"{values['target.default_precision']!r} is not in precisions {precisions}")
    if values["device.arch"] not in ARCHES:
        raise _fail(source, "device.arch", f"{values['device.arch']!r} is not one of {list(ARCHES)}")
    platform_arch = {"linux/arm64": "aarch64", "linux/arm/v7": "armv7l", "linux/amd64": "x86_64"}
    if platform_arch.get(values["docker.platform"]) != values["device.arch"]:
        raise _fail(source, "docker.platform", f"{values['docker.platform']!r} does not match device.arch "
                    f"{values['device.arch']!r} (use one of {list(platform_arch)})")
    image = values["docker.base_image"]
    if ":" not in image.rsplit("/", 1)[-1] and "@" not in image:
        raise _fail(source, "docker.base_image", f"{image!r} must be pinned by tag (e.g. debian:bookworm-slim)")
    accelerator = values.get("device.accelerator", "none")
    if accelerator not in ACCELERATORS:
        raise _fail(source, "device.accelerator", f"{accelerator!r} is not one of {list(ACCELERATORS)}")
    accumulator = values.get("device.int8_accumulator", "")
    if accumulator and accumulator not in INT8_ACCUMULATORS:
        raise _fail(source, "device.int8_accumulator", f"{accumulator!r} is not one of {list(INT8_ACCUMULATORS)}")
    for key in ("device.cores", "device.memory_mb"):
        if values[key] <= 0:
            raise _fail(source, key, "must be positive")
    threads = values.get("runtime.threads", values["device.cores"])
    if threads <= 0:
        raise _fail(source, "runtime.threads", "must be positive")
    reqs = values.get("runtime.requirements", [])
    if not all(isinstance(r, str) for r in reqs):
        raise _fail(source, "runtime.requirements", "must be a list of strings")
    emulation = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("emulation.")}
    if emulation:
        if values["device.arch"] != "aarch64":
            raise _fail(source, "emulation", "is only supported for aarch64 devices")
        if emulation["cpu"].split(",")[0] == "max":
            raise _fail(source, "emulation.cpu", "must name the device's CPU: QEMU's 'max' offers SME, which no "
                        "such device has and on which XNNPACK's int8 results are wrong")
        if not all(isinstance(r, str) for r in emulation.get("requirements", [])):
            raise _fail(source, "emulation.requirements", "must be a list of strings")
    return TargetProfile(
        name=name,
        description=values["target.description"],
        backend=values["target.backend"],
        default_precision=values["target.default_precision"],
        precisions=tuple(precisions),
        arch=values["device.arch"],
        cpu=values["device.cpu"],
        cores=values["device.cores"],
        memory_mb=values["device.memory_mb"],
        os=values["device.os"],
        python=values["device.python"],
        accelerator=accelerator,
        runtime=values["runtime.name"],
        runtime_version=values["runtime.version"],
        threads=threads,
        requirements=tuple(reqs),
        docker_base_image=values["docker.base_image"],
        docker_platform=values["docker.platform"],
        options=dict(data.get("options", {})),
        source=source,
        emulation=emulation,
        int8_accumulator=accumulator,
    )


def load_profile(path: str | Path) -> TargetProfile:
    """Read and validate one TOML profile."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise TargetError(f"cannot read target profile {path.name}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise TargetError(f"target profile {path.name} is not UTF-8 text: {e.reason} at byte {e.start}") from e
    except tomllib.TOMLDecodeError as e:
        raise TargetError(f"target profile {path.name} is not valid TOML: {e}") from e
    return profile_from_dict(data, source=path.name)


def load_profiles_from_dir(folder: str | Path) -> list[TargetProfile]:
    """Load every ``*.toml`` in ``folder`` (sorted by file name)."""
    return [load_profile(p) for p in sorted(Path(folder).glob("*.toml"))]


def suggest(name: str, known: list[str]) -> str:
    """A 'did you mean' fragment for an unknown target name."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    if not close:
        close = [k for k in known if name and (name in k or k in name)][:3]
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
