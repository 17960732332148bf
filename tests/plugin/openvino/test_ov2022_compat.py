"""Proof that ncs2 IR is readable by OpenVINO 2022.3: load and run it with ``openvino==2022.3.1`` on CPU
under Python 3.10 (the 2022.3 wheel has no MYRIAD plugin and exists only for CPython <= 3.10), using the
bundle's own generated runner, and compare with fp32 onnxruntime.

Needs a 2022.3 environment (``DEPLOYKIT_OV2022_PYTHON`` or ~/.cache/deploykit/venvs/ov2022); skipped
otherwise. Create it with the command in ``deploykit_openvino.legacy.setup_hint()``.
"""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import modelzoo
from ov_testlib import ENV, attention_model, pad_conv_model, resize_topk_model, scatter_model

pytestmark = pytest.mark.plugin
ov = pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def ov2022():
    from deploykit_openvino import legacy

    python = legacy.find_python()
    if python is None:
        pytest.skip("no OpenVINO 2022.3 environment: " + legacy.setup_hint())
    proc = subprocess.run([str(python), "-c", "import openvino.runtime as r; print(r.get_version())"],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 or not proc.stdout.startswith("2022.3"):
        pytest.skip(f"{python} has no openvino 2022.3: {proc.stderr.strip()[-200:]}")
    return python


def _opsets(xml):
    return {int(layer.get("version")[5:]) for layer in ET.parse(xml).getroot().iter("layer")
            if layer.get("version", "").startswith("opset")}


def _run_runner_2022(python, bundle, x_path, out_path):
    proc = subprocess.run([str(python), "runner.py", "--input", f"x={x_path}", "--output", str(out_path)],
                          cwd=bundle, capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert "running on CPU" in proc.stderr  # no MYRIAD in the wheel: the runner says so and falls back
    with np.load(out_path) as z:
        return {k[:-4] if k.endswith(".npy") else k: z[k] for k in z.files}


def test_convert_model_output_is_not_2022_readable(ov2022, tmp_path):
    """Why the downgrade exists: plain convert_model + save_model emits opset11/13 layers 2022.3 rejects."""
    from deploykit.errors import DeployError
    from deploykit_openvino import legacy

    src = attention_model(tmp_path / "att.onnx")
    xml = tmp_path / "plain.xml"
    ov.save_model(ov.convert_model(str(src)), str(xml))
    assert max(_opsets(xml)) > 10
    with pytest.raises(DeployError, match="opset"):
        legacy.run_ir(ov2022, xml, [[np.zeros((1, 8, 16), np.float32)]])


@pytest.mark.parametrize("maker,shape", [(resize_topk_model, (1, 3, 16, 16)), (attention_model, (1, 8, 16)),
                                         (pad_conv_model, (1, 3, 12, 12))],
                         ids=["resize_topk", "attention", "pad"])
def test_ncs2_ir_runs_on_openvino_2022(cli, ov2022, tmp_path, maker, shape):
    import onnxruntime as ort

    src = maker(tmp_path / "m.onnx")
    out = tmp_path / "b"
    proc = cli("build", src, "--target", "ncs2", "-o", out, env=ENV)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    backend = report["backend_report"]
    assert backend["ov2022_check"]["status"] == "passed" and backend["ov2022_check"]["openvino"].startswith("2022.3")
    assert backend["rewrites"]  # Interpolate-11/TopK-11 or ScaledDotProductAttention-13 were rewritten
    assert max(_opsets(out / "model.xml")) <= 10
    # the bundle's own runner under Python 3.10 + openvino 2022.3.1, vs fp32 onnxruntime
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    got = _run_runner_2022(ov2022, out, tmp_path / "x.npy", tmp_path / "y.npz")
    sess = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    ref = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"x": x})))
    for name, r in ref.items():
        g = got[name]
        assert g.shape == r.shape
        if r.dtype.kind == "f":
            assert np.max(np.abs(g - r)) <= 1e-2 * max(1.0, float(np.max(np.abs(r)))), name  # FP16 weights
        else:
            assert np.array_equal(g, r), name


def test_ppocr_cls_ncs2_on_openvino_2022(cli, ov2022, ppocr_cls, tmp_path):
    import onnxruntime as ort

    out = tmp_path / "b"
    proc = cli("build", ppocr_cls, "--target", "ncs2", "--input-shape", "x:1,3,48,192", "-o", out, env=ENV)
    assert proc.returncode == 0, proc.stderr[-2000:]
    x = np.random.default_rng(4).uniform(-1, 1, (1, 3, 48, 192)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    got = _run_runner_2022(ov2022, out, tmp_path / "x.npy", tmp_path / "y.npz")
    sess = ort.InferenceSession(str(ppocr_cls), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {"x": x})[0]
    (name,) = got
    assert np.max(np.abs(got[name] - ref)) < 1e-2
    assert np.argmax(got[name]) == np.argmax(ref)


def test_fallback_conversion_needs_no_openvino_dev(cli, ov2022, tmp_path):
    """A layer without a downgrade rule (ScatterElementsUpdate-12) is converted by OpenVINO 2022.3 itself:
    with the Model Optimizer when openvino-dev is installed, else with the runtime wheel's ONNX frontend
    (the side environment and the Docker toolchain pin only openvino==2022.3.1)."""
    import onnxruntime as ort

    has_mo = subprocess.run([str(ov2022), "-c", "import openvino.tools.mo"], capture_output=True).returncode == 0
    src = scatter_model(tmp_path / "m.onnx")
    out = tmp_path / "b"
    proc = cli("build", src, "--target", "ncs2", "-o", out, env=ENV)
    assert proc.returncode == 0, proc.stderr[-2000:]
    backend = json.loads((out / "report.json").read_text())["backend_report"]
    assert backend["converter"].startswith("openvino-dev 2022.3 mo" if has_mo else "openvino 2022.3 ONNX frontend")
    assert backend["ov2022_check"]["status"] == "passed"
    assert max(_opsets(out / "model.xml")) <= 10
    x = np.random.default_rng(5).standard_normal((1, 3, 12, 12)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    got = _run_runner_2022(ov2022, out, tmp_path / "x.npy", tmp_path / "y.npz")
    ref = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.max(np.abs(got["y"] - ref)) <= 1e-2 * max(1.0, float(np.max(np.abs(ref))))
