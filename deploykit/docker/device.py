"""Device images: ``docker buildx build`` / ``podman build`` of the Dockerfile every bundle carries."""

from __future__ import annotations

import re
from pathlib import Path

from deploykit.errors import BundleError, DeployError


def read_manifest(bundle: Path) -> dict:
    """The validated manifest of an unmodified bundle that carries a Dockerfile."""
    from deploykit.bundle.manifest import open_bundle

    manifest = open_bundle(bundle)
    if "Dockerfile" not in manifest["files"]:
        raise BundleError(f"{bundle} has no Dockerfile; rebuild the bundle with this deploykit version")
    return manifest


def default_tag(manifest: dict) -> str:
    """``deploykit-<target>-<precision>:<first 12 hex of the source model sha256>``."""
    name = re.sub(r"[^a-z0-9._-]+", "-", f"deploykit-{manifest['target']}-{manifest['precision']}".lower())
    sha = str((manifest.get("source_model") or {}).get("sha256") or manifest.get("source_sha256") or "latest")
    return f"{name}:{sha[:12]}"


def bundle_platform(manifest: dict, registry=None) -> str:
    """The profile's ``docker.platform`` for the bundle's target."""
    from deploykit.plugins import default_registry

    reg = registry or default_registry()
    target = manifest.get("target")
    if target not in reg.targets:
        raise DeployError(f"target {target!r} of this bundle is not known here (its plugin is not loaded); pass --platform")
    return reg.targets[target].docker_platform


def package_command(bundle: Path, platform: str, tag: str, engine=None) -> list[str]:
    """The device image's build command (``engine``: an :class:`~deploykit.docker.engine.Engine`, docker if None)."""
    from deploykit.docker.engine import Engine

    return (engine or Engine("docker")).build_command(bundle.absolute(), tag, platform, device=True)
