"""MaxPool SAME_UPPER on an odd size pads only at the end, exactly TFLite's SAME: it lowers to one
MAX_POOL_2D (padding SAME), not PADV2 + pool (issue 19: MTCNN O-Net's 3x3/2 pool on 46x46 left a
PADV2 outside XNNPACK, 2 partitions, and its int8 bundle ran 1.9x slower than fp32)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from tflite_testlib import build, model, tflite_ops

pytestmark = pytest.mark.plugin


@pytest.mark.parametrize("size,kernel", [(9, 3), (46, 3), (8, 3), (7, 2)])
def test_same_upper_max_pool_is_one_tflite_op(tmp_path, size, kernel):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[1, 1]),  # may be negative: -inf padding matters
             helper.make_node("MaxPool", ["c"], ["y"], kernel_shape=[kernel, kernel], strides=[2, 2], auto_pad="SAME_UPPER")]
    w = np.random.default_rng(0).normal(0, 1, (4, 3, 1, 1)).astype(np.float32)
    out = -(-size // 2)
    path = model(tmp_path / "m.onnx", nodes, {"x": [1, 3, size, size]}, {"y": [1, 4, out, out]}, {"w": w}, opset=13)
    res = build(path, tmp_path / "b")
    assert res.manifest["verification"]["status"] == "passed", res.manifest["verification"]
    ops = tflite_ops(tmp_path / "b")
    assert "PADV2" not in ops and "PAD" not in ops and ops.count("MAX_POOL_2D") == 1, ops
