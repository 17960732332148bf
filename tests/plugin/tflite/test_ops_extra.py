"""Converters for ops without a single TFLite builtin (LSTM/GRU unrolled, Softplus/Mish/Softsign,
GroupNormalization, DepthToSpace CRD, TopK, Einsum, Conv3D, Resize through interpolation
matrices) and layout of reshapes: each built for rpi4 and verified against onnxruntime by the
pipeline (fp32: max abs error <= 1e-4 of the output range)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto
from onnx import helper as h

from tflite_testlib import build, model, report, tflite_ops

pytestmark = pytest.mark.plugin
pytest.importorskip("ai_edge_litert")

R = np.random.default_rng(7)


def w(*shape, scale=0.3):
    return R.normal(0, scale, shape).astype(np.float32)


X4 = {"x": [1, 8, 6, 6]}
H, I, S = 5, 4, 6


def lstm_case(name, direction="forward", layout=0, states=True, opset=17):
    d = 2 if direction == "bidirectional" else 1
    xshape = [S, 2, I] if layout == 0 else [2, S, I]
    sshape = [d, 2, H] if layout == 0 else [2, d, H]
    ins = ["x", "W", "R", "B", "", "h0" if states else "", "c0" if states else ""]
    inputs = {"x": xshape, **({"h0": sshape, "c0": sshape} if states else {})}
    node = h.make_node("LSTM", ins, ["y", "yh", "yc"], hidden_size=H, direction=direction, layout=layout)
    return (name, [node], inputs, {"y": None, "yh": None, "yc": None},
            {"W": w(d, 4 * H, I), "R": w(d, 4 * H, H), "B": w(d, 8 * H)}, opset)


def gru_case(name, lbr, direction="forward", states=False):
    d = 2 if direction == "bidirectional" else 1
    ins = ["x", "W", "R", "B", "", "h0" if states else ""]
    inputs = {"x": [S, 1, I], **({"h0": [d, 1, H]} if states else {})}
    node = h.make_node("GRU", ins, ["y", "yh"], hidden_size=H, direction=direction, linear_before_reset=lbr)
    return (name, [node], inputs, {"y": None, "yh": None},
            {"W": w(d, 3 * H, I), "R": w(d, 3 * H, H), "B": w(d, 6 * H)})


def einsum_case(name, eq, shapes, const=None):
    names = [f"a{i}" for i in range(len(shapes))]
    inputs = {n: s for n, s in zip(names, shapes) if n != const}
    inits = {const: w(*shapes[names.index(const)])} if const else {}
    return name, [h.make_node("Einsum", names, ["y"], equation=eq)], inputs, {"y": None}, inits, 12


CASES = [
    lstm_case("lstm_states", states=True),
    lstm_case("lstm_zero_state_reverse", "reverse", states=False),
    lstm_case("lstm_bidirectional", "bidirectional"),
    gru_case("gru_lbr1", 1),
    gru_case("gru_lbr0_states", 0, states=True),
    gru_case("gru_bidirectional_lbr1", 1, "bidirectional", states=True),
    ("softplus_mish_softsign", [h.make_node("Softplus", ["x"], ["a"]), h.make_node("Mish", ["x"], ["b"]),
                                h.make_node("Softsign", ["x"], ["c"]), h.make_node("Sum", ["a", "b", "c"], ["y"])],
     {"x": [2, 40]}, {"y": None}, {"k": np.float32(30)}, 18),
    ("softplus_large", [h.make_node("Mul", ["x", "k"], ["s"]), h.make_node("Softplus", ["s"], ["y"])],
     {"x": [2, 40]}, {"y": None}, {"k": np.float32(60)}),
    ("groupnorm_rank3", [h.make_node("GroupNormalization", ["x", "g", "b"], ["y"], num_groups=4)],
     {"x": [2, 8, 10]}, {"y": [2, 8, 10]}, {"g": w(8) + 1, "b": w(8)}, 21),
    ("groupnorm_opset21_per_channel", [h.make_node("GroupNormalization", ["x", "g", "b"], ["y"], num_groups=2,
                                                   epsilon=1e-3)], X4, {"y": [1, 8, 6, 6]}, {"g": w(8) + 1, "b": w(8)}, 21),
    ("depth_to_space_crd", [h.make_node("DepthToSpace", ["x"], ["y"], blocksize=2, mode="CRD")], X4, {"y": None}, {}),
    ("topk_largest_axis1", [h.make_node("TopK", ["x", "k"], ["v", "i"], axis=1)], X4,
     {"v": None, "i": ([1, 3, 6, 6], TensorProto.INT64)},
     {"k": np.array([3], np.int64)}),
    ("topk_smallest_last", [h.make_node("TopK", ["x", "k"], ["v", "i"], largest=0)], {"x": [3, 20]},
     {"v": None, "i": ([3, 4], TensorProto.INT64)}, {"k": np.array([4], np.int64)}),
    einsum_case("einsum_bmm", "bij,bjk->bik", [[2, 3, 4], [2, 4, 5]]),
    einsum_case("einsum_const_channels", "nchw,cd->ndhw", [[1, 4, 5, 5], [4, 6]], const="a1"),
    einsum_case("einsum_attention_scores", "bhqd,bhkd->bhqk", [[1, 2, 5, 4], [1, 2, 6, 4]]),
    einsum_case("einsum_outer_reduce", "ij,jk->ki", [[3, 4], [4, 2]]),
    einsum_case("einsum_transpose_sum", "bij->jb", [[2, 3, 4]]),
    einsum_case("einsum_implicit_ellipsis", "...ij,jk", [[2, 3, 4], [4, 5]], const="a1"),
    ("conv3d", [h.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1, 1, 1], strides=[1, 2, 2])],
     {"x": [1, 3, 4, 6, 6]}, {"y": None}, {"w": w(5, 3, 3, 3, 3), "b": w(5)}),
    ("resize_cubic", [h.make_node("Resize", ["x", "", "sc"], ["y"], mode="cubic")], X4, {"y": None},
     {"sc": np.array([1, 1, 2, 1.5], np.float32)}),
    ("resize_cubic_align_sizes", [h.make_node("Resize", ["x", "", "", "sz"], ["y"], mode="cubic",
                                              coordinate_transformation_mode="align_corners", cubic_coeff_a=-0.5)],
     X4, {"y": None}, {"sz": np.array([1, 8, 11, 6], np.int64)}),
    ("resize_linear_antialias_down", [h.make_node("Resize", ["x", "", "", "sz"], ["y"], mode="linear", antialias=1)],
     {"x": [1, 3, 12, 12]}, {"y": None}, {"sz": np.array([1, 3, 5, 4], np.int64)}, 18),
    ("gemm_dynamic_c_beta", [h.make_node("Gemm", ["x", "z", "c"], ["y"], transA=1, alpha=0.5, beta=0.3)],
     {"x": [6, 3], "z": [6, 4], "c": [1, 4]}, {"y": None}, {}),
    ("matmul_1d_operands", [h.make_node("MatMul", ["v", "m"], ["a"]), h.make_node("MatMul", ["m2", "u"], ["b"])],
     {"v": [4], "m": [2, 4, 5], "m2": [3, 6], "u": [6]}, {"a": None, "b": None}, {}),
    ("layernorm_stats_outputs", [h.make_node("LayerNormalization", ["x", "g", "b"], ["y", "mean", "inv"], axis=1)],
     {"x": [2, 3, 4]}, {"y": None, "mean": None, "inv": None}, {"g": w(3, 4), "b": w(3, 4)}),
    ("pool_1d", [h.make_node("MaxPool", ["x"], ["m"], kernel_shape=[3], strides=[2], pads=[1, 1]),
                 h.make_node("AveragePool", ["m"], ["y"], kernel_shape=[2], strides=[2])],
     {"x": [1, 4, 17]}, {"y": None}, {}),
    ("elu_alpha", [h.make_node("Elu", ["x"], ["y"], alpha=0.4)], {"x": [2, 30]}, {"y": None}, {}),
    ("space_to_depth_crd", [h.make_node("SpaceToDepth", ["x"], ["y"], blocksize=2, mode="CRD")], X4, {"y": None},
     {}, 28),
    ("expand_normalize", [h.make_node("ReduceL2", ["x", "ax"], ["n"], keepdims=1), h.make_node("Expand", ["n", "s"], ["e"]),
                          h.make_node("Div", ["x", "e"], ["y"])], {"x": [2, 8]}, {"y": None},
     {"ax": np.array([1], np.int64), "s": np.array([2, 8], np.int64)}, 18),
    ("cumsum_variants", [h.make_node("CumSum", ["x", "a1"], ["c1"]),
                         h.make_node("CumSum", ["x", "a3"], ["c2"], exclusive=1, reverse=1),
                         h.make_node("Add", ["c1", "c2"], ["y"])], X4, {"y": None},
     {"a1": np.array(1, np.int64), "a3": np.array(-1, np.int64)}),
    ("reduce_log_sum_exp", [h.make_node("Mul", ["x", "k"], ["s"]), h.make_node("ReduceLogSumExp", ["s", "ax"], ["y"], keepdims=0)],
     X4, {"y": None}, {"k": np.float32(40), "ax": np.array([1, 3], np.int64)}, 18),
    ("argmax_argmin_select_last", [h.make_node("Round", ["x"], ["r"]),
                                   h.make_node("ArgMax", ["r"], ["a"], axis=1, select_last_index=1),
                                   h.make_node("ArgMin", ["r"], ["b"], axis=3, keepdims=0, select_last_index=1)],
     X4, {"a": ([1, 1, 6, 6], TensorProto.INT64), "b": ([1, 8, 6], TensorProto.INT64)}, {}),
    ("conv_transpose_1d", [h.make_node("ConvTranspose", ["x", "w", "b"], ["c"], strides=[2], pads=[1, 1]),
                           h.make_node("ConvTranspose", ["c", "w2"], ["y"], strides=[3], output_padding=[1])],
     {"x": [1, 4, 9]}, {"y": None}, {"w": w(4, 3, 4), "b": w(3), "w2": w(3, 2, 3)}),
    ("resize_nearest_round_asym", [h.make_node("Resize", ["x", "", "sc"], ["y"], mode="nearest",
                                               coordinate_transformation_mode="asymmetric")],
     X4, {"y": None}, {"sc": np.array([1, 1, 1.5, 2], np.float32)}),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_extra_op_fp32_matches_onnxruntime(case, tmp_path):
    name, nodes, inputs, outputs, inits = case[:5]
    opset = case[5] if len(case) > 5 else 17
    used = {i for n in nodes for i in n.input}
    inits = {k: v for k, v in inits.items() if k in used}
    path = model(tmp_path / f"{name}.onnx", nodes, inputs, outputs, inits, opset)
    result = build(path, tmp_path / "out")
    v = result.manifest["verification"]
    assert v["status"] == "passed", v["problems"]


def test_lstm_int8_and_fp16(tmp_path):
    """The unrolled LSTM quantizes (or stays float where the engine has no params) and verifies."""
    _, nodes, inputs, _, inits, opset = lstm_case("lstm", states=False)
    nodes = nodes + [h.make_node("MatMul", ["y2", "fc"], ["out"])]
    nodes.insert(1, h.make_node("Squeeze", ["y", "ax"], ["y2"]))
    inits.update(fc=w(H, 3), ax=np.array([1], np.int64))
    path = model(tmp_path / "lstm.onnx", nodes, inputs, {"out": None}, inits, opset)
    calib = tmp_path / "calib.npy"
    np.save(calib, R.standard_normal((24, S, 2, I)).astype(np.float32))  # input [S, 2, I]: no batch-1 axis
    for precision in ("fp16", "int8"):
        res = build(path, tmp_path / precision, precision=precision, calibration=str(calib) if precision == "int8" else None)
        assert res.manifest["verification"]["status"] == "passed", res.manifest["verification"]


def test_channel_shuffle_keeps_channels_last(tmp_path):
    """NHWC-held [N, C, H, W] -> [N, G, C/G, H, W] -> swap -> [N, C, H, W]: one TRANSPOSE (the
    shuffle itself), no round trip through NCHW around the convolutions."""
    nodes = [h.make_node("Conv", ["x", "w1", "b1"], ["c"], pads=[1, 1, 1, 1]),
             h.make_node("Reshape", ["c", "s5"], ["r"]), h.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1, 3, 4]),
             h.make_node("Reshape", ["t", "s4"], ["s"]), h.make_node("Conv", ["s", "w2", "b2"], ["y"])]
    inits = {"w1": w(8, 8, 3, 3), "b1": w(8), "w2": w(8, 8, 1, 1), "b2": w(8),
             "s5": np.array([1, 2, 4, 6, 6], np.int64), "s4": np.array([1, 8, 6, 6], np.int64)}
    res = build(model(tmp_path / "shuffle.onnx", nodes, X4, {"y": None}, inits), tmp_path / "out")
    assert res.manifest["verification"]["status"] == "passed"
    assert tflite_ops(tmp_path / "out").count("TRANSPOSE") == 1


def test_conv1d_input_fed_channels_last(tmp_path):
    nodes = [h.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1]), h.make_node("Relu", ["c"], ["y"])]
    res = build(model(tmp_path / "c1.onnx", nodes, {"x": [1, 6, 20]}, {"y": None}, {"w": w(4, 6, 3), "b": w(4)}),
                tmp_path / "out")
    assert res.manifest["verification"]["status"] == "passed"
    assert "TRANSPOSE" not in tflite_ops(tmp_path / "out")
    assert res.manifest["inputs"][0]["artifact"]["perm"] == [0, 2, 1]
    assert report(tmp_path / "out")["backend_report"]["transposes"] == 0


def test_fp16_keeps_vectors_float32():
    from deploykit_tflite.fp16 import is_weight_matrix

    assert is_weight_matrix(np.zeros((8, 4, 3, 3), np.float32))
    assert not is_weight_matrix(np.zeros(64, np.float32))  # bias / folded BatchNorm shift
    assert not is_weight_matrix(np.zeros((1, 64, 1, 1), np.float32))  # per-channel scale


@pytest.mark.parametrize("scale,ctm,nearest", [(2, "asymmetric", "floor"), (4, "half_pixel", "round_prefer_floor")])
def test_nearest_upsample_by_depth_to_space(tmp_path, scale, ctm, nearest):
    """Integer nearest upsampling (FPN / YOLO / UNet) avoids RESIZE_NEAREST_NEIGHBOR, which XNNPACK
    does not delegate: CONCATENATION of 4 copies + DEPTH_TO_SPACE per factor 2, also in int8."""
    nodes = [h.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             h.make_node("Resize", ["c", "", "sc"], ["y"], mode="nearest", coordinate_transformation_mode=ctm,
                         nearest_mode=nearest)]
    inits = {"w": w(4, 3, 3, 3), "b": w(4), "sc": np.array([1, 1, scale, scale], np.float32)}
    path = model(tmp_path / "up.onnx", nodes, {"x": [1, 3, 5, 6]}, {"y": None}, inits)
    calib = tmp_path / "calib.npy"
    np.save(calib, R.standard_normal((24, 3, 5, 6)).astype(np.float32))
    for precision in ("fp32", "int8"):
        res = build(path, tmp_path / precision, precision=precision, calibration=str(calib) if precision == "int8" else None)
        assert res.manifest["verification"]["status"] == "passed", res.manifest["verification"]
        ops = tflite_ops(tmp_path / precision)
        assert "RESIZE_NEAREST_NEIGHBOR" not in ops and ops.count("DEPTH_TO_SPACE") == scale.bit_length() - 1
    assert report(tmp_path / "int8")["backend_report"]["int8"]["float_ops"] == {}


def test_unrolled_lstm_is_one_xnnpack_partition(tmp_path):
    """Per-step SLICEs (not a 6-way SPLIT) and a tree of <= 4-input CONCATENATIONs: XNNPACK takes
    the whole unrolled LSTM as one partition."""
    from ai_edge_litert.interpreter import Interpreter

    _, nodes, inputs, outputs, inits, opset = lstm_case("lstm", "bidirectional")
    build(model(tmp_path / "lstm.onnx", nodes, inputs, outputs, inits, opset), tmp_path / "out")
    it = Interpreter(str(tmp_path / "out" / "model.tflite"), num_threads=1)
    it.allocate_tensors()
    assert sum(op["op_name"] == "DELEGATE" for op in it._get_ops_details()) == 1
