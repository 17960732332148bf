"""Transformer blocks as exporters below opset 17/20 write them (LayerNorm and erf-GELU spelled out,
as a ViT-S at opset 14 does) build full-int8 for Coral, instead of 62 refused Sqrt/Div/Erf nodes (issue
19): the tflite backend fuses them at opset 20, the Edge TPU rules express LayerNorm with RSQRT and GELU
with LOGISTIC, and the TPU/CPU split is reported."""

from __future__ import annotations

import math

import numpy as np
import pytest
from onnx import helper

from edgetpu_testlib import ENV, assert_all_integer, calibration, model, report

pytestmark = pytest.mark.plugin
pytest.importorskip("ai_edge_litert")


def _block(path, d=16):
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["mu"], axes=[-1], keepdims=1),
        helper.make_node("Sub", ["x", "mu"], ["dx"]),
        helper.make_node("Pow", ["dx", "two"], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["var"], axes=[-1], keepdims=1),
        helper.make_node("Add", ["var", "eps"], ["ve"]),
        helper.make_node("Sqrt", ["ve"], ["sd"]),
        helper.make_node("Div", ["dx", "sd"], ["nx"]),
        helper.make_node("Mul", ["nx", "gamma"], ["gx"]),
        helper.make_node("Add", ["gx", "beta"], ["ln"]),
        helper.make_node("MatMul", ["ln", "w1"], ["h"]),
        helper.make_node("Div", ["h", "sqrt2"], ["hs"]),
        helper.make_node("Erf", ["hs"], ["e"]),
        helper.make_node("Add", ["e", "one"], ["e1"]),
        helper.make_node("Mul", ["h", "e1"], ["he"]),
        helper.make_node("Mul", ["he", "half"], ["g"]),
        helper.make_node("MatMul", ["g", "w2"], ["m"]),
        helper.make_node("Add", ["x", "m"], ["y"]),
    ]
    inits = {"two": np.float32(2), "eps": np.float32(1e-6), "gamma": rng.uniform(0.5, 1.5, d).astype(np.float32),
             "beta": rng.normal(0, 0.1, d).astype(np.float32), "w1": rng.normal(0, 0.3, (d, 2 * d)).astype(np.float32),
             "sqrt2": np.float32(math.sqrt(2)), "one": np.float32(1), "half": np.float32(0.5),
             "w2": rng.normal(0, 0.3, (2 * d, d)).astype(np.float32)}
    return model(path, nodes, {"x": [1, 8, d]}, {"y": [1, 8, d]}, inits, opset=14)


def test_spelled_out_transformer_block_builds_full_int8(cli, tmp_path):
    src = _block(tmp_path / "block.onnx")
    out = tmp_path / "b"
    calib = calibration(src, tmp_path / "calib.npy", n=16, low=-2.0, high=2.0)
    proc = cli("build", src, "--target", "coral-usb", "--calibration", calib, "-o", out, env=ENV)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_all_integer(out / "model.tflite")
    rep = report(out)
    br = rep["backend_report"]
    assert {"layernorm_rsqrt", "gelu_sigmoid"} <= set(br["rewrites"]), br["rewrites"]
    assert "RSQRT" in br["operators"] and "LOGISTIC" in br["operators"], br["operators"]
    assert not {"SQRT", "DIV", "GELU"} & set(br["operators"]), br["operators"]
    tpu = br["edgetpu"]
    assert 0.0 <= tpu["tpu_mac_share"] <= 1.0 and "Edge TPU prediction" in proc.stdout + proc.stderr
    assert any(p["device"] == "tpu" and p["op"] == "RSQRT" for p in tpu["per_operator"]), tpu["per_operator"]
    assert rep["verification"]["status"] == "passed", rep["verification"]


def test_an_epsilon_far_below_the_output_resolution_stays_integer(cli, tmp_path):
    """``var + 1e-5`` with a variance in the hundreds (openWakeWord's LayerNorm on real features): the
    epsilon's own int8 scale would be ~2e-8 of the output's, an unrepresentable rescale; it takes the
    floor scale instead of leaving a float ADD that the Edge TPU compiler rejects."""
    nodes = [helper.make_node("Mul", ["x", "x"], ["v"]), helper.make_node("Add", ["v", "eps"], ["s"]),
             helper.make_node("Mul", ["s", "half"], ["y"])]
    src = model(tmp_path / "eps.onnx", nodes, {"x": [1, 16]}, {"y": [1, 16]},
                {"eps": np.float32(1e-5), "half": np.float32(0.5)}, opset=13)
    out = tmp_path / "b"
    calib = calibration(src, tmp_path / "calib.npy", n=32, low=-30.0, high=30.0)
    proc = cli("build", src, "--target", "coral-usb", "--calibration", calib, "-o", out, env=ENV)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ADD" in assert_all_integer(out / "model.tflite")
    assert report(out)["verification"]["status"] == "passed"


def test_class_token_and_token_wise_linear_layers_stay_on_the_tpu(cli, tmp_path):
    """A ViT's stem: Concat(class token, patch tokens) then a linear layer per token. CONCATENATION
    takes a constant only as zero padding and FULLY_CONNECTED only one output row (facts §2): they
    become PAD + ADD and a 1x1 CONV_2D over [1, tokens, 1, dim], and the TPU keeps every MAC."""
    rng = np.random.default_rng(5)
    d = 16
    nodes = [helper.make_node("Concat", ["cls", "x"], ["t"], axis=1),
             helper.make_node("MatMul", ["t", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["r"]), helper.make_node("MatMul", ["r", "w2"], ["y"])]
    inits = {"cls": rng.normal(0, 1, (1, 1, d)).astype(np.float32), "w1": rng.normal(0, 0.3, (d, 2 * d)).astype(np.float32),
             "b1": rng.normal(0, 0.1, 2 * d).astype(np.float32), "w2": rng.normal(0, 0.3, (2 * d, d)).astype(np.float32)}
    src = model(tmp_path / "stem.onnx", nodes, {"x": [1, 8, d]}, {"y": [1, 9, d]}, inits, opset=13)
    out = tmp_path / "b"
    calib = calibration(src, tmp_path / "calib.npy", n=32, low=-2.0, high=2.0)
    proc = cli("build", src, "--target", "coral-usb", "--calibration", calib, "-o", out, env=ENV)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ops = assert_all_integer(out / "model.tflite")
    assert "FULLY_CONNECTED" not in ops and "CONCATENATION" not in ops and ops.count("CONV_2D") == 2, ops
    br = report(out)["backend_report"]
    assert br["rewrites"].get("concat_constant") == 1, br["rewrites"]
    assert br["edgetpu"]["tpu_mac_share"] == 1.0 and br["edgetpu"]["first_cpu_op"] is None, br["edgetpu"]
    assert report(out)["verification"]["status"] == "passed"
