"""The accuracy-aware int8 engine every backend uses through its :class:`QuantScheme`.

Steps: (optional) cross-layer equalization -> statistics in ONNX Runtime -> parameters for each
range method -> fake-quant (QDQ) simulation scored against fp32 -> best method -> if the accuracy
budget is missed and the scheme allows mixed precision, per-layer sensitivity and fallback of
the most sensitive layers until the budget holds.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir

from deploykit.errors import DeployError
from deploykit.ir.names import fresh_name
from deploykit.quant.calibration import SampleSet
from deploykit.quant.collect import GraphIndex, collect_statistics
from deploykit.quant.metrics import PartComparison, RunningComparison
from deploykit.quant.parts import PROBABILITY_OPS as PROBABILITY_PRODUCERS
from deploykit.quant.parts import ConcatTail, find_concat_tails
from deploykit.quant.observers import TensorObserver
from deploykit.quant.params import QuantParams, params_from_range
from deploykit.quant.plan import (HUGE_VALUE, QuantPlan, _node_key, build_plan, cached_range, observed_tensors,
                                  quantizable_inputs)
from deploykit.quant.patterns import spelled_out_hardswish
from deploykit.quant.qdq import build_qdq_model, int8_outputs, with_score_outputs
from deploykit.quant.roles import WEIGHT_OPS
from deploykit.quant.scheme import QuantScheme
from deploykit.quant.statistics import statistics_nodes

MIN_CALIBRATION_SAMPLES = 8  # below this: a warning before anything else
# Range methods ``auto`` simulates. Entropy (KL) is left to an explicit --calibration-method: it
# never won on the benchmark models and clipped a recognizer's logits into uselessness.
AUTO_METHODS = ("minmax", "percentile", "mse")
# What ``auto`` keeps unless another method is clearly better on the held-out samples
# (:func:`_clearly_better`, on the worse half): eight samples rank near-ties at random. PP-OCR rec
# under three calibration sets: percentile held within 0.9 pt of fp32 on every set (TFLite and
# Edge TPU, simulated), mse swung from -0.3 to -2 pt, and the 8-sample scores picked mse on ties.
PREFERRED_METHOD = "percentile"


@dataclass(frozen=True)
class AccuracyBudget:
    """The accuracy an int8 build must keep against fp32, on every output.

    ``sqnr`` is in dB (signal-to-quantization-noise ratio), ``cosine`` is cosine similarity.
    """

    metric: str = "cosine"
    threshold: float = 0.99

    @classmethod
    def parse(cls, text: str | None) -> AccuracyBudget:
        if not text:
            return cls()
        m = re.fullmatch(r"\s*(sqnr|cosine)\s*(?:>=|=|:)\s*([0-9.eE+-]+)\s*", text)
        if not m:
            raise DeployError(f"--accuracy-budget {text!r} is not understood; write e.g. cosine=0.99 or sqnr=20 (dB)")
        metric, value = m.group(1), float(m.group(2))
        if metric == "cosine" and not 0 < value <= 1:
            raise DeployError(f"--accuracy-budget cosine must be in (0, 1], got {value}")
        return cls(metric, value)

    def score(self, metrics: dict[str, dict[str, Any]]) -> float:
        """The worst value of the budget's metric over every output and every part of an output
        (a concatenated output is as good as its worst branch)."""
        key = "sqnr_db" if self.metric == "sqnr" else "cosine"
        values = [m[key] for m in metrics.values()]
        values += [pm[key] for m in metrics.values() for pm in (m.get("parts") or {}).values()]
        return min(values) if values else math.inf

    def met(self, metrics: dict[str, dict[str, float]]) -> bool:
        return self.score(metrics) >= self.threshold

    def __str__(self) -> str:
        return f"{self.metric}>={self.threshold:g}"


@dataclass
class QuantConfig:
    """Engine options (CLI: --calibration-method, --accuracy-budget, --no-bias-correction, --equalize)."""

    method: str = "auto"
    budget: AccuracyBudget = field(default_factory=AccuracyBudget)
    bias_correction: bool = True
    equalize: str = "auto"  # auto | on | off
    eval_samples: int = 8
    # the device sums int8 dot products in int32 (TargetProfile.int8_sums_in_int32): the engine may
    # also try ``scheme.int32_weight_bits``
    int32_accumulation: bool = False
    max_fallback_fraction: float = 0.25
    max_fallback_layers: int = 64
    # --eval-data / --metric: a deploykit.quant.task_metrics.TaskBudget and EvalSet; when set, they
    # drive the method choice and the fallback search instead of ``budget``
    task: Any = None
    eval_set: Any = None


@dataclass
class QuantResult:
    """What the engine hands to a backend (``BuildContext.quant``).

    :ivar model: the fp32 model the parameters refer to (after equalization, if any).
    :ivar params: tensor name -> :class:`QuantParams` (activations, weights, biases, constants).
    :ivar fallback: names of nodes that stay in float.
    :ivar plan: the full :class:`QuantPlan` (incl. bias-corrected float values).
    :ivar qdq_model: the QDQ ONNX model (fake-quant simulation; int8 artifact for QDQ backends).
    :ivar metrics: output metrics of the chosen configuration on the engine's eval samples.
    :ivar report: the per-layer table and search log for report.json.
    :ivar joins: graph output -> :class:`ConcatTail` whose branches the runner joins in float
        (targets with ``QuantScheme.join_outputs``); its nodes are not in ``fallback``.
    """

    model: ir.Model
    params: dict[str, QuantParams]
    fallback: set[str]
    plan: QuantPlan
    qdq_model: onnx.ModelProto
    metrics: dict[str, dict[str, float]]
    budget_met: bool
    report: dict[str, Any]
    timing: dict[str, float] = field(default_factory=dict)
    joins: dict[str, ConcatTail] = field(default_factory=dict)


def simulation_session(model: onnx.ModelProto):
    """An ONNX Runtime session that runs a QDQ model with exact integer arithmetic on any CPU.

    ONNX Runtime would fuse DequantizeLinear -> op -> QuantizeLinear into its int8 kernels, whose
    u8 x s8 dot products saturate in int16 on x86 CPUs without VNNI (``vpmaddubsw``): the result
    would depend on the build machine, and be worse than any int8 device (ARM, Edge TPU, TensorRT
    accumulate in int32). With the fusion off, every op runs in float on the dequantized values,
    which is what an int32-accumulating kernel computes, up to float rounding."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 4  # failures surface as exceptions (one error line), not as ORT log lines
    so.intra_op_num_threads = min(os.cpu_count() or 1, 8)
    so.enable_cpu_mem_arena = False  # many short-lived sessions: do not let arenas pile up
    so.add_session_config_entry("session.disable_quant_qdq", "1")
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def evaluate(model: onnx.ModelProto, feeds: list[dict[str, np.ndarray]], refs: list[dict[str, np.ndarray]],
             parts: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Output metrics of ``model`` against fp32 reference outputs; outputs in ``parts`` (name ->
    :class:`~deploykit.quant.parts.ConcatTail`) also per branch (``metrics[name]["parts"]``)."""
    return evaluate_subsets(model, feeds, refs, parts)[0]


def evaluate_subsets(model: onnx.ModelProto, feeds, refs, parts: dict[str, Any] | None = None,
                     subsets: int = 1) -> list[dict[str, dict[str, Any]]]:
    """Like :func:`evaluate`, in one pass: ``[all samples, subset 1, ..., subset n]`` where sample i
    is in subset ``i % subsets`` (only ``[all]`` when ``subsets`` is 1)."""
    sess = simulation_session(model)
    names = list(refs[0])
    wanted = {i.name for i in sess.get_inputs()}
    groups = 1 + (subsets if subsets > 1 else 0)
    running = [{n: RunningComparison() for n in names} for _ in range(groups)]
    split = [{n: PartComparison(parts[n]) for n in names if parts and n in parts} for _ in range(groups)]
    for i, (feed, ref) in enumerate(zip(feeds, refs)):
        targets = [0] + ([1 + i % subsets] if groups > 1 else [])
        for n, out in zip(names, sess.run(names, {k: v for k, v in feed.items() if k in wanted})):
            for g in targets:
                running[g][n].add(ref[n], out)
                if n in split[g] and not split[g][n].add(ref[n], out):
                    del split[g][n]
    results = []
    for g in range(groups):
        result: dict[str, dict[str, Any]] = {n: c.result() for n, c in running[g].items()}
        for n, c in split[g].items():
            result[n]["parts"] = c.result()
        results.append(result)
    return results


def _refuse_unrepresentable(observers: Mapping[str, Any], outputs, proto, full_integer: bool) -> None:
    """Refuse int8 when the fp32 model itself computes NaN/Inf outputs on the calibration samples
    (NaN/Inf/huge weights, or data at the wrong scale): no int8 range represents them, and
    verification could only fail. On full-integer targets (nothing may stay float) also when a
    tensor passes :data:`HUGE_VALUE`: its int8 rescales leave float32 and the runtime aborts (mixed
    targets keep such tensors, e.g. an attention mask of float32 min, in float)."""
    from deploykit.errors import CalibrationError

    broken = [n for n in outputs if n in observers and observers[n].nonfinite]
    huge = [n for n, o in observers.items() if full_integer and o.count and max(abs(o.lo), abs(o.hi)) > HUGE_VALUE]
    if broken:
        from onnx import numpy_helper

        o = observers[broken[0]]
        consts = [t.name for t in proto.graph.initializer
                  if t.data_type in (1, 10, 11, 16) and not np.isfinite(numpy_helper.to_array(t)).all()]
        where = f"constants with NaN/Inf: {', '.join(map(repr, consts[:5]))}" if consts else \
            "check the weights for NaN/Inf/huge values and the calibration data's scale"
        raise CalibrationError(
            f"the fp32 model outputs NaN/Inf on the calibration samples (output {broken[0]!r}: {o.nonfinite} "
            f"non-finite value(s)); int8 cannot be calibrated on that: {where} (build fp32 to see the reference)")
    if huge:
        o = observers[huge[0]]
        raise CalibrationError(
            f"tensor {huge[0]!r} reaches {max(abs(o.lo), abs(o.hi)):.3g} on the calibration samples (beyond "
            f"{HUGE_VALUE:g}); int8 cannot be calibrated on that (its scales would not fit in float32): check the weights "
            "for huge values and the calibration data's scale")


# Graph outputs computed by these ops from a float tensor are scored on that tensor (the logits):
# probabilities squash errors unevenly. On PP-OCR rec (a 6625-way softmax per time step) cosine on
# the probabilities ranked the range methods backwards (minmax 0.955 > mse 0.945) while character
# accuracy was minmax 97.9 % < mse 98.6 % < percentile 99.0 %; SQNR of the logits ranked them right.
PROBABILITY_OPS = frozenset({"Softmax", "LogSoftmax"})


def score_tensors(index: GraphIndex) -> dict[str, str]:
    """Graph output -> the tensor its accuracy is scored on, for outputs that are probabilities."""
    scored = {}
    for out in index.graph_outputs:
        node = index.producer.get(out)
        if node is not None and node.op_type in PROBABILITY_OPS and node.input and node.input[0] \
                and index.is_float(node.input[0]) and node.input[0] not in index.initializers:
            scored[out] = node.input[0]
    return scored


TASK_KEY = "__task__"  # pseudo-output carrying the task metric through the judge's metrics


class _TaskEvaluator:
    """Runs a candidate on the user's evaluation data and computes the task metric: on all of it,
    then on each interleaved half (for the method ranking)."""

    def __init__(self, eval_set, metric, output_names: list[str]):
        self.eval_set, self.metric, self.names = eval_set, metric, output_names
        self.refs = None
        self.fp32 = math.nan

    def run(self, model: onnx.ModelProto) -> list[dict[str, np.ndarray]]:
        sess = simulation_session(model)
        wanted = {i.name for i in sess.get_inputs()}
        return [dict(zip(self.names, sess.run(self.names, {k: v for k, v in f.items() if k in wanted})))
                for f in self.eval_set.feeds]

    def values(self, outs: list[dict[str, np.ndarray]]) -> list[float]:
        n = len(outs)
        result = [self.metric(outs, self.eval_set.labels, self.refs)]
        if n >= 4:
            for half in (0, 1):
                idx = list(range(half, n, 2))
                labels = {k: v[idx] for k, v in self.eval_set.labels.items()}
                result.append(self.metric([outs[i] for i in idx], labels,
                                          [self.refs[i] for i in idx] if self.refs is not None else None))
        return result

    def start(self, fp32_model: onnx.ModelProto) -> float:
        self.refs = self.run(fp32_model)
        self.fp32 = self.values(self.refs)[0]
        return self.fp32

    def evaluate(self, qdq: onnx.ModelProto) -> list[float]:
        return self.values(self.run(qdq))


class TaskAccuracyBudget:
    """The :class:`AccuracyBudget` interface over a task metric (``--eval-data`` + ``--metric``):
    a candidate's score is its task value, the budget holds when it is within the allowed drop
    of fp32's value."""

    metric = "task"

    def __init__(self, task, fp32: float):
        self.task, self.fp32 = task, fp32

    def score(self, metrics: dict[str, dict[str, Any]]) -> float:
        return metrics[TASK_KEY]["value"]

    def met(self, metrics: dict[str, dict[str, Any]]) -> bool:
        return self.task.met(self.score(metrics), self.fp32)

    def __str__(self) -> str:
        return str(self.task)


class _Judge:
    """Scores a quantized candidate on the eval samples: the budget's metric per graph output,
    taken on the logits for probability outputs (see :data:`PROBABILITY_OPS`). Candidates are
    ranked by that score; the budget itself holds on the outputs users get (:meth:`met`): on
    logits, cosine 0.99 would push classifiers that meet it on their probabilities into float
    fallback.

    A full-integer runtime hands int8 logits to a float Softmax, so there the logits are scored
    after fake quantization with their own parameters."""

    def __init__(self, index: GraphIndex, feeds, refs, scored: dict[str, str], parts: dict[str, ConcatTail] | None = None):
        self.index, self.feeds = index, feeds
        self.parts = dict(parts or {})
        taken = set(index.producer) | set(index.graph_inputs) | set(index.initializers)
        self.names = {out: fresh_name(taken, f"{logits}_scored") for out, logits in scored.items()}
        self.scored = scored
        self.refs = [{**{o: r[o] for o in index.graph_outputs},
                      **{self.names[o]: r[logits] for o, logits in scored.items()}} for r in refs]
        self.outputs: dict[int, dict[str, dict[str, float]]] = {}
        self.subsets: dict[int, list[dict[str, dict[str, Any]]]] = {}  # scored metrics of each half
        self.task: _TaskEvaluator | None = None

    def met(self, budget: AccuracyBudget, qdq: onnx.ModelProto) -> bool:
        """Whether a candidate scored before meets ``budget`` on the graph outputs."""
        return budget.met(self.outputs[id(qdq)])

    def __call__(self, plan: QuantPlan, qdq: onnx.ModelProto) -> dict[str, dict[str, float]]:
        """Score metrics per graph output; the plain output metrics are kept in ``outputs``."""
        model = qdq
        if self.scored:
            model = with_score_outputs(qdq, plan, {v: self.names[o] for o, v in self.scored.items()},
                                       int8_outputs(self.index.model.graph, plan))
        every = evaluate_subsets(model, self.feeds, self.refs, self.parts, subsets=2 if len(self.feeds) >= 4 else 1)
        metrics = every[0]
        self.outputs[id(qdq)] = {o: metrics[o] for o in self.index.graph_outputs}
        scored = [{o: m[self.names[o]] if o in self.names else m[o] for o in self.index.graph_outputs} for m in every]
        if self.task is not None:
            values = self.task.evaluate(qdq)
            self.outputs[id(qdq)][TASK_KEY] = {"value": values[0]}
            for m, v in zip(scored, values if len(scored) > 1 else values[:1]):
                m[TASK_KEY] = {"value": v}
        self.subsets[id(qdq)] = scored[1:]
        return scored[0]

    def subset_scores(self, budget: AccuracyBudget, qdq: onnx.ModelProto) -> list[float]:
        """The candidate's score on each half of the eval samples (empty with too few samples)."""
        return [budget.score(m) for m in self.subsets.get(id(qdq)) or []]


def _check_inputs(observers: dict[str, TensorObserver], index: GraphIndex, log: Callable[[str], None]) -> None:
    for name in index.graph_inputs:
        obs = observers.get(name)
        if obs is None:
            continue
        if obs.count and obs.lo == obs.hi:
            what = "all zero" if obs.lo == 0 else f"constant ({obs.lo:g})"
            log(f"warning: calibration data for input {name!r} is {what}; int8 ranges will not fit real inputs — "
                "pass representative samples")


def tensor_sqnr(obs: TensorObserver, p: QuantParams) -> float:
    """SQNR (dB) of fake-quantizing the observed values of one tensor with ``p``."""
    x = obs.sample.astype(np.float32)
    if x.size == 0:
        return math.inf
    err = p.dequantize(p.quantize(x)) - x
    noise, signal = float(np.mean(err.astype(np.float64) ** 2)), float(np.mean(x.astype(np.float64) ** 2))
    if noise == 0:
        return math.inf
    if not math.isfinite(noise) or signal / noise <= 0:  # scales of ~1e36 (float-min masks) overflow
        return -math.inf
    return 10 * math.log10(signal / noise) if signal > 0 else -math.inf


def quantize_model(
    model: ir.Model,
    calibration: SampleSet,
    scheme: QuantScheme,
    config: QuantConfig | None = None,
    *,
    log: Callable[[str], None] = lambda m: None,
    progress: Callable[[str, int, int], None] | None = None,
) -> QuantResult:
    """Quantize ``model`` under ``scheme``; see the module docstring."""
    config = config or QuantConfig()
    if len(calibration) < MIN_CALIBRATION_SAMPLES:
        log(f"warning: only {len(calibration)} calibration samples; use at least {MIN_CALIBRATION_SAMPLES} "
            "(100+ representative samples give the best int8 ranges)")
    t0 = time.perf_counter()
    proto = ir.to_proto(model)
    equalized = []
    if config.equalize == "on" or (config.equalize == "auto" and _has_depthwise(proto)):
        from deploykit.quant.equalize import equalize_model

        proto, equalized = equalize_model(proto)
        if equalized:
            log(f"cross-layer equalization on {len(equalized)} conv pairs")
    index = GraphIndex(proto)
    base_fallback = statistics_nodes(index) if scheme.mixed_precision else set()
    if base_fallback:
        log(f"{len(base_fallback)} normalization-statistics node(s) stay in float")
    if scheme.weight_bits < 8:
        dynamic = _dynamic_weight_nodes(index, scheme) - base_fallback
        if dynamic:
            base_fallback = base_fallback | dynamic
            log(f"{len(dynamic)} product(s) of two activations stay in float (their int8 form can saturate on "
                "x86 CPUs without VNNI)")
    hswish: set[str] = set()  # spelled-out h-swish chains the target may run as one float HardSwish
    chains = spelled_out_hardswish(index) if "HardSwish" in scheme.float_ops else []
    if chains:
        keys = {id(n): _node_key(n, k) for k, n in enumerate(index.model.graph.node)}
        hswish = {keys[id(n)] for chain in chains for n in chain} - base_fallback
    tails = find_concat_tails(model)
    wanted = observed_tensors(index, scheme, base_fallback)
    probabilities = probability_tensors(index, tails)
    checked_only: set[str] = set()  # observed to check the calibration data, not for the plan
    if wanted is not None:
        wanted |= set(index.graph_inputs)  # to check the calibration data itself
        checked_only = set(probabilities) - wanted  # and its confidence
        wanted |= checked_only
    planned = wanted  # tensors the plan may give parameters (None: all)
    if scheme.cache_every_tensor:
        wanted = None  # the rest are observed for the backend's calibration cache only
    scored = score_tensors(index)
    observers, feeds, refs = collect_statistics(
        proto, calibration, eval_count=config.eval_samples, wanted=wanted, extra_refs=scored.values(),
        progress=(lambda i, n: progress("calibrate", i, n)) if progress else None,
    )
    judge = _Judge(index, feeds, refs, scored, tails)
    budget: Any = config.budget
    if config.task is not None and config.eval_set is not None:
        judge.task = _TaskEvaluator(config.eval_set, config.task.metric, list(index.graph_outputs))
        fp32_task = judge.task.start(proto)
        budget = TaskAccuracyBudget(config.task, fp32_task)
        log(f"task metric {config.task.metric.name} on {len(config.eval_set)} evaluation samples: fp32 "
            f"{config.task.metric.format(fp32_task)}; budget {config.task}")
        config = dataclasses.replace(config, budget=budget)
    if scored:
        log(f"accuracy scored on the logits of {len(scored)} probability output(s)")
    if tails:
        log(f"{len(tails)} concatenated output(s) scored branch by branch")
    _check_inputs(observers, index, log)
    calibration_check = _check_calibration_size(observers, len(calibration), len(feeds), log)
    calibration_check.update(_check_confidence(observers, probabilities, len(calibration), log))
    cache_only: dict[str, TensorObserver] = {}
    if planned is not None:
        for name in set(observers) - (planned - checked_only):
            observer = observers.pop(name)
            if name not in checked_only:
                cache_only[name] = observer
    base_fallback, joins = _split_mixed_concats(index, observers, tails, scheme, base_fallback, log)
    join_nodes = {k for t in joins.values() for k in t.float_nodes}
    base_fallback = base_fallback | join_nodes  # simulated in float: the runner joins dequantized branches
    _refuse_unrepresentable(observers, index.graph_outputs, proto, full_integer=not scheme.mixed_precision)
    bad = [n for n, o in observers.items() if o.nonfinite]
    if bad:
        log(f"warning: NaN/Inf values in {len(bad)} tensors during calibration (e.g. {bad[0]!r}); they are ignored")
    t_stats = time.perf_counter() - t0
    methods = list(AUTO_METHODS) if config.method == "auto" else [config.method]
    trials = []
    candidates: dict[str, tuple] = {}
    ranges: dict[tuple[str, str], tuple[float, float]] = {}  # shared by every plan below
    for m in methods:
        plan = build_plan(index, observers, scheme, m, fallback=base_fallback | hswish,
                          bias_correction=config.bias_correction, range_cache=ranges)
        qdq = build_qdq_model(proto, plan, index)
        metrics = judge(plan, qdq)
        score = config.budget.score(metrics)
        halves = judge.subset_scores(config.budget, qdq)
        worst = _worse_half(halves, score)
        trials.append({"method": m, "score": score, "worst_half": worst,
                       "spread": (max(halves) - worst) if halves and math.isfinite(max(halves) - worst) else None})
        candidates[m] = (plan, qdq, metrics, score)
        if progress:
            progress("search ranges", len(trials), len(methods))
    method = choose_method(trials, config.budget)
    plan, qdq, metrics, score = candidates[method]
    top = _first_ranked(trials)["method"]
    log(f"range method {method}: {config.budget.metric} {score:.4g} "
        f"(tried {', '.join(_trial_text(t) for t in trials)})"
        + (f"; {top} ranks first but not clearly better, so {method} stays" if top != method else ""))
    if hswish:
        p8 = build_plan(index, observers, scheme, method, fallback=base_fallback,
                        bias_correction=config.bias_correction, range_cache=ranges)
        q8 = build_qdq_model(proto, p8, index)
        m8 = judge(p8, q8)
        score8 = config.budget.score(m8)
        n_chains = len(chains)
        if _clearly_better(config.budget, score, score8):
            base_fallback = base_fallback | hswish
            log(f"{n_chains} spelled-out h-swish chain(s) run in float, as one HardSwish "
                f"({config.budget.metric} {score:.4g} vs {score8:.4g} all-int8)")
        else:
            plan, qdq, metrics, score = p8, q8, m8, score8
            log(f"{n_chains} spelled-out h-swish chain(s) stay int8: float gains too little to pay for the "
                f"float ops ({config.budget.metric} {score:.4g} int8)")
    if scheme.int32_weight_bits and config.int32_accumulation and scheme.int32_weight_bits != scheme.weight_bits:
        scheme, plan, qdq, metrics, score = _try_wider_weights(index, observers, scheme, method, config, proto,
                                                               judge, log, plan, qdq, metrics, score, ranges)
    sensitivity: dict[str, float] = {}
    if not judge.met(config.budget, qdq) and scheme.mixed_precision:
        plan, qdq, metrics, sensitivity = _fallback_search(index, observers, scheme, method, config, proto, judge,
                                                           log, progress, base_fallback, plan, qdq, metrics, ranges)
    output_metrics = judge.outputs[id(qdq)]
    budget_met = config.budget.met(output_metrics)
    final_score = config.budget.score(output_metrics)
    task_value = output_metrics.get(TASK_KEY, {}).get("value")
    output_metrics = {k: v for k, v in output_metrics.items() if k != TASK_KEY}
    if not budget_met:
        log(f"warning: accuracy budget {config.budget} missed: best {config.budget.metric} "
            f"{final_score:.4g}" + ("" if scheme.mixed_precision else " (this target allows no float fallback)"))
    result_model = ir.from_proto(proto) if equalized else model
    report = _report(index, observers, plan, sensitivity, config, method, trials, output_metrics, budget_met,
                     equalized, len(calibration))
    report["calibration_check"] = calibration_check
    if task_value is not None:
        from deploykit.quant.task_metrics import summary

        report["task_metric"] = {**summary(config.task, judge.task.fp32, task_value, len(config.eval_set),
                                           "int8_simulated"), "met": budget_met}
    if joins:
        report["joined_outputs"] = {o: t.to_json() for o, t in joins.items()}
        report["fallback_layers"] = sorted(set(report["fallback_layers"]) - join_nodes)
    if scored:
        report["scored_on_logits"] = {o: {"tensor": scored[o], **metrics[o]} for o in scored}
    timing = {"statistics_s": t_stats, "total_s": time.perf_counter() - t0}
    params = {**_cache_params(cache_only, scheme, method, ranges), **plan.all_params()}
    return QuantResult(model=result_model, params=params, fallback=set(plan.fallback) - join_nodes,
                       plan=plan, qdq_model=qdq, metrics=output_metrics, budget_met=budget_met, report=report,
                       timing=timing, joins=joins)


def _try_wider_weights(index, observers, scheme: QuantScheme, method, config, proto, judge, log,
                       plan, qdq, metrics, score, ranges):
    """The plan again on ``scheme.int32_weight_bits`` weights, kept when clearly more accurate on
    the worse half of the held-out samples (as :func:`choose_method` ranks) and not worse on all.
    Float layers stay as they are. Returns (scheme, plan, qdq, metrics, score)."""
    wide = dataclasses.replace(scheme, weight_bits=scheme.int32_weight_bits)
    wplan = build_plan(index, observers, wide, method, fallback=set(plan.fallback),
                       bias_correction=config.bias_correction, range_cache=ranges)
    wqdq = build_qdq_model(proto, wplan, index)
    wmetrics = judge(wplan, wqdq)
    wscore = config.budget.score(wmetrics)
    worst = _worse_half(judge.subset_scores(config.budget, qdq), score)
    wworst = _worse_half(judge.subset_scores(config.budget, wqdq), wscore)
    compared = (f"{config.budget.metric} {wscore:.4g} (worse half {wworst:.4g}) vs {score:.4g} "
                f"(worse half {worst:.4g}) with {scheme.weight_bits}-bit weights")
    if _beats(config.budget, {"score": wscore, "worst_half": wworst}, {"score": score, "worst_half": worst}):
        log(f"{wide.weight_bits}-bit weights (the device sums int8 in int32): {compared}")
        return wide, wplan, wqdq, wmetrics, wscore
    log(f"{scheme.weight_bits}-bit weights stay: {wide.weight_bits}-bit ones are not clearly more accurate "
        f"({compared})")
    return scheme, plan, qdq, metrics, score


def _cache_params(observers: dict[str, TensorObserver], scheme: QuantScheme, method: str, ranges) -> dict:
    """Parameters of tensors observed only for a calibration cache (``scheme.cache_every_tensor``):
    each from its own range under the chosen method, outside the plan."""
    return {name: params_from_range(*cached_range(ranges, name, obs, scheme, method), scheme.activation_dtype,
                                   scheme.activation_symmetric, method=method)
            for name, obs in observers.items() if obs.count}


# Calibration sets smaller than this fit ranges that move with every added sample.
STABLE_CALIBRATION_SAMPLES = 32
# Warn when more than this share of tensors widened their range by more than GROWTH in the second
# half of the calibration set.
GROWTH, GROWING_SHARE = 0.10, 0.25


def _check_calibration_size(observers, n_samples: int, n_eval: int, log) -> dict[str, Any]:
    """Whether the calibration set is big and varied enough: sample count, and how many tensors'
    ranges still widen in the second half of the set (a set of near-identical samples stops
    widening early, but then its ranges fit nothing else: ``_check_inputs`` catches constant data)."""
    from deploykit.quant.collect import range_growth

    held_out = n_eval if n_samples >= 3 * n_eval else 0
    growth = range_growth(observers)
    growing = sorted((g for g in growth if g[1] > GROWTH), key=lambda g: -g[1])
    share = len(growing) / len(growth) if growth else 0.0
    check = {"samples": n_samples, "held_out_for_method_choice": held_out,
             "tensors_checked": len(growth), "share_of_ranges_still_growing": round(share, 3)}
    if growing:
        check["fastest_growing"] = [{"tensor": n, "growth": round(g, 3)} for n, g in growing[:5]]
    if MIN_CALIBRATION_SAMPLES <= n_samples < STABLE_CALIBRATION_SAMPLES:
        log(f"warning: {n_samples} calibration samples is few for stable int8 ranges: pass at least "
            f"{STABLE_CALIBRATION_SAMPLES} (100+ representative samples are best)")
    elif growth and share > GROWING_SHARE:
        name, g = growing[0]
        log(f"warning: activation ranges are still growing: {share:.0%} of tensors widened by more than "
            f"{GROWTH:.0%} in the second half of the {n_samples} calibration samples (e.g. {name!r} +{g:.0%}); "
            "the set is too small or too uniform for this model: pass more, and more varied, samples")
    if not held_out:
        log(f"the range method is chosen on {n_eval} of the calibration samples themselves "
            f"(with {3 * n_eval}+ samples they are held out of the ranges)")
    return check


# A probability output whose highest value over the whole calibration set stays below this never
# saw a confident prediction: the set holds nothing the model detects or classifies.
LOW_CONFIDENCE = 0.5


def probability_tensors(index: GraphIndex, tails) -> dict[str, str]:
    """Tensors that are probabilities users read: graph outputs computed by Sigmoid/Softmax, and such
    branches of concatenated outputs; each with how to name it in a message."""
    tensors = {out: repr(out) for out in index.graph_outputs
               if getattr(index.producer.get(out), "op_type", None) in PROBABILITY_PRODUCERS}
    for out, tail in (tails or {}).items():
        for label, branch, prob in zip(tail.labels(), tail.branches, tail.probability):
            if prob:
                tensors[branch] = f"{out!r} {label}"
    return tensors


def _check_confidence(observers, tensors: dict[str, str], n_samples: int, log) -> dict[str, Any]:
    """Warn when no calibration sample makes a probability output (Sigmoid/Softmax, or such a branch
    of a concatenated output) confident. Ranges fitted on such data are too narrow for the inputs
    the model is sure about: NudeNet calibrated on rendered scenes (best score 0.25) clipped the
    head's activations of real photos up to 3x, and its photo scores came out at 7 dB SQNR, vs 12-16 dB
    when calibrated on photos of other people."""
    highest = {t: float(observers[t].hi) for t in tensors if t in observers and observers[t].count}
    unsure = {t: v for t, v in highest.items() if v < LOW_CONFIDENCE}
    if unsure:
        t, v = max(unsure.items(), key=lambda kv: kv[1])
        log(f"warning: no calibration sample makes output {tensors[t]} confident (highest probability {v:.2g} over "
            f"{n_samples} samples): int8 ranges fitted on such data clip the activations of inputs the model is "
            "sure about; calibrate on samples that contain what the model detects or classifies")
    return {"highest_probability": {t: round(v, 4) for t, v in highest.items()}} if highest else {}


def choose_method(trials: list[dict], budget) -> str:
    """The range method to keep among ``trials`` (``method``, ``score``, ``worst_half``).

    Methods are ranked by their worse half of the held-out eval samples, then by all of them: the
    one that holds on every subset wins over one that shines on some. :data:`PREFERRED_METHOD`
    stays unless the winner is clearly better (:func:`_clearly_better`) on the worse half and not
    worse on all the samples: one better on a half but worse overall is worse on the other half.
    (PP-OCR rec, rpi4, small noisy sans calibration: mse 0.953 overall, 0.916 on the worse half vs
    percentile 0.957 / 0.907 passed the margin by a hair; the worst character-accuracy gap went
    from -1.04 to -1.39 pt.)"""
    best = _first_ranked(trials)
    preferred = next((t for t in trials if t["method"] == PREFERRED_METHOD), None)
    if preferred is not None and not _beats(budget, best, preferred):
        return PREFERRED_METHOD
    return best["method"]


def _beats(budget, challenger: dict, incumbent: dict) -> bool:
    """``challenger`` (``score``, ``worst_half``) is clearly better than ``incumbent`` on the worse
    half of the held-out samples (:func:`_clearly_better`) and not worse on all of them."""
    return _clearly_better(budget, challenger["worst_half"], incumbent["worst_half"]) \
        and challenger["score"] >= incumbent["score"]


def _worse_half(halves: list[float], score: float) -> float:
    """The score on the worse half of the held-out samples (the whole score without halves)."""
    return min(halves, default=score)


def _first_ranked(trials: list[dict]) -> dict:
    return max(trials, key=lambda t: (t["worst_half"], t["score"]))


def _trial_text(t: dict) -> str:
    if t.get("spread") is None:
        return "%s %.3g" % (t["method"], t["score"])
    return "%s %.3g, worse half %.3g" % (t["method"], t["score"], t["worst_half"])


def _split_mixed_concats(index, observers, tails, scheme: QuantScheme, fallback: set[str], log):
    """Concats of branches with ranges far apart (see :mod:`deploykit.quant.mixed_ranges`): float
    where the scheme allows, joined by the runner where it can, else a warning.
    Returns (fallback, joins)."""
    from deploykit.quant.mixed_ranges import mixed_range_concats

    joins: dict[str, ConcatTail] = {}
    fallback = set(fallback)
    for m in mixed_range_concats(index, observers, tails):
        nodes = set(m.tail.float_nodes) if m.tail is not None else {m.key}
        if scheme.mixed_precision:
            fallback |= nodes
            log(f"{m.describe()}: it runs in float, each branch keeps its own int8 scale")
        elif scheme.join_outputs and m.tail is not None and m.tail.joinable:
            joins[m.tail.output] = m.tail
            log(f"{m.describe()}: the runner joins its branches in float, each with its own int8 scale")
        else:
            log(f"warning: {m.describe()}: this target runs no float op, so they share one int8 scale and the "
                "narrowest branch keeps few levels")
    return fallback, joins


def _clearly_better(budget, a: float, b: float) -> bool:
    """Score ``a`` beats ``b`` by enough to pay for float ops: 10 % less cosine error, or 0.5 dB.

    PP-OCR rec (TFLite): float h-swish chains took the logits' cosine error from 0.036 to 0.018
    and character accuracy from 98.5 to 99.0 %; on PP-OCR cls they gained nothing and cost 16 %
    of int8 latency."""
    if budget.metric == "sqnr":
        return a >= b + 0.5
    if budget.metric == "task":  # a tenth of the allowed drop
        return a >= b + max(budget.task.drop / budget.task.metric.scale(), 1e-9) / 10
    return (1.0 - a) <= 0.9 * (1.0 - b)


def _dynamic_weight_nodes(index: GraphIndex, scheme: QuantScheme) -> set[str]:
    """Dot products whose weight operand is computed at run time (e.g. attention's Q x K^T): with
    ``scheme.weight_bits`` < 8 they cannot be held to the narrow range, so they stay in float."""
    keys = set()
    for k, node in enumerate(index.model.graph.node):
        if node.op_type in WEIGHT_OPS and scheme.runs_quantized(node.op_type) and len(node.input) > 1 \
                and node.input[1] not in index.initializers:
            keys.add(_node_key(node, k))
    return keys


def _has_depthwise(proto: onnx.ModelProto) -> bool:
    for n in proto.graph.node:
        if n.op_type == "Conv":
            for a in n.attribute:
                if a.name == "group" and a.i > 1:
                    return True
    return False


def _candidates(index: GraphIndex, scheme: QuantScheme, plan: QuantPlan, observers) -> list[tuple[str, float]]:
    """Quantized nodes with the SQNR (dB) of their worst data input quantized alone, lowest first.

    This is each layer's sensitivity: how much signal its int8 inputs lose on the calibration
    data. It costs no inference, so every layer is ranked (one ONNX Runtime session per layer
    was measured to cost minutes on a 10 MB model and ranked layers no better).
    """
    ranked = []
    for k, node in enumerate(index.model.graph.node):
        key = _node_key(node, k)
        if key in plan.fallback or not scheme.runs_quantized(node.op_type):
            continue
        sqnrs = [tensor_sqnr(observers[n], plan.activations[n]) for (_, n, role) in quantizable_inputs(index, node)
                 if role == "data" and n in plan.activations and n in observers]
        if sqnrs:
            ranked.append((min(sqnrs), k, key))
    return [(key, sqnr) for sqnr, _, key in sorted(ranked)]


def _fallback_search(index, observers, scheme, method, config, proto, judge, log, progress, base_fallback,
                     plan, qdq, metrics, ranges):
    """Fewest float layers (most sensitive first) that meet the budget; no fallback when even the
    most allowed miss it, and never a result scored worse than no fallback."""
    ranked = _candidates(index, scheme, plan, observers)
    sensitivity = dict(ranked)
    order = [key for key, _ in ranked]
    limit = min(len(order), max(1, int(len(order) * config.max_fallback_fraction)), config.max_fallback_layers)
    if not order:
        return plan, qdq, metrics, sensitivity
    log(f"budget {config.budget} not met: searching the fewest of the {limit} most sensitive layers to keep in float")

    def trial(k: int):
        p = build_plan(index, observers, scheme, method, fallback=set(order[:k]) | base_fallback,
                       bias_correction=config.bias_correction, range_cache=ranges)
        q = build_qdq_model(proto, p, index)
        return p, q, judge(p, q)

    # Bisection to within `slack` layers of the fewest: each trial is a full simulation on the eval
    # samples, and the last halvings (a few layers of a 64-layer bracket) cost as much as the first.
    slack = max(1, limit // 16)
    steps = 1 + max(0, math.ceil(math.log2(max(limit / slack, 1))))
    done = 0
    meeting = {limit: trial(limit)}
    done += 1
    if progress:
        progress("fallback search", done, steps)
    if not judge.met(config.budget, meeting[limit][1]):
        # A partial fallback costs speed (float islands) and buys no budget; on PP-OCR rec for TFLite
        # the 8-sample score preferred 64 float layers that lowered accuracy on 300 lines (98.96 -> 98.5 %).
        log(f"keeping {limit} layers in float still misses the budget; staying fully int8")
        return plan, qdq, metrics, sensitivity
    lo, hi = 1, limit  # hi always meets the budget
    while hi - lo >= slack:
        mid = (lo + hi) // 2
        cand = trial(mid)
        done += 1
        if progress:
            progress("fallback search", done, steps)
        if judge.met(config.budget, cand[1]):
            meeting[mid], hi = cand, mid
        else:
            lo = mid + 1
    best = meeting[hi]
    chosen = sorted(best[0].fallback - base_fallback)
    log(f"{len(chosen)} layer(s) fall back to float: {', '.join(chosen)[:200]}")
    return (*best, sensitivity)


def _report(index, observers, plan: QuantPlan, sensitivity, config, method, trials, metrics, budget_met,
            equalized, n_samples) -> dict[str, Any]:
    from deploykit.quant.metrics import json_safe

    layers = []
    for k, node in enumerate(index.model.graph.node):
        key = _node_key(node, k)
        q_in = quantizable_inputs(index, node)
        if not q_in:
            continue
        out = node.output[0] if node.output else ""
        if out not in plan.activations:  # QDQ schemes observe only quantized inputs: report the first one
            out = next((n for (_, n, role) in q_in if role == "data" and n in plan.activations), out)
        p = plan.activations.get(out)
        row = {
            "node": key,
            "op_type": node.op_type,
            "fallback": key in plan.fallback,
            "tensor": out,
            "range_method": p.method if p else None,
            "scale": float(np.ravel(p.scale)[0]) if p is not None else None,
            "zero_point": int(np.ravel(p.zero_point)[0]) if p is not None else None,
            "sqnr_db": round(tensor_sqnr(observers[out], p), 2) if (p is not None and out in observers) else None,
        }
        if key in sensitivity:
            row["input_sqnr_db"] = round(sensitivity[key], 2)
        layers.append(row)
    return json_safe({
        "engine": "deploykit",
        "range_method": method,
        "methods_tried": [{"method": t["method"], "score": round(t["score"], 4),
                           **({"worst_half": round(t["worst_half"], 4), "spread": round(t["spread"], 4)}
                              if t.get("spread") is not None else {})} for t in trials],
        "budget": str(config.budget),
        "budget_met": budget_met,
        "bias_correction": config.bias_correction,
        "weight_bits": plan.scheme.weight_bits if plan.scheme is not None else 8,
        "cross_layer_equalization": len(equalized),
        "calibration_samples": n_samples,
        "eval_samples": config.eval_samples,
        "fallback_layers": sorted(plan.fallback),
        "output_metrics": metrics,
        "layers": layers,
    })
