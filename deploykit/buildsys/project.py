"""The project file: which models to build for which targets and precisions.

``deploykit.toml`` (or the ``[tool.deploykit]`` table of ``pyproject.toml``)::

    [build]                      # optional
    dist = "dist"                # output folder, relative to the project file
    jobs = 4                     # default for -j (omitted: the usable cores)
    executor = "local"           # local | ray | ray://HOST:PORT
    keep-going = false           # build the rest after a failure
    strict = false               # exit 4 when a bundle misses its accuracy gate
    cache = true                 # the local bundle cache ($XDG_CACHE_HOME/deploykit/bundles)
    measure = true               # latency of every new bundle on this machine, for matrix.html
    memory-mb = 8000             # memory the parallel builds may use [default: available memory]

    [defaults]                   # any model field except path
    precision = "int8"

    [models.detector]
    path = "models/det.onnx"
    input-shapes = ["images:1,3,320,320"]
    calibration = "data/calib_images/"
    eval = { data = "data/det_eval.npz", metric = "detection" }
    targets = ["rpi5", "coral-usb"]                        # each in `precision` (or the target's default)
    [models.ocr]
    path = "models/rec.onnx"
    targets = { rpi4 = ["int8", "fp16"], intel-cpu = "int8" }

Every problem is a :class:`ProjectError` naming the file, the table and the field. Paths are
relative to the project file's folder and must exist.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from deploykit.errors import DeployError

PROJECT_FILE = "deploykit.toml"
PYPROJECT_FILE = "pyproject.toml"
PRECISIONS = ("fp32", "fp16", "int8")
CALIBRATION_METHODS = ("auto", "minmax", "percentile", "entropy", "mse")
METRICS = ("top1", "argmax", "ctc", "detection", "sqnr")  # plus topk:K and FILE.py:function
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SHAPE_RE = re.compile(r"^.+:\d+(,\d+)*$")

# toml key -> what it must be (for the messages); `path` is per model only
MODEL_FIELDS = {
    "path": "a path to an .onnx file",
    "targets": "a list of target names, or a table {target = precision or [precisions]}",
    "precision": "fp32, fp16, int8 or a list of them",
    "input-shapes": 'a list of "NAME:D0,D1,..." strings',
    "calibration": "a path to a .npy/.npz file or an image folder",
    "calibration-samples": "a positive integer",
    "calibration-method": f"one of {', '.join(CALIBRATION_METHODS)}",
    "accuracy-budget": 'a string such as "cosine=0.99" or "sqnr=25"',
    "io": "float or int8",
    "compress": 'a --compress spec string such as "auto" or "prune=0.3"',
    "images": "a table {mean, std, scale, bgr, layout} for image-folder calibration",
    "eval": 'a table {data = "FILE.npz", metric = "top1"}',
}
BUILD_FIELDS = {
    "dist": (str, "a folder path"),
    "jobs": (int, "a positive integer"),
    "executor": (str, "local, ray or ray://HOST:PORT"),
    "keep-going": (bool, "true or false"),
    "strict": (bool, "true or false"),
    "cache": (bool, "true or false"),
    "measure": (bool, "true or false"),
    "memory-mb": (int, "a positive integer"),
}
IMAGE_FIELDS = ("mean", "std", "scale", "bgr", "layout")


class ProjectError(DeployError):
    """A problem in the project file, or in what was asked of it."""


@dataclass(frozen=True, order=True)
class Job:
    """One bundle of the matrix."""

    model: str
    target: str
    precision: str

    @property
    def id(self) -> str:
        return f"{self.model}:{self.target}:{self.precision}"

    @property
    def folder(self) -> str:
        """The bundle folder relative to dist/."""
        return f"{self.model}/{self.target}-{self.precision}"


@dataclass
class ModelSpec:
    """One ``[models.NAME]`` table, validated and with absolute paths."""

    name: str
    path: Path
    targets: dict[str, tuple[str, ...]]
    input_shapes: tuple[str, ...] = ()
    calibration: Path | None = None
    calibration_samples: int | None = None
    calibration_method: str = "auto"
    accuracy_budget: str | None = None
    io: str = "float"
    compress: str | None = None
    images: dict[str, Any] | None = None
    eval_data: Path | None = None
    metric: str | None = None

    def options(self, precision: str) -> dict[str, Any]:
        """The build options of one precision (JSON-able; part of the bundle key). The calibration
        data serves every precision: int8 calibrates on it, and every build verifies on its held-out
        samples (random inputs without it)."""
        opts: dict[str, Any] = {"precision": precision, "input_shapes": list(self.input_shapes), "io": self.io}
        if self.calibration is not None:
            opts.update({"calibration_samples": self.calibration_samples, "images": self.images})
        if precision == "int8":
            opts.update({"calibration_method": self.calibration_method, "accuracy_budget": self.accuracy_budget})
        if self.compress is not None:
            opts["compress"] = self.compress
        if self.eval_data is not None:
            opts["metric"] = self.metric
        return opts


@dataclass
class BuildSettings:
    """The ``[build]`` table."""

    dist: Path
    jobs: int | None = None
    executor: str = "local"
    keep_going: bool = False
    strict: bool = False
    cache: bool = True
    measure: bool = True
    memory_mb: int | None = None


@dataclass
class Project:
    file: Path
    table_prefix: str  # "" for deploykit.toml, "tool.deploykit." for pyproject.toml
    root: Path
    models: dict[str, ModelSpec]
    settings: BuildSettings
    defaults: dict[str, Any] = field(default_factory=dict)

    def jobs(self) -> list[Job]:
        """Every bundle of the matrix, in file order (models, then targets, then precisions)."""
        return [Job(m.name, t, p) for m in self.models.values() for t, ps in m.targets.items() for p in ps]

    def select(self, selectors: list[str] | None = None, target: str | None = None,
               precision: str | None = None) -> list[Job]:
        """The jobs named by ``MODEL[:TARGET[:PRECISION]]`` selectors (all without any), narrowed
        by ``--target`` / ``--precision``."""
        jobs = self.jobs()
        if selectors:
            chosen: list[Job] = []
            for sel in selectors:
                for job in self._match(sel, jobs):
                    if job not in chosen:
                        chosen.append(job)
            jobs = chosen
        if target is not None:
            if not any(target in m.targets for m in self.models.values()):
                raise ProjectError(f"no model in {self.file.name} is built for --target {target!r}"
                                   f"{_did_you_mean(target, self._all_targets())}")
            jobs = [j for j in jobs if j.target == target]
        if precision is not None:
            jobs = [j for j in jobs if j.precision == precision]
        if not jobs:
            raise ProjectError(f"nothing in {self.file.name} matches {' '.join(selectors or [])} "
                               f"{'--target ' + target if target else ''} {'--precision ' + precision if precision else ''}".strip()
                               + "; 'deploykit build' alone builds the whole matrix")
        return jobs

    def _all_targets(self) -> list[str]:
        return sorted({t for m in self.models.values() for t in m.targets})

    def _match(self, selector: str, jobs: list[Job]) -> list[Job]:
        parts = selector.split(":")
        if len(parts) > 3 or not all(parts):
            raise ProjectError(f"{selector!r} is not a model selector; write MODEL, MODEL:TARGET or MODEL:TARGET:PRECISION "
                               f"with names from {self.file.name}")
        name = parts[0]
        if name not in self.models:
            raise ProjectError(f"unknown model {name!r}: {self.file.name} defines {', '.join(self.models)}"
                               f"{_did_you_mean(name, list(self.models))}")
        spec = self.models[name]
        if len(parts) >= 2 and parts[1] not in spec.targets:
            raise ProjectError(f"model {name!r} is not built for target {parts[1]!r} in {self.file.name} "
                               f"(its targets: {', '.join(spec.targets)}){_did_you_mean(parts[1], list(spec.targets))}")
        if len(parts) == 3 and parts[2] not in spec.targets[parts[1]]:
            raise ProjectError(f"model {name!r} is not built in {parts[2]} for {parts[1]} in {self.file.name} "
                               f"(precisions: {', '.join(spec.targets[parts[1]])})")
        return [j for j in jobs if j.model == name and (len(parts) < 2 or j.target == parts[1])
                and (len(parts) < 3 or j.precision == parts[2])]


def _did_you_mean(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


# ------------------------------------------------------------------------------- finding the file


def _pyproject_table(path: Path) -> dict[str, Any] | None:
    data = _read_toml(path)
    tool = data.get("tool")
    if isinstance(tool, dict) and "deploykit" in tool:
        return tool["deploykit"]
    return None


def find_project(start: Path | None = None) -> Path | None:
    """The nearest ``deploykit.toml`` or ``pyproject.toml`` with ``[tool.deploykit]``, looking in
    ``start`` (default: the working folder) and then its parents."""
    folder = (start or Path.cwd()).absolute()
    for d in (folder, *folder.parents):
        own = d / PROJECT_FILE
        pyproject = d / PYPROJECT_FILE
        in_pyproject = pyproject.is_file() and _pyproject_table(pyproject) is not None
        if own.is_file() and in_pyproject:
            raise ProjectError(f"both {own} and {pyproject} ([tool.deploykit]) define a deploykit project; keep one "
                               "(or pass --project FILE)")
        if own.is_file():
            return own
        if in_pyproject:
            return pyproject
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ProjectError(f"cannot read {path}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise ProjectError(f"{path.name} is not UTF-8 text: {e.reason} at byte {e.start}") from e
    except tomllib.TOMLDecodeError as e:
        raise ProjectError(f"{path.name} is not valid TOML: {e}") from e


# ------------------------------------------------------------------------------- validation


class _Checker:
    """Builds error messages ``FILE: [TABLE] field 'NAME': problem``."""

    def __init__(self, file: Path, prefix: str, root: Path):
        self.file, self.prefix, self.root = file, prefix, root

    def error(self, table: str, fieldname: str | None, problem: str) -> ProjectError:
        where = f"[{self.prefix}{table}]" if table else f"[{self.prefix.rstrip('.')}]" if self.prefix else "top level"
        what = f" field '{fieldname}'" if fieldname else ""
        return ProjectError(f"{self.file.name}: {where}{what}: {problem}")

    def path(self, table: str, fieldname: str, value: Any, kind: str) -> Path:
        if not isinstance(value, str) or not value.strip():
            raise self.error(table, fieldname, f"must be a path string, got {value!r}")
        p = Path(os.path.expanduser(value))
        p = p if p.is_absolute() else self.root / p
        if kind == "file" and not p.is_file():
            raise self.error(table, fieldname, f"{value!r} is not a file (paths are relative to {self.file.name})")
        if kind == "any" and not p.exists():
            raise self.error(table, fieldname, f"{value!r} does not exist (paths are relative to {self.file.name})")
        return p


def load_project(path: str | Path, known_targets: dict[str, Any]) -> Project:
    """Read and validate a project file.

    :param known_targets: target name -> :class:`~deploykit.targets.TargetProfile` (the registry's),
        used to check target names and precisions.
    """
    path = Path(path).absolute()
    if not path.is_file():
        raise ProjectError(f"project file {str(path)!r} does not exist")
    if path.name == PYPROJECT_FILE:
        table = _pyproject_table(path)
        if table is None:
            raise ProjectError(f"{path.name} has no [tool.deploykit] table; add one or write a {PROJECT_FILE}")
        prefix = "tool.deploykit."
    else:
        table, prefix = _read_toml(path), ""
    check = _Checker(path, prefix, path.parent)
    if not isinstance(table, dict):
        raise check.error("", None, "must be a table")
    for key in table:
        if key not in ("build", "defaults", "models"):
            raise check.error("", key, f"is unknown (known tables: build, defaults, models){_did_you_mean(key, ['build', 'defaults', 'models'])}")
    settings = _build_settings(table.get("build", {}), check)
    defaults = table.get("defaults", {})
    if not isinstance(defaults, dict):
        raise check.error("defaults", None, "must be a table")
    if "path" in defaults:
        raise check.error("defaults", "path", "belongs in each [models.NAME] table, not in [defaults]")
    _check_keys(defaults, "defaults", check)
    models_table = table.get("models")
    if not isinstance(models_table, dict) or not models_table:
        raise check.error("", "models", "is missing: add at least one [models.NAME] table with a path and targets")
    models = {}
    for name, entry in models_table.items():
        tname = f"models.{name}"
        if not _NAME_RE.match(name):
            raise check.error(tname, None, f"model name {name!r} must be letters, digits, '_', '.' or '-' (it names a dist/ folder)")
        if not isinstance(entry, dict):
            raise check.error(tname, None, "must be a table with at least path and targets")
        _check_keys(entry, tname, check)
        models[name] = _model(name, {**defaults, **entry}, set(entry), tname, check, known_targets)
    return Project(file=path, table_prefix=prefix, root=path.parent, models=models, settings=settings, defaults=defaults)


def _check_keys(entry: dict[str, Any], table: str, check: _Checker) -> None:
    for key in entry:
        if key not in MODEL_FIELDS:
            hint = _did_you_mean(key, list(MODEL_FIELDS))
            raise check.error(table, key, f"is unknown (known: {', '.join(MODEL_FIELDS)}){hint}")


def _build_settings(data: Any, check: _Checker) -> BuildSettings:
    if not isinstance(data, dict):
        raise check.error("build", None, "must be a table")
    for key, value in data.items():
        if key not in BUILD_FIELDS:
            raise check.error("build", key, f"is unknown (known: {', '.join(BUILD_FIELDS)}){_did_you_mean(key, list(BUILD_FIELDS))}")
        typ, want = BUILD_FIELDS[key]
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            raise check.error("build", key, f"must be {want}, got {value!r}")
        if typ is int and value <= 0:
            raise check.error("build", key, f"must be {want}, got {value!r}")
    executor = data.get("executor", "local")
    if not (executor in ("local", "ray") or executor.startswith("ray://")):
        raise check.error("build", "executor", f"must be local, ray or ray://HOST:PORT, got {executor!r}")
    dist = data.get("dist", "dist")
    if not dist.strip():
        raise check.error("build", "dist", "must not be empty")
    return BuildSettings(dist=(check.root / Path(os.path.expanduser(dist))), jobs=data.get("jobs"), executor=executor,
                         keep_going=data.get("keep-going", False), strict=data.get("strict", False),
                         cache=data.get("cache", True), measure=data.get("measure", True), memory_mb=data.get("memory-mb"))


def _precisions(value: Any, table: str, fieldname: str, check: _Checker) -> tuple[str, ...]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise check.error(table, fieldname, f"must be {MODEL_FIELDS['precision']}, got {value!r}")
    for v in values:
        if v not in PRECISIONS:
            raise check.error(table, fieldname, f"unknown precision {v!r}; use fp32, fp16 or int8")
    if len(set(values)) != len(values):
        raise check.error(table, fieldname, f"lists a precision twice: {values}")
    return tuple(values)


def _targets(value: Any, precision: tuple[str, ...] | None, table: str, own: set[str], check: _Checker,
             known: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    where = "targets" if "targets" in own else "targets (from [defaults])"
    if isinstance(value, list):
        if not value or not all(isinstance(t, str) for t in value):
            raise check.error(table, where, f"must be {MODEL_FIELDS['targets']}, got {value!r}")
        if len(set(value)) != len(value):
            raise check.error(table, where, f"lists a target twice: {value}")
        pairs = [(t, precision) for t in value]
    elif isinstance(value, dict):
        if not value:
            raise check.error(table, where, "is an empty table; name at least one target")
        pairs = [(t, _precisions(p, table, f"targets.{t}", check)) for t, p in value.items()]
    else:
        raise check.error(table, where, f"must be {MODEL_FIELDS['targets']}, got {value!r}")
    result = {}
    for name, precisions in pairs:
        if name not in known:
            raise check.error(table, where, f"unknown target {name!r}{_did_you_mean(name, sorted(known))} "
                              "(run 'deploykit targets' to list them)")
        profile = known[name]
        if precisions is None:
            precisions = (profile.default_precision,)
        for p in precisions:
            if p not in profile.precisions:
                source = where if isinstance(value, dict) or precision is None else "precision"
                raise check.error(table, source, f"target {name!r} does not build {p}; it builds {', '.join(profile.precisions)}")
        result[name] = precisions
    return result


def _model(name: str, data: dict[str, Any], own: set[str], table: str, check: _Checker,
           known: dict[str, Any]) -> ModelSpec:
    if "path" not in data:
        raise check.error(table, "path", "is missing: the ONNX model file, relative to the project file")
    path = check.path(table, "path", data["path"], "file")
    if "targets" not in data:
        raise check.error(table, "targets", "is missing: the targets to build this model for, e.g. targets = [\"rpi5\"]")
    precision = _precisions(data["precision"], table, "precision", check) if "precision" in data else None
    spec = ModelSpec(name=name, path=path, targets=_targets(data["targets"], precision, table, own, check, known))
    shapes = data.get("input-shapes", [])
    if not isinstance(shapes, list) or not all(isinstance(s, str) and _SHAPE_RE.match(s.strip()) for s in shapes):
        raise check.error(table, "input-shapes", f"must be {MODEL_FIELDS['input-shapes']}, got {shapes!r}")
    spec.input_shapes = tuple(s.strip() for s in shapes)
    if "calibration" in data:
        spec.calibration = check.path(table, "calibration", data["calibration"], "any")
    n = data.get("calibration-samples")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n <= 0):
        raise check.error(table, "calibration-samples", f"must be a positive integer, got {n!r}")
    spec.calibration_samples = n
    method = data.get("calibration-method", "auto")
    if method not in CALIBRATION_METHODS:
        raise check.error(table, "calibration-method", f"must be one of {', '.join(CALIBRATION_METHODS)}, got {method!r}")
    spec.calibration_method = method
    budget = data.get("accuracy-budget")
    if budget is not None and (not isinstance(budget, str) or "=" not in budget):
        raise check.error(table, "accuracy-budget", f"must be {MODEL_FIELDS['accuracy-budget']}, got {budget!r}")
    spec.accuracy_budget = budget
    io = data.get("io", "float")
    if io not in ("float", "int8"):
        raise check.error(table, "io", f"must be float or int8, got {io!r}")
    spec.io = io
    compress = data.get("compress")
    if compress is not None and (not isinstance(compress, str) or not compress.strip()):
        raise check.error(table, "compress", f"must be {MODEL_FIELDS['compress']}, got {compress!r}")
    if compress is not None and compress.endswith((".toml", ".json")):
        compress = str(check.path(table, "compress", compress, "file"))
    spec.compress = compress
    if "images" in data:
        spec.images = _images(data["images"], table, check)
    if "eval" in data:
        spec.eval_data, spec.metric = _eval(data["eval"], table, check)
    needs_calibration = [t for t, ps in spec.targets.items() if "int8" in ps]
    if needs_calibration and spec.calibration is None:
        raise check.error(table, "calibration", f"is missing: int8 builds ({', '.join(needs_calibration)}) need calibration "
                          "data (.npy, .npz or an image folder)")
    return spec


def _images(value: Any, table: str, check: _Checker) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise check.error(table, "images", f"must be {MODEL_FIELDS['images']}, got {value!r}")
    out: dict[str, Any] = {"mean": [0.0], "std": [1.0], "scale": 255.0, "bgr": False, "layout": "auto"}
    for key, v in value.items():
        name = f"images.{key}"
        if key not in IMAGE_FIELDS:
            raise check.error(table, name, f"is unknown (known: {', '.join(IMAGE_FIELDS)})")
        if key in ("mean", "std"):
            vals = [v] if isinstance(v, (int, float)) and not isinstance(v, bool) else v
            if not isinstance(vals, list) or not vals or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in vals):
                raise check.error(table, name, f"must be a number or a list of numbers, got {v!r}")
            if key == "std" and any(x == 0 for x in vals):
                raise check.error(table, name, "must not contain 0")
            out[key] = [float(x) for x in vals]
        elif key == "scale":
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0:
                raise check.error(table, name, f"must be a positive number, got {v!r}")
            out[key] = float(v)
        elif key == "bgr":
            if not isinstance(v, bool):
                raise check.error(table, name, f"must be true or false, got {v!r}")
            out[key] = v
        elif v not in ("auto", "nchw", "nhwc"):
            raise check.error(table, name, f"must be auto, nchw or nhwc, got {v!r}")
        else:
            out[key] = v
    return out


def _eval(value: Any, table: str, check: _Checker) -> tuple[Path, str | None]:
    if not isinstance(value, dict) or "data" not in value:
        raise check.error(table, "eval", f"must be {MODEL_FIELDS['eval']}, got {value!r}")
    for key in value:
        if key not in ("data", "metric"):
            raise check.error(table, f"eval.{key}", "is unknown (known: data, metric)")
    data = check.path(table, "eval.data", value["data"], "file")
    metric = value.get("metric")
    if metric is None:
        return data, None
    if not isinstance(metric, str):
        raise check.error(table, "eval.metric", f"must be a string, got {metric!r}")
    if metric in METRICS:
        return data, metric
    if metric.startswith("topk:"):
        k = metric[5:]
        if not k.isdigit() or int(k) < 1:
            raise check.error(table, "eval.metric", f"{metric!r}: write topk:K with K a positive integer")
        return data, metric
    file, sep, func = metric.rpartition(":")
    if sep and file.endswith(".py") and func.isidentifier():
        return data, f"{check.path(table, 'eval.metric', file, 'file')}:{func}"
    raise check.error(table, "eval.metric", f"unknown metric {metric!r}; use {', '.join(METRICS)}, topk:K or FILE.py:function")
