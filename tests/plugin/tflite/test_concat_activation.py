"""A Relu after a Concat stays a RELU: LiteRT's CONCATENATION refuses a fused activation and XNNPACK
ignores it, so fusing it made rpi4 bundles return the Concat's negative values."""

from __future__ import annotations

import pytest
from onnx import helper

from tflite_testlib import build, model, tflite_ops

pytestmark = pytest.mark.plugin
pytest.importorskip("ai_edge_litert")


def test_relu_after_concat_is_not_fused(tmp_path):
    path = model(tmp_path / "m.onnx", [helper.make_node("Concat", ["a", "b"], ["c"], axis=1, name="cat"),
                                       helper.make_node("Relu", ["c"], ["y"], name="relu")],
                 {"a": [1, 4, 5, 5], "b": [1, 4, 5, 5]}, {"y": [1, 8, 5, 5]})
    res = build(path, tmp_path / "out")
    assert tflite_ops(tmp_path / "out") == ["CONCATENATION", "RELU"]
    ver = res.report["verification"]
    assert ver["status"] == "passed" and ver["outputs"]["y"]["max_abs_error"] == 0.0, ver
