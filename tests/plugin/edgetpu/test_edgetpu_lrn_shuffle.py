"""The ``lrn`` and ``channel_shuffle`` rewrite rules: fp32 ONNX numerics against onnxruntime (1e-5),
the operators they lower to, the predicted TPU placement, and full-int8 builds of small models with
random weights (the light_* models are built through the CLI in test_edgetpu_models_cli.py)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from edgetpu_testlib import assert_all_integer, backend, lrn_cnn, model, registry, shuffle_cnn

pytestmark = pytest.mark.plugin
pytest.importorskip("ai_edge_litert")

from deploykit_edgetpu import rewrites  # noqa: E402


def _run(path_or_model, x):
    import onnxruntime as ort

    data = path_or_model.SerializeToString() if isinstance(path_or_model, onnx.ModelProto) else str(path_or_model)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _prepared(path, runtime: int | None = None):
    from deploykit.backend import BuildOptions
    from deploykit.ir import load_model
    from deploykit.passes import canonicalize

    be = backend()
    if runtime is not None:
        be.profile.options["min_runtime_version"] = runtime
    return be, be.prepare(canonicalize(load_model(path, {})), BuildOptions(precision="int8"))


def _proto(m):
    import onnx_ir as ir

    return ir.to_proto(m)


def lrn_reference(x: np.ndarray, size: int, alpha: float, beta: float, bias: float) -> np.ndarray:
    """ONNX LRN as specified (window c - floor((size-1)/2) .. c + ceil((size-1)/2)), in float64."""
    x64 = x.astype(np.float64)
    c = x.shape[1]
    lo, hi = (size - 1) // 2, -(-(size - 1) // 2)
    sq = np.zeros_like(x64)
    for i in range(c):
        sq[:, i] = (x64[:, max(0, i - lo):min(c, i + hi + 1)] ** 2).sum(axis=1)
    return x64 / (bias + alpha / size * sq) ** beta


# -- lrn -------------------------------------------------------------------------------------------------


def test_rsqrt_terms():
    assert rewrites.rsqrt_terms(0.75) == [0, 1]  # rsqrt(y) * rsqrt(y * rsqrt(y))
    assert rewrites.rsqrt_terms(0.5) == [0]
    assert rewrites.rsqrt_terms(1.0) == [0, 0]
    assert rewrites.rsqrt_terms(0.8125) == [0, 1, 3]  # 1/2 + 1/4 + 1/16
    assert rewrites.rsqrt_terms(1.25) == [0, 0, 1]
    for beta in (0.6, 0.0, -0.5, 2.5, 1 / 3):
        assert rewrites.rsqrt_terms(beta) is None


def test_lrn_band_matches_the_onnx_window():
    band = rewrites.lrn_band(6, 4, 1.0)[:, :, 0, 0]  # size 4: c-1 .. c+2
    assert band.shape == (6, 6)
    assert band[0].tolist() == [1, 1, 1, 0, 0, 0] and band[3].tolist() == [0, 0, 1, 1, 1, 1]
    assert band[5].tolist() == [0, 0, 0, 0, 1, 1]
    assert np.allclose(rewrites.lrn_band(5, 5, 0.5)[2, :, 0, 0], [0.5] * 5)


@pytest.mark.parametrize("size,alpha,beta,bias", [(5, 1e-4, 0.75, 1.0), (5, 5e-4, 0.75, 2.0), (3, 0.2, 0.75, 1.0),
                                                 (5, 0.1, 0.5, 1.0), (1, 0.3, 1.0, 0.5), (7, 0.05, 0.8125, 1.5),
                                                 (5, 0.1, 0.6, 1.0), (9, 1.0, 0.75, 1.0)])
def test_lrn_matches_onnxruntime(tmp_path, size, alpha, beta, bias):
    shape = [1, 11, 6, 5]
    path = model(tmp_path / "m.onnx", [helper.make_node("LRN", ["x"], ["y"], size=size, alpha=alpha, beta=beta,
                                                        bias=bias, name="lrn")], {"x": shape}, {"y": shape})
    x = (np.random.default_rng(size).normal(size=shape) * 4).astype(np.float32)
    before = _run(path, x)
    np.testing.assert_allclose(before, lrn_reference(x, size, alpha, beta, bias), rtol=1e-5, atol=1e-6)
    be, m = _prepared(path)
    assert be.rewrites == {"lrn": 1}
    ops = [n.op_type for n in m.graph]
    assert "LRN" not in ops and {"Mul", "Conv", "Pow"} <= set(ops)
    if rewrites.rsqrt_terms(beta) is not None:  # only y ** -0.5 powers
        exps = [float(np.ravel(rewrites.const_array(n.inputs[1]))[0]) for n in m.graph if n.op_type == "Pow"]
        assert exps and set(exps) == {-0.5}
    np.testing.assert_allclose(_run(_proto(m), x), before, rtol=1e-5, atol=1e-5)


def test_lrn_even_size_follows_the_spec(tmp_path):
    # onnxruntime refuses even sizes; the spec's asymmetric window (c-1 .. c+2 for size 4) is the reference
    shape = [1, 9, 4, 4]
    path = model(tmp_path / "m.onnx", [helper.make_node("LRN", ["x"], ["y"], size=4, alpha=0.3, beta=0.75,
                                                        bias=1.0, name="lrn")], {"x": shape}, {"y": shape})
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    be, m = _prepared(path)
    assert be.rewrites == {"lrn": 1}
    np.testing.assert_allclose(_run(_proto(m), x), lrn_reference(x, 4, 0.3, 0.75, 1.0), rtol=1e-5, atol=1e-6)


def test_lrn_lowers_to_tpu_ops(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("LRN", ["r"], ["y"], size=5, alpha=1e-4, beta=0.75, bias=1.0, name="norm1")]
    w = np.random.default_rng(0).normal(size=(8, 4, 3, 3)).astype(np.float32)
    path = model(tmp_path / "m.onnx", nodes, {"x": [1, 4, 8, 8]}, {"y": [1, 8, 8, 8]}, {"w": w})
    be, m = _prepared(path)
    graph, pred = be.predict(m)
    codes = [op.code for op in graph.ops]
    assert codes.count("RSQRT") == 2 and "LOCAL_RESPONSE_NORMALIZATION" not in codes and "POW" not in codes
    assert pred.split is None and all(p.device == "tpu" for p in pred.ops), [(p.code, p.reason) for p in pred.ops]
    support = {s.node: s for s in be.analyze(m)}
    lrn_nodes = [n for n in support if n.startswith("norm1/")]  # the rule names its nodes after the LRN
    assert len(lrn_nodes) == 7 and all(support[n].device == "tpu" for n in lrn_nodes)
    assert support["norm1/window_sum"].op_type == "Conv"


def test_lrn_rsqrt_is_cpu_before_runtime_14(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("LRN", ["c"], ["y"], size=3, name="lrn")]
    path = model(tmp_path / "m.onnx", nodes, {"x": [1, 4, 8, 8]}, {"y": [1, 4, 8, 8]},
                 {"w": np.ones((4, 4, 1, 1), np.float32)})
    be, m = _prepared(path, runtime=13)
    _, pred = be.predict(m)
    assert pred.split is not None and pred.split.code == "RSQRT" and "runtime >= 14" in pred.split.reason


def test_lrn_general_beta_keeps_pow_with_a_reason(tmp_path):
    path = model(tmp_path / "m.onnx", [helper.make_node("LRN", ["x"], ["y"], size=5, beta=0.6, name="lrn")],
                 {"x": [1, 4, 8, 8]}, {"y": [1, 4, 8, 8]})
    be, m = _prepared(path)
    support = {s.node: s for s in be.analyze(m)}
    pow_node = support["lrn/pow"]
    assert pow_node.status.value == "unsupported" and pow_node.device == "cpu"
    assert "no int8 TFLite kernel" in pow_node.reason and "multiple of 1/16" in pow_node.reason
    assert support["lrn/square"].device == "tpu" and support["lrn/window_sum"].device == "tpu"


def test_lrn_then_padded_maxpool_stays_on_the_tpu(tmp_path):
    """LRN of a ReLU output is >= 0, so the padded MaxPool after it still gets zero padding (PAD, a TPU op)."""
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("LRN", ["r"], ["n"], size=5, alpha=0.1, beta=0.75, bias=1.0, name="lrn"),
             helper.make_node("MaxPool", ["n"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                              name="pool")]
    path = model(tmp_path / "m.onnx", nodes, {"x": [1, 8, 8, 8]}, {"y": [1, 8, 4, 4]})
    be, m = _prepared(path)
    assert be.rewrites == {"lrn": 1, "maxpool_pad_after_relu": 1}
    graph, pred = be.predict(m)
    assert "PADV2" not in [op.code for op in graph.ops] and pred.split is None


def _build(tmp_path, src, shape, n=24):
    from deploykit.pipeline import BuildRequest, build

    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(0).normal(size=(n, *shape)).astype(np.float32))
    return build(BuildRequest(model=src, target="coral-usb", output=tmp_path / "b", calibration=str(calib)),
                 registry=registry())


def test_lrn_model_builds_full_int8_on_the_tpu(tmp_path):
    res = _build(tmp_path, lrn_cnn(tmp_path / "lrn_cnn.onnx"), (3, 32, 32))
    ops = assert_all_integer(tmp_path / "b" / "model.tflite")
    assert ops.count("RSQRT") == 4 and "LOCAL_RESPONSE_NORMALIZATION" not in ops
    rep = res.report["backend_report"]
    assert rep["rewrites"]["lrn"] == 2
    assert rep["edgetpu"]["tpu_mac_share"] == 1.0 and rep["edgetpu"]["first_cpu_op"] is None
    ver = res.report["verification"]
    assert ver["status"] == "passed", ver
    assert all(o["cosine"] > 0.999 for o in ver["outputs"].values()), ver


# -- channel_shuffle ---------------------------------------------------------------------------------------


def _shuffle_model(tmp_path, g=4, cpg=6, hw=(5, 7), perm=(0, 2, 1, 3, 4), conv_first=True):
    c = g * cpg
    h, w = hw
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], name="conv")] if conv_first else []
    src = "a" if conv_first else "x"
    nodes += [helper.make_node("Reshape", [src, "s1"], ["r"], name="shuffle_r1"),
              helper.make_node("Transpose", ["r"], ["t"], perm=list(perm), name="shuffle_t"),
              helper.make_node("Reshape", ["t", "s2"], ["y"], name="shuffle_r2")]
    inits = {"s1": np.array([1, g, cpg, h, w], np.int64), "s2": np.array([1, -1, h, w], np.int64)}
    if conv_first:
        inits["w"] = np.random.default_rng(0).normal(size=(c, c, 1, 1)).astype(np.float32)
    return model(tmp_path / "m.onnx", nodes, {"x": [1, c, h, w]}, {"y": [1, c, h, w]}, inits)


def test_shuffle_groups():
    assert rewrites.shuffle_groups(np.arange(12).reshape(3, 4).T.ravel()) == 3
    assert rewrites.shuffle_groups(np.arange(12)) is None  # identity
    assert rewrites.shuffle_groups(np.arange(12)[::-1]) is None


@pytest.mark.parametrize("g,cpg", [(4, 6), (2, 5), (3, 8)])
def test_channel_shuffle_is_exact_with_rank_4(tmp_path, g, cpg):
    path = _shuffle_model(tmp_path, g, cpg)
    x = np.random.default_rng(1).normal(size=(1, g * cpg, 5, 7)).astype(np.float32)
    before = _run(path, x)
    be, m = _prepared(path)
    assert be.rewrites == {"channel_shuffle": 1}
    assert all(len(v.shape) <= 4 for n in m.graph for v in n.outputs), [(n.op_type, v.shape) for n in m.graph
                                                                         for v in n.outputs]
    np.testing.assert_array_equal(_run(_proto(m), x), before)
    graph, pred = be.predict(m)
    assert [op.code for op in graph.ops] == ["CONV_2D", "RESHAPE", "TRANSPOSE", "RESHAPE"]
    assert all(len(t.shape) <= 4 for op in graph.ops for t in op.outputs)
    assert pred.split is None, pred.split


def test_channel_shuffle_without_transpose_before_runtime_14(tmp_path):
    path = _shuffle_model(tmp_path, 3, 4)
    x = np.random.default_rng(2).normal(size=(1, 12, 5, 7)).astype(np.float32)
    before = _run(path, x)
    be, m = _prepared(path, runtime=13)
    assert be.rewrites == {"channel_shuffle": 1}
    np.testing.assert_array_equal(_run(_proto(m), x), before)
    graph, pred = be.predict(m)
    codes = [op.code for op in graph.ops]
    assert "TRANSPOSE" not in codes and {"SPLIT", "CONCATENATION"} <= set(codes)
    assert pred.split is None, pred.split


def test_other_reshape_transpose_reshape_is_left_alone(tmp_path):
    # moves spatial positions (transposes channel-group and height): not a pure channel permutation
    path = _shuffle_model(tmp_path, 4, 6, hw=(4, 4), perm=(0, 3, 2, 1, 4))
    be, m = _prepared(path)
    assert "channel_shuffle" not in be.rewrites
    assert [n.op_type for n in m.graph].count("Transpose") == 1


def test_shuffle_model_builds_full_int8_on_the_tpu(tmp_path):
    res = _build(tmp_path, shuffle_cnn(tmp_path / "shuffle_cnn.onnx"), (3, 16, 16))
    ops = assert_all_integer(tmp_path / "b" / "model.tflite")
    assert "TRANSPOSE" in ops
    rep = res.report["backend_report"]
    assert rep["rewrites"]["channel_shuffle"] == 1
    assert rep["edgetpu"]["tpu_mac_share"] == 1.0 and rep["edgetpu"]["first_cpu_op"] is None
    ver = res.report["verification"]
    assert ver["status"] == "passed" and all(o["cosine"] > 0.999 for o in ver["outputs"].values()), ver
