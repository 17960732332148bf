"""The local executor: up to ``-j`` builds at once in child processes, within a memory budget.

Memory-aware: each task carries an estimate of its peak memory (its previous build's, from the
cache's history, else a guess from the model's size). A task starts only while the estimates of
the running ones plus its own fit the budget (``[build] memory-mb``, else 85 % of the memory
available at start), so two 2-GB builds do not run side by side on a 3-GB board; the first task
that fits is taken, not only the head of the queue, and one task always runs.

Without ``keep_going`` the first failure stops new starts; builds already running finish.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from deploykit.buildsys.project import Job
from deploykit.effect.host import usable_cores

BASELINE_MB = 350.0  # a small build's peak (interpreter, onnxruntime, the pipeline)
MODEL_FACTOR = 6.0  # and per MB of model: folded weights, calibration statistics, the artifact


@dataclass
class Task:
    job: Job
    spec: dict[str, Any]
    estimate_mb: float
    estimate_from: str = "guess"  # "previous build" or "guess"
    attempts: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class Events(Protocol):
    def started(self, task: Task) -> None: ...
    def stage(self, task: Task, stage: str) -> None: ...
    def finished(self, task: Task, result: dict[str, Any]) -> None: ...


def guess_peak_mb(model: Path) -> float:
    try:
        size_mb = model.stat().st_size / 2**20
    except OSError:
        size_mb = 0.0
    return round(BASELINE_MB + MODEL_FACTOR * size_mb, 1)


def available_memory_mb() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def pick(pending: list[Task], running: list[Task], budget_mb: float | None) -> Task | None:
    """The first pending task whose estimate fits beside the running ones (the head when none runs)."""
    if not pending:
        return None
    if not running or budget_mb is None:
        return pending[0]
    used = sum(t.estimate_mb for t in running)
    for task in pending:
        if used + task.estimate_mb <= budget_mb:
            return task
    return None


class LocalExecutor:
    name = "local"

    def __init__(self, jobs: int | None = None, memory_mb: float | None = None, keep_going: bool = False,
                 server_log: Path | None = None):
        self.jobs = max(1, jobs or usable_cores())
        available = available_memory_mb()
        self.budget_mb = memory_mb if memory_mb is not None else (available * 0.85 if available else None)
        self.keep_going = keep_going
        self.server_log = server_log
        self.peak_parallel_mb = 0.0

    def describe(self) -> str:
        budget = f", memory budget {self.budget_mb / 1024:.1f} GiB" if self.budget_mb else ""
        return f"local, {self.jobs} job(s) at once{budget}"

    def run(self, tasks: list[Task], events: Events) -> dict[str, dict[str, Any]]:
        """Run every task; returns ``{job id: result}`` (``status`` built/failed/skipped)."""
        from deploykit.buildsys.child import BuildServer

        pending = list(tasks)
        running: dict[str, Task] = {}
        results: dict[str, dict[str, Any]] = {}
        stop = False
        if not pending:
            return results
        with BuildServer(log=self.server_log) as server:
            while pending or running:
                while not stop and len(running) < self.jobs:
                    task = pick(pending, list(running.values()), self.budget_mb)
                    if task is None:
                        break
                    pending.remove(task)
                    task.attempts += 1
                    server.submit(task.job.id, task.spec)
                    running[task.job.id] = task
                    events.started(task)
                if stop and pending:
                    for task in pending:
                        results[task.job.id] = {"status": "skipped", "error": "not started: an earlier build failed "
                                                "(pass --keep-going to build the rest)"}
                        events.finished(task, results[task.job.id])
                    pending.clear()
                for e in server.events(0.1):
                    task = running.get(e.get("id", ""))
                    if task is None:
                        continue
                    if e["event"] == "stage":
                        events.stage(task, e["stage"])
                    elif e["event"] == "exit":
                        del running[task.job.id]
                        result = e["result"]
                        results[task.job.id] = result
                        events.finished(task, result)
                        if result.get("status") != "built" and not self.keep_going:
                            stop = True
                self.peak_parallel_mb = max(self.peak_parallel_mb, sum(t.estimate_mb for t in running.values()))
        return results
