"""A detector whose output concatenates boxes in pixels and class probabilities, int8 on every target:
each branch keeps its own scale (float Concat where the target has float ops, a runner-side join
on the Edge TPU), and verification scores every branch on its own (a 0 dB score slice never passes)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import modelzoo

pytestmark = pytest.mark.plugin

SCORES = "part 2/2 (Sigmoid, probability)"
TARGETS = {
    "host": ("profiles,onnxruntime", "onnxruntime"),
    "rpi4": ("profiles,tflite", "ai_edge_litert"),
    "coral-usb": ("profiles,tflite,edgetpu", "ai_edge_litert"),
    "jetson-orin-nano": ("profiles,tensorrt", "onnxruntime"),
    "intel-cpu": ("profiles,openvino", "openvino"),
}


@pytest.mark.parametrize("target", list(TARGETS))
def test_detector_scores_survive_int8(cli, tmp_path, target):
    plugins, runtime = TARGETS[target]
    pytest.importorskip(runtime)
    model = modelzoo.yolo_like_detector(tmp_path / "det.onnx")
    np.save(tmp_path / "calib.npy", np.random.default_rng(0).uniform(0, 1, (24, 3, 8, 8)).astype(np.float32))
    out = tmp_path / "b"
    r = cli("build", model, "--target", target, "-p", "int8", "--calibration", tmp_path / "calib.npy", "-o", out,
            env={"DEPLOYKIT_PLUGINS": plugins})
    assert r.returncode == 0, r.stderr[-3000:]
    if target == "jetson-orin-nano":
        # TensorRT takes INT8 only into conv/gemm/pooling layers: no Q/DQ pair ever feeds the Concat,
        # so no shared scale exists to split
        import onnx

        g = onnx.load(str(out / "model.onnx")).graph
        producer = {o: n.op_type for n in g.node for o in n.output}
        concat = next(n for n in g.node if n.op_type == "Concat")
        assert "DequantizeLinear" not in {producer.get(t) for t in concat.input}
    else:
        assert "ranges differ" in r.stdout + r.stderr
    m = json.loads((out / "manifest.json").read_text())
    v = m["verification"]
    assert v["status"] == "passed", v
    parts = v["outputs"]["y"]["parts"]
    assert parts[SCORES]["sqnr_db"] > 20, parts
    assert v["output_parts"]["y"]["probability"] == [False, True]
    if target == "coral-usb":  # no float op on the Edge TPU: the runner joins the int8 branches
        join = m["outputs"][0]["artifact"]["join"]
        assert join["branch_ops"] == [[], ["sigmoid"]] and len(join["parts"]) == 2
        assert not m["quantization"]["fallback_layers"]
    # deploykit verify recomputes the same per-part figures from the stored samples
    again = cli("verify", out, "--json", env={"DEPLOYKIT_PLUGINS": plugins})
    assert again.returncode == 0, again.stderr
    assert SCORES in json.loads(again.stdout)["outputs"]["y"]["parts"]
