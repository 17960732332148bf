"""Run a :class:`CompressionSpec` on a model: prune -> sparsity -> lowrank -> cluster.

The order is fixed: structured pruning first (it removes whole channels, which later steps then
need not factorize or cluster), then magnitude pruning, factorization (on the remaining weights),
and clustering last (it only changes values, never shapes).

Accuracy: every ``auto`` step is scored against the *original* fp32 outputs with
:class:`~deploykit.compress._graph.Evaluator` (relative error as a cosine-equivalent; logits for
softmax/sigmoid outputs — continuous, so choices made on a few samples hold on unseen ones). The budget's allowance ``1 - budget`` is shared between the ``auto`` steps
(prune 50 %, lowrank 30 %, cluster 20 %, renormalized over those present), cumulatively, so the
last step still ends at or above the budget. Without real samples the scan runs on seeded random
inputs and keeps only half of the allowance (random data is a poor proxy for the user's data).
Every step's model must pass ``onnx.checker`` and run in ONNX Runtime with the original output
shapes; a step that does not is dropped (recorded with the reason) and the model is kept as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from deploykit.compress import channel_pruning, clustering, lowrank, magnitude_pruning
from deploykit.compress._graph import Evaluator, copy_model, refresh_shapes, run_model, weight_stats
from deploykit.compress.budget import budgeted_choice
from deploykit.compress.spec import CompressionSpec
from deploykit.errors import DeployError

SHARES = {"prune": 0.5, "lowrank": 0.3, "cluster": 0.2}
MARGIN_REAL = 0.6    # share of the allowance used when tuning on real samples (unseen data loses more)
MARGIN_RANDOM = 0.4  # ... on random inputs
MAX_SCAN_SAMPLES = 32
MIN_SCAN_SAMPLES = 8
SAMPLE_MACS = 3.2e9  # scan samples x model MACs: 32 samples up to 100 M MACs, fewer (>= 8) above
MAX_CHECK_SAMPLES = 64  # combinations are checked on up to this many samples (scan ones included) ...
CHECK_MACS = 4 * SAMPLE_MACS  # ... and within this many MACs per check
CLUSTER_CHOICES = (16, 32, 64, 128, 256)


@dataclass
class CompressionStep:
    """One technique's outcome. ``details`` is JSON-serialisable."""

    name: str  # "prune", "sparsity", "lowrank", "cluster"
    model: onnx.ModelProto
    details: dict


@dataclass
class CompressionResult:
    model: onnx.ModelProto
    steps: list[CompressionStep]
    spec: CompressionSpec | None = None
    budget: float | None = None
    details: dict = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The report form (``report.json`` key ``compression``)."""
        return {"spec": str(self.spec) if self.spec else None, "budget": self.budget, **self.details,
                "steps": [{"name": s.name, **s.details} for s in self.steps]}


def _name_nodes(model: onnx.ModelProto) -> None:
    used = {n.name for n in model.graph.node if n.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in used:
                name += "_"
            node.name = name
            used.add(name)


def _random_feeds(model: onnx.ModelProto, count: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    inits = {t.name for t in model.graph.initializer}
    feeds: list[dict[str, np.ndarray]] = [{} for _ in range(count)]
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        t = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in t.shape.dim]
        if None in dims:
            raise DeployError(f"input {vi.name!r} has dynamic dimensions; pin them (--input-shape) to compress the model")
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)
        for f in feeds:
            f[vi.name] = (rng.standard_normal(dims) if dtype.kind == "f" else rng.integers(0, 2, dims)).astype(dtype)
    return feeds


def _output_shapes(outs: list[np.ndarray]) -> list[tuple]:
    return [tuple(np.shape(o)) for o in outs]


class _Runner:
    """Runs the steps, checking each result and keeping the bookkeeping for the report."""

    def __init__(self, model: onnx.ModelProto, feeds, check_feeds, budget: float, margin: float, log):
        self.original = model
        self.evaluator = Evaluator(model, feeds)  # sensitivity scans
        self.checker = Evaluator(model, check_feeds) if len(check_feeds) > len(feeds) else self.evaluator
        self.ref_shapes = _output_shapes(self.evaluator.refs[0])
        self.budget = budget
        self.allowance = (1 - budget) * margin
        self.log = log

    def validate(self, model: onnx.ModelProto) -> str | None:
        try:
            onnx.checker.check_model(model)
        except Exception as e:  # noqa: BLE001 - any checker failure drops the step
            return f"onnx.checker: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}"
        try:
            outs = run_model(model, self.evaluator.feeds[:1])[0]
        except Exception as e:  # noqa: BLE001
            return f"onnxruntime: {' '.join(str(e).split())[:200]}"
        if _output_shapes(outs) != self.ref_shapes:
            return f"output shapes changed {self.ref_shapes} -> {_output_shapes(outs)}"
        return None


def compress(
    model: onnx.ModelProto,
    spec: CompressionSpec,
    samples: Sequence[dict[str, np.ndarray]] | None = None,
    budget: float = 0.99,
    log: Callable[[str], None] | None = None,
) -> CompressionResult:
    """Apply ``spec`` to ``model`` (not modified) and return every step's model and details.

    :param samples: model feeds (batch dim included) for the ``auto`` sensitivity scans; seeded
        random inputs (with a stricter margin) when ``None``.
    :param budget: cosine of the outputs vs fp32 to keep (``spec.budget`` wins when set).
    :param log: one line per event (``warning: ...`` for things the user should know).
    """
    log = log or (lambda _m: None)
    budget = float(spec.budget if spec.budget is not None else budget)
    current = copy_model(model)
    _name_nodes(current)
    current = refresh_shapes(current)
    real = bool(samples)
    macs = weight_stats(current)["macs"]
    wanted = int(np.clip(SAMPLE_MACS // max(macs, 1), MIN_SCAN_SAMPLES, MAX_SCAN_SAMPLES if real else 16))
    checked = int(np.clip(CHECK_MACS // max(macs, 1), 2 * wanted, MAX_CHECK_SAMPLES))
    if real:
        picks = sorted({int(i) for i in np.linspace(0, len(samples) - 1, min(len(samples), wanted)).round()})
        feeds = [samples[i] for i in picks]
        # combinations are checked on more samples, including ones the scan never saw
        extra = [i for i in range(len(samples)) if i not in set(picks)]
        more = [extra[int(i)] for i in np.linspace(0, len(extra) - 1, min(len(extra), checked - len(feeds))).round()] if extra else []
        check_feeds = feeds + [samples[i] for i in sorted(set(more))]
    else:
        feeds = _random_feeds(current, wanted)
        check_feeds = feeds + _random_feeds(current, checked - len(feeds), seed=1)
    if not real and any(v in ("auto",) for v in (spec.prune, spec.lowrank, spec.cluster)):
        log("warning: no calibration samples: 'auto' compression is tuned on random inputs with a stricter margin; "
            "pass --calibration for ratios that fit your data")
    try:
        runner = _Runner(current, feeds, check_feeds, budget, MARGIN_REAL if real else MARGIN_RANDOM, log)
        runner.evaluator.cost = max(macs, 1) * len(feeds)
    except Exception as e:  # noqa: BLE001
        raise DeployError(f"cannot compress: the model does not run in onnxruntime ({' '.join(str(e).split())[:200]})") from e
    autos = [k for k in ("prune", "lowrank", "cluster") if getattr(spec, k) == "auto"]
    total = sum(SHARES[k] for k in autos) or 1.0
    cum, targets = 0.0, {}
    for k in autos:
        cum += SHARES[k] / total
        targets[k] = 1.0 - runner.allowance * cum
    before = weight_stats(current)
    steps: list[CompressionStep] = []
    plan = [("prune", spec.prune, _prune), ("sparsity", spec.sparsity, _sparsity),
            ("lowrank", spec.lowrank, _lowrank), ("cluster", spec.cluster, _cluster)]
    for name, value, fn in plan:
        if value is None:
            continue
        stats_in = weight_stats(current)
        candidate, details = fn(current, value, runner, targets.get(name))
        problem = runner.validate(candidate)
        if problem:
            log(f"warning: {name}: dropped, the result failed validation ({problem})")
            details = {"applied": False, "error": problem, "skipped": details.get("skipped", [])}
            candidate = current
        else:
            details.setdefault("applied", True)
        details.setdefault("skipped", [])
        stats_out = weight_stats(candidate)
        score = runner.checker.score(candidate)
        cosine = runner.checker.output_cosine(candidate)
        details.update({"setting": value, "params_before": stats_in["params"], "params_after": stats_out["params"],
                        "macs_before": stats_in["macs"], "macs_after": stats_out["macs"],
                        "cosine_vs_fp32": round(cosine, 6), "score_vs_fp32": round(score, 6)})
        if name in targets:
            details["target_score"] = round(targets[name], 6)
        log(f"{name}: params {stats_in['params']:,} -> {stats_out['params']:,}, MACs {stats_in['macs']:,} -> "
            f"{stats_out['macs']:,}, cosine vs fp32 {cosine:.5f} (score {score:.5f})")
        steps.append(CompressionStep(name, candidate, _jsonable(details)))
        current = candidate
    final = runner.checker.output_cosine(current)
    final_score = runner.checker.score(current)
    after = weight_stats(current)
    summary = {"samples": len(feeds), "check_samples": len(check_feeds), "samples_kind": "calibration" if real else "random",
               "params_before": before["params"], "params_after": after["params"],
               "macs_before": before["macs"], "macs_after": after["macs"],
               "cosine_vs_fp32": round(final, 6), "score_vs_fp32": round(final_score, 6),
               "budget_met": bool(final >= budget),
               "score": "1 - r^2/2, r = relative L2 error vs the fp32 model over all samples; softmax/sigmoid outputs "
                            "judged on their logits (the lowest over outputs)"}
    if final < budget:
        log(f"warning: compressed model scores cosine {final:.5f} < budget {budget} on the samples "
            "(fixed settings are applied as given; use 'auto' to stay within the budget)")
    return CompressionResult(model=current, steps=steps, spec=spec, budget=budget, details=summary)


def _prune(model, value, runner: _Runner, target):
    groups, skipped = channel_pruning.find_groups(model)
    details: dict[str, Any] = {"groups": {k: g.to_json() for k, g in groups.items()}, "skipped": skipped}
    if value == "auto":
        ratios, _, scan = budgeted_choice(channel_pruning.auto_options(groups), lambda c: channel_pruning.prune_channels(model, c),
                                              runner.evaluator, target, runner.log, "prune", runner.checker)
        details["scan"] = scan
    else:
        ratios = {k: float(value) for k in groups}
    pruned = channel_pruning.prune_channels(model, ratios)
    if ratios and runner.validate(pruned):  # keep the groups that are valid on their own
        bad = [k for k in ratios if runner.validate(channel_pruning.prune_channels(model, {k: ratios[k]}))]
        details["skipped"] += [{"layer": k, "reason": "pruning it gives an invalid model"} for k in bad]
        ratios = {k: r for k, r in ratios.items() if k not in bad}
        pruned = channel_pruning.prune_channels(model, ratios)
    details["ratios"] = {k: ratios[k] for k in sorted(ratios)}
    details["channels"] = {k: [groups[k].channels, channel_pruning.keep_count(groups[k].channels, r)] for k, r in ratios.items()}
    return pruned, details


def _sparsity(model, value, runner: _Runner, target):
    return magnitude_pruning.magnitude_prune(model, float(value))


def _lowrank(model, value, runner: _Runner, target):
    layers, skipped = lowrank.find_layers(model)
    if value == "auto":
        ranks, _, scan = budgeted_choice(lowrank.auto_options(layers), lambda c: lowrank.factorize(model, c, layers),
                                             runner.evaluator, target, runner.log, "lowrank", runner.checker)
        details: dict[str, Any] = {"scan": scan}
        for key, f in layers.items():
            if key not in ranks:
                opts = lowrank.auto_options({key: f})
                reason = "no rank fits the accuracy budget" if opts else f"no rank up to 0.999 energy saves >= {1 - lowrank.MIN_GAIN:.0%}"
                skipped.append({"layer": key, "reason": reason})
    else:
        ranks, more = lowrank.energy_ranks(layers, float(value))
        skipped += more
        details = {"energy": float(value)}
    factored = lowrank.factorize(model, ranks, layers)
    if ranks and runner.validate(factored):  # keep the layers that are valid on their own
        bad = [k for k in ranks if runner.validate(lowrank.factorize(model, {k: ranks[k]}, layers))]
        skipped += [{"layer": k, "reason": "factorizing it gives an invalid model"} for k in bad]
        ranks = {k: r for k, r in ranks.items() if k not in bad}
        factored = lowrank.factorize(model, ranks, layers)
    details["ranks"] = {k: [int(ranks[k]), int(min(layers[k].matrix.shape))] for k in sorted(ranks)}
    details["skipped"] = skipped
    return factored, details


def _cluster(model, value, runner: _Runner, target):
    if value != "auto":
        return clustering.cluster_weights(model, int(value))
    # per layer: the fewest clusters (of CLUSTER_CHOICES) that the budget allows
    layers = clustering.clusterable(model)
    options = {name: [(k, float(size) * (32 - np.log2(k))) for k in sorted(CLUSTER_CHOICES, reverse=True)]
               for name, size in layers.items()}
    ks, _, scan = budgeted_choice(options, lambda c: clustering.cluster_weights(model, c)[0],
                                      runner.evaluator, target, runner.log, "cluster", runner.checker)
    cand, details = clustering.cluster_weights(model, ks)
    details["scan"] = scan
    details["skipped"] = [{"layer": name, "reason": f"even {CLUSTER_CHOICES[-1]} clusters miss the accuracy budget"}
                          for name in layers if name not in ks]
    return cand, details


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if np.isfinite(v) else str(v)
    return value
