"""Concatenated outputs (a detector's boxes in pixels + class probabilities): scored per branch, and
int8 that gives each branch its own scale."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import modelzoo
from deploykit.ir import graph_inputs, load_model
from deploykit.passes import canonicalize
from deploykit.quant import mixed_ranges
from deploykit.quant.calibration import SampleSet
from deploykit.quant.engine import QuantConfig, quantize_model
from deploykit.quant.metrics import compare_outputs
from deploykit.quant.parts import ConcatTail, find_concat_tails, topk_agreement
from deploykit.quant.scheme import COMPUTE_OPS, QuantScheme
from deploykit.verification import judge

pytestmark = pytest.mark.unit

ANCHORS = modelzoo.DETECTOR_ANCHORS


def detector(path, transpose: bool = False) -> str:
    return str(modelzoo.yolo_like_detector(path, transpose=transpose))


@pytest.mark.parametrize("transpose", [False, True])
def test_concat_tail_found_and_reproduces_the_output(tmp_path, transpose):
    import onnxruntime as ort

    path = detector(tmp_path / "d.onnx", transpose)
    model = canonicalize(load_model(path))
    tails = find_concat_tails(model)
    assert list(tails) == ["y"]
    t = tails["y"]
    assert t.branches == ["boxes", "scores"] and t.axis == 1 and t.probability == [False, True]
    assert t.sources == ["boxes", "logits"] and t.branch_ops == [[], ["sigmoid"]]
    assert t.joinable and ("head" in t.nodes) and t.branch_nodes == ["cls_sig"]
    masks = t.masks()
    assert masks[0].sum() == 4 * ANCHORS and masks[1].sum() == 3 * ANCHORS
    # the recipe rebuilds the output from the branch sources, and survives JSON
    m = onnx.load(path)
    m.graph.output.extend([helper.make_value_info("boxes", helper.make_tensor_type_proto(TensorProto.FLOAT, None)),
                           helper.make_value_info("logits", helper.make_tensor_type_proto(TensorProto.FLOAT, None))])
    x = np.random.default_rng(0).uniform(0, 1, (1, 3, 8, 8)).astype(np.float32)
    y, boxes, logits = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    again = ConcatTail.from_json(t.to_json())
    np.testing.assert_allclose(again.join([boxes, logits], from_sources=True), y, rtol=1e-5, atol=1e-6)
    assert np.all(y[masks[1]] <= 1) and np.all(y[masks[0]] >= 0)


def test_topk_agreement():
    r = np.random.default_rng(0).uniform(0, 1, 1000)
    assert topk_agreement(r, r) == 1.0
    assert topk_agreement(r, np.zeros_like(r)) == 0.0  # all tied: nothing agrees
    assert topk_agreement(r, -r) == 0.0


def test_verification_fails_when_one_part_is_gone(tmp_path):
    """The whole output's cosine stays near 1 (pixels dominate) while every score is zero: fail."""
    t = find_concat_tails(canonicalize(load_model(detector(tmp_path / "d.onnx"))))
    rng = np.random.default_rng(1)
    refs, outs = [], []
    for _ in range(3):
        y = np.concatenate([rng.uniform(0, 320, (1, 4, ANCHORS)), rng.uniform(0, 1, (1, 3, ANCHORS))], 1).astype(np.float32)
        broken = y.copy()
        broken[:, 4:] = 0
        refs.append({"y": y})
        outs.append({"y": broken})
    metrics = compare_outputs(refs, outs, t)
    assert metrics["y"]["cosine"] > 0.99
    parts = metrics["y"]["parts"]
    assert list(parts) == ["part 1/2 (Mul)", "part 2/2 (Sigmoid, probability)"]
    assert parts["part 2/2 (Sigmoid, probability)"]["cosine"] == 0.0
    passed, problems = judge(metrics, "int8")
    assert not passed and any("part 2/2" in p for p in problems)
    ok, _ = judge(compare_outputs(refs, refs, t), "int8")
    assert ok


def _samples(model, n=24, seed=0):
    x = np.random.default_rng(seed).uniform(0, 1, (n, 3, 8, 8)).astype(np.float32)
    return SampleSet({"x": x}, graph_inputs(model))


FULL_INTEGER = QuantScheme(fixed_output_params={"Sigmoid": (1.0 / 256, -128)})
QDQ = QuantScheme(quantize_ops=COMPUTE_OPS)
NO_FLOAT_JOIN = QuantScheme(mixed_precision=False, join_outputs=True,
                            fixed_output_params={"Sigmoid": (1.0 / 256, -128)})


@pytest.mark.parametrize("scheme", [FULL_INTEGER, QDQ, NO_FLOAT_JOIN], ids=["full-integer", "qdq", "join"])
def test_mixed_range_concat_keeps_the_score_branch(tmp_path, scheme, monkeypatch):
    model = canonicalize(load_model(detector(tmp_path / "d.onnx")))
    logs: list[str] = []
    r = quantize_model(model, _samples(model), scheme, QuantConfig(method="minmax"), log=logs.append)
    score = r.metrics["y"]["parts"]["part 2/2 (Sigmoid, probability)"]["sqnr_db"]
    assert score > 20, (score, logs)
    assert any("ranges differ" in m for m in logs)
    if scheme.join_outputs:
        assert list(r.joins) == ["y"] and not r.fallback  # the Edge TPU model ends at the branches
    else:
        assert "head" in r.fallback and not r.joins
    # without the split, one scale for pixels and probabilities: the scores are gone, and the budget
    # (held on the worst part, not on the whole output) says so; where float fallback exists, its
    # search finds the Concat on its own
    monkeypatch.setattr(mixed_ranges.mixed_range_concats, "__defaults__", (1e12,))
    shared = quantize_model(model, _samples(model), scheme, QuantConfig(method="minmax"))
    if scheme.mixed_precision:
        assert "head" in shared.fallback and shared.budget_met
    else:
        assert shared.metrics["y"]["parts"]["part 2/2 (Sigmoid, probability)"]["sqnr_db"] < 10
        assert shared.metrics["y"]["cosine"] > 0.99 and not shared.budget_met


def test_budget_line_names_the_worst_part():
    """The build's closing line quotes the worst part of an output, not the whole output (a detector's
    pixel boxes make the whole output look fine while its class scores miss the budget)."""
    from deploykit.cli.verdict import budget_missed

    q = {"budget": "sqnr>=20", "budget_met": False, "eval_samples": 8,
         "output_metrics": {"output0": {"sqnr_db": 31.3, "cosine": 0.9996,
                                        "parts": {"part 1/2 (Mul)": {"sqnr_db": 31.3, "cosine": 0.9996},
                                                  "part 2/2 (Sigmoid, probability)": {"sqnr_db": 14.03,
                                                                                      "cosine": 0.98}}}}}
    assert budget_missed(q) == "accuracy budget sqnr>=20 MISSED: int8 reaches sqnr 14.03 on 8 calibration samples"
    assert budget_missed(dict(q, budget="cosine>=0.99")).endswith("reaches cosine 0.98 on 8 calibration samples")
    assert budget_missed(dict(q, budget_met=True)) is None
