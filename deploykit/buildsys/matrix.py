"""Build a project's matrix into ``dist/<model>/<target>-<precision>/``, incrementally.

For every bundle of the project: compute its key (:mod:`~deploykit.buildsys.fingerprint`); it is
*up to date* when ``dist/matrix.json`` of the previous run recorded the same key and the bundle in
``dist/`` still matches its manifest. A selected bundle that is not up to date is *restored* from
the cache when the cache holds its key and the cached copy passes its manifest, else *built* by the
executor (each build in its own process, through :func:`deploykit.pipeline.build`). A built bundle
is checked against its manifest, stored in the cache and renamed into ``dist/``; a failed one
removes the out-of-date bundle from ``dist/``, so ``dist/`` only ever holds bundles that match the
current inputs. Finally the latency of new bundles is measured on this machine, one at a time, and
``dist/matrix.json`` + ``dist/matrix.html`` are written.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploykit import __version__
from deploykit.buildsys.cache import BundleCache, copy_bundle, replace_dir
from deploykit.buildsys.fingerprint import Fingerprinter, HashMemo, host_class
from deploykit.buildsys.local import Task, guess_peak_mb
from deploykit.buildsys.project import Job, Project
from deploykit.errors import DeployError

MATRIX_JSON = "matrix.json"
MATRIX_HTML = "matrix.html"
STATE_DIR = ".deploykit"
LOGS_DIR = "_logs"
SCHEMA_VERSION = 1
STATUSES = ("built", "restored", "up to date", "failed", "skipped", "out of date")


@dataclass
class MatrixOptions:
    dist: Path
    jobs: int | None = None
    keep_going: bool = False
    rebuild: bool = False
    executor: str = "local"
    memory_mb: int | None = None
    cache: bool = True
    measure: bool = True


@dataclass
class Row:
    """One bundle of the matrix and what happened to it in this run."""

    job: Job
    key: str
    selected: bool
    status: str = "pending"
    seconds: float | None = None
    peak_rss_mb: float | None = None
    estimate_mb: float | None = None
    attempts: int = 0
    error: str | None = None
    log: str | None = None
    warnings: list[str] = field(default_factory=list)
    manifest_sha256: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    latency: dict[str, Any] | None = None
    worker: str | None = None

    @property
    def present(self) -> bool:
        return self.status in ("built", "restored", "up to date")

    @property
    def gate(self) -> str | None:
        """``failed`` when the bundle missed verification or its accuracy budget."""
        if not self.present:
            return None
        f = self.figures
        return "failed" if f.get("verification") == "failed" or f.get("budget_met") is False else "passed"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.job.id, "model": self.job.model, "target": self.job.target, "precision": self.job.precision,
                "bundle": self.job.folder if self.present else None, "key": self.key, "selected": self.selected,
                "status": self.status, "gate": self.gate, "seconds": self.seconds, "peak_rss_mb": self.peak_rss_mb,
                "estimate_mb": self.estimate_mb, "attempts": self.attempts, "error": self.error, "log": self.log,
                "warnings": self.warnings, "manifest_sha256": self.manifest_sha256, "figures": self.figures,
                "latency": self.latency, "worker": self.worker}


class Events:
    """Progress sink of a matrix run (the CLI shows it with rich); the default is silent."""

    def planned(self, rows: list[Row], executor: str) -> None: ...
    def started(self, task: Task) -> None: ...
    def stage(self, task: Task, stage: str) -> None: ...
    def finished(self, row: Row) -> None: ...
    def measuring(self, row: Row) -> None: ...


def make_executor(options: MatrixOptions, state: Path):
    if options.executor == "local":
        from deploykit.buildsys.local import LocalExecutor

        return LocalExecutor(jobs=options.jobs, memory_mb=options.memory_mb, keep_going=options.keep_going,
                             server_log=state / "build-server.log")
    if options.executor == "ray" or options.executor.startswith("ray://"):
        from deploykit.buildsys.ray_executor import RayExecutor

        return RayExecutor(address=None if options.executor == "ray" else options.executor, jobs=options.jobs,
                           keep_going=options.keep_going, workdir=state)
    raise DeployError(f"unknown --executor {options.executor!r}; use local, ray or ray://HOST:PORT")


def job_spec(project: Project, job: Job, staging: Path, logs: Path) -> dict[str, Any]:
    m = project.models[job.model]
    return {
        "id": job.id, "model": str(m.path), "target": job.target, "precision": job.precision,
        "output": str(staging / job.folder), "log": str(logs / f"{job.folder}.log"),
        "result": str(staging / f"{job.model}.{job.target}-{job.precision}.result.json"),
        "input_shapes": list(m.input_shapes), "calibration": str(m.calibration) if m.calibration else None,
        "calibration_samples": m.calibration_samples, "calibration_method": m.calibration_method,
        "accuracy_budget": m.accuracy_budget, "io": m.io, "compress": m.compress, "images": m.images,
        "eval_data": str(m.eval_data) if m.eval_data else None, "metric": m.metric,
    }


def read_previous(dist: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads((dist / MATRIX_JSON).read_text(encoding="utf-8"))
        return {j["id"]: j for j in data.get("jobs", []) if isinstance(j, dict) and "id" in j}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def bundle_intact(folder: Path, memo: HashMemo) -> str | None:
    """sha256 of ``manifest.json`` when every file of the bundle matches it (hashes remembered by stat)."""
    manifest_path = folder / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files = manifest["files"]
        for name, sha in files.items():
            if memo.file(folder / name) != sha:
                return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    listed = set(files) | {"manifest.json"}
    for p in folder.rglob("*"):
        if p.is_file() and "__pycache__" not in p.parts and p.relative_to(folder).as_posix() not in listed:
            return None
    return memo.file(manifest_path)


class DistLock:
    """One matrix run per dist/ at a time."""

    def __init__(self, state: Path):
        state.mkdir(parents=True, exist_ok=True)
        self.path = state / "lock"
        self.fd: int | None = None

    def __enter__(self) -> DistLock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            raise DeployError(f"another deploykit build is writing to {self.path.parent.parent}; wait for it to finish") from None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)


class Matrix:
    def __init__(self, project: Project, registry, options: MatrixOptions, events: Events | None = None,
                 cache: BundleCache | None = None):
        self.project = project
        self.registry = registry
        self.options = options
        self.events = events or Events()
        self.cache = cache if cache is not None else (BundleCache() if options.cache else None)
        self.dist = Path(options.dist).absolute()
        self.state = self.dist / STATE_DIR
        self.staging = self.state / "staging"
        self.logs = self.dist / LOGS_DIR
        self.memo = HashMemo(self.state / "file-hashes.json")
        self.fingerprint = Fingerprinter(registry, self.memo)
        self.executor_name = options.executor
        self.wall_s = 0.0

    def run(self, selected: list[Job]) -> list[Row]:
        t0 = time.perf_counter()
        with DistLock(self.state):
            try:
                rows = self._run(selected)
            finally:
                shutil.rmtree(self.staging, ignore_errors=True)
                self.memo.save()
        self.wall_s = round(time.perf_counter() - t0, 3)
        self.write_outputs(rows)
        return rows

    def _run(self, selected: list[Job]) -> list[Row]:
        previous = read_previous(self.dist)
        chosen = set(selected)
        rows = []
        for job in self.project.jobs():
            key, _ = self.fingerprint.key(self.project.models[job.model], self.registry.target(job.target), job.precision)
            row = Row(job=job, key=key, selected=job in chosen)
            self._classify(row, previous.get(job.id))
            rows.append(row)
        self._remove_dropped(previous, {r.job.id for r in rows})
        to_build = [r for r in rows if r.status == "pending"]
        executor = make_executor(self.options, self.state) if to_build else None
        self.executor_name = executor.describe() if executor else self.options.executor
        self.events.planned(rows, self.executor_name)
        for row in [r for r in rows if r.status == "restored"]:
            self.events.finished(row)
        if to_build:
            self._build(executor, to_build)
        if self.options.measure:
            self._measure([r for r in rows if r.present and r.latency is None and r.selected])
        return rows

    # -- planning
    def _classify(self, row: Row, prev: dict[str, Any] | None) -> None:
        folder = self.dist / row.job.folder
        intact = bundle_intact(folder, self.memo) if prev and prev.get("key") == row.key else None
        if intact and intact == prev.get("manifest_sha256") and not (self.options.rebuild and row.selected):
            row.status, row.manifest_sha256 = "up to date", intact
            row.latency = prev.get("latency")
            for k in ("seconds", "peak_rss_mb", "attempts", "log", "warnings", "worker"):
                setattr(row, k, prev.get(k, getattr(row, k)))
            row.figures = self._figures(folder)
            return
        if not row.selected:
            row.status = "out of date"
            return
        if self.cache is not None and not self.options.rebuild and self._restore(row):
            return
        row.status = "pending"

    def _restore(self, row: Row) -> bool:
        entry = self.cache.get(row.key)
        if entry is None:
            return False
        problems = self.cache.verify(entry)
        if problems:
            self.cache.remove(entry)  # a damaged entry is rebuilt, never used
            row.warnings.append(f"cached bundle dropped: {problems[0]}")
            return False
        copy_bundle(entry.bundle, self.dist / row.job.folder)
        self.cache.touch(entry)
        row.status = "restored"
        row.manifest_sha256 = self.memo.file(self.dist / row.job.folder / "manifest.json")
        row.figures = self._figures(self.dist / row.job.folder)
        row.latency = entry.meta.get("latency")
        for k in ("seconds", "peak_rss_mb"):
            setattr(row, k, entry.meta.get(k))
        return True

    def _remove_dropped(self, previous: dict[str, dict[str, Any]], current: set[str]) -> None:
        """Bundles of an earlier run whose model/target/precision left the project."""
        for job_id, prev in previous.items():
            folder = prev.get("bundle")
            if job_id in current or not isinstance(folder, str) or ".." in Path(folder).parts:
                continue
            path = self.dist / folder
            if (path / "manifest.json").is_file():
                shutil.rmtree(path, ignore_errors=True)
                try:
                    path.parent.rmdir()
                except OSError:
                    pass

    # -- building
    def _build(self, executor, rows: list[Row]) -> None:
        history = self.cache.history() if self.cache is not None else {}
        by_id = {r.job.id: r for r in rows}
        tasks = []
        for row in rows:
            spec = job_spec(self.project, row.job, self.staging, self.logs)
            shutil.rmtree(spec["output"], ignore_errors=True)
            Path(spec["result"]).parent.mkdir(parents=True, exist_ok=True)
            model_path = self.project.models[row.job.model].path
            previous = history.get(self._history_key(row.job))
            if previous and previous.get("peak_rss_mb"):
                estimate, source = float(previous["peak_rss_mb"]), "previous build"
            else:
                estimate, source = guess_peak_mb(model_path), "guess"
            row.estimate_mb = estimate
            row.log = str(Path(LOGS_DIR) / f"{row.job.folder}.log")
            backend = self.registry.target(row.job.target).backend
            tasks.append(Task(job=row.job, spec=spec, estimate_mb=estimate, estimate_from=source,
                              extra={"key": row.key, "backend": backend, "model_files": self.fingerprint.model_files(model_path),
                                     "software": self.fingerprint.software(backend)}))
        matrix = self
        updates: dict[str, dict[str, Any]] = {}

        class Forward:
            def started(self, task: Task) -> None:
                matrix.events.started(task)

            def stage(self, task: Task, stage: str) -> None:
                matrix.events.stage(task, stage)

            def finished(self, task: Task, result: dict[str, Any]) -> None:
                row = by_id[task.job.id]
                matrix._install(row, task, result)
                if result.get("peak_rss_mb") and result.get("status") in ("built", "failed"):
                    updates[matrix._history_key(row.job)] = {"peak_rss_mb": result["peak_rss_mb"],
                                                            "seconds": result.get("seconds"), "when": round(time.time())}
                matrix.events.finished(row)

        try:
            executor.run(tasks, Forward())
        finally:
            for row in rows:
                if row.status == "pending":
                    row.status, row.error = "skipped", "interrupted"
            if self.cache is not None:
                self.cache.record(updates)

    def _history_key(self, job: Job) -> str:
        return f"{self.project.models[job.model].path}|{job.target}|{job.precision}"

    def _install(self, row: Row, task: Task, result: dict[str, Any]) -> None:
        row.seconds, row.peak_rss_mb = result.get("seconds"), result.get("peak_rss_mb")
        row.attempts = result.get("attempts", task.attempts)
        row.warnings += result.get("warnings") or []
        row.worker = result.get("worker")
        dest = self.dist / row.job.folder
        if result.get("status") == "built":
            staged = Path(task.spec["output"])
            problem = self._check_staged(staged)
            if problem is None:
                if self.cache is not None:
                    self.cache.store(row.key, staged, {"model": row.job.model, "target": row.job.target,
                                                       "precision": row.job.precision, "source": Path(task.spec["model"]).name,
                                                       "seconds": row.seconds, "peak_rss_mb": row.peak_rss_mb,
                                                       "deploykit_version": __version__})
                dest.parent.mkdir(parents=True, exist_ok=True)
                replace_dir(staged, dest)
                row.status = "built"
                row.manifest_sha256 = self.memo.file(dest / "manifest.json")
                row.figures = self._figures(dest)
                return
            result = {"status": "failed", "error": problem}
        row.status = result.get("status") if result.get("status") == "skipped" else "failed"
        row.error = result.get("error") or "failed"
        if (dest / "manifest.json").is_file():  # out of date now: dist/ keeps only bundles of the current inputs
            shutil.rmtree(dest, ignore_errors=True)

    @staticmethod
    def _check_staged(staged: Path) -> str | None:
        from deploykit.bundle.manifest import check_hashes, read_manifest

        try:
            problems = check_hashes(staged, read_manifest(staged))
        except DeployError as e:
            return f"the built bundle is unusable: {e}"
        return f"the built bundle does not match its manifest: {problems[0]}" if problems else None

    def _figures(self, folder: Path) -> dict[str, Any]:
        from deploykit.buildsys.report import bundle_figures

        return bundle_figures(folder)

    # -- latency on this machine
    def _measure(self, rows: list[Row]) -> None:
        if not rows:
            return
        from deploykit.buildsys.child import BuildServer, run_one

        self.staging.mkdir(parents=True, exist_ok=True)
        with BuildServer(log=self.state / "build-server.log") as server:
            for row in rows:
                self.events.measuring(row)
                spec = {"bundle": str(self.dist / row.job.folder), "runs": 20,
                        "result": str(self.staging / f"measure-{row.job.model}.{row.job.target}-{row.job.precision}.json")}
                result = run_one(server, f"measure:{row.job.id}", spec, op="measure")
                row.latency = result.get("row") or {"error": result.get("error")}
                if self.cache is not None:
                    entry = self.cache.get(row.key)
                    if entry is not None:
                        self.cache.update(entry, latency=row.latency)

    # -- outputs
    def write_outputs(self, rows: list[Row]) -> None:
        from deploykit.buildsys.report import write_html

        counts = {s: sum(r.status == s for r in rows) for s in STATUSES}
        data = {
            "schema_version": SCHEMA_VERSION,
            "project": self.project.file.name,
            "deploykit_version": __version__,
            "executor": self.executor_name,
            "host": host_class(),
            "wall_s": self.wall_s,
            "summary": {"bundles": len(rows), **counts, "gate_failed": sum(r.gate == "failed" for r in rows)},
            "jobs": [r.to_json() for r in rows],
        }
        self.dist.mkdir(parents=True, exist_ok=True)
        tmp = self.dist / f".{MATRIX_JSON}.tmp"
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, self.dist / MATRIX_JSON)
        write_html(self.dist / MATRIX_HTML, data)
