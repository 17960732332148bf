"""The local scheduler's memory rule and the Ray executor's retry rule (no processes started)."""

from __future__ import annotations

import pytest

from deploykit.buildsys.local import Task, pick
from deploykit.buildsys.project import Job
from deploykit.buildsys.ray_executor import retryable

pytestmark = pytest.mark.unit


def task(name: str, mb: float) -> Task:
    return Task(job=Job(name, "host", "fp32"), spec={}, estimate_mb=mb)


def test_two_big_builds_never_share_a_small_machine():
    big1, big2, small = task("big1", 2000), task("big2", 2000), task("small", 300)
    assert pick([big1, big2, small], [], budget_mb=3000) is big1  # nothing runs: the head always starts
    assert pick([big2, small], [big1], budget_mb=3000) is small  # big2 does not fit beside big1; small does
    assert pick([big2], [big1, small], budget_mb=3000) is None
    assert pick([big2], [big1], budget_mb=None) is big2  # no budget known: -j alone decides


def test_only_cluster_failures_are_retried():
    class WorkerCrashedError(Exception):
        pass

    class NodeDiedError(RuntimeError):
        pass

    assert retryable(WorkerCrashedError("worker died"))
    assert retryable(NodeDiedError("node gone"))
    assert not retryable(ValueError("bad model"))
