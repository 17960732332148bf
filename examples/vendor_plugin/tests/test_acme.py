"""Tests of the ACME plugin: a fresh registry with only this plugin (no entry-point autoload).

Run from examples/vendor_plugin:  python -m pytest
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper, numpy_helper

import deploykit_acme
from deploykit.backend import Support
from deploykit.errors import DeployError, UnsupportedError
from deploykit.pipeline import BuildRequest, build
from deploykit.plugins import Registry
from deploykit.verification import load_runner_module


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.from_plugins([deploykit_acme])


def small_cnn(path: Path, *, group: int = 1, dilation: int = 1, act: str = "Relu") -> Path:
    """Conv -> act -> GlobalAveragePool -> Flatten -> Gemm, input x[1,4,16,16], output y[1,5]."""
    rng = np.random.default_rng(0)
    weights = {
        "W": rng.standard_normal((8, 4 // group, 3, 3)).astype(np.float32) * 0.3,
        "B": rng.standard_normal(8).astype(np.float32) * 0.1,
        "G": rng.standard_normal((5, 8)).astype(np.float32),
        "C": rng.standard_normal(5).astype(np.float32),
    }
    pad = dilation
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], name="conv0", pads=[pad] * 4, group=group,
                         dilations=[dilation, dilation]),
        helper.make_node(act, ["c"], ["r"], name="act0"),
        helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "G", "C"], ["y"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "small_cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_plugin_registers_backend_and_target(registry):
    assert set(registry.backends) == {"acme"}
    assert set(registry.targets) == {"acme-board"}
    profile = registry.target("acme-board")
    assert registry.backend_for(profile) is deploykit_acme.AcmeBackend
    assert profile.precisions == ("fp32", "fp16") and profile.accelerator == "npu"
    assert registry.plugins["deploykit_acme"] == deploykit_acme.__version__


@pytest.mark.parametrize(
    ("kwargs", "op", "reason"),
    [
        ({}, None, None),
        ({"group": 4}, "Conv", "group=4"),
        ({"dilation": 2}, "Conv", "dilations=[2, 2]"),
        ({"act": "Tanh"}, "Tanh", "acme has no lowering for Tanh"),
    ],
)
def test_op_table(registry, tmp_path, kwargs, op, reason):
    backend = deploykit_acme.AcmeBackend(registry.target("acme-board"))
    model = ir.load(str(small_cnn(tmp_path / "m.onnx", **kwargs)))
    bad = [s for s in backend.analyze(model) if s.status is Support.UNSUPPORTED]
    if op is None:
        assert bad == []
    else:
        assert [(s.op_type, s.node) for s in bad] == [(op, "conv0" if op == "Conv" else "act0")]
        assert reason in bad[0].reason


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_build_and_run(registry, tmp_path, precision, monkeypatch):
    model = small_cnn(tmp_path / "m.onnx")
    out = tmp_path / f"bundle-{precision}"
    result = build(BuildRequest(model=model, target="acme-board", output=out, precision=precision), registry=registry)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["backend"] == "acme" and manifest["precision"] == precision
    assert manifest["verification"]["status"] == "passed", manifest["verification"]
    assert set(manifest["files"]) >= {"model.onnx", "runner.py", "requirements.txt", "README.md", "Dockerfile"}
    assert result.manifest == manifest
    # the artifact really is fp16 (weights) with float32 I/O, or untouched fp32
    art = onnx.load(str(out / "model.onnx"))
    init_types = {t.data_type for t in art.graph.initializer}
    want = TensorProto.FLOAT16 if precision == "fp16" else TensorProto.FLOAT
    assert init_types == {want}
    assert art.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT

    # the generated runner against onnxruntime on the source model
    import onnxruntime as ort

    x = np.random.default_rng(1).standard_normal((1, 4, 16, 16)).astype(np.float32)
    ref = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    monkeypatch.setenv("ACME_DEVICE", "cpu")
    runner = load_runner_module(out).Runner(str(out))
    assert "acme cpu" in runner.runtime
    y = runner.run({"x": x})["y"]
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-5 if precision == "fp32" else 2e-2)


def test_runner_rejects_unknown_device(registry, tmp_path):
    out = tmp_path / "b"
    build(BuildRequest(model=small_cnn(tmp_path / "m.onnx"), target="acme-board", output=out), registry=registry)
    env = {**os.environ, "ACME_DEVICE": "gpu"}
    proc = subprocess.run([sys.executable, str(out / "runner.py")], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "ACME_DEVICE='gpu'" in proc.stderr


def test_int8_is_refused(registry, tmp_path):
    with pytest.raises(DeployError, match="does not support --precision int8"):
        build(BuildRequest(model=small_cnn(tmp_path / "m.onnx"), target="acme-board", output=tmp_path / "b",
                           precision="int8", calibration="unused.npy"), registry=registry)
    assert not (tmp_path / "b").exists()


def test_unsupported_model_fails_before_writing(registry, tmp_path):
    with pytest.raises(UnsupportedError, match=r"Conv \(node 'conv0'"):
        build(BuildRequest(model=small_cnn(tmp_path / "m.onnx", group=2), target="acme-board", output=tmp_path / "b"),
              registry=registry)
    assert not (tmp_path / "b").exists()
