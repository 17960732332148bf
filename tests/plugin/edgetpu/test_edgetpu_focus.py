"""A YOLO Focus stem on the Edge TPU: stride-2 STRIDED_SLICE is no TPU op and, first in the graph, kept
everything on the CPU; as SPACE_TO_DEPTH (the TFLite lowering's Focus rewrite) the whole model is one
TPU segment, and the full-int8 bundle verifies against fp32."""

from __future__ import annotations

import numpy as np
import pytest

import modelzoo
from edgetpu_testlib import assert_all_integer, backend, registry

pytestmark = pytest.mark.plugin
pytest.importorskip("ai_edge_litert")


def _prepared(path):
    from deploykit.backend import BuildOptions
    from deploykit.ir import load_model
    from deploykit.passes import canonicalize

    be = backend()
    return be, be.prepare(canonicalize(load_model(path, {})), BuildOptions(precision="int8"))


@pytest.mark.parametrize("consumer", ["conv", "relu"])
def test_focus_conv_is_predicted_on_the_tpu(tmp_path, consumer):
    be, m = _prepared(modelzoo.focus_cnn(tmp_path / "m.onnx", consumer=consumer))
    assert be.rewrites.get("focus_space_to_depth") == 1
    graph, pred = be.predict(m)
    codes = [op.code for op in graph.ops]
    assert codes[0] == "SPACE_TO_DEPTH" and "STRIDED_SLICE" not in codes, codes
    assert pred.split is None and all(p.device == "tpu" for p in pred.ops), [(p.code, p.reason) for p in pred.ops]
    support = {s.node: s for s in be.analyze(m)}
    assert support["stem_conv"].device == "tpu" and support["head"].device == "tpu"


def test_strided_slices_alone_end_the_tpu_segment(tmp_path):
    """Without the rewrite (what a model gets when the pattern does not match) the first STRIDED_SLICE ends
    the TPU segment: the check above is not vacuous."""
    from deploykit_edgetpu.support import predict

    from deploykit_edgetpu.backend import _tpu_lowering
    from deploykit_edgetpu.converters import CONVERTERS
    from deploykit.ir import load_model
    from deploykit.passes import canonicalize

    graph = _tpu_lowering(canonicalize(load_model(modelzoo.focus_cnn(tmp_path / "m.onnx"), {}))).run(CONVERTERS)
    pred = predict(graph, 14, check_dtypes=False)
    assert pred.split is not None and pred.split.code == "STRIDED_SLICE" and pred.tpu_ops == 0


def test_focus_model_builds_full_int8_on_the_tpu(tmp_path):
    from deploykit.pipeline import BuildRequest, build

    src = modelzoo.focus_cnn(tmp_path / "m.onnx")
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(0).uniform(0, 255, (32, 3, 16, 12)).astype(np.float32))
    res = build(BuildRequest(model=src, target="coral-usb", output=tmp_path / "b", calibration=str(calib)),
                registry=registry())
    ops = assert_all_integer(tmp_path / "b" / "model.tflite")
    assert "SPACE_TO_DEPTH" in ops and "STRIDED_SLICE" not in ops, ops
    rep = res.report["backend_report"]
    assert rep["rewrites"]["focus_space_to_depth"] == 1
    assert rep["edgetpu"]["tpu_mac_share"] == 1.0 and rep["edgetpu"]["first_cpu_op"] is None, rep["edgetpu"]
    ver = res.report["verification"]
    assert ver["status"] == "passed" and all(o["cosine"] > 0.99 for o in ver["outputs"].values()), ver
