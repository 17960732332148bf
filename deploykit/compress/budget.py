"""Budgeted per-layer choice shared by ``prune=auto``, ``lowrank=auto`` and ``cluster=auto`` (not a
technique itself).

1. sensitivity scan: each layer alone at each option (mild to aggressive), scored against the fp32
   outputs; a layer's scan stops at the first option that alone exceeds the allowance;
2. allocation: the options with the largest saving per unit of accuracy loss whose losses sum to
   the allowance (:func:`~deploykit.compress._graph.allocate`);
3. check the combination on more samples (including ones the scan never saw); when interactions
   or the scan's bias make it miss the target, keep the longest prefix of the greedy order that
   meets it (binary search).

The scan is bounded by evaluations and by the MACs they run (deterministic), with a last-resort
wall-clock bound; unscanned layers stay unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import onnx

from deploykit.compress._graph import Evaluator, allocate, choice_prefix

MAX_EVALS = 160       # bound on sensitivity evaluations per technique ...
MIN_EVALS = 24
SCAN_MACS = 6e11      # ... and on the multiply-accumulates they run (deterministic, unlike a clock)
SCAN_SECONDS = 300.0  # last-resort wall-clock bound; layers left unscanned are not changed


def budgeted_choice(
    options: dict[str, list[tuple[object, float]]],
    build: Callable[[dict[str, object]], onnx.ModelProto],
    evaluator: Evaluator,
    target: float,
    log: Callable[[str], None],
    what: str,
    checker: Evaluator | None = None,
) -> tuple[dict[str, object], float, dict]:
    """Choose one option per layer so that ``checker.score(build(choice)) >= target``.

    :param options: layer -> [(option, saving)], ordered from mild to aggressive.
    :param evaluator: scores the many single-layer trials (few samples).
    :param checker: scores combinations (more samples, including ones the scan did not see: the
        scan's choices are biased towards its own samples). Defaults to ``evaluator``.
    :returns: (choice, score of the chosen model, scan details for the report).
    """
    checker = checker or evaluator
    start = evaluator.score(build({}))
    allowance = start - target
    scan: dict[str, list] = {}
    not_scanned = []
    if allowance <= 0:
        return {}, start, {"start_score": round(start, 6), "scan": {}, "note": "no accuracy budget left"}
    evals = 0
    t0 = time.monotonic()
    cost = max(getattr(evaluator, "cost", 0), 1)
    max_evals = int(min(MAX_EVALS, max(MIN_EVALS, SCAN_MACS // cost)))
    order = sorted(options, key=lambda k: -max((s for _, s in options[k]), default=0))
    curves: dict[str, list[tuple[object, float, float]]] = {}
    for layer in order:
        if evals >= max_evals or time.monotonic() - t0 > SCAN_SECONDS:
            not_scanned.append(layer)
            continue
        curve = []
        for opt, saving in options[layer]:
            score = evaluator.score(build({layer: opt}))
            evals += 1
            loss = max(start - score, 0.0)
            curve.append((opt, loss, saving))
            if loss > allowance or evals >= max_evals:
                break
        curves[layer] = curve
        scan[layer] = [[_jsonable(o), round(loss, 6)] for o, loss, _ in curve]
    log(f"{what}: scanned {len(curves)} layer(s) with {evals} evaluations in {time.monotonic() - t0:.1f} s, "
        f"allowance {allowance:.4g}" + (f"; {len(not_scanned)} layer(s) left unscanned (time/evaluation limit)" if not_scanned else ""))
    picks = allocate(curves, allowance)
    if not picks:
        return {}, start, _details(start, scan, not_scanned)
    if checker is not evaluator:
        start = checker.score(build({}))
    choice = choice_prefix(picks, len(picks))
    score = checker.score(build(choice))
    if score >= target:
        return choice, score, _details(start, scan, not_scanned)
    # interactions: keep the longest prefix of the greedy order that still meets the target
    log(f"{what}: all {len(picks)} picks together score {score:.5f} < {target:.5f}; searching the longest prefix that fits")
    lo, hi, best = 0, len(picks) - 1, ({}, start)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        choice = choice_prefix(picks, mid)
        score = checker.score(build(choice))
        if score >= target:
            lo, best = mid, (choice, score)
        else:
            hi = mid - 1
    return best[0], best[1], _details(start, scan, not_scanned)


def _jsonable(value):
    return value if isinstance(value, (int, float, str)) or value is None else str(value)


def _details(start: float, scan: dict, not_scanned: list[str]) -> dict:
    d = {"start_score": round(start, 6), "scan": scan}
    if not_scanned:
        d["not_scanned"] = not_scanned
    return d
