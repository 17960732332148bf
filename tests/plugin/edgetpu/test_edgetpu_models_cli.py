"""Real models through the CLI for coral-usb: light_* models, PP-OCR cls and modelzoo models build as
full-integer TFLite (every op int8, int8 I/O), run on host LiteRT through the generated runner
(CPU fallback: no TPU here), and report the TPU/CPU split. The LRN models (alexnet, inception_v1, zfnet)
build through the ``lrn`` rewrite, shufflenet through ``channel_shuffle``; both predicted 100 % on the
TPU. Models whose ops cannot be integer fail with one clear error line. resnet50/vgg19/densenet121/
alexnet/zfnet512 take 15-60 s each: set DEPLOYKIT_EDGETPU_ALL=1."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from onnx import helper as onnx_helper

import modelzoo
from edgetpu_testlib import ENV, assert_all_integer, calibration, model, report

pytestmark = pytest.mark.plugin
pytest.importorskip("ai_edge_litert")

SLOW = {"light_resnet50", "light_vgg19", "light_densenet121", "light_bvlc_alexnet", "light_zfnet512"}
WITH_LRN = {"light_bvlc_alexnet", "light_inception_v1", "light_zfnet512"}  # 2 LRN each: the lrn rewrite
LIGHT = list(modelzoo.LIGHT_MODELS)


def _build(cli, src, tmp_path, *extra, calib_range=(0.0, 1.0)):
    out = tmp_path / "b"
    calib = calibration(src, tmp_path / "calib.npy", n=8, low=calib_range[0], high=calib_range[1])
    proc = cli("build", src, "--target", "coral-usb", "--calibration", calib, "-o", out, *extra, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def _common_checks(out, proc):
    assert_all_integer(out / "model.tflite")
    rep = report(out)
    tpu = rep["backend_report"]["edgetpu"]
    assert 0.0 <= tpu["tpu_mac_share"] <= 1.0 and tpu["per_operator"]
    assert all(p["device"] in ("tpu", "cpu") for p in tpu["per_operator"])
    assert tpu["compiler"]["status"] in ("not_found", "succeeded", "failed")
    if tpu["compiler"]["status"] == "not_found":  # never silent
        assert "edgetpu_compiler not found" in proc.stdout + proc.stderr
        assert (out / "compile.sh").exists()
    assert "Edge TPU prediction" in proc.stdout + proc.stderr
    return rep


@pytest.mark.parametrize("path", LIGHT, ids=[p.stem for p in LIGHT])
def test_light_model(cli, path, tmp_path):
    if path.stem in SLOW and not os.environ.get("DEPLOYKIT_EDGETPU_ALL"):
        pytest.skip("slow model (set DEPLOYKIT_EDGETPU_ALL=1)")
    out, proc = _build(cli, path, tmp_path)
    rep = _common_checks(out, proc)
    ver = rep["verification"]
    # these test models have placeholder weights: their softmax is exactly uniform (0.001 per class), below
    # one step of the int8 SOFTMAX output scale the TFLite spec fixes (1/256), so the int8 output is all 0
    # and cosine is undefined-as-0. What int8 can promise here: error <= 1 output step, same top-1 tie.
    for m in ver["outputs"].values():
        assert m["max_abs_error"] <= 1.0 / 256 + 1e-6, ver
    tpu = rep["backend_report"]["edgetpu"]
    rewrites = rep["backend_report"]["rewrites"]
    ops = assert_all_integer(out / "model.tflite")
    if path.stem in WITH_LRN:  # LRN -> MUL, band CONV_2D, RSQRT chain, MUL: all int8, all on the TPU
        assert rewrites.get("lrn") == 2 and ops.count("RSQRT") == 4 and "LOCAL_RESPONSE_NORMALIZATION" not in ops
        lrn_ops = [p for p in tpu["per_operator"] if "/" in p["node"] and p["node"].split("/")[-1].startswith(
            ("square", "window_sum", "rsqrt", "root", "power", "scale"))]
        assert len(lrn_ops) == 2 * 7 and all(p["device"] == "tpu" for p in lrn_ops), lrn_ops
    if path.stem == "light_shufflenet":  # rank-5 shuffles -> rank-4 RESHAPE, TRANSPOSE, RESHAPE
        assert rewrites.get("channel_shuffle") == 16 and ops.count("TRANSPOSE") == 16
    assert tpu["tpu_mac_share"] == 1.0 and tpu["first_cpu_op"] is None, tpu["first_cpu_op"]


def test_non_integer_model_is_a_clear_error(cli, tmp_path):
    # LRN with beta 0.6 (not a multiple of 1/16): the lrn rewrite keeps one float POW -> refused, with the reason
    nodes = [onnx_helper.make_node("Relu", ["x"], ["r"], name="relu"),
             onnx_helper.make_node("LRN", ["r"], ["y"], size=5, alpha=0.1, beta=0.6, name="norm")]
    path = model(tmp_path / "m.onnx", nodes, {"x": [1, 8, 8, 8]}, {"y": [1, 8, 8, 8]})
    calib = calibration(path, tmp_path / "calib.npy", n=4)
    proc = cli("build", path, "--target", "coral-usb", "--calibration", calib, "-o", tmp_path / "b", env=ENV)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "POW" in lines[0] and "no int8 TFLite kernel" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "b").exists()


def test_ppocr_cls(cli, ppocr_cls, tmp_path):
    out = tmp_path / "b"
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(0).uniform(-1, 1, (16, 3, 48, 192)).astype(np.float32))
    proc = cli("build", ppocr_cls, "--target", "coral-usb", "--input-shape", "x:1,3,48,192", "--calibration", calib,
               "-o", out, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rep = _common_checks(out, proc)
    assert rep["verification"]["status"] == "passed", rep["verification"]
    assert rep["backend_report"]["edgetpu"]["tpu_mac_share"] == 1.0
    assert rep["backend_report"]["edgetpu"]["first_cpu_op"] is None
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"][0]["quantization"]["dtype"] == "int8"
    # the runner: same contract (NCHW float in, float out), CPU fallback with a clear warning
    x = np.random.default_rng(1).standard_normal((1, 3, 48, 192)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    run = subprocess.run([sys.executable, "runner.py", "--input", f"x={tmp_path / 'x.npy'}", "--output",
                          str(tmp_path / "y.npz"), "--benchmark", "2"], cwd=out, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "model_edgetpu.tflite" in run.stderr and "CPU" in run.stderr
    assert "latency over 2 runs" in run.stdout
    reqs = (out / "requirements.txt").read_text().splitlines()
    assert reqs[0].startswith("--extra-index-url") and any(r.startswith("pycoral") for r in reqs)


def test_small_cnn_and_inspect(cli, tmp_path):
    src = modelzoo.small_cnn(tmp_path / "cnn.onnx")
    out, proc = _build(cli, src, tmp_path, calib_range=(-2.0, 2.0))
    rep = _common_checks(out, proc)
    assert rep["verification"]["status"] == "passed", rep["verification"]
    assert rep["backend_report"]["rewrites"].get("hardswish") == 1
    insp = cli("inspect", src, "--target", "coral-usb", "--json", env=ENV)
    assert insp.returncode == 0, insp.stderr
    support = json.loads(insp.stdout)["target"]["support"]
    assert {s["device"] for s in support} <= {"tpu", "cpu"}
    assert any("of MACs" in s["reason"] for s in support)
    text = cli("inspect", src, "--target", "coral-usb", env=ENV)
    assert "Edge TPU prediction" in text.stdout.replace("\n", " ").replace("│", " ") or "tpu" in text.stdout


def test_batch_and_precision_errors(cli, tmp_path):
    src = modelzoo.small_cnn(tmp_path / "cnn.onnx", batch="N")
    calib = tmp_path / "c.npy"
    np.save(calib, np.zeros((4, 3, 16, 16), np.float32))
    proc = cli("build", src, "--target", "coral-usb", "--input-shape", "image:4,3,16,16", "--calibration", calib,
               "-o", tmp_path / "b", env=ENV)
    assert proc.returncode != 0 and "batch 1" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("build", src, "--target", "coral-usb", "--precision", "fp32", "--input-shape", "image:1,3,16,16",
               "-o", tmp_path / "b", env=ENV)
    assert proc.returncode != 0 and "int8" in proc.stderr
