"""The Focus -> SpaceToDepth rewrite (``deploykit_tflite.space_to_depth``): exact against onnxruntime for
every view order and consumer, left alone when the pattern is not exactly a 2x2 space-to-depth, and the
rpi4 bundles (fp32, int8) hold SPACE_TO_DEPTH and no STRIDED_SLICE, all in one XNNPACK partition."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import pytest
from onnx import helper

import modelzoo
from tflite_testlib import build, report, tflite_ops

pytestmark = pytest.mark.plugin
pytest.importorskip("ai_edge_litert")

from deploykit_tflite import space_to_depth  # noqa: E402

ORDERS = [modelzoo.FOCUS_YOLO, ((0, 0), (0, 1), (1, 0), (1, 1)), ((1, 1), (0, 1), (1, 0), (0, 0))]


def _run(model, x):
    import onnxruntime as ort

    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def _rewritten(path):
    import onnx_ir as ir

    from deploykit.ir import load_model
    from deploykit.passes import canonicalize

    m = canonicalize(load_model(path, {}))
    p = space_to_depth.FocusToSpaceToDepthPass()
    p(m)
    proto = ir.to_proto(m)
    onnx.checker.check_model(proto, full_check=True)
    return p.how, [n.op_type for n in m.graph], proto


def _x(c=3, hw=(16, 12), seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (1, c, *hw)).astype(np.float32)


def test_channel_map_of_the_yolo_order():
    import onnx_ir as ir

    x = ir.Value(name="x", shape=ir.Shape([1, 2, 4, 4]), type=ir.TensorType(ir.DataType.FLOAT))
    f = space_to_depth.Focus(concat=None, source=x, offsets=modelzoo.FOCUS_YOLO, slices=())
    # Concat blocks (0,0), (1,0), (0,1), (1,1) are SpaceToDepth blocks 0, 2, 1, 3 (block = 2*dy + dx)
    assert f.channel_map().tolist() == [0, 1, 4, 5, 2, 3, 6, 7]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("chained", [True, False])
@pytest.mark.parametrize("consumer", ["conv", "conv2", "relu", "output"])
def test_rewrite_is_exact(tmp_path, order, chained, consumer):
    path = modelzoo.focus_cnn(tmp_path / "m.onnx", order=order, chained=chained, consumer=consumer)
    x = _x()
    how, ops, proto = _rewritten(path)
    assert "Slice" not in ops and ops.count("SpaceToDepth") == 1, ops
    identity = order == ((0, 0), (0, 1), (1, 0), (1, 1))
    expected = "none" if identity else ("conv_weights" if consumer in ("conv", "conv2") else "split_concat")
    assert how == {expected: 1}
    if expected == "conv_weights":  # the permutation lives in the weights: no op added for it
        assert ops.count("Concat") == 0 and "Split" not in ops
    np.testing.assert_allclose(_run(proto, x), _run(path, x), rtol=1e-5, atol=1e-3)  # inputs 0..255


def test_every_order_of_the_four_views(tmp_path):
    x = _x(c=2, hw=(6, 8), seed=1)
    for order in itertools.permutations(sorted(space_to_depth.OFFSETS)):
        path = modelzoo.focus_cnn(tmp_path / "m.onnx", order=order, consumer="output", c=2, hw=(6, 8))
        how, _, proto = _rewritten(path)
        assert sum(how.values()) == 1
        np.testing.assert_array_equal(_run(proto, x), _run(path, x))  # pure data movement: bit-exact


def _edited(path, edit):
    """``edit`` the saved model; shapes are inferred again (declared output shapes dropped)."""
    m = onnx.load(str(path))
    edit(m)
    del m.graph.value_info[:]
    for o in m.graph.output:
        o.type.tensor_type.ClearField("shape")
    onnx.save(onnx.shape_inference.infer_shapes(m, strict_mode=True), str(path))
    return path


def _set_init(name, value):
    def edit(m):
        for i, t in enumerate(m.graph.initializer):
            if t.name == name:
                m.graph.initializer[i].CopyFrom(onnx.numpy_helper.from_array(np.asarray(value, np.int64), name))
    return edit


@pytest.mark.parametrize("what,edit", [
    ("stride 3", _set_init("steps2", [3, 3])),
    ("a view twice: offsets not all of {0,1}^2", _set_init("st3", [0, 0])),
    ("concat on height", lambda m: m.graph.node[4].attribute[0].CopyFrom(helper.make_attribute("axis", 2))),
])
def test_other_patterns_are_left_alone(tmp_path, what, edit):
    path = _edited(modelzoo.focus_cnn(tmp_path / "m.onnx", chained=False, consumer="output", hw=(12, 12)), edit)
    how, ops, _ = _rewritten(path)
    assert how == {} and "SpaceToDepth" not in ops and ops.count("Slice") == 4, (what, ops)


def test_slice_used_elsewhere_keeps_its_node(tmp_path):
    path = modelzoo.focus_cnn(tmp_path / "m.onnx", chained=False, consumer="output")

    def edit(m):  # a second output reads one of the views
        m.graph.output.append(helper.make_tensor_value_info("v0", onnx.TensorProto.FLOAT, [1, 3, 8, 6]))
    _edited(path, edit)
    how, ops, proto = _rewritten(path)
    assert sum(how.values()) == 1 and ops.count("Slice") == 1 and "SpaceToDepth" in ops
    x = _x()
    import onnxruntime as ort

    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    got = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    for r, g in zip(ref, got):
        np.testing.assert_array_equal(g, r)


# -- rpi4 bundles: lowered TFLite and verification against fp32 ------------------------------------------


@pytest.mark.parametrize("consumer", ["conv", "relu"])
def test_rpi4_fp32_bundle_has_space_to_depth_and_equals_fp32(tmp_path, consumer):
    res = build(modelzoo.focus_cnn(tmp_path / "m.onnx", consumer=consumer), tmp_path / "out")
    ops = tflite_ops(tmp_path / "out")
    assert "SPACE_TO_DEPTH" in ops and "STRIDED_SLICE" not in ops, ops
    assert ops.count("TRANSPOSE") == 0, ops  # the input is fed NHWC: SPACE_TO_DEPTH wants channels last
    rep = report(tmp_path / "out")["backend_report"]
    assert rep["rewrites"] == {"focus_space_to_depth": 1}
    assert rep["xnnpack"]["partitions"] == 1 and rep["xnnpack"]["undelegated"] == {}, rep["xnnpack"]
    ver = res.report["verification"]
    assert ver["status"] == "passed", ver
    assert all(o["cosine"] > 0.99999 and o["max_abs_error"] < 1e-3 for o in ver["outputs"].values()), ver


def test_rpi4_int8_bundle_has_space_to_depth_and_verifies(tmp_path):
    path = modelzoo.focus_cnn(tmp_path / "m.onnx")
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(0).uniform(0, 255, (32, 3, 16, 12)).astype(np.float32))
    res = build(path, tmp_path / "out", precision="int8", calibration=str(calib))
    ops = tflite_ops(tmp_path / "out")
    assert "SPACE_TO_DEPTH" in ops and "STRIDED_SLICE" not in ops, ops
    rep = report(tmp_path / "out")["backend_report"]
    assert rep["xnnpack"]["partitions"] == 1 and rep["xnnpack"]["undelegated"] == {}, rep["xnnpack"]
    ver = res.report["verification"]
    assert ver["status"] == "passed" and all(o["cosine"] > 0.99 for o in ver["outputs"].values()), ver
