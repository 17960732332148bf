"""A runtime that raises on the verification samples gives a failed verification with the reason,
not an internal error (issue 19: deepcut's embedding ids, random in an fp32 build without
--calibration, are out of range for TFLite's GATHER, which ONNX Runtime wraps)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from tflite_testlib import build, model

pytestmark = pytest.mark.plugin


def test_runtime_error_on_random_verification_inputs_is_a_failed_verification(tmp_path):
    nodes = [helper.make_node("Cast", ["ids"], ["i"], to=7),
             helper.make_node("Gather", ["emb", "i"], ["g"]),
             helper.make_node("ReduceSum", ["g"], ["y"], keepdims=0)]
    path = model(tmp_path / "m.onnx", nodes, {"ids": [1, 6]}, {"y": []},
                 {"emb": np.random.default_rng(0).standard_normal((40, 4)).astype(np.float32)})
    res = build(path, tmp_path / "out")  # no --calibration: random normal "ids", some negative
    ver = res.manifest["verification"]
    assert ver["status"] == "failed" and "runtime raised" in ver["problems"][0] and "--calibration" in ver["problems"][0]
    np.save(tmp_path / "ids.npy", np.random.default_rng(1).integers(0, 40, (10, 6)).astype(np.float32))
    res = build(path, tmp_path / "out2", calibration=str(tmp_path / "ids.npy"))
    assert res.manifest["verification"]["status"] == "passed", res.manifest["verification"]
