"""Verify a (staged or finished) bundle: run its generated runner against fp32 reference outputs."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deploykit.bundle.files import round_floats
from deploykit.quant.metrics import compare_outputs, json_safe

# Per precision: the output error (relative to the output's range) a build must stay under.
TOLERANCES = {
    "fp32": {"rel_max_abs_error": 1e-4},
    "fp16": {"rel_max_abs_error": 1e-2},
    "int8": {"cosine": 0.95},  # a sanity bound; the accuracy budget (--accuracy-budget) is checked by the engine
}


def load_runner_module(bundle_dir: str | Path):
    """Import ``runner.py`` of a bundle under a unique module name (no sys.path changes)."""
    path = Path(bundle_dir) / "runner.py"
    name = f"deploykit_bundle_runner_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


def run_bundle(bundle_dir: str | Path, feeds: Sequence[Mapping[str, np.ndarray]], threads: int | None = None) -> tuple[list[dict[str, np.ndarray]], str]:
    module = load_runner_module(bundle_dir)
    runner = module.Runner(str(bundle_dir), num_threads=threads)
    return [runner.run(dict(f)) for f in feeds], str(runner.runtime)


def judge(metrics: Mapping[str, Mapping[str, float]], precision: str) -> tuple[bool, list[str]]:
    """Check metrics against :data:`TOLERANCES`; returns (passed, problems)."""
    problems = []
    for out, m in metrics.items():
        for key, limit in TOLERANCES.get(precision, {}).items():
            value = m.get(key)
            if value is None or isinstance(value, str):
                continue
            bad = value > limit if key.endswith("error") else value < limit
            if bad:
                cmp = ">" if key.endswith("error") else "<"
                problems.append(f"output {out!r}: {key} {value:.4g} {cmp} {limit:g}")
    return not problems, problems


def verify_outputs(
    refs: Sequence[Mapping[str, np.ndarray]], outs: Sequence[Mapping[str, np.ndarray]], precision: str, runtime: str
) -> dict[str, Any]:
    metrics = compare_outputs(refs, outs)
    passed, problems = judge(metrics, precision)
    return {
        "status": "passed" if passed else "failed",
        "runtime": runtime,
        "samples": len(refs),
        "tolerance": TOLERANCES.get(precision, {}),
        "outputs": json_safe(round_floats(metrics)),
        "problems": problems,
    }
