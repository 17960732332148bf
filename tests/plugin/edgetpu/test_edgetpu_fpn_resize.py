"""A detector neck upsamples x2 nearest: for the Edge TPU that stays RESIZE_NEAREST_NEIGHBOR (a TPU
op), not the CONCATENATION + DEPTH_TO_SPACE that XNNPACK targets get (DEPTH_TO_SPACE is no TPU op:
the TPU segment of YOLOv8/PicoDet stopped there, 39-52 % of MACs on the TPU; issue 19)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from edgetpu_testlib import ENV, assert_all_integer, calibration, model, report

pytestmark = pytest.mark.plugin
pytest.importorskip("ai_edge_litert")


def _fpn(path):
    rng = np.random.default_rng(0)
    w = lambda co, ci: rng.standard_normal((co, ci, 3, 3)).astype(np.float32) * 0.3  # noqa: E731
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Resize", ["r1", "", "scales"], ["up"], mode="nearest"),
        helper.make_node("Concat", ["up", "x8"], ["cat"], axis=1),
        helper.make_node("Conv", ["cat", "w2"], ["y"], pads=[1, 1, 1, 1]),
    ]
    nodes.insert(0, helper.make_node("Conv", ["x", "w0"], ["x8"], pads=[1, 1, 1, 1]))
    return model(path, nodes, {"x": [1, 3, 16, 16]}, {"y": [1, 8, 16, 16]},
                 {"w0": w(8, 3), "w1": w(8, 3), "w2": w(8, 16), "scales": np.array([1, 1, 2, 2], np.float32)})


@pytest.mark.parametrize("target", ["coral-usb", "rpi4"])
def test_nearest_upsampling_per_target(cli, tmp_path, target):
    src = _fpn(tmp_path / "fpn.onnx")
    out = tmp_path / "b"
    calib = calibration(src, tmp_path / "calib.npy", n=8)
    proc = cli("build", src, "--target", target, "--precision", "int8", "--calibration", calib, "-o", out, env=ENV)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rep = report(out)
    ops = rep["backend_report"]["operators"]
    if target == "coral-usb":
        assert_all_integer(out / "model.tflite")
        assert "RESIZE_NEAREST_NEIGHBOR" in ops and "DEPTH_TO_SPACE" not in ops, ops
        assert rep["backend_report"]["edgetpu"]["tpu_mac_share"] == 1.0
    else:  # XNNPACK has no RESIZE_NEAREST_NEIGHBOR kernel: the delegated spelling stays
        assert "DEPTH_TO_SPACE" in ops and "RESIZE_NEAREST_NEIGHBOR" not in ops, ops
    assert rep["verification"]["status"] == "passed", rep["verification"]
