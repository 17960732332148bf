"""OpenVINO bundles through the CLI: ncs2 (FP16 IR for OpenVINO 2022.3) and intel-cpu (fp32, fp16,
INT8 from the engine). Every build is verified by the pipeline (the generated runner on the host
CPU against fp32 onnxruntime); the tests check that verification passed and what the report says."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import modelzoo
from ov_testlib import ENV

pytestmark = pytest.mark.plugin
pytest.importorskip("openvino")

# light_* models have constant weights: near-uniform outputs, good for op coverage only. The heavy ones
# (VGG-19 alone is ~40 s on 2 cores, all nine ~2 min) are marked slow and run with DEPLOYKIT_OPENVINO_ALL=1.
FAST_LIGHT = {"light_inception_v1", "light_shufflenet", "light_squeezenet"}
ALL = bool(os.environ.get("DEPLOYKIT_OPENVINO_ALL"))
_SLOW = [pytest.mark.slow, pytest.mark.skipif(not ALL, reason="slow light model (set DEPLOYKIT_OPENVINO_ALL=1)")]
LIGHT = [pytest.param(p, id=p.stem, marks=() if p.stem in FAST_LIGHT else _SLOW) for p in modelzoo.LIGHT_MODELS]


VOCAB = 32  # modelzoo.small_transformer's embedding rows


def _check(proc, out):
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["verification"]["status"] == "passed", manifest["verification"]
    return manifest, json.loads((out / "report.json").read_text())


def _calib(path, shape, n=16, seed=0):
    np.save(path, np.random.default_rng(seed).uniform(-1, 1, (n, *shape)).astype(np.float32))
    return path


@pytest.mark.parametrize("path", LIGHT)
def test_light_model_ncs2(cli, path, tmp_path, request):
    if path.stem == "light_squeezenet":
        # its logits reach ~7e9 with identical channels: OpenVINO matches onnxruntime to 1e-6 relative before
        # the Softmax, but that is +-7e3 absolute, so the Softmax of near-equal huge logits differs.
        request.applymarker(pytest.mark.xfail(reason="pathological logits (~7e9) in the constant-weight model", strict=False))
    out = tmp_path / "b"
    manifest, report = _check(cli("build", path, "--target", "ncs2", "-o", out, env=ENV), out)
    assert manifest["precision"] == "fp16"
    ops = report["backend_report"]["ir_opsets"]
    assert all(int(k[5:]) <= 10 for k in ops if k.startswith("opset"))


@pytest.mark.parametrize("target,precision", [("ncs2", "fp16"), ("intel-cpu", "int8"), ("intel-cpu", "fp32")])
def test_ppocr_cls(cli, ppocr_cls, tmp_path, target, precision):
    out = tmp_path / "b"
    args = ["build", ppocr_cls, "--target", target, "--precision", precision, "--input-shape", "x:1,3,48,192", "-o", out]
    if precision == "int8":
        args += ["--calibration", _calib(tmp_path / "calib.npy", (3, 48, 192))]
    manifest, report = _check(cli(*args, env=ENV), out)
    assert manifest["backend"] == "openvino"
    backend = report["backend_report"]
    if target == "ncs2":
        assert backend["rewrites"].get("HardSigmoid-1", 0) > 0  # MYRIAD has no HardSigmoid
        assert "HardSigmoid" not in json.dumps(backend["ir_opsets"])
    if precision == "int8":
        assert backend["layers"].get("FakeQuantize-1", 0) > 0
        # symmetric per-channel int8 weights: every convolution runs as a u8 kernel on the CPU plugin
        assert backend["int8_runtime_precision"]["Convolution"].get("f32", 0) == 0
    # the runner works standalone (CLI, benchmark)
    x = np.random.default_rng(1).standard_normal((1, 3, 48, 192)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    proc = subprocess.run([sys.executable, "runner.py", "--input", f"x={tmp_path / 'x.npy'}", "--output",
                           str(tmp_path / "y.npz"), "--benchmark", "3"], cwd=out, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "latency over 3 runs" in proc.stdout
    if target == "ncs2":
        assert "MYRIAD not available" in proc.stderr and "running on CPU" in proc.stderr


@pytest.mark.parametrize("maker,shape", [(modelzoo.small_cnn, (3, 16, 16)), (modelzoo.small_transformer, None),
                                         (modelzoo.nasty_names_model, (3, 16, 16))],
                         ids=["small_cnn", "small_transformer", "nasty_names"])
@pytest.mark.parametrize("target", ["ncs2", "intel-cpu"])
def test_modelzoo(cli, tmp_path, maker, shape, target):
    src = maker(tmp_path / "m.onnx")
    out = tmp_path / "b"
    args = ["build", src, "--target", target, "-o", out]
    if target == "intel-cpu":  # default precision int8
        if shape is None:  # small_transformer: int64 tokens + float features -> .npz per input
            rng = np.random.default_rng(0)
            calib = tmp_path / "calib.npz"
            np.savez(calib, tokens=rng.integers(0, VOCAB, (24, 8)).astype(np.int64),
                     features=rng.standard_normal((24, 8, 16)).astype(np.float32))
            args += ["--calibration", calib]
        else:
            args += ["--calibration", _calib(tmp_path / "calib.npy", shape, n=24)]
    manifest, _ = _check(cli(*args, env=ENV), out)
    assert manifest["precision"] == ("fp16" if target == "ncs2" else "int8")
    if maker is modelzoo.nasty_names_model:
        assert manifest["inputs"][0]["name"] == modelzoo.NASTY_NAMES["input"]
        assert manifest["outputs"][0]["name"] == modelzoo.NASTY_NAMES["output"]


def test_intel_cpu_fp16_and_npu(cli, tmp_path):
    src = modelzoo.small_cnn(tmp_path / "cnn.onnx")
    for target, precision in (("intel-cpu", "fp16"), ("intel-npu", "fp16")):
        out = tmp_path / f"{target}-{precision}"
        manifest, report = _check(cli("build", src, "--target", target, "--precision", precision, "-o", out, env=ENV), out)
        assert "Convert-1" in report["backend_report"]["layers"]  # FP16-compressed weights + Convert
    reqs = (tmp_path / "intel-cpu-fp16" / "requirements.txt").read_text()
    assert "openvino==" in reqs


def test_ncs2_int8_refused(cli, tmp_path):
    src = modelzoo.small_cnn(tmp_path / "cnn.onnx")
    calib = _calib(tmp_path / "c.npy", (3, 16, 16))
    proc = cli("build", src, "--target", "ncs2", "--precision", "int8", "--calibration", calib, "-o", tmp_path / "b", env=ENV)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "FP16 only" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "b").exists()


def test_ncs2_needs_static_shapes(cli, tmp_path):
    src = modelzoo.dynamic_batch_model(tmp_path / "dyn.onnx")
    proc = cli("build", src, "--target", "ncs2", "-o", tmp_path / "b", env=ENV)
    assert proc.returncode != 0 and "--input-shape" in proc.stderr  # the core refuses dynamic dims at import
    assert not (tmp_path / "b").exists()
    out = tmp_path / "ok"
    _check(cli("build", src, "--target", "ncs2", "--input-shape", "image:1,3,16,16", "-o", out, env=ENV), out)


def test_ncs2_unsupported_ops_listed(cli, tmp_path):
    from onnx import TensorProto, helper

    import onnx

    nodes = [helper.make_node("Sin", ["x"], ["s"], name="sin_node"),
             helper.make_node("DepthToSpace", ["s"], ["y"], blocksize=2, name="d2s_node")]
    graph = helper.make_graph(nodes, "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 8, 8])])
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    proc = cli("build", path, "--target", "ncs2", "-o", tmp_path / "b", env=ENV)
    assert proc.returncode != 0
    assert "sin_node" in proc.stderr and "d2s_node" in proc.stderr and "MYRIAD" in proc.stderr
    assert not (tmp_path / "b").exists()
    out = tmp_path / "cpu"  # the same model is fine for the CPU plugin
    _check(cli("build", path, "--target", "intel-cpu", "--precision", "fp32", "-o", out, env=ENV), out)
