"""``manifest.json``: the bundle's contract with users and tools.

Fields: schema_version, deploykit_version, target, backend, precision, files {name: sha256},
inputs/outputs [{name, shape, dtype, layout, quantization}], source_model {file, sha256},
build_options, verification, plugins {name: version}, samples. No timestamps.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deploykit import __version__
from deploykit.bundle.files import sha256_file, write_json
from deploykit.errors import BundleError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
SAMPLES_INPUTS = "samples/inputs.npz"
SAMPLES_EXPECTED = "samples/expected.npz"


def hash_files(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` except the manifest, keyed by POSIX relative path."""
    result = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != MANIFEST and "__pycache__" not in p.parts:
            result[p.relative_to(folder).as_posix()] = sha256_file(p)
    return result


def write_bundle_metadata(
    folder: Path, *, profile, backend, precision: str, artifact, source_name: str, source_sha256: str,
    options, verification: dict[str, Any], plugins: dict[str, str], quantization: dict[str, Any] | None = None,
) -> dict[str, Any]:
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "deploykit_version": __version__,
        "target": profile.name,
        "target_profile": profile.to_json(),
        "backend": backend.name,
        "runtime": backend.runtime,
        "precision": precision,
        "artifacts": list(artifact.files),
        "files": hash_files(folder),
        "inputs": [s.to_json() for s in artifact.inputs],
        "outputs": [s.to_json() for s in artifact.outputs],
        "source_model": {"file": source_name, "sha256": source_sha256},
        "build_options": options.to_json(),
        "verification": verification,
        "quantization": quantization,
        "plugins": dict(sorted(plugins.items())),
        "samples": {"inputs": SAMPLES_INPUTS, "expected": SAMPLES_EXPECTED},
    }
    write_json(folder / MANIFEST, manifest)
    return manifest


def read_manifest(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    if not Path(folder).is_dir():
        raise BundleError(f"{str(folder)!r} is not a bundle folder")
    if not path.is_file():
        raise BundleError(f"{str(folder)!r} has no {MANIFEST}; is it a deploykit bundle?")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BundleError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        raise BundleError(f"{path} has an unsupported schema_version {data.get('schema_version') if isinstance(data, dict) else None!r}")
    return data


def check_hashes(folder: str | Path, manifest: dict[str, Any]) -> list[str]:
    """Problems found re-hashing the files the manifest lists (empty list = all good)."""
    folder = Path(folder)
    problems = []
    for name, digest in sorted(manifest.get("files", {}).items()):
        p = folder / name
        if not p.is_file():
            problems.append(f"{name}: missing")
        elif sha256_file(p) != digest:
            problems.append(f"{name}: sha256 mismatch (file changed since the build)")
    listed = set(manifest.get("files", {}))
    for name in hash_files(folder):
        if name not in listed:
            problems.append(f"{name}: not listed in the manifest")
    return problems
