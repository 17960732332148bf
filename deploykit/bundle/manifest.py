"""``manifest.json``: the bundle's contract with users and tools.

Fields: schema_version, deploykit_version, target, backend, precision, files {name: sha256},
inputs/outputs [{name, shape, dtype, layout, quantization}], source_model {file, sha256},
build_options, verification, plugins {name: version}, samples. No timestamps.
"""

from __future__ import annotations

import json
import os
import re
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from deploykit import __version__
from deploykit.bundle.files import sha256_file, write_json
from deploykit.errors import BundleError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
SAMPLES_INPUTS = "samples/inputs.npz"
SAMPLES_EXPECTED = "samples/expected.npz"


def hash_files(folder: Path) -> dict[str, str]:
    """sha256 of every regular file under ``folder`` except the manifest and ``__pycache__``,
    keyed by POSIX relative path (symbolic links are not followed)."""
    return {name: sha256_file(folder / name) for name, kind in sorted(_entries(Path(folder))) if kind == "file"}


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


MAX_MANIFEST_BYTES = 64 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")


def member_problem(name: object) -> str | None:
    """Why ``name`` is not a plain relative path inside a bundle (``None``: it is one)."""
    if not isinstance(name, str) or not name:
        return "not a file name"
    if "\x00" in name or "\\" in name or any(not ch.isprintable() for ch in name):
        return "has a NUL, a backslash or a control character"
    if name.startswith("/") or PurePosixPath(name).is_absolute() or re.match(r"^[A-Za-z]:", name):
        return "is an absolute path"
    if any(part in ("", ".", "..") for part in name.split("/")):
        return "is not a plain relative path (empty, '.' or '..' parts)"
    return None


def validate_manifest(data: Any, path: Path) -> dict[str, Any]:
    """Check the fields deploykit reads from a manifest; raise :class:`BundleError` naming the first
    bad one. Every command that reads a bundle goes through here (via :func:`read_manifest`)."""

    def bad(what: str) -> BundleError:
        return BundleError(f"{path} is not a valid deploykit manifest: {what}; rebuild the bundle with 'deploykit build'")

    for key in ("target", "backend", "precision"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise bad(f"{key!r} must be a non-empty string")
    files = data.get("files")
    if not isinstance(files, dict):
        raise bad("'files' must be an object {name: sha256}")
    for name, digest in files.items():
        problem = member_problem(name)
        if problem:
            raise bad(f"file name {name!r} {problem}")
        if name == MANIFEST:
            raise bad("'files' lists manifest.json itself")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise bad(f"the sha256 of {name!r} is not 64 hex digits")
    for key in ("inputs", "outputs"):
        specs = data.get(key)
        if not isinstance(specs, list) or not specs:
            raise bad(f"{key!r} must be a non-empty list")
        for spec in specs:
            if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
                raise bad(f"every entry of {key!r} needs a string 'name'")
            shape = spec.get("shape")
            if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
                raise bad(f"{key[:-1]} {spec['name']!r} needs a 'shape' list of integers")
            if not isinstance(spec.get("dtype"), str) or not _is_dtype(spec["dtype"]):
                raise bad(f"{key[:-1]} {spec['name']!r} has no valid 'dtype'")
    artifacts = data.get("artifacts", [])
    if not isinstance(artifacts, list) or not all(isinstance(a, str) and a in files for a in artifacts):
        raise bad("'artifacts' must list files of 'files'")
    samples = data.get("samples")
    if samples is not None:
        if not isinstance(samples, dict) or any(member_problem(samples.get(k)) for k in ("inputs", "expected")):
            raise bad("'samples' must name the 'inputs' and 'expected' files inside the bundle")
    for key in ("verification", "quantization", "build_options", "source_model", "plugins", "target_profile"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise bad(f"{key!r} must be an object")
    return data


def _is_dtype(name: str) -> bool:
    import numpy as np

    try:
        dt = np.dtype(name)
    except (TypeError, ValueError):
        return False
    return dt.kind in "biuf"


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """Read and validate ``folder/manifest.json`` (:func:`validate_manifest`)."""
    from deploykit.userfiles import check_utf8

    path = Path(folder) / MANIFEST
    if not Path(folder).is_dir():
        raise BundleError(f"{str(folder)!r} is not a bundle folder")
    check_utf8(folder, "bundle folder", BundleError)
    if path.is_symlink() or not path.is_file():
        raise BundleError(f"{str(folder)!r} has no {MANIFEST}; is it a deploykit bundle?")
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise BundleError(f"{path} is larger than {MAX_MANIFEST_BYTES >> 20} MB; it is not a deploykit manifest")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise BundleError(f"{path} is not valid JSON: {' '.join(str(e).split())[:200]}") from e
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        raise BundleError(f"{path} has an unsupported schema_version {data.get('schema_version') if isinstance(data, dict) else None!r}")
    return validate_manifest(data, path)


def _entries(folder: Path) -> Iterator[tuple[str, str]]:
    """(relative POSIX path, kind) of everything under ``folder`` except ``__pycache__`` and the
    manifest; kind is ``file``, ``symlink`` or ``special``. Symbolic links are never followed."""
    for root, dirs, files in os.walk(folder):
        rel = Path(root).relative_to(folder)
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" or Path(root, d).is_symlink())
        for name in sorted(files) + [d for d in dirs if Path(root, d).is_symlink()]:
            p = Path(root, name)
            r = (rel / name).as_posix()
            if r == MANIFEST:
                continue
            st = p.lstat()
            kind = "symlink" if stat.S_ISLNK(st.st_mode) else "file" if stat.S_ISREG(st.st_mode) else "special"
            yield r, kind
        dirs[:] = [d for d in dirs if not Path(root, d).is_symlink()]


def check_hashes(folder: str | Path, manifest: dict[str, Any]) -> list[str]:
    """Problems found re-hashing the files the manifest lists (empty list = all good).

    Only plain files inside the bundle count: a listed name that leaves the folder, passes through
    a symbolic link, or is not a regular file is a problem, as is anything unlisted in the folder.
    """
    folder = Path(folder)
    problems = []
    entries = dict(_entries(folder))
    for name, digest in sorted((manifest.get("files") or {}).items()):
        problem = member_problem(name)
        if problem:
            problems.append(f"{name!r}: listed name {problem}")
            continue
        kind = entries.get(name)
        p = folder / name
        if kind == "file":
            if sha256_file(p) != digest:
                problems.append(f"{name}: sha256 mismatch (file changed since the build)")
        elif kind == "symlink":
            problems.append(f"{name}: a symbolic link, not a file of the bundle")
        elif kind == "special":
            problems.append(f"{name}: not a regular file")
        elif p.is_symlink() or p.exists():
            problems.append(f"{name}: not a regular file inside the bundle")
        else:
            problems.append(f"{name}: missing")
    listed = set(manifest.get("files") or {})
    for name, kind in entries.items():
        if name not in listed:
            problems.append(f"{name}: not listed in the manifest" + ("" if kind == "file" else f" ({kind})"))
    return problems


def open_bundle(folder: str | Path) -> dict[str, Any]:
    """The validated manifest of a bundle whose files all match it; otherwise a
    :class:`BundleError`. Commands that execute or ship a bundle (run, verify, compare --measure,
    package) call this first: a modified ``runner.py`` is never run."""
    manifest = read_manifest(folder)
    problems = check_hashes(folder, manifest)
    if problems:
        more = f"; and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise BundleError(f"bundle {str(folder)!r} was modified since it was built: " + "; ".join(problems[:10]) + more
                          + " (rebuild it with 'deploykit build')")
    return manifest


def read_samples(folder: str | Path, manifest: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """The bundle's stored held-out inputs and their fp32 outputs, as per-sample feeds."""
    from deploykit.bundle.files import read_npz

    folder = Path(folder)
    samples = manifest.get("samples")
    if not samples:
        raise BundleError(f"bundle {str(folder)!r} has no stored samples; rebuild it with a current 'deploykit build'")
    try:
        inputs = read_npz(folder / samples["inputs"])
        expected = read_npz(folder / samples["expected"])
        n = len(inputs["in_0"])
        feeds = [{s["name"]: inputs[f"in_{i}"][j] for i, s in enumerate(manifest["inputs"])} for j in range(n)]
        refs = [{s["name"]: expected[f"out_{i}"][j] for i, s in enumerate(manifest["outputs"])} for j in range(n)]
    except (KeyError, IndexError, TypeError, ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise BundleError(f"the stored samples of bundle {str(folder)!r} do not match its manifest or cannot be read "
                          f"({type(e).__name__}: {' '.join(str(e).split())[:200]}); rebuild it with 'deploykit build'") from e
    if not feeds:
        raise BundleError(f"the stored samples of bundle {str(folder)!r} are empty; rebuild it with 'deploykit build'")
    return feeds, refs
