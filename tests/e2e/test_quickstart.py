"""End-to-end: the quickstart example (examples/quickstart) trains a numpy CNN, builds fp32 and int8
bundles for the host through the CLI, and its bundles keep the numpy model's accuracy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"
CLI = [sys.executable, "-m", "deploykit.cli.app"]


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kwargs)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory) -> Path:
    """make_model.py + fp32 and int8 host builds through the CLI, into a temporary folder."""
    out = tmp_path_factory.mktemp("quickstart")
    _run([sys.executable, str(QUICKSTART / "make_model.py"), "--out", str(out)])
    for name in ("model.onnx", "calib.npy", "test.npz"):
        assert (out / name).is_file(), name
    _run(CLI + ["build", str(out / "model.onnx"), "--target", "host", "-o", str(out / "quickstart-fp32"), "--force"])
    _run(CLI + ["build", str(out / "model.onnx"), "--target", "host", "--precision", "int8",
                "--calibration", str(out / "calib.npy"), "-o", str(out / "quickstart-int8"), "--force"])
    return out


def test_make_model_outputs_follow_the_contracts(quickstart):
    import numpy as np
    import onnx

    model = onnx.load(str(quickstart / "model.onnx"))
    onnx.checker.check_model(model, full_check=True)
    (inp,), (outp,) = model.graph.input, model.graph.output
    assert inp.name == "image" and [d.dim_value for d in inp.type.tensor_type.shape.dim] == [1, 1, 16, 16]
    assert outp.name == "scores" and [d.dim_value for d in outp.type.tensor_type.shape.dim] == [1, 4]
    assert "Conv" in {n.op_type for n in model.graph.node}
    calib = np.load(quickstart / "calib.npy")
    assert calib.dtype == np.float32 and calib.shape[1:] == (1, 16, 16) and len(calib) >= 32  # batch removed
    test = np.load(quickstart / "test.npz")
    assert test["x"].shape[1:] == (1, 16, 16) and len(test["x"]) == len(test["y"]) >= 200
    assert sorted(set(test["y"].tolist())) == [0, 1, 2, 3]
    assert float(test["numpy_accuracy"]) >= 0.9, "the numpy CNN did not learn the task"


def test_bundles_keep_the_numpy_accuracy(quickstart):
    proc = _run([sys.executable, str(QUICKSTART / "evaluate.py"), str(quickstart / "test.npz"),
                 str(quickstart / "quickstart-fp32"), str(quickstart / "quickstart-int8"), "--json"])
    result = json.loads(proc.stdout)
    reference = result["numpy_accuracy"]
    by_precision = {b["precision"]: b for b in result["bundles"]}
    assert set(by_precision) == {"fp32", "int8"}
    for precision, b in by_precision.items():
        assert b["target"] == "host" and b["samples"] >= 200
        assert abs(b["accuracy"] - reference) <= 0.02, (precision, b["accuracy"], reference)
    # fp32 is the same graph as numpy's: it must agree almost exactly
    assert abs(by_precision["fp32"]["accuracy"] - reference) <= 1 / by_precision["fp32"]["samples"] + 1e-9
    for precision in ("fp32", "int8"):
        manifest = json.loads((quickstart / f"quickstart-{precision}" / "manifest.json").read_text())
        assert manifest["precision"] == precision and manifest["verification"]["status"] == "passed"


def test_int8_bundle_is_really_quantized(quickstart):
    import onnx

    ops = {n.op_type for n in onnx.load(str(quickstart / "quickstart-int8" / "model.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_run_sh(tmp_path):
    """The documented script, end to end (OUT redirected to a temporary folder)."""
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": sys.executable,
           "DEPLOYKIT": f"{sys.executable} -m deploykit.cli.app"}
    proc = _run(["bash", str(QUICKSTART / "run.sh")], env=env)
    assert "latency over 20 runs" in proc.stdout
    rows = [line for line in proc.stdout.splitlines() if line.startswith("host ")]
    assert [r.split()[1] for r in rows] == ["fp32", "int8"], proc.stdout
    assert (tmp_path / "out" / "quickstart-int8" / "manifest.json").is_file()
