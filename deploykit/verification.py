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
# A metric that also passes an output where a tolerance above is missed. int8 probability outputs
# with a class axis: the arg-max is what users act on, and cosine on probabilities punishes noise
# between near-tied classes (PP-OCR rec int8: cosine 0.86 on 4 lines at 99.0 % vs fp32 99.5 %
# character accuracy; per-step arg-max agreement 0.96).
ALTERNATIVES = {"int8": {"top1_agreement": 0.9}}


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


# A probability part (a Sigmoid/Softmax branch of a concatenated output, e.g. a detector's class
# scores) also passes when its most confident values keep their places.
PART_ALTERNATIVES = {"int8": {"topk_agreement": 0.9}}


def judge(metrics: Mapping[str, Mapping[str, Any]], precision: str) -> tuple[bool, list[str]]:
    """Check metrics against :data:`TOLERANCES`; returns (passed, problems).

    An output passes only if every part of it passes too (``metrics[out]["parts"]``): a
    concatenated output is judged by its worst branch, never by the whole tensor alone."""
    problems = []
    for out, m in metrics.items():
        bad = m.get("nonfinite_mismatches")
        if isinstance(bad, float) and bad > 0:  # NaN/inf where fp32 is finite: never rescued by another metric
            problems.append(f"output {out!r}: {int(bad)} non-finite value(s) where fp32 is finite")
            continue
        nan = [k for k, v in m.items() if isinstance(v, float) and v != v or v in ("nan", "inf", "-inf")]
        if nan:
            problems.append(f"output {out!r}: {', '.join(nan)} not finite")
            continue
        problems += [f"output {out!r}: {miss}" for miss in _judge_one(m, precision, ALTERNATIVES)]
        for label, pm in (m.get("parts") or {}).items():
            problems += [f"output {out!r} {label}: {miss}" for miss in _judge_one(pm, precision, PART_ALTERNATIVES)]
    return not problems, problems


def _judge_one(m: Mapping[str, Any], precision: str, alternatives_table) -> list[str]:
    misses = _misses(m, TOLERANCES.get(precision, {}))
    if not misses:
        return []
    alternatives = {k: v for k, v in alternatives_table.get(precision, {}).items() if isinstance(m.get(k), float)}
    alternative_misses = _misses(m, alternatives)
    if alternatives and not alternative_misses:
        return []
    return misses + alternative_misses


def _misses(m: Mapping[str, float], limits: Mapping[str, float]) -> list[str]:
    out = []
    for key, limit in limits.items():
        value = m.get(key)
        if value is None or isinstance(value, str):
            continue
        if value > limit if key.endswith("error") else value < limit:
            out.append(f"{key} {value:.4g} {'>' if key.endswith('error') else '<'} {limit:g}")
    return out


def verify_outputs(
    refs: Sequence[Mapping[str, np.ndarray]], outs: Sequence[Mapping[str, np.ndarray]], precision: str, runtime: str,
    parts: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``parts``: output name -> :class:`~deploykit.quant.parts.ConcatTail` (scored per branch)."""
    metrics = compare_outputs(refs, outs, parts)
    passed, problems = judge(metrics, precision)
    return {
        "status": "passed" if passed else "failed",
        "runtime": runtime,
        "samples": len(refs),
        "tolerance": TOLERANCES.get(precision, {}),
        "or": ALTERNATIVES.get(precision, {}),
        "outputs": json_safe(round_floats(metrics)),
        "problems": problems,
        **({"output_parts": {o: t.to_json() for o, t in parts.items()}} if parts else {}),
    }
