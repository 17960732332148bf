"""Bundle keys: the sha256 of everything that decides a bundle's bytes.

A key covers the model file and its external data, the calibration and evaluation data (every
file of a folder), the build options, the target profile, deploykit's version and the sha256 of
its own code (an editable install changes without a version bump), the plugins' versions and code,
and the backend toolchain: the versions of the Python distributions that lower and verify
(numpy, onnx, onnx-ir, onnxscript, onnxruntime, jinja2 and the backend's runtime), external
tools a backend calls (edgetpu_compiler), Python's version and the CPU class of this machine
(reference outputs come from its float kernels).

File hashes are remembered by (size, mtime, inode, ctime) in ``file-hashes.json`` beside the bundle
cache, as git's index does, so an unchanged matrix is checked without reading its data again.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import os
import platform
import shutil
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from deploykit import __version__

KEY_SCHEMA = 1
CORE_DISTRIBUTIONS = ("numpy", "onnx", "onnx-ir", "onnxscript", "onnxruntime", "jinja2", "ml-dtypes", "pillow")
TOOLS_BY_BACKEND = {"edgetpu": ("edgetpu_compiler",)}
CODE_SUFFIXES = (".py", ".j2", ".toml", ".json")
# deploykit code that never reaches a bundle's bytes (CLI presentation, this build system)
CODE_EXCLUDED = ("cli", "buildsys")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest(value: Any) -> str:
    """sha256 of a JSON value (sorted keys, no whitespace)."""
    return sha256_bytes(json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode())


class HashMemo:
    """sha256 of files, remembered by their stat signature (persisted when ``path`` is given)."""

    def __init__(self, path: Path | None = None):
        self.path = path
        self.entries: dict[str, list] = {}
        self.derived: dict[str, Any] = {}  # facts computed from a content hash (e.g. a model's external data files)
        self.dirty = False
        if path is not None and path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(data, dict) and data.get("schema") == 1 and isinstance(data.get("files"), dict):
                    self.entries = data["files"]
                    self.derived = data.get("derived") if isinstance(data.get("derived"), dict) else {}
            except (OSError, ValueError):
                self.entries = {}

    @staticmethod
    def _signature(st: os.stat_result) -> list:
        return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]

    def file(self, path: Path) -> str:
        key = str(Path(path).absolute())
        st = os.stat(key)
        sig = self._signature(st)
        hit = self.entries.get(key)
        if hit and hit[:4] == sig:
            return hit[4]
        h = hashlib.sha256()
        with open(key, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        value = h.hexdigest()
        if os.stat(key).st_mtime_ns == st.st_mtime_ns:  # not being written while we read it
            self.entries[key] = [*sig, value]
            self.dirty = True
        return value

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        live = {k: v for k, v in self.entries.items() if os.path.exists(k)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"schema": 1, "files": live, "derived": self.derived}, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)
        self.dirty = False


def tree_files(path: Path) -> dict[str, Path]:
    """A file as ``{name: path}``, a folder as ``{relative posix path: path}`` of every file in it
    (hidden files and ``__pycache__`` left out), sorted."""
    path = Path(path)
    if path.is_file():
        return {path.name: path}
    files = {}
    for p in sorted(path.rglob("*")):
        rel = p.relative_to(path)
        if p.is_file() and not any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            files[rel.as_posix()] = p
    return files


def tree_digest(memo: HashMemo, path: Path) -> dict[str, str]:
    return {rel: memo.file(p) for rel, p in tree_files(path).items()}


def external_data_files(model: Path) -> list[str]:
    """Relative locations of the external data files an ONNX model refers to (sorted, unique)."""
    import onnx
    from onnx import external_data_helper as ext

    try:
        proto = onnx.load(str(model), load_external_data=False)
    except Exception:  # noqa: BLE001 - an unreadable model is the build's error to report, not the key's
        return []
    locations = set()
    for tensor in ext._get_all_tensors(proto):
        if ext.uses_external_data(tensor):
            loc = ext.ExternalDataInfo(tensor).location
            if loc and not os.path.isabs(loc):
                locations.add(Path(loc).as_posix())
    return sorted(locations)


class Fingerprinter:
    """Computes bundle keys for one run (per-run caches of versions and code hashes)."""

    def __init__(self, registry, memo: HashMemo):
        self.registry = registry
        self.memo = memo
        self._backend_parts: dict[str, dict[str, Any]] = {}
        self._core: dict[str, Any] | None = None

    # -- inputs
    def model_files(self, model: Path) -> dict[str, Path]:
        """The model and its external data: ``{path relative to the model's folder: path}``."""
        key = "external-data:" + self.memo.file(model)
        if key not in self.memo.derived:
            self.memo.derived[key] = external_data_files(model)
            self.memo.dirty = True
        files = {model.name: model}
        for loc in self.memo.derived[key]:
            p = model.parent / loc
            if p.is_file():
                files[loc] = p
        return files

    def inputs(self, spec) -> dict[str, dict[str, str]]:
        """``{role: {relative name: sha256}}`` for model, calibration, eval data and metric code."""
        out = {"model": {rel: self.memo.file(p) for rel, p in self.model_files(spec.path).items()}}
        if spec.calibration is not None:
            out["calibration"] = tree_digest(self.memo, spec.calibration)
        if spec.eval_data is not None:
            out["eval"] = tree_digest(self.memo, spec.eval_data)
        if spec.metric and ".py:" in spec.metric:
            out["metric_code"] = tree_digest(self.memo, Path(spec.metric.rsplit(":", 1)[0]))
        if spec.compress and spec.compress.endswith((".toml", ".json")):
            out["compress_spec"] = tree_digest(self.memo, Path(spec.compress))
        return out

    # -- the software that builds
    def core(self) -> dict[str, Any]:
        if self._core is None:
            self._core = {
                "deploykit": __version__,
                "code": self._code_digest(Path(__file__).resolve().parents[1], CODE_EXCLUDED),
                "plugins": dict(sorted(self.registry.plugins.items())),  # every manifest lists them all
                "distributions": {d: _dist_version(d) for d in CORE_DISTRIBUTIONS},
                "python": f"{sys.version_info[0]}.{sys.version_info[1]}",
                "host": host_class(),
            }
        return self._core

    def backend(self, name: str) -> dict[str, Any]:
        if name not in self._backend_parts:
            cls = self.registry.backends.get(name)
            part: dict[str, Any] = {"name": name}
            if cls is not None:
                module = sys.modules.get(cls.__module__)
                top = cls.__module__.split(".")[0]
                part["plugin_version"] = _plugin_version(self.registry, top)
                if module is not None and getattr(module, "__file__", None):
                    pkg = Path(module.__file__).resolve().parent
                    part["code"] = self._code_digest(pkg, ())
                part["runtimes"] = {m: _module_version(m) for m in cls.host_modules}
            for tool in TOOLS_BY_BACKEND.get(name, ()):
                where = shutil.which(tool)
                part.setdefault("tools", {})[tool] = self.memo.file(Path(where)) if where else None
            self._backend_parts[name] = part
        return self._backend_parts[name]

    def software(self, backend: str) -> dict[str, Any]:
        """What must match on a machine that builds for ``backend`` (checked on Ray workers)."""
        core = dict(self.core())
        core.pop("host")
        return {"core": core, "backend": self.backend(backend)}

    def _code_digest(self, folder: Path, excluded: tuple[str, ...]) -> str:
        files = {}
        for p in sorted(folder.rglob("*")):
            rel = p.relative_to(folder)
            if rel.parts[0] in excluded or "__pycache__" in rel.parts or p.suffix not in CODE_SUFFIXES or not p.is_file():
                continue
            files[rel.as_posix()] = self.memo.file(p)
        return digest(files)

    # -- the key
    def key(self, spec, target_profile, precision: str) -> tuple[str, dict[str, Any]]:
        """(key, ingredients) of one bundle."""
        ingredients = {
            "schema": KEY_SCHEMA,
            "inputs": self.inputs(spec),
            "options": spec.options(precision),
            "target": target_profile.to_json(),
            "software": self.core(),
            "backend": self.backend(target_profile.backend),
        }
        if precision == "int8" and target_profile.int8_accumulator == "build-machine":
            # the weight grid follows this machine's CPU (deploykit.targets.TargetProfile.int8_sums_in_int32)
            ingredients["int8_sums_in_int32"] = target_profile.int8_sums_in_int32
        return digest(ingredients), ingredients


def _plugin_version(registry, top_module: str) -> str | None:
    for name, version in sorted(registry.plugins.items()):
        if top_module.removeprefix("deploykit_") == name or top_module == name:
            return version
    return None


@lru_cache(maxsize=None)
def _dist_version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


@lru_cache(maxsize=None)
def _module_version(module: str) -> str | None:
    """Version of the distribution that provides a top-level module (``ai_edge_litert`` -> 2.3.0).
    The usual spellings first: scanning every installed distribution costs about 0.2 s."""
    top = module.split(".")[0]
    for dist in (top, top.replace("_", "-"), *_packages_distributions().get(top, [])):
        version = _dist_version(dist)
        if version:
            return f"{dist} {version}"
    return None


@lru_cache(maxsize=1)
def _packages_distributions() -> dict[str, list[str]]:
    return md.packages_distributions()


@lru_cache(maxsize=1)
def host_class() -> str:
    """``x86_64 avx512_vnni`` / ``x86_64 avx2`` / ``aarch64``: the float kernels a runtime picks here."""
    machine = platform.machine()
    try:
        flags = set()
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        return machine
    best = next((f for f in ("avx512_vnni", "avx512f", "avx_vnni", "avx2", "avx", "asimddp", "asimd") if f in flags), "")
    return f"{machine} {best}".strip()
