"""deploykit.effect.measure_variants on in-memory ONNX models: every row field, agreement, accuracy."""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pytest

from deploykit.effect import Variant, measure_variants
from deploykit.errors import DeployError
from effect_testlib import CONV_MACS, FC_MACS, feeds, labels_of, tiny_classifier

pytestmark = pytest.mark.unit

ROW_KEYS = {
    "name", "kind", "target", "precision", "size_raw", "size_zip", "size_huffman", "weight_values", "params", "macs",
    "runtime", "latency_ms_p50", "latency_ms_p90", "latency_runs", "accuracy", "samples", "host", "reference",
    "cosine", "max_abs_error", "sqnr_db", "top1_agreement",
}


@pytest.fixture(scope="module")
def rows():
    ref = tiny_classifier()
    other = tiny_classifier(seed=0, scale=0.7)  # same graph, weights scaled: different probabilities
    inputs = feeds(12)
    labels = labels_of(ref, inputs)
    progress: list[str] = []
    result = measure_variants([Variant("fp32", ref), Variant("scaled", other)], inputs, labels=labels, runs=5,
                              progress=progress.append)
    return result, progress, ref


def test_rows_have_every_field_and_are_json(rows):
    result, progress, ref = rows
    assert [r["name"] for r in result] == ["fp32", "scaled"]
    for r in result:
        assert ROW_KEYS <= set(r), ROW_KEYS - set(r)
        assert "error" not in r
    assert json.loads(json.dumps(result)) == result  # JSON-serialisable as is
    assert progress and all(isinstance(m, str) for m in progress)


def test_static_figures(rows):
    result, _, ref = rows
    r = result[0]
    assert r["kind"] == "onnx" and r["precision"] == "fp32" and r["target"] is None
    assert r["size_raw"] == len(ref.SerializeToString(deterministic=True))
    assert 0 < r["size_zip"] < r["size_raw"] + 64
    assert r["params"] == 8 * 3 * 3 * 3 + 8 + 4 * 8 + 4
    assert r["macs"] == CONV_MACS + FC_MACS
    assert r["weight_values"] == 8 * 27 + 32  # only tensors with >= 2 dims are weights
    # int8 symbols of 248 weights: Huffman-coded well under their 4-byte float size
    assert 0 < r["size_huffman"] < 4 * r["weight_values"]


def test_latency_and_host(rows):
    result, _, _ = rows
    for r in result:
        assert r["latency_runs"] == 5
        assert 0 < r["latency_ms_p50"] <= r["latency_ms_p90"]
        assert r["runtime"].startswith("onnxruntime")
        assert r["host"]["cores"] >= 1 and r["host"]["cpu"] and r["host"]["threads"] == 1
        assert r["samples"] == 12


def test_agreement_and_accuracy(rows):
    result, _, _ = rows
    ref, other = result
    assert ref["reference"] == other["reference"] == "fp32"
    assert ref["cosine"] == 1.0 and ref["max_abs_error"] == 0.0 and ref["top1_agreement"] == 1.0
    assert ref["sqnr_db"] == "inf"  # JSON-safe infinity
    assert ref["accuracy"] == 1.0  # labels are the reference's own predictions
    assert 0.5 < other["cosine"] < 1.0 and other["max_abs_error"] > 0
    assert other["accuracy"] == other["top1_agreement"]


def test_reference_outputs_and_batchless_inputs():
    model = tiny_classifier()
    inputs = feeds(3)
    batchless = [{"x": f["x"][0]} for f in inputs]  # stored samples drop the batch dim of 1
    row = measure_variants([Variant("m", model)], batchless, runs=2)[0]
    assert "error" not in row and row["cosine"] == 1.0
    wrong = [{"probs": np.full((1, 4), 0.25, np.float32)} for _ in inputs]
    row = measure_variants([Variant("m", model)], inputs, runs=2, reference_outputs=wrong)[0]
    assert row["reference"] == "reference outputs" and row["cosine"] < 1.0


def test_a_variant_that_cannot_run_is_recorded_not_raised():
    good = tiny_classifier()
    broken = tiny_classifier()
    broken.graph.node[0].op_type = "NoSuchOp"
    rows = measure_variants([Variant("good", good), Variant("broken", broken)], feeds(2), runs=2)
    assert "error" not in rows[0]
    assert rows[1]["error"] and rows[1]["latency_ms_p50"] is None and rows[1]["cosine"] is None
    assert rows[1]["size_raw"] > 0  # sizes still measured


def test_precision_of_quantized_models():
    model = tiny_classifier()
    q = onnx.helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"])
    dq = onnx.helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"])
    model.graph.node[0].input[0] = "xd"
    model.graph.node.insert(0, dq)
    model.graph.node.insert(0, q)
    model.graph.initializer.extend([onnx.numpy_helper.from_array(np.float32(0.05), "s"),
                                    onnx.numpy_helper.from_array(np.int8(0), "z")])
    row = measure_variants([Variant("q", model)], feeds(2), runs=2)[0]
    assert row["precision"] == "int8" and "error" not in row
    assert math.isfinite(row["cosine"])


@pytest.mark.parametrize("kwargs, match", [
    ({"variants": []}, "at least one variant"),
    ({"inputs": []}, "at least one input"),
    ({"labels": [0]}, "labels for"),
    ({"reference": 3}, "out of range"),
    ({"variants": [Variant("empty")]}, "neither a model nor a bundle"),
])
def test_bad_arguments(kwargs, match):
    args = {"variants": [Variant("m", tiny_classifier())], "inputs": feeds(2), **kwargs}
    with pytest.raises(DeployError, match=match):
        measure_variants(**args)


def test_not_a_bundle(tmp_path):
    with pytest.raises(DeployError, match="manifest.json"):
        measure_variants([Variant("b", bundle_dir=tmp_path)], feeds(1))
