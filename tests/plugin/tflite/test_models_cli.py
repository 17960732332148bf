"""Real models through the CLI for rpi4: every onnx light_* model (fp32) and PP-OCR cls
(fp32, fp16, int8); the runner output must match onnxruntime (pipeline verification)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import modelzoo
from tflite_testlib import PLUGINS

pytestmark = pytest.mark.plugin
pytest.importorskip("ai_edge_litert")

ENV = {"DEPLOYKIT_PLUGINS": PLUGINS}


def _check(proc, out):
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["verification"]["status"] == "passed", manifest["verification"]
    return manifest


@pytest.mark.parametrize("path", modelzoo.LIGHT_MODELS, ids=[p.stem for p in modelzoo.LIGHT_MODELS])
def test_light_model_fp32(cli, path, tmp_path):
    out = tmp_path / "b"
    _check(cli("build", path, "--target", "rpi4", "--precision", "fp32", "-o", out, env=ENV), out)


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_ppocr_cls(cli, ppocr_cls, tmp_path, precision):
    out = tmp_path / "b"
    args = ["build", ppocr_cls, "--target", "rpi4", "--precision", precision, "--input-shape", "x:1,3,48,192", "-o", out]
    if precision == "int8":
        calib = tmp_path / "calib.npy"
        np.save(calib, np.random.default_rng(0).uniform(-1, 1, (16, 3, 48, 192)).astype(np.float32))
        args += ["--calibration", calib]
    manifest = _check(cli(*args, env=ENV), out)
    assert manifest["backend"] == "tflite"
    # the runner works standalone with the source layout (NCHW)
    x = np.random.default_rng(1).standard_normal((1, 3, 48, 192)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    import subprocess

    proc = subprocess.run([sys.executable, "runner.py", "--input", f"x={tmp_path / 'x.npy'}", "--output",
                           str(tmp_path / "y.npz"), "--benchmark", "3"], cwd=out, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "latency over 3 runs" in proc.stdout


def test_nasty_names(cli, tmp_path):
    out = tmp_path / "b"
    src = modelzoo.nasty_names_model(tmp_path / "nasty.onnx")
    manifest = _check(cli("build", src, "--target", "rpi4", "--precision", "fp32", "-o", out, env=ENV), out)
    assert manifest["inputs"][0]["name"] == modelzoo.NASTY_NAMES["input"]


def test_unsupported_ops_listed(cli, tmp_path):
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Det", ["x"], ["d"], name="det_node"),
             helper.make_node("ConvTranspose", ["x4", "w"], ["c"], name="convt3d_node")]
    graph = helper.make_graph(nodes, "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 3]),
                                             helper.make_tensor_value_info("x4", TensorProto.FLOAT, [1, 1, 4, 4, 4])],
                              [helper.make_tensor_value_info("d", TensorProto.FLOAT, [2]),
                               helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 1, 6, 6, 6])],
                              [helper.make_tensor("w", TensorProto.FLOAT, [1, 1, 3, 3, 3], [0.1] * 27)])
    import onnx

    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    proc = cli("build", path, "--target", "rpi4", "--precision", "fp32", "-o", tmp_path / "b", env=ENV)
    assert proc.returncode != 0
    assert "det_node" in proc.stderr and "convt3d_node" in proc.stderr
    assert not (tmp_path / "b").exists()
    proc = cli("inspect", path, "--target", "rpi4", env=ENV)
    assert "det_node" in proc.stdout + proc.stderr
