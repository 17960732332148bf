"""One wording for what a bundle was checked against, shared by ``build`` and ``verify``.

Two different checks meet here and used to contradict each other on screen:

* the int8 *accuracy budget* (``--accuracy-budget``, default ``cosine>=0.99``): what the
  quantization engine aims for, measured on calibration samples while it picks ranges and float
  layers (``manifest["quantization"]``);
* *verification*: the built artifact, run by its own runner, against the fp32 model on the
  held-out samples stored in the bundle, judged by the precision's tolerance
  (``manifest["verification"]["tolerance"]``, for int8 a sanity bound, ``cosine >= 0.95``).

The final line states the rule that decided it once, and a missed budget is never reported as
a bare "passed".
"""

from __future__ import annotations

from typing import Any

_NAMES = {"rel_max_abs_error": "max abs error / output range", "max_abs_error": "max abs error",
          "cosine": "cosine", "sqnr_db": "SQNR (dB)", "top1_agreement": "top-1 agreement",
          "score_abs_error": "max abs error"}


def _limit(key: str, value: Any) -> str:
    return f"{_NAMES.get(key, key)} {'<=' if key.endswith('error') else '>='} {value:g}"


def rule_text(verification: dict[str, Any]) -> str:
    """``cosine >= 0.95 (or top-1 agreement >= 0.9)``: the tolerance verification applied."""
    tol = verification.get("tolerance") or {}
    alt = verification.get("or") or {}
    text = " and ".join(_limit(k, v) for k, v in tol.items()) or "no tolerance"
    if alt:
        text += " (or " + " and ".join(_limit(k, v) for k, v in alt.items()) + ")"
    score = verification.get("score_or") or {}
    if score:
        text += "; a score in [0, 1] also passes with " + " and ".join(_limit(k, v) for k, v in score.items())
    return text


def samples_text(count: int, stored: bool) -> str:
    return f"{count} {'stored ' if stored else ''}held-out sample{'s' if count != 1 else ''}"


def budget_missed(quantization: dict[str, Any] | None) -> str | None:
    """``accuracy budget cosine>=0.99 MISSED: int8 reaches cosine 0.9856 on 8 calibration samples``
    (``None`` when the budget was met or the build is not int8)."""
    q = quantization or {}
    if q.get("budget_met") is not False:
        return None
    budget = str(q.get("budget") or "")
    metric = budget.split(">=")[0] or "cosine"
    key = "sqnr_db" if metric == "sqnr" else "cosine"
    # an output is as good as its worst part (a concatenated output's branches are scored apart)
    outputs = [m for m in (q.get("output_metrics") or {}).values() if isinstance(m, dict)]
    every = outputs + [p for m in outputs for p in (m.get("parts") or {}).values() if isinstance(p, dict)]
    scores = [m[key] for m in every if isinstance(m.get(key), (int, float))]
    evals = q.get("eval_samples")
    on = f"on {evals} calibration samples" if evals else "on the calibration samples"
    reached = f"int8 reaches {metric} {min(scores):.6g} {on}" if scores else f"measured {on}"
    return f"accuracy budget {budget} MISSED: {reached}"


def verdict(verification: dict[str, Any], quantization: dict[str, Any] | None, stored: bool = False) -> tuple[str, str]:
    """(status word, one line) for the end of ``build`` / ``verify``; status is passed, failed,
    budget-missed or skipped."""
    status = verification.get("status")
    if status == "skipped":
        return "skipped", f"verification skipped: {verification.get('reason', 'no runtime here')}"
    n = int(verification.get("samples") or 0)
    where = f"on {samples_text(n, stored)}" + (f" ({verification['runtime']})" if verification.get("runtime") else "")
    rule = rule_text(verification)
    task = verification.get("task")
    if status != "passed":
        problems = verification.get("problems") or []
        tolerance = any(p.startswith("output ") for p in problems)
        because = f" (the rule: {rule} vs fp32 on every output)" if tolerance else ""
        return "failed", f"verification FAILED {where}{because}: {'; '.join(problems)}"
    if task:  # a task budget (--eval-data/--metric) is verified on the bundle itself: it decides
        return "passed", (f"verification passed: every output within {rule} of fp32 {where}; task metric "
                          f"{task.get('metric')} budget {task.get('budget')} met on {task.get('samples')} "
                          "evaluation samples")
    missed = budget_missed(quantization)
    if missed:
        return "budget-missed", (f"{missed}. The built bundle is within {rule} of fp32 {where}, "
                                 "so it runs correctly but less accurately than asked: build --precision fp16, lower "
                                 "--accuracy-budget, or pass --strict to make this an error")
    budget = (quantization or {}).get("budget")
    extra = f"; int8 accuracy budget {budget} met" if budget else ""
    return "passed", f"verification passed: every output within {rule} of fp32 {where}{extra}"
