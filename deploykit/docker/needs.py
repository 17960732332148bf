"""What each target needs from docker on this machine (for ``deploykit doctor``)."""

from __future__ import annotations

from deploykit.docker.engine import DockerStatus, emulation_hint, platform_arch
from deploykit.docker.toolchain import TOOLCHAIN_IMAGES


def target_needs(profiles, status: DockerStatus) -> list[dict]:
    rows = []
    for p in sorted(profiles, key=lambda p: p.name):
        image = TOOLCHAIN_IMAGES.get(p.backend)
        build_platform = (image.platform if image and image.platform else status.host_platform)
        needs: list[str] = []
        if status.cli is None:
            needs.append("docker")
        elif status.daemon is None:
            needs.append("a running Docker daemon")
        if status.buildx is None:
            needs.append("docker buildx (device image)")
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
