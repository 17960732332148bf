"""What each target needs from a container engine on this machine (for ``deploykit doctor``)."""

from __future__ import annotations

import os

from deploykit.docker.engine import ENGINE_ENV, DockerStatus, auto_engine_name, emulation_hint, platform_arch
from deploykit.docker.toolchain import TOOLCHAIN_IMAGES


def _engine_needs(status: DockerStatus) -> list[str]:
    """What the engine that would be used (``DEPLOYKIT_ENGINE`` or auto-detection) still needs."""
    engine = os.environ.get(ENGINE_ENV, "").strip().lower() or auto_engine_name(status)
    if engine == "podman":
        if status.podman is None:
            return ["podman"]
        return [] if status.usable("podman") else [f"a working podman ({status.podman_error})"]
    if status.cli is None:
        return ["docker or podman"]
    needs = [] if status.daemon else ["a running Docker daemon"]
    return needs + ([] if status.buildx else ["docker buildx (device image)"])


def engine_report(status: DockerStatus | None = None) -> dict:
    """``deploykit doctor``'s engine section: each engine, the one used, and whether arm64 images build here."""
    from deploykit.docker.engine import docker_status

    status = status or docker_status()
    info = status.engines_json()
    used = os.environ.get(ENGINE_ENV, "").strip().lower() or info["auto"]
    parts = []
    for name in ("docker", "podman"):
        e = info[name]
        state = ("builds" + (", arm64 too" if e["arm64"] else ", not arm64")) if e["builds"] else (
            "present, cannot build" if e["present"] else "not found")
        parts.append(f"{name}: {state}")
    info["line"] = (f"container engine: {used or 'none'} ({'; '.join(parts)}); {info['arm64_note']}")
    return info


def target_needs(profiles, status: DockerStatus) -> list[dict]:
    engine_needs = _engine_needs(status)
    rows = []
    for p in sorted(profiles, key=lambda p: p.name):
        image = TOOLCHAIN_IMAGES.get(p.backend)
        build_platform = (image.platform if image and image.platform else status.host_platform)
        needs: list[str] = list(engine_needs)
        if image is None:
            needs.append(f"no toolchain image for backend {p.backend}")
        elif not status.can_run(build_platform):
            needs.append(f"qemu binfmt for {platform_arch(build_platform)} (toolchain image)")
        if not status.can_run(p.docker_platform):
            needs.append(f"qemu binfmt for {platform_arch(p.docker_platform)} (to test the device image here)")
        rows.append({
            "target": p.name, "backend": p.backend,
            "toolchain_image": image.tag("VERSION").split(":")[0] if image else None,
            "toolchain_platform": build_platform, "device_base_image": p.docker_base_image,
            "device_platform": p.docker_platform, "needs": needs,
            "hint": emulation_hint(p.docker_platform) if not status.can_run(p.docker_platform) else "",
        })
    return rows
