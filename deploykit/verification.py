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
    # fp16 bundles computed in fp16 on the device (Pi 5: LiteRT's reduced_precision_support metadata on a
    # Cortex-A76): fp16 accumulation makes errors ~10x those of fp16 weights computed in fp32 (x86, Pi 4).
    # Only an emulated (or real) arm64 run sees this arithmetic; see deploykit/emulate.
    "fp16-arithmetic": {"rel_max_abs_error": 5e-2},
}
# A metric that also passes an output where a tolerance above is missed. int8 probability outputs
# with a class axis: the arg-max is what users act on, and cosine on probabilities punishes noise
# between near-tied classes (PP-OCR rec int8: cosine 0.86 on 4 lines at 99.0 % vs fp32 99.5 %
# character accuracy; per-step arg-max agreement 0.96).
ALTERNATIVES = {"int8": {"top1_agreement": 0.9}, "fp16-arithmetic": {"top1_agreement": 0.99}}
# A score in [0, 1] without a class axis (at most 4 values a sample: a wake-word or voice-activity
# probability) is also judged by its absolute error on the probability scale: about 5 int8 steps of
# a Sigmoid output (1/256) for int8, the relative tolerances for the float precisions. A score the
# int8 bundle squashes to zero while fp32 says 0.3 still fails (error 0.3).
SCORE_ALTERNATIVES = {"fp32": {"score_abs_error": 1e-4}, "fp16": {"score_abs_error": 1e-2},
                      "fp16-arithmetic": {"score_abs_error": 5e-2}, "int8": {"score_abs_error": 0.02}}
# ... but for int8 only when the agreement is measured over this many arg-max decisions (samples x
# positions): 4 of 4 classifier samples agreeing say little (95 % lower bound 0.47). magika rpi4 int8
# (issue 19) passed on 4 agreeing samples at cosine 0.85 and held 75 % arg-max agreement on 24 others.
MIN_TOP1_DECISIONS = {"int8": 20}


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
        bad = nonfinite_problems(m)
        nan = [k for k, v in m.items() if (isinstance(v, float) and v != v) or v == "nan"]
        if nan and not bad:  # a NaN metric is never rescued by another (arg-max of an all-NaN row is 0)
            bad = [f"{', '.join(nan)} not finite"]
        if bad:
            problems += [f"output {out!r}: {p}" for p in bad]
            continue
        problems += [f"output {out!r}: {miss}" for miss in _judge_one(m, precision, ALTERNATIVES)]
        for label, pm in (m.get("parts") or {}).items():
            problems += [f"output {out!r} {label}: {miss}" for miss in _judge_one(pm, precision, PART_ALTERNATIVES)]
    return not problems, problems


def _judge_one(m: Mapping[str, Any], precision: str, alternatives_table) -> list[str]:
    misses = _misses(m, TOLERANCES.get(precision, {}))
    if not misses:
        return []
    table = {**alternatives_table.get(precision, {}), **SCORE_ALTERNATIVES.get(precision, {})}
    alternatives = {k: v for k, v in table.items() if isinstance(m.get(k), float)}
    few, least = m.get("top1_decisions"), MIN_TOP1_DECISIONS.get(precision, 0)
    if "top1_agreement" in alternatives and isinstance(few, int) and few < least:
        del alternatives["top1_agreement"]
        misses = misses + [f"top1_agreement {m['top1_agreement']:.4g} over only {few} arg-max decision(s) "
                           f"(it stands in for cosine from {least} on)"]
    alternative_misses = _misses(m, alternatives)
    if alternatives and not alternative_misses:
        return []
    return misses + alternative_misses


def nonfinite_problems(m: Mapping[str, float]) -> list[str]:
    """NaN/Inf fail verification whatever the other metrics say (they are computed on the finite
    values only): where the artifact's output is not finite but the reference is (or differs), and
    where the fp32 reference itself is not finite -- nothing can be verified against it."""
    out = []
    if m.get("nonfinite_mismatches"):
        out.append(f"{int(m['nonfinite_mismatches'])} non-finite (NaN/Inf) value(s) that differ from the fp32 reference")
    if m.get("reference_nonfinite"):
        out.append(f"the fp32 reference itself is non-finite ({int(m['reference_nonfinite'])} NaN/Inf value(s)): "
                   "NaN/Inf weights, or inputs too large for float32")
    return out


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
        "score_or": SCORE_ALTERNATIVES.get(precision, {}),
        "outputs": json_safe(round_floats(metrics)),
        "problems": problems,
        **({"output_parts": {o: t.to_json() for o, t in parts.items()}} if parts else {}),
    }


def stored_output_parts(bundle: str | Path, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Outputs verified per branch at build time (``verification.output_parts``), from the manifest:
    every later check of the bundle (``deploykit verify``, emulated, inside its image) judges them per part too."""
    from deploykit.errors import BundleError
    from deploykit.quant.parts import ConcatTail

    stored = (manifest.get("verification") or {}).get("output_parts") or {}
    try:
        return {o: ConcatTail.from_json(d) for o, d in stored.items()}
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise BundleError(f"{bundle}/manifest.json: verification.output_parts is malformed ({type(e).__name__}); "
                          "rebuild the bundle with 'deploykit build'") from e
