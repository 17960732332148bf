"""Clip with bounds computed at run time becomes MAXIMUM/MINIMUM instead of a refusal (issue 19:
openWakeWord's log-mel front-end floors at ``max - 80 dB``)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from tflite_testlib import build, model, tflite_ops

pytestmark = pytest.mark.plugin


def test_clip_with_computed_min_and_constant_max(tmp_path):
    nodes = [
        helper.make_node("ReduceMax", ["x"], ["m"], keepdims=0),
        helper.make_node("Sub", ["m", "range"], ["floor"]),
        helper.make_node("Clip", ["x", "floor", "top"], ["c"]),
        helper.make_node("Mul", ["c", "two"], ["y"]),
    ]
    path = model(tmp_path / "m.onnx", nodes, {"x": [1, 4, 8]}, {"y": [1, 4, 8]},
                 {"range": np.float32(1.5), "top": np.float32(2.0), "two": np.float32(2.0)}, opset=13)
    res = build(path, tmp_path / "out")
    assert res.manifest["verification"]["status"] == "passed", res.manifest["verification"]
    ops = tflite_ops(tmp_path / "out")
    assert "MAXIMUM" in ops and "MINIMUM" in ops
