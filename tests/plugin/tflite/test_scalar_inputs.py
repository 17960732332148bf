"""Rank-0 graph inputs (a scale, a threshold) go through build, verification and the runner."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from tflite_testlib import build, model

pytestmark = pytest.mark.plugin


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_rank0_input(tmp_path, precision):
    src = model(tmp_path / "m.onnx", [helper.make_node("Mul", ["x", "s"], ["m"]), helper.make_node("Relu", ["m"], ["y"])],
                {"x": [1, 8], "s": []}, {"y": [1, 8]})
    kw = {}
    if precision == "int8":
        rng = np.random.default_rng(0)
        np.savez(tmp_path / "calib.npz", x=rng.standard_normal((16, 8)).astype(np.float32),
                 s=rng.uniform(0.5, 2.0, 16).astype(np.float32))
        kw["calibration"] = str(tmp_path / "calib.npz")
    res = build(src, tmp_path / "out", precision=precision, **kw)
    assert res.manifest["verification"]["status"] == "passed", res.manifest["verification"]

    from deploykit.verification import load_runner_module

    runner = load_runner_module(tmp_path / "out").Runner(str(tmp_path / "out"))
    x = np.linspace(-1, 1, 8, dtype=np.float32).reshape(1, 8)
    y = runner.run({"x": x, "s": np.float32(2.0)})["y"]
    np.testing.assert_allclose(y, np.maximum(2 * x, 0), atol=0.1 if precision == "int8" else 1e-3)  # int8: a few steps of ~6/255
