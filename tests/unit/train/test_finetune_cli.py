"""``deploykit optimize --finetune`` without PyTorch: one clear line, no traceback, no output file.

Runs everywhere (CI has no torch): torch is hidden from the CLI process with ``sys.modules['torch'] = None``.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

pytestmark = pytest.mark.unit

NO_TORCH = "import sys; sys.modules['torch'] = None; from deploykit.cli.app import main; sys.exit(main())"


@pytest.fixture
def model_and_calib(tmp_path):
    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])], "t",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 8])],
        [numpy_helper.from_array(rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32), "w")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, tmp_path / "m.onnx")
    np.save(tmp_path / "calib.npy", rng.standard_normal((10, 3, 8, 8)).astype(np.float32))
    return tmp_path


def _run(args, cwd):
    return subprocess.run([sys.executable, "-c", NO_TORCH, "optimize", *args], capture_output=True, text=True, check=False,
                          cwd=cwd, timeout=300)


def test_finetune_without_torch_is_one_line_error(model_and_calib):
    d = model_and_calib
    p = _run(["m.onnx", "--compress", "prune=0.25", "--calibration", "calib.npy", "--finetune", "10", "-o", "out.onnx"], d)
    assert p.returncode != 0
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert lines == ["error: --finetune needs PyTorch: pip install 'deploykit[train]' (CPU build: pip install torch==2.13.0)"]
    assert "Traceback" not in p.stderr + p.stdout
    assert not (d / "out.onnx").exists() and not list(d.glob("*.partial"))


def test_finetune_needs_calibration(model_and_calib):
    d = model_and_calib
    p = _run(["m.onnx", "--compress", "prune=0.25", "--finetune", "10", "-o", "out.onnx"], d)
    assert p.returncode != 0
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --finetune needs --calibration"), lines
    assert not (d / "out.onnx").exists()


def test_deploykit_imports_no_torch():
    code = ("import sys, deploykit.cli.app, deploykit.train, deploykit.compress; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False, timeout=120).returncode == 0
