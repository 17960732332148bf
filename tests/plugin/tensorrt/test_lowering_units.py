"""Units of the tensorrt plugin without the CLI: Q/DQ placement, opset lowering, op table,
trtexec flags per TensorRT version, calibration cache format, precision refusal."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from deploykit.errors import DeployError
from deploykit.quant.params import QuantParams
from trt_testlib import parse_calibration_cache

pytestmark = pytest.mark.plugin
ort = pytest.importorskip("onnxruntime")

from deploykit_tensorrt import calib_cache, opset, optable, qdq, trtexec  # noqa: E402


def _qp(scale, dtype="int8"):
    return QuantParams(np.asarray(scale, np.float32), np.asarray(0), dtype)


def _qdq_pair(x, scale, out):
    s, z = out + "_s", out + "_z"
    return ([helper.make_node("QuantizeLinear", [x, s, z], [out + "_q"]),
             helper.make_node("DequantizeLinear", [out + "_q", s, z], [out])],
            [numpy_helper.from_array(np.float32(scale), s), numpy_helper.from_array(np.int8(0), z)])


def residual_qdq_model():
    """x -> QDQ -> Conv(a) -> QDQ -> Add(skip=x QDQ) -> QDQ -> Relu -> y  (engine style: QDQ everywhere)."""
    r = np.random.default_rng(0)
    nodes, inits = [], []
    n, i = _qdq_pair("x", 0.02, "x_dq")
    nodes += n
    inits += i
    w = r.integers(-127, 128, (4, 4, 1, 1)).astype(np.int8)
    inits += [numpy_helper.from_array(w, "w_q"), numpy_helper.from_array(np.full(4, 0.01, np.float32), "w_s"),
              numpy_helper.from_array(np.zeros(4, np.int8), "w_z"),
              numpy_helper.from_array(np.arange(4, dtype=np.int32), "b_q"),
              numpy_helper.from_array(np.full(4, 0.0002, np.float32), "b_s"),
              numpy_helper.from_array(np.zeros(4, np.int32), "b_z")]
    nodes += [helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w_dq"], axis=0),
              helper.make_node("DequantizeLinear", ["b_q", "b_s", "b_z"], ["b_dq"], axis=0),
              helper.make_node("Conv", ["x_dq", "w_dq", "b_dq"], ["c"], name="conv")]
    n, i = _qdq_pair("c", 0.05, "c_dq")
    nodes += n
    inits += i
    nodes += [helper.make_node("Add", ["c_dq", "x_dq"], ["a"], name="residual")]
    n, i = _qdq_pair("a", 0.05, "a_dq")
    nodes += n
    inits += i
    nodes += [helper.make_node("Relu", ["a_dq"], ["y_float"], name="relu")]
    n, i = _qdq_pair("y_float", 0.05, "y")
    nodes += n
    inits += i
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 3, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 3, 3])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def test_placement_follows_tensorrt_rules():
    model = residual_qdq_model()
    placed, rep = qdq.place_for_tensorrt(model, {"x": _qp(0.02), "c": _qp(0.05), "a": _qp(0.05), "y": _qp(0.05)})
    onnx.checker.check_model(placed)
    prod = {o: n for n in placed.graph.node for o in n.output}
    by_name = {n.name: n for n in placed.graph.node}
    conv, add, relu = by_name["conv"], by_name["residual"], by_name["relu"]
    assert prod[conv.input[0]].op_type == "DequantizeLinear"  # activation Q/DQ on the conv input
    assert prod[conv.input[1]].op_type == "DequantizeLinear"  # per-channel weight DQ
    assert conv.input[2] not in prod  # bias back to float
    bias = {t.name: numpy_helper.to_array(t) for t in placed.graph.initializer}[conv.input[2]]
    assert bias.dtype == np.float32 and np.allclose(bias, np.arange(4) * 0.0002)
    assert add.input[0] == "c"  # conv branch: no Q/DQ (Conv+Add fusion)
    assert prod[add.input[1]].op_type == "DequantizeLinear"  # skip branch quantized
    assert relu.input[0] == "a"  # no Q/DQ between Add and Relu
    assert "y" in prod and prod["y"].op_type == "Relu"  # no Q/DQ on the graph output
    assert rep.residual_adds == ["residual"]
    # the placed model still runs and stays close to the float computation
    x = np.random.default_rng(1).standard_normal((1, 4, 3, 3)).astype(np.float32)
    y = ort.InferenceSession(placed.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert y.shape == (1, 4, 3, 3) and (y >= 0).all()


def test_placement_normalizes_zero_points_and_float_weight_form():
    model = residual_qdq_model()
    for n in model.graph.node:  # drop the optional zero point input (valid ONNX, rejected by TRT 8.2)
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and n.input[0] in ("x", "x_dq_q"):
            del n.input[2]
    placed, _ = qdq.place_for_tensorrt(model, {}, weight_format="float")
    inits = {t.name: t for t in placed.graph.initializer}
    for n in placed.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            assert len(n.input) == 3 and inits[n.input[2]].data_type == TensorProto.INT8
            assert n.input[0] not in inits or inits[n.input[0]].data_type == TensorProto.FLOAT
    assert any(n.op_type == "QuantizeLinear" and n.input[0].startswith("w") for n in placed.graph.node)
    onnx.checker.check_model(placed)


def _run(model, feeds):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]


@pytest.mark.parametrize("op,attrs,extra", [
    ("HardSwish", {}, []),
    ("Gelu", {}, []),
    ("Gelu", {"approximate": "tanh"}, []),
    ("LayerNormalization", {"axis": -1, "epsilon": 1e-5}, ["scale", "bias"]),
    ("LayerNormalization", {"axis": 1}, ["scale"]),
])
def test_decompositions_match_the_op(op, attrs, extra):
    r = np.random.default_rng(0)
    inits = []
    axis = attrs.get("axis", -1)
    norm_shape = [2, 3, 5][axis:] if axis != -1 else [5]
    for name in extra:
        inits.append(numpy_helper.from_array(r.standard_normal(norm_shape).astype(np.float32), name))
    version = 20 if op == "Gelu" else 17
    g = helper.make_graph([helper.make_node(op, ["x", *extra], ["y"], name="n", **attrs)], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 5])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 3, 5])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", version)])
    model.ir_version = 10
    lowered, problems = opset.lower_opset(model, 13)
    assert problems == {} and opset.opset_of(lowered) == 13
    assert op not in {n.op_type for n in lowered.graph.node}
    opset.set_ir_version(lowered)
    assert lowered.ir_version == 7
    onnx.checker.check_model(lowered)
    x = r.standard_normal((1, 2, 3, 5)).astype(np.float32)
    np.testing.assert_allclose(_run(lowered, {"x": x}), _run(model, {"x": x}), rtol=1e-4, atol=1e-4)


def test_lowering_relabels_compatible_ops_and_reports_the_rest():
    g = helper.make_graph(
        [helper.make_node("Add", ["x", "x"], ["a"], name="add"),  # Add-14: types only
         helper.make_node("Reshape", ["a", "shape"], ["r"], name="reshape"),  # Reshape-14 without allowzero
         helper.make_node("ReduceMean", ["r", "axes"], ["m"], name="mean", keepdims=1),  # ReduceMean-18: axes input
         helper.make_node("GridSample", ["x", "grid"], ["gs"], name="gridsample")],  # GridSample-16: none at 13
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2]),
              helper.make_tensor_value_info("grid", TensorProto.FLOAT, [1, 2, 2, 2])],
        [helper.make_tensor_value_info("m", TensorProto.FLOAT, None), helper.make_tensor_value_info("gs", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.asarray([1, 4], np.int64), "shape"), numpy_helper.from_array(np.asarray([1], np.int64), "axes")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    lowered, problems = opset.lower_opset(model, 13)
    assert list(problems) == ["gridsample"] and "opset 13" in problems["gridsample"]
    without = onnx.ModelProto()
    without.CopyFrom(model)
    without.graph.node.pop()
    del without.graph.output[1]
    del without.graph.input[1]
    lowered, problems = opset.lower_opset(without, 13)
    assert problems == {} and opset.opset_of(lowered) == 13
    mean = [n for n in lowered.graph.node if n.op_type == "ReduceMean"][0]
    axes = [helper.get_attribute_value(a) for a in mean.attribute if a.name == "axes"]
    assert list(mean.input) == ["r"] and axes == [[1]]
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)
    np.testing.assert_allclose(_run(lowered, {"x": x}), _run(without, {"x": x}))


def test_op_table_per_tensorrt_version():
    t82, t103 = optable.op_table("8.2.1"), optable.op_table("10.3")
    import onnx_ir as ir

    node = ir.Node("", "NonZero", [])
    assert "8.2" in t82["NonZero"].check(node) and t103["NonZero"].check is None
    assert "LayerNormalization" in t103 and t82["LayerNormalization"].check(ir.Node("", "LayerNormalization", []))
    assert "QDQ" in t103["QLinearConv"].check(ir.Node("", "QLinearConv", []))
    assert "HardSwish" not in t82  # decomposed by prepare() before analysis
    # the 8.2 parser's source registers Reciprocal (its docs table says "N": magika's Rsqrt spelling was refused)
    assert t82["Reciprocal"].check is None or t82["Reciprocal"].check(ir.Node("", "Reciprocal", [])) is None
    t84 = optable.op_table("8.4.1")
    assert t82["Xor"].check(ir.Node("", "Xor", [])) and (t84["Xor"].check is None or not t84["Xor"].check(ir.Node("", "Xor", [])))


@pytest.mark.parametrize("version,workspace,build_only", [
    ("8.2.1", "--workspace=256", "--buildOnly"),
    ("8.5.2", "--memPoolSize=workspace:256", "--buildOnly"),
    ("8.6.2", "--memPoolSize=workspace:256", "--skipInference"),
    ("10.3", "--memPoolSize=workspace:256M", "--skipInference"),
])
def test_trtexec_flags_per_version(version, workspace, build_only):
    s = trtexec.EngineSettings(version, "int8", 256, 0, "/usr/src/tensorrt/bin/trtexec", True)
    args = trtexec.trtexec_args(s, "model.onnx", "e.engine", "timing.cache")
    assert workspace in args and build_only in args and "--timingCacheFile=timing.cache" in args
    assert args[:2] == ["--onnx=model.onnx", "--saveEngine=e.engine"] and {"--int8", "--fp16"} <= set(args)
    assert not any("DLA" in a for a in args)
    dla = trtexec.EngineSettings(version, "fp16", 256, 2, "trtexec", True)
    assert {"--useDLACore=0", "--allowGPUFallback"} <= set(trtexec.trtexec_args(dla, "m", "e", "t"))
    assert not any("DLA" in a for a in trtexec.trtexec_args(trtexec.EngineSettings(version, "fp32", 256, 2, "t", True), "m", "e", "t"))
    implicit = trtexec.trtexec_args(s, "model_fp32.onnx", "e", "t", implicit=True)
    assert "--calib=calibration.cache" in implicit


def test_calibration_cache_format_and_round_trip():
    params = {"input": _qp(1 / 127), "conv:0 out": _qp(0.0123), "w": QuantParams(np.full(3, 0.1, np.float32), np.zeros(3), "int8", axis=0),
              "bias": QuantParams(np.asarray(0.001, np.float32), np.asarray(0), "int32"),
              "asym": QuantParams(np.asarray(0.02, np.float32), np.asarray(128), "uint8", range=(-1.0, 4.0))}
    text = calib_cache.write_cache(params, "8.2.1")
    head, scales = parse_calibration_cache(text)
    assert head == "TRT-8201-EntropyCalibration2"
    assert text.splitlines()[1:] == sorted(text.splitlines()[1:])  # deterministic order
    assert "input: 3c010204" in text  # 1/127 <-> range [-1, 1] (ORT/TAO example)
    assert set(scales) == {"input", "conv:0 out", "asym"}  # no per-channel weights, no int32 biases
    assert np.float32(scales["conv:0 out"]) == np.float32(0.0123)
    assert np.isclose(scales["asym"], 4.0 / 127)
    assert calib_cache.header("10.3") == "TRT-100300-EntropyCalibration2"
    assert calib_cache.parse_cache(text)[1] == scales


def test_nano_refuses_int8_with_reason():
    from deploykit.plugins import Registry
    import deploykit_profiles
    import deploykit_tensorrt

    reg = Registry.from_plugins([deploykit_profiles, deploykit_tensorrt])
    nano = reg.backend_for(reg.target("jetson-nano"))(reg.target("jetson-nano"))
    with pytest.raises(DeployError, match="Maxwell.*no fast INT8.*--precision fp16"):
        nano.check_precision("int8")
    nano.check_precision("fp16")
    orin = reg.backend_for(reg.target("jetson-orin-nano"))(reg.target("jetson-orin-nano"))
    orin.check_precision("int8")


def test_lowering_drops_default_attributes_the_older_opset_lacks():
    """PyTorch writes Reshape-14 with an explicit allowzero=0; TensorRT 8.2's opset-13 parser (and
    onnx.checker at 13) reject the unknown attribute (issue 19: every opset >= 14 model on jetson-nano)."""
    g = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape", allowzero=0)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])],
        [numpy_helper.from_array(np.asarray([2, 2], np.int64), "shape")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    lowered, problems = opset.lower_opset(model, 13)
    assert problems == {} and opset.opset_of(lowered) == 13
    assert [a.name for a in lowered.graph.node[0].attribute] == []
    onnx.checker.check_model(lowered, full_check=True)
    allow = onnx.ModelProto()
    allow.CopyFrom(model)
    allow.graph.node[0].attribute[0].i = 1
    assert list(opset.lower_opset(allow, 13)[1]) == ["reshape"]


def test_lstm_14_with_the_default_layout_is_lstm_7_at_opset_13():
    """LSTM-14 only added ``layout``; silero-vad's LSTM (layout 0) was refused on jetson-nano."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (1, 16, 3)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.normal(0, 0.3, (1, 16, 4)).astype(np.float32), "R")]
    g = helper.make_graph(
        [helper.make_node("LSTM", ["x", "W", "R"], ["y"], name="lstm", hidden_size=4, layout=0)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [5, 1, 1, 4])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    lowered, problems = opset.lower_opset(model, 13)
    assert problems == {} and opset.opset_of(lowered) == 13
    assert "layout" not in [a.name for a in lowered.graph.node[0].attribute]
    onnx.checker.check_model(lowered, full_check=True)
    x = rng.normal(0, 1, (5, 1, 3)).astype(np.float32)
    run = lambda m: ort.InferenceSession(m.SerializeToString()).run(None, {"x": x})[0]  # noqa: E731
    np.testing.assert_allclose(run(lowered), run(model), rtol=1e-6)
    batch_first = onnx.ModelProto()
    batch_first.CopyFrom(model)
    batch_first.graph.node[0].attribute[-1].i = 1
    assert list(opset.lower_opset(batch_first, 13)[1]) == ["lstm"]


def test_fp16_range_check_finds_layers_beyond_65504_and_pins_them_to_fp32():
    """A power spectrogram overflows fp16 (issue 19): fp32 host verification cannot see it, so the
    build measures fp32 values against 65504 and keeps those layers fp32 where trtexec can."""
    import onnx_ir as ir

    from deploykit.reference import fp16_overflows

    g = helper.make_graph([helper.make_node("Mul", ["x", "x"], ["power"], name="square"),
                           helper.make_node("Log", ["power"], ["y"], name="log")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = ir.from_proto(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]))
    feeds = [{"x": np.array([[1.0, 10.0, 300.0, 2.0]], np.float32)}, {"x": np.ones((1, 4), np.float32)}]
    assert fp16_overflows(model, feeds) == {"square": 90000.0}
    assert fp16_overflows(model, [feeds[1]]) == {}
    s = trtexec.EngineSettings("10.3", "fp16", 256, 0, "trtexec", True)
    args = trtexec.trtexec_args(s, "model.onnx", "e.engine", "t.cache", keep_fp32=["square"])
    assert "--precisionConstraints=obey" in args and "--layerPrecisions=square:fp32" in args


def test_qdq_placement_keeps_initializers_read_inside_if_bodies():
    """An If body reads main-graph weights by name (openWakeWord's verifier): dropping them as
    'unused' made the jetson-orin-nano int8 model invalid (issue 19)."""
    then_b = helper.make_graph([helper.make_node("MatMul", ["h", "wv"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", TensorProto.FLOAT, [1, 4])])
    else_b = helper.make_graph([helper.make_node("Identity", ["h"], ["e"])], "else", [],
                               [helper.make_tensor_value_info("e", TensorProto.FLOAT, [1, 4])])
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("ReduceSum", ["h"], ["s"], keepdims=0),
         helper.make_node("Greater", ["s", "zero"], ["c"]),
         helper.make_node("If", ["c"], ["y"], then_branch=then_b, else_branch=else_b)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(np.eye(4, dtype=np.float32), "w"), numpy_helper.from_array(np.eye(4, dtype=np.float32) * 2, "wv"),
         numpy_helper.from_array(np.array(0.0, np.float32), "zero")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    placed, _ = qdq.place_for_tensorrt(model, {})
    assert "wv" in {t.name for t in placed.graph.initializer}
    onnx.checker.check_model(placed, full_check=True)
def test_ir_version_stays_4_when_initializers_are_not_inputs():
    """opset 7 maps to IR 3, which needs every initializer listed as a graph input; deploykit's
    import drops those, so the saved model must say IR 4 (or the checker refuses it)."""
    w = numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "conv_w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "conv_w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])], [w])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 7)])
    opset.set_ir_version(m)
    assert m.ir_version == 4
    onnx.checker.check_model(m)
    m.graph.input.append(helper.make_tensor_value_info("conv_w", TensorProto.FLOAT, [2, 3, 1, 1]))
    opset.set_ir_version(m)
    assert m.ir_version == 3


def _silu_resnet(path):
    """x -> Conv -> SiLU -> Conv -> SiLU -> Add(skip: first SiLU) -> Conv -> y: a YOLO-style block."""
    r = np.random.default_rng(5)
    inits = [numpy_helper.from_array(r.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32), "w0"),
             numpy_helper.from_array(r.normal(0, 0.3, (8, 8, 3, 3)).astype(np.float32), "w1"),
             numpy_helper.from_array(r.normal(0, 0.3, (4, 8, 1, 1)).astype(np.float32), "w2")]
    nodes = [helper.make_node("Conv", ["x", "w0"], ["c0"], pads=[1, 1, 1, 1], name="conv0"),
             helper.make_node("Sigmoid", ["c0"], ["s0"], name="sig0"),
             helper.make_node("Mul", ["c0", "s0"], ["a0"], name="silu0"),
             helper.make_node("Conv", ["a0", "w1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Sigmoid", ["c1"], ["s1"], name="sig1"),
             helper.make_node("Mul", ["c1", "s1"], ["a1"], name="silu1"),
             helper.make_node("Add", ["a1", "a0"], ["r"], name="residual"),
             helper.make_node("Conv", ["r", "w2"], ["y"], name="head")]
    g = helper.make_graph(nodes, "silu", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def test_engine_simulates_the_placement_tensorrt_runs(tmp_path):
    """The engine's accuracy search judges the Q/DQ model TensorRT runs: the placement keeps every
    activation pair the engine simulated (none on the SiLU's Sigmoid/Mul or on the Add, which TensorRT
    runs fused in higher precision)."""
    from deploykit.ir import graph_inputs, load_model
    from deploykit.passes import canonicalize
    from deploykit.quant.calibration import SampleSet
    from deploykit.quant.engine import QuantConfig, quantize_model
    from deploykit_tensorrt.backend import TensorRtBackend

    model = canonicalize(load_model(_silu_resnet(tmp_path / "m.onnx")))
    x = np.random.default_rng(6).normal(size=(24, 3, 8, 8)).astype(np.float32)
    result = quantize_model(model, SampleSet({"x": x}, graph_inputs(model)), TensorRtBackend.quant_scheme,
                            QuantConfig(method="minmax"))
    consumers = {}
    for n in result.qdq_model.graph.node:
        for t in n.input:
            consumers.setdefault(t, []).append(n)
    simulated = [n for n in result.qdq_model.graph.node if n.op_type == "DequantizeLinear"
                 and n.input[0] not in {i.name for i in result.qdq_model.graph.initializer}]
    fed = {c.op_type for dq in simulated for c in consumers.get(dq.output[0], [])}
    assert fed and fed <= set(qdq.INT8_INPUTS), fed
    placed, rep = qdq.place_for_tensorrt(result.qdq_model, result.params, result.fallback)
    assert rep.activation_qdq_removed == 1  # only the graph output's pair: TensorRT returns outputs in float
    assert rep.activation_qdq_added == 0 and len(rep.int8_layers) == 3


def test_calibration_cache_covers_every_tensor_beside_the_plan(tmp_path):
    """TensorRT's implicit path reads a scale for every tensor from calibration.cache: the engine
    returns ranges for the tensors its plan leaves in float too (the SiLU's Sigmoid/Mul outputs),
    while its simulated Q/DQ model stays the explicit placement."""
    from deploykit.ir import graph_inputs, load_model
    from deploykit.passes import canonicalize
    from deploykit.quant.calibration import SampleSet
    from deploykit.quant.engine import QuantConfig, quantize_model
    from deploykit_tensorrt.backend import TensorRtBackend

    model = canonicalize(load_model(_silu_resnet(tmp_path / "m.onnx")))
    x = np.random.default_rng(7).normal(size=(24, 3, 8, 8)).astype(np.float32)
    result = quantize_model(model, SampleSet({"x": x}, graph_inputs(model)), TensorRtBackend.quant_scheme,
                            QuantConfig(method="minmax"))
    activations = {"x", "c0", "s0", "a0", "c1", "s1", "a1", "r", "y"}
    _, scales = calib_cache.parse_cache(calib_cache.write_cache(result.params, "8.6.2", names=activations))
    assert set(scales) == activations
    assert set(result.plan.activations) == {"x", "a0", "r", "y"}  # the plan: conv inputs and the output
