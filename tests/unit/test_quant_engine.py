"""The quantization engine: observers, range methods, plans under schemes, QDQ models, search."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import modelzoo
from deploykit.ir import graph_inputs, load_model
from deploykit.ir.opset import upgrade_opset
from deploykit.passes import canonicalize
from deploykit.quant.calibration import SampleSet, random_samples
from deploykit.quant.collect import GraphIndex, collect_statistics
from deploykit.quant.engine import AUTO_METHODS, PREFERRED_METHOD, AccuracyBudget, choose_method, QuantConfig, evaluate, quantize_model, simulation_session
from deploykit.quant.equalize import equalize_model
from deploykit.quant.observers import TAIL, TensorObserver
from deploykit.quant.plan import build_plan, observed_tensors
from deploykit.quant.qdq import build_qdq_model
from deploykit.quant.ranges import METHODS, compute_range
from deploykit.quant.scheme import QuantScheme
from deploykit.errors import DeployError

pytestmark = pytest.mark.unit

SCHEME = QuantScheme()


def _prepared(path):
    return upgrade_opset(canonicalize(load_model(path)), 13)


def _ort(model: onnx.ModelProto, feed):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feed)


def test_observer_exact_minmax_tails_and_bounded_memory():
    obs = TensorObserver("t")
    rng = np.random.default_rng(0)
    data = [rng.standard_normal(100_000).astype(np.float32) for _ in range(20)]
    for d in data:
        obs.observe(d)
    all_ = np.concatenate(data)
    assert obs.lo == all_.min() and obs.hi == all_.max() and obs.count == all_.size
    assert obs.sample.size <= 1 << 15
    assert abs(obs.quantile(0.9999) - np.quantile(all_, 0.9999)) < 0.05
    assert abs(obs.quantile(0.5) - np.quantile(all_, 0.5)) < 0.05
    assert obs.nbytes() < 1 << 20


def test_percentile_of_a_large_heavy_tailed_tensor_is_exact_and_proportional():
    """The 99.99 % quantile of 4 M values lies 400 values from the top: read from the exact tail,
    not from the reservoir (where it is its 3rd-largest of 32768 values, and two proportional
    tensors got ranges 30 % apart: PP-OCR rec's h-swish outputs)."""
    rng = np.random.default_rng(3)
    chunks = [np.exp(rng.standard_normal(100_000) * 1.5).astype(np.float32) for _ in range(40)]
    a, b = TensorObserver("a"), TensorObserver("b", seed=9)
    for c in chunks:
        a.observe(c)
        b.observe(c * np.float32(0.25))
    exact = np.sort(np.concatenate(chunks))[-(int(np.floor((1.0 - 0.9999) * 4_000_000)) + 1)]
    assert a.quantile(0.9999) == exact
    assert compute_range("percentile", b)[1] == pytest.approx(0.25 * compute_range("percentile", a)[1], rel=1e-6)


def test_observer_channel_mean_and_nonfinite():
    obs = TensorObserver("t", channel_axis=1)
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    obs.observe(x)
    np.testing.assert_allclose(obs.channel_mean, x.transpose(1, 0, 2).reshape(3, -1).mean(axis=1))
    obs.observe(np.array([np.nan, 1.0], np.float32).reshape(1, 2, 1)[:, :1].repeat(3, axis=1))
    assert obs.nonfinite == 3


@pytest.mark.parametrize("method", METHODS)
def test_range_methods_include_zero_and_clip_outliers(method):
    obs = TensorObserver("t")
    rng = np.random.default_rng(1)
    x = np.abs(rng.standard_normal(200_000)).astype(np.float32)
    x[:5] = 100.0  # outliers
    obs.observe(x)
    lo, hi = compute_range(method, obs)
    assert lo == 0.0 and 0 < hi <= 100.0
    if method in ("percentile", "entropy"):
        assert hi < 50.0, f"{method} should clip rare outliers, got {hi}"
    if method == "mse":  # never worse than min/max in fake-quant MSE over all the data
        from deploykit.quant.params import params_from_range

        def err(h):
            p = params_from_range(0.0, h, "int8")
            return float(np.mean((p.dequantize(p.quantize(x)) - x) ** 2))

        assert err(hi) <= err(100.0) * 1.01


def test_accuracy_budget_parse():
    assert AccuracyBudget.parse(None) == AccuracyBudget("cosine", 0.99)
    assert AccuracyBudget.parse("cosine=0.999") == AccuracyBudget("cosine", 0.999)
    assert AccuracyBudget.parse("sqnr>=30").threshold == 30.0
    for bad in ("top5=1", "cosine=2", "sqnr"):
        with pytest.raises(DeployError):
            AccuracyBudget.parse(bad)


def test_qdq_model_matches_manual_fake_quant(tmp_path):
    """A single Conv: the QDQ model equals conv(fq(x), fq(w)) + b computed with numpy-quantized params,
    when run the way the engine simulates it (exact integer arithmetic on any CPU; ORT's fused int8
    kernels saturate 8-bit weights on x86 without VNNI)."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    samples = SampleSet({"x": rng.standard_normal((8, 2, 8, 8)).astype(np.float32)},
                        graph_inputs(load_model(_save(model, tmp_path / "m.onnx"))))
    index = GraphIndex(model)
    observers, feeds, refs = collect_statistics(model, samples)
    plan = build_plan(index, observers, SCHEME, "minmax", bias_correction=False)
    assert plan.weights["w"].axis == 0 and plan.weights["w"].per_channel
    assert np.all(plan.weights["w"].zero_point == 0)  # symmetric weights
    assert plan.biases["b"].dtype == "int32"
    np.testing.assert_allclose(plan.biases["b"].scale, plan.activations["x"].scale * plan.weights["w"].scale, rtol=1e-6)
    qdq = build_qdq_model(model, plan, index)
    ops = [n.op_type for n in qdq.graph.node]
    assert ops.count("QuantizeLinear") == 2 and ops.count("DequantizeLinear") == 4  # Q+DQ on x and y; DQ on w and b
    assert {t.name for t in qdq.graph.initializer}.isdisjoint({"w", "b"}), "float weights left behind"
    x = feeds[0]["x"]
    px, pw, py = plan.activations["x"], plan.weights["w"], plan.activations["y"]
    xq = px.dequantize(px.quantize(x))
    wq = pw.dequantize(pw.quantize(w))
    bq = plan.biases["b"].dequantize(plan.biases["b"].quantize(b))
    ref_model = helper.make_model(helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"])], "r",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])],
        [numpy_helper.from_array(wq, "w"), numpy_helper.from_array(bq, "b")]), opset_imports=[helper.make_opsetid("", 13)])
    expect = _ort(ref_model, {"x": xq})[0]
    expect = py.dequantize(py.quantize(expect))
    got = simulation_session(qdq).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, expect, atol=float(py.scale) * 1.01)


def _save(model, path):
    onnx.save(model, str(path))
    return path


def test_shared_scales_and_symmetric_activations(tmp_path):
    model = _prepared(modelzoo.small_cnn(tmp_path / "m.onnx"))
    proto = onnx.load_from_string(onnx.ModelProto.SerializeToString(__import__("onnx_ir").to_proto(model)))
    samples = random_samples(graph_inputs(model), 8)
    observers, _, _ = collect_statistics(proto, samples)
    scheme = QuantScheme(activation_symmetric=True, activation_dtype="int8")
    plan = build_plan(GraphIndex(proto), observers, scheme, "minmax")
    assert all(int(np.ravel(p.zero_point)[0]) == 0 for p in plan.activations.values())
    pool = next(n for n in proto.graph.node if n.op_type == "MaxPool")
    a, b = plan.activations[pool.input[0]], plan.activations[pool.output[0]]
    assert float(a.scale) == float(b.scale), "MaxPool must keep its input's scale"
    fixed = QuantScheme(fixed_output_params={"Softmax": (1 / 256, -128)})
    plan = build_plan(GraphIndex(proto), observers, fixed, "minmax")
    sm = next(n for n in proto.graph.node if n.op_type == "Softmax")
    assert float(plan.activations[sm.output[0]].scale) == pytest.approx(1 / 256)


def test_equalization_preserves_function(tmp_path, ppocr_cls):
    model = upgrade_opset(canonicalize(load_model(ppocr_cls, {"x": [1, 3, 48, 192]})), 13)
    proto = __import__("onnx_ir").to_proto(model)
    eq, pairs = equalize_model(proto)
    assert pairs, "PP-OCR cls has conv -> relu -> depthwise pairs"
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 48, 192)).astype(np.float32)
    np.testing.assert_allclose(_ort(eq, {"x": x})[0], _ort(proto, {"x": x})[0], rtol=1e-4, atol=1e-5)


def test_bias_correction_reduces_error(tmp_path):
    model = _prepared(modelzoo.small_cnn(tmp_path / "m.onnx"))
    samples = random_samples(graph_inputs(model), 16, seed=3)
    cfgs = [QuantConfig(method="minmax", bias_correction=bc, equalize="off") for bc in (False, True)]
    results = [quantize_model(model, samples, SCHEME, c) for c in cfgs]
    logits_sqnr = [min(m["sqnr_db"] for m in r.metrics.values()) for r in results]
    assert logits_sqnr[1] >= logits_sqnr[0] - 0.5


def _dead_channel_model(path) -> str:
    """Conv with BatchNorm(gamma = 0) folded in: channel 0 has all-zero weights and bias 0.8,
    channel 1 denormal weights and bias -1.5 (what such a fold leaves), channels 2-3 ordinary ones."""
    rng = np.random.default_rng(11)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.3
    w[0] = 0.0
    w[1] = 1e-39
    b = np.array([0.8, -1.5, 0.1, -0.2], np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])],
        "dead", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return str(path)


def test_dead_channels_keep_their_bias(tmp_path):
    """A channel whose weights are (near) zero outputs its bias: the int32 bias must hold it, so its
    weight scale is raised until bias / (input scale x weight scale) fits; other channels keep theirs."""
    model = _prepared(_dead_channel_model(tmp_path / "dead.onnx"))
    samples = random_samples(graph_inputs(model), 16, seed=4)
    r = quantize_model(model, samples, SCHEME, QuantConfig(method="minmax", bias_correction=False, equalize="off"))
    bias = r.plan.biases["b"]
    q = bias.quantize(np.array([0.8, -1.5, 0.1, -0.2], np.float32)).astype(np.int64)
    assert np.all(np.abs(q) < 2**31 - 1), q  # nothing clipped
    np.testing.assert_allclose(bias.dequantize(q)[:2], [0.8, -1.5], rtol=1e-3)
    w = numpy_helper.to_array(next(t for t in ir.to_proto(r.model).graph.initializer if t.name == "w"))
    wq = r.plan.weights["w"]
    amax = np.abs(w.reshape(4, -1)).max(axis=1)
    np.testing.assert_allclose(np.asarray(wq.scale)[2:], amax[2:] / 127, rtol=1e-6)  # ordinary channels untouched
    sess = simulation_session(r.qdq_model)
    x = samples.feeds().__next__()
    ref = ort.InferenceSession(_dead_channel_model(tmp_path / "ref.onnx"), providers=["CPUExecutionProvider"]).run(None, x)[0]
    got = sess.run(None, x)[0]
    np.testing.assert_allclose(got[0, 0], ref[0, 0], atol=0.01)  # the dead channel's constant output survives


def test_auto_picks_best_method_and_reports_layers(tmp_path):
    model = _prepared(modelzoo.small_cnn(tmp_path / "m.onnx"))
    samples = random_samples(graph_inputs(model), 16)
    r = quantize_model(model, samples, SCHEME, QuantConfig())
    tried = {t["method"]: t["score"] for t in r.report["methods_tried"]}
    assert set(tried) == set(AUTO_METHODS)
    best = max(r.report["methods_tried"], key=lambda t: (t["worst_half"], t["score"]))
    assert r.report["range_method"] in (best["method"], PREFERRED_METHOD)
    assert r.report["layers"] and {"node", "range_method", "scale", "sqnr_db", "fallback"} <= set(r.report["layers"][0])


def test_fallback_search_meets_tight_budget(tmp_path):
    model = _prepared(modelzoo.small_transformer(tmp_path / "m.onnx"))
    samples = random_samples(graph_inputs(model), 16)
    loose = quantize_model(model, samples, SCHEME, QuantConfig(method="minmax"))
    target = min(m["sqnr_db"] for m in loose.metrics.values()) + 6
    tight = quantize_model(model, samples, SCHEME, QuantConfig(method="minmax", budget=AccuracyBudget("sqnr", target),
                                                                max_fallback_fraction=1.0))
    assert tight.fallback, "a tighter budget must move layers to float"
    assert tight.budget_met == (min(m["sqnr_db"] for m in tight.metrics.values()) >= target)
    sens = [row for row in tight.report["layers"] if "input_sqnr_db" in row]
    assert sens
    # the search never returns something worse than plain int8
    assert AccuracyBudget("sqnr", target).score(tight.metrics) >= AccuracyBudget("sqnr", target).score(loose.metrics)
    # no mixed precision: budget missed, no fallback, still a result
    strict_scheme = QuantScheme(mixed_precision=False)
    r = quantize_model(model, samples, strict_scheme, QuantConfig(method="minmax", budget=AccuracyBudget("sqnr", 200)))
    assert not r.fallback and not r.budget_met


def test_constant_calibration_warns(tmp_path):
    model = _prepared(modelzoo.small_cnn(tmp_path / "m.onnx"))
    specs = graph_inputs(model)
    samples = SampleSet({specs[0].name: np.zeros((8, 3, 16, 16), np.float32)}, specs)
    logs = []
    quantize_model(model, samples, SCHEME, QuantConfig(method="minmax"), log=logs.append)
    assert any("all zero" in m and "image" in m for m in logs)


def test_qdq_simulation_close_to_fp32_on_real_model(ppocr_cls):
    model = upgrade_opset(canonicalize(load_model(ppocr_cls, {"x": [1, 3, 48, 192]})), 13)
    samples = SampleSet({"x": np.random.default_rng(0).uniform(-1, 1, (24, 3, 48, 192)).astype(np.float32)}, graph_inputs(model))
    r = quantize_model(model, samples, SCHEME, QuantConfig())
    assert r.budget_met
    feeds = [samples.feed(i) for i in range(4)]
    proto = __import__("onnx_ir").to_proto(r.model)
    refs = [dict(zip([o.name for o in proto.graph.output], _ort(proto, f))) for f in feeds]
    m = evaluate(r.qdq_model, feeds, refs)
    assert min(v["cosine"] for v in m.values()) > 0.99


def test_qdq_schemes_observe_only_the_tensors_they_quantize(tmp_path):
    model = _prepared(modelzoo.small_transformer(tmp_path / "m.onnx"))
    proto = ir.to_proto(model)
    index = GraphIndex(proto)
    assert observed_tensors(index, QuantScheme()) is None  # full-integer: every tensor
    conv_only = QuantScheme(quantize_ops=frozenset({"MatMul"}))
    wanted = observed_tensors(index, conv_only)
    matmul_inputs = {n.input[0] for n in proto.graph.node if n.op_type == "MatMul"}
    assert wanted and matmul_inputs & wanted and wanted < set(index.activations())
    # the plan built from those statistics has parameters for every input the QDQ model quantizes
    observers, _, _ = collect_statistics(proto, random_samples(graph_inputs(model), 4), wanted=wanted)
    assert set(observers) == wanted & set(index.activations())
    plan = build_plan(index, observers, conv_only, "minmax")
    qdq = build_qdq_model(proto, plan, index)
    assert any(n.op_type == "QuantizeLinear" for n in qdq.graph.node)
    ort.InferenceSession(qdq.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("kind", ["normal", "relu", "constant", "few_distinct"])
def test_observer_tails_are_exact(kind):
    rng = np.random.default_rng(7)
    x = rng.normal(size=200_000).astype(np.float32)
    if kind == "relu":
        x = np.maximum(x, 0)
    elif kind == "constant":
        x[:] = 1.5
    elif kind == "few_distinct":
        x = rng.integers(-3, 4, size=x.size).astype(np.float32)
    obs = TensorObserver("t")
    for chunk in np.array_split(x, 3):
        obs.observe(chunk)
    s = np.sort(x)
    np.testing.assert_array_equal(obs._top, s[-obs._top.size:])
    np.testing.assert_array_equal(obs._bottom, s[:obs._bottom.size])
    assert obs._top.size == obs._bottom.size == TAIL


@pytest.mark.parametrize("spatial", [1, 2, 3])
def test_equalization_of_1d_2d_3d_conv_pairs(spatial):
    rng = np.random.default_rng(spatial)
    k = [3] * spatial
    w1 = rng.normal(size=[8, 4, *k]).astype(np.float32) * rng.uniform(0.1, 5, size=[8] + [1] * (spatial + 1)).astype(np.float32)
    w2 = rng.normal(size=[6, 8, *k]).astype(np.float32)
    b1 = rng.normal(size=[8]).astype(np.float32)
    pads = [1] * (2 * spatial)
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=pads), helper.make_node("Relu", ["c1"], ["r"]),
         helper.make_node("Conv", ["r", "w2"], ["y"], pads=pads)],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, *([5] * spatial)])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6, *([5] * spatial)])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(b1, "b1")])
    proto = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    eq, pairs = equalize_model(proto)
    assert pairs
    x = rng.normal(size=[1, 4, *([5] * spatial)]).astype(np.float32)
    np.testing.assert_allclose(_ort(eq, {"x": x})[0], _ort(proto, {"x": x})[0], rtol=1e-4, atol=1e-4)
    new_w1 = numpy_helper.to_array(next(t for t in eq.graph.initializer if t.name == "w1"))
    spread = lambda w: np.abs(w.reshape(8, -1)).max(1)  # noqa: E731
    assert spread(new_w1).max() / spread(new_w1).min() < spread(w1).max() / spread(w1).min()


def _matmul_softmax(path, extra_float_op: bool = False):
    """x -> MatMul -> (Sigmoid) -> Softmax: a classifier whose graph output is a probability vector."""
    rng = np.random.default_rng(3)
    w = numpy_helper.from_array(rng.standard_normal((16, 10)).astype(np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["logits"], name="mm")]
    last = "logits"
    if extra_float_op:
        nodes.append(helper.make_node("Sigmoid", ["logits"], ["gate"], name="sig"))
        nodes.append(helper.make_node("Mul", ["logits", "gate"], ["swished"], name="mul"))
        last = "swished"
    nodes.append(helper.make_node("Softmax", [last], ["probs"], name="sm", axis=-1))
    g = helper.make_graph(nodes, "cls", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                          [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 10])], [w])
    m = onnx.shape_inference.infer_shapes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]))
    onnx.save(m, str(path))
    return path


def test_probability_outputs_are_scored_on_their_logits(tmp_path):
    model = _prepared(_matmul_softmax(tmp_path / "m.onnx"))
    samples = random_samples(graph_inputs(model), 16, seed=1)
    res = quantize_model(model, samples, QuantScheme(float_ops=frozenset({"Softmax"})))
    scored = res.report["scored_on_logits"]
    assert list(scored) == ["probs"] and scored["probs"]["tensor"] == "logits"
    assert set(res.metrics) == {"probs"}  # reported metrics stay on the real output
    # the logits score is not the probability score: softmax squashes the error
    assert scored["probs"]["sqnr_db"] != pytest.approx(res.metrics["probs"]["sqnr_db"])


@pytest.mark.parametrize("full_integer", [True, False])
def test_float_consumers_of_int8_ops_read_dequantized_values_on_full_integer_targets(tmp_path, full_integer):
    """TFLite stores every int8 op's output as int8; ONNX Runtime hands float consumers the float result."""
    model = _prepared(_matmul_softmax(tmp_path / "m.onnx", extra_float_op=True))
    proto = ir.to_proto(model)
    index = GraphIndex(proto)
    observers, _, _ = collect_statistics(proto, random_samples(graph_inputs(model), 8, seed=0))
    scheme = QuantScheme(float_ops=frozenset({"Sigmoid", "Softmax"}),
                         quantize_ops=None if full_integer else frozenset({"MatMul", "Mul"}))
    plan = build_plan(index, observers, scheme, "minmax")
    qdq = build_qdq_model(proto, plan, index)
    sig = next(n for n in qdq.graph.node if n.op_type == "Sigmoid")
    producer = {o: n for n in qdq.graph.node for o in n.output}[sig.input[0]]
    assert producer.op_type == ("DequantizeLinear" if full_integer else "MatMul")


def test_unreachable_budget_keeps_the_model_fully_int8(tmp_path):
    """Float layers that still miss the budget would cost speed for nothing the budget asks."""
    model = _prepared(_matmul_softmax(tmp_path / "m.onnx", extra_float_op=True))
    logs = []
    res = quantize_model(model, random_samples(graph_inputs(model), 16, seed=1), QuantScheme(),
                         QuantConfig(budget=AccuracyBudget("sqnr", 200.0)), log=logs.append)
    assert not res.budget_met and res.fallback == set()
    assert any("staying fully int8" in line for line in logs)


def _hswish_chain(path, form: str = "div", six: float = 6.0, clip_hi: float = 6.0):
    """Conv -> x * Clip(x + 3, 0, hi) / 6 (or * 1/6) at opset 13, as opset < 14 exports write h-swish."""
    w = numpy_helper.from_array(np.random.default_rng(2).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    c = {k: numpy_helper.from_array(np.float32(v), k) for k, v in
         {"three": 3.0, "zero": 0.0, "hi": clip_hi, "k": six if form == "div" else 1.0 / six}.items()}
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c", "three"], ["a"], name="add"),
        helper.make_node("Clip", ["a", "zero", "hi"], ["r"], name="clip"),
        helper.make_node("Mul", ["r", "c"], ["m"], name="mul"),
        helper.make_node("Div" if form == "div" else "Mul", ["m", "k"], ["y"], name="last"),
    ]
    g = helper.make_graph(nodes, "hs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], [w, *c.values()])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


@pytest.mark.parametrize("form, six, clip_hi, found", [
    ("div", 6.0, 6.0, True), ("mul", 6.0, 6.0, True), ("div", 5.0, 6.0, False), ("div", 6.0, 4.0, False)])
def test_spelled_out_hardswish_chains(tmp_path, form, six, clip_hi, found):
    from deploykit.quant.patterns import spelled_out_hardswish

    proto = onnx.load(str(_hswish_chain(tmp_path / "m.onnx", form, six, clip_hi)))
    chains = spelled_out_hardswish(GraphIndex(proto))
    assert [[n.name for n in c] for c in chains] == ([["add", "clip", "mul", "last"]] if found else [])


def test_hardswish_float_scheme_keeps_spelled_out_chains_float(tmp_path):
    """A target running HardSwish in float (TFLite) fuses the chain: the simulation keeps it float too."""
    model = _prepared(_hswish_chain(tmp_path / "m.onnx"))
    samples = random_samples(graph_inputs(model), 16, seed=1)
    names = {n.name for n in model.graph if n.op_type in ("Add", "Clip", "Mul", "Div")}
    res = quantize_model(model, samples, QuantScheme(float_ops=frozenset({"HardSwish"})))
    assert names and names <= res.fallback
    assert not names & quantize_model(model, samples, QuantScheme()).fallback


@pytest.mark.parametrize("scores, chosen", [
    ({"minmax": (0.91, 0.87), "percentile": (0.957, 0.907), "mse": (0.953, 0.916)}, "percentile"),  # a near-tie
    ({"minmax": (0.92, 0.90), "percentile": (0.93, 0.88), "mse": (0.97, 0.96)}, "mse"),  # error a third
    ({"minmax": (0.999, 0.998), "percentile": (0.98, 0.97)}, "minmax"),
    ({"minmax": (0.95, 0.94), "mse": (0.96, 0.95)}, "mse"),  # no percentile trial: the best
    ({"percentile": (0.96, 0.90), "mse": (0.955, 0.92)}, "percentile"),  # better on a half, worse overall
    ({"percentile": (0.96, 0.90), "mse": (0.965, 0.92)}, "mse"),  # better on the worse half and overall
])
def test_range_method_choice_keeps_percentile_unless_clearly_beaten(scores, chosen):
    """The first row is PP-OCR rec on rpi4 with the small-noisy-sans calibration set: mse ranked
    first on the 8 held-out samples, 0.916 vs 0.907 on the worse half -- a near-tie."""
    trials = [{"method": m, "score": s, "worst_half": w} for m, (s, w) in scores.items()]
    assert PREFERRED_METHOD == "percentile"
    assert choose_method(trials, AccuracyBudget()) == chosen


@pytest.mark.parametrize("metric, a, b, better", [
    ("cosine", 0.9825, 0.9583, True),   # PP-OCR rec: error halved
    ("cosine", 0.9991, 0.9993, False),  # PP-OCR cls: nothing gained
    ("cosine", 0.9905, 0.990, False),   # 5 % less error: below the 10 % bar
    ("sqnr", 20.6, 20.0, True), ("sqnr", 20.3, 20.0, False),
])
def test_float_ops_must_be_clearly_better_to_be_kept(metric, a, b, better):
    from deploykit.quant.engine import _clearly_better

    assert _clearly_better(AccuracyBudget(metric, 0.99 if metric == "cosine" else 20.0), a, b) is better


def test_non_finite_constants_are_refused_with_the_tensor_name(tmp_path):
    """An infinite constant would get an infinite scale and a NaN zero point, and every int8 output
    would be NaN (issue 19, magika's Max(-inf, x)): the plan refuses it with a clear message."""
    w = numpy_helper.from_array(np.ones((2, 2, 1, 1), np.float32), "w")
    c = numpy_helper.from_array(np.array([-np.inf, 0.0], np.float32).reshape(1, 2, 1, 1), "minus_inf")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "minus_inf"], ["a"]), helper.make_node("Conv", ["a", "w"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])], [w, c])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model = _prepared(_save(proto, tmp_path / "inf.onnx"))
    samples = SampleSet({"x": np.random.default_rng(0).uniform(0.5, 1, (6, 2, 4, 4)).astype(np.float32)},
                        graph_inputs(model))
    with pytest.raises(DeployError, match="'minus_inf'"):
        quantize_model(model, samples, QuantScheme(), QuantConfig(method="minmax"))


def test_tensor_sqnr_of_an_overflowing_quantization_is_minus_inf():
    """A mask of float32 min (MiniLM) gets a scale of ~1e36: dequantized values can overflow to inf
    and the SQNR raised 'math domain error' (an internal error on jetson-orin-nano, issue 19)."""
    import math

    from deploykit.quant.engine import tensor_sqnr

    class Overflowing:  # what params of scale ~1e36 do at the float32 edge
        def quantize(self, x):
            return np.full(x.shape, -128, np.int8)

        def dequantize(self, q):
            return np.full(q.shape, -np.inf, np.float32)

    obs = TensorObserver("mask")
    obs.observe(np.array([np.finfo(np.float32).min, 0.0, 1.0], np.float32))
    with np.errstate(all="ignore"):
        assert tensor_sqnr(obs, Overflowing()) == -math.inf


def _masked_attention_scores(path):
    """MatMul -> Add(causal mask with -inf above the diagonal) -> Softmax: the usual attention mask."""
    rng = np.random.default_rng(3)
    w = numpy_helper.from_array(rng.standard_normal((8, 6)).astype(np.float32), "w")
    mask = np.triu(np.full((6, 6), -np.inf, np.float32), k=1)
    m = numpy_helper.from_array(mask, "mask")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["scores"], name="mm"),
             helper.make_node("Add", ["scores", "mask"], ["masked"], name="mask_add"),
             helper.make_node("Softmax", ["masked"], ["probs"], name="sm", axis=-1)]
    g = helper.make_graph(nodes, "att", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6, 8])],
                          [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 6, 6])], [w, m])
    onnx.save(onnx.shape_inference.infer_shapes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])),
              str(path))
    return path


def test_nonfinite_mask_constant_stays_float_where_the_target_allows_it(tmp_path):
    """A causal mask's -inf has no int8 scale: mixed-precision targets keep that node in float (the
    arch corpus's causal decoder was refused on rpi4 int8); full-integer targets refuse in one line."""
    from deploykit.errors import CalibrationError

    model = _prepared(_masked_attention_scores(tmp_path / "m.onnx"))
    samples = random_samples(graph_inputs(model), 16, seed=1)
    r = quantize_model(model, samples, SCHEME, QuantConfig(method="minmax"))
    assert "mask_add" in r.fallback
    assert np.isfinite(r.metrics["probs"]["cosine"]) and r.metrics["probs"]["cosine"] > 0.99
    with pytest.raises(CalibrationError, match=r"constant of tensor 'mask' is not finite"):
        quantize_model(model, samples, QuantScheme(mixed_precision=False), QuantConfig(method="minmax"))


def test_attention_bias_of_float32_min_stays_float_where_the_target_allows_it(tmp_path):
    """``scores + (1 - mask) * float32.min`` (MiniLM): the bias gets no int8 scale (it would be ~1e36,
    the QDQ model's FakeQuantize ranges reached 3.4e38); the nodes reading it run in float."""
    from onnx import numpy_helper as nh

    rng = np.random.default_rng(4)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["scores"], name="mm"),
             helper.make_node("Sub", ["one", "mask"], ["inv"], name="inv"),
             helper.make_node("Mul", ["inv", "fmin"], ["bias"], name="bias"),
             helper.make_node("Add", ["scores", "bias"], ["masked"], name="mask_add"),
             helper.make_node("Softmax", ["masked"], ["probs"], name="sm", axis=-1)]
    g = helper.make_graph(nodes, "att", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6, 8]),
                                         helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, 6])],
                          [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 6, 6])],
                          [nh.from_array(rng.standard_normal((8, 6)).astype(np.float32), "w"),
                           nh.from_array(np.float32(1.0), "one"), nh.from_array(np.finfo(np.float32).min, "fmin")])
    path = tmp_path / "m.onnx"
    onnx.save(onnx.shape_inference.infer_shapes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])), str(path))
    model = _prepared(path)
    x = rng.standard_normal((16, 6, 8)).astype(np.float32)
    mask = (rng.random((16, 1, 6)) > 0.3).astype(np.float32)
    r = quantize_model(model, SampleSet({"x": x, "mask": mask}, graph_inputs(model)), SCHEME, QuantConfig(method="minmax"))
    assert {"bias", "mask_add"} <= r.fallback
    inits = {t.name: numpy_helper.to_array(t) for t in r.qdq_model.graph.initializer}
    scales = [inits[n.input[1]] for n in r.qdq_model.graph.node if n.op_type == "QuantizeLinear"]
    assert scales and max(float(np.max(np.abs(s))) for s in scales) < 1e30  # no FakeQuantize over 3.4e38
    assert r.metrics["probs"]["cosine"] > 0.99


def _scalings(path):
    """Conv -> /6 -> *0.7 -> *-2 -> Conv, and /4 -> Concat with the Conv's output."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(size=(4, 4, 1, 1)).astype(np.float32), "w2")
    consts = [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in
              (("six", 6.0), ("a", 0.7), ("neg", -2.0), ("four", 4.0))]
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Div", ["c1", "six"], ["d"]),
        helper.make_node("Mul", ["a", "d"], ["s"]),  # constant first
        helper.make_node("Mul", ["s", "neg"], ["n"]),
        helper.make_node("Conv", ["n", "w2"], ["c2"]),
        helper.make_node("Div", ["c2", "four"], ["q"]),
        helper.make_node("Concat", ["q", "c1"], ["y"], axis=1),
    ]
    graph = helper.make_graph(nodes, "scalings", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 8])], [w1, w2, *consts])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def test_scaling_by_a_positive_constant_derives_the_output_grid(tmp_path):
    model = _prepared(_scalings(tmp_path / "m.onnx"))
    proto = ir.to_proto(model)
    samples = random_samples(graph_inputs(model), 16)
    observers, feeds, _ = collect_statistics(proto, samples)
    plan = build_plan(GraphIndex(proto), observers, SCHEME, "percentile")
    by_out = {n.output[0]: n for n in proto.graph.node}
    t = lambda op, first: next(o for o, n in by_out.items() if n.op_type == op and n.input[0] == first)  # noqa: E731
    c1 = t("Conv", "x")
    d = t("Div", c1)
    s = next(o for o, n in by_out.items() if n.op_type == "Mul" and d in n.input)
    neg = t("Mul", s)
    q = next(o for o, n in by_out.items() if n.op_type == "Div" and n.input[0] != c1)
    p = plan.activations
    assert float(p[d].scale) == pytest.approx(float(p[c1].scale) / 6, rel=1e-6)
    assert int(p[d].zero_point) == int(p[c1].zero_point)
    assert float(p[s].scale) == pytest.approx(float(p[d].scale) * 0.7, rel=1e-6)  # constant as first input
    assert p[s].extra["derived_from"] == d
    assert "derived_from" not in p[neg].extra  # a negative factor would flip the grid: own range
    assert "derived_from" not in p[q].extra  # joined to the Concat's group: shares its scale
    # the simulated requantization of a derived tensor is exact: DQ(Q(d)) == DQ(Q(c1)) / 6
    qdq = build_qdq_model(proto, plan, GraphIndex(proto))
    for n in [*qdq.graph.node]:
        if n.op_type == "DequantizeLinear" and n.input[0].startswith((c1, d)):
            qdq.graph.output.add().name = n.output[0]
    sess = ort.InferenceSession(qdq.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    vals = dict(zip(names, sess.run(None, feeds[0])))
    dq_c1 = next(v for k, v in vals.items() if k.startswith(c1 + "_dequantized"))
    dq_d = next(v for k, v in vals.items() if k.startswith(d + "_dequantized"))
    np.testing.assert_allclose(dq_d, dq_c1 / 6, rtol=1e-5, atol=1e-7)
