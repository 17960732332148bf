"""Per-op converter tests: each ONNX op (and its variants) built for rpi4 in fp32, verified by the
pipeline against onnxruntime through the generated runner (max abs error <= 1e-4 of range)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto
from onnx import helper as h

from tflite_testlib import build, model

pytestmark = pytest.mark.plugin
pytest.importorskip("ai_edge_litert")

R = np.random.default_rng(3)


def w(*shape, scale=0.3):
    return R.normal(0, scale, shape).astype(np.float32)


X4 = {"x": [1, 4, 8, 8]}


def conv_case(name, wshape, **attrs):
    cout = wshape[0]
    return name, [h.make_node("Conv", ["x", "w", "b"], ["y"], **attrs)], X4, {"y": None}, {"w": w(*wshape), "b": w(cout)}


CASES = [
    conv_case("conv", (6, 4, 3, 3), pads=[1, 1, 1, 1]),
    conv_case("conv_valid_s2", (6, 4, 3, 3), strides=[2, 2]),
    conv_case("conv_pad_s2", (6, 4, 3, 3), strides=[2, 2], pads=[1, 1, 1, 1]),
    conv_case("conv_asym_pad", (6, 4, 2, 3), pads=[0, 1, 1, 0]),
    conv_case("conv_same_upper", (6, 4, 3, 3), auto_pad="SAME_UPPER", strides=[2, 2]),
    conv_case("conv_dilated", (6, 4, 3, 3), dilations=[2, 2], pads=[2, 2, 2, 2]),
    conv_case("conv_grouped", (6, 2, 3, 3), group=2, pads=[1, 1, 1, 1]),
    conv_case("conv_depthwise", (4, 1, 3, 3), group=4, pads=[1, 1, 1, 1]),
    conv_case("conv_depthwise_mult2", (8, 1, 3, 3), group=4, strides=[2, 2], pads=[1, 1, 1, 1]),
    conv_case("conv_depthwise_dilated", (4, 1, 3, 3), group=4, dilations=[2, 2], pads=[2, 2, 2, 2]),
    ("conv1d", [h.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1])], {"x": [1, 4, 10]}, {"y": None},
     {"w": w(5, 4, 3), "b": w(5)}),
    ("conv_transpose_s2k4p1", [h.make_node("ConvTranspose", ["x", "w", "b"], ["y"], strides=[2, 2], pads=[1, 1, 1, 1])],
     X4, {"y": None}, {"w": w(4, 3, 4, 4), "b": w(3)}),
    ("conv_transpose_outpad", [h.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2], pads=[1, 1, 1, 1],
                                           output_padding=[1, 1])], X4, {"y": None}, {"w": w(4, 3, 3, 3)}),
    ("gemm_transB", [h.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1, alpha=0.5, beta=2.0)], {"x": [2, 6]},
     {"y": None}, {"w": w(5, 6), "b": w(5)}),
    ("gemm", [h.make_node("Gemm", ["x", "w"], ["y"])], {"x": [3, 6]}, {"y": None}, {"w": w(6, 5)}),
    ("matmul_3d_const", [h.make_node("MatMul", ["x", "w"], ["y"])], {"x": [2, 3, 6]}, {"y": None}, {"w": w(6, 4)}),
    ("matmul_batched", [h.make_node("MatMul", ["x", "z"], ["y"])], {"x": [2, 3, 6], "z": [2, 6, 4]}, {"y": None}, {}),
    ("maxpool_ceil", [h.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)],
     {"x": [1, 4, 9, 9]}, {"y": None}, {}),
    ("maxpool_pads", [h.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])],
     X4, {"y": None}, {}),
    ("avgpool_pads_excl", [h.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])],
     X4, {"y": None}, {}),
    ("avgpool_pads_incl", [h.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                       count_include_pad=1)], X4, {"y": None}, {}),
    ("avgpool_s2", [h.make_node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2])], X4, {"y": None}, {}),
    ("global_avg", [h.make_node("GlobalAveragePool", ["x"], ["y"])], X4, {"y": None}, {}),
    ("global_max", [h.make_node("GlobalMaxPool", ["x"], ["y"])], X4, {"y": None}, {}),
    ("add_bcast_channel", [h.make_node("Add", ["x", "c"], ["y"])], X4, {"y": None}, {"c": w(4, 1, 1)}),
    ("mul_two_inputs", [h.make_node("Mul", ["x", "z"], ["y"])], {"x": [1, 4, 8, 8], "z": [1, 1, 8, 8]}, {"y": None}, {}),
    ("sub_div", [h.make_node("Sub", ["x", "c"], ["s"]), h.make_node("Div", ["s", "d"], ["y"])], X4, {"y": None},
     {"c": w(8), "d": np.float32(3.0)}),
    ("div_dynamic", [h.make_node("Abs", ["z"], ["a"]), h.make_node("Add", ["a", "one"], ["p"]),
                     h.make_node("Div", ["x", "p"], ["y"])], {"x": [2, 5], "z": [2, 5]}, {"y": None},
     {"one": np.float32(1.0)}),
    ("max_min_sum", [h.make_node("Max", ["x", "z"], ["m"]), h.make_node("Min", ["x", "z"], ["n"]),
                     h.make_node("Sum", ["m", "n", "x"], ["y"])], {"x": [2, 5], "z": [2, 5]}, {"y": None}, {}),
    ("pow_sqrt_exp_log", [h.make_node("Abs", ["x"], ["a"]), h.make_node("Add", ["a", "one"], ["p"]),
                          h.make_node("Sqrt", ["p"], ["s"]), h.make_node("Log", ["s"], ["l"]),
                          h.make_node("Pow", ["l", "two"], ["q"]), h.make_node("Exp", ["q"], ["y"])],
     {"x": [2, 5]}, {"y": None}, {"one": np.float32(1.0), "two": np.float32(2.0)}),
    ("pow_general", [h.make_node("Abs", ["x"], ["a"]), h.make_node("Pow", ["a", "e"], ["y"])], {"x": [2, 5]},
     {"y": None}, {"e": np.float32(1.7)}),
    ("relu_clip_leaky", [h.make_node("Relu", ["x"], ["r"]), h.make_node("Clip", ["x", "lo", "hi"], ["c"]),
                         h.make_node("LeakyRelu", ["x"], ["l"], alpha=0.1), h.make_node("Add", ["r", "c"], ["s"]),
                         h.make_node("Add", ["s", "l"], ["y"])], X4, {"y": None},
     {"lo": np.float32(-0.5), "hi": np.float32(0.7)}),
    ("conv_relu6", [h.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
                    h.make_node("Clip", ["c", "lo", "hi"], ["y"])], X4, {"y": None},
     {"w": w(4, 4, 3, 3), "b": w(4), "lo": np.float32(0), "hi": np.float32(6)}),
    ("prelu", [h.make_node("PRelu", ["x", "s"], ["y"])], X4, {"y": None}, {"s": np.abs(w(4, 1, 1))}),
    ("sigmoid_tanh", [h.make_node("Sigmoid", ["x"], ["s"]), h.make_node("Tanh", ["x"], ["t"]),
                      h.make_node("Mul", ["s", "t"], ["y"])], X4, {"y": None}, {}),
    ("hardsigmoid_hardswish", [h.make_node("HardSigmoid", ["x"], ["s"], alpha=0.2, beta=0.5),
                               h.make_node("HardSwish", ["x"], ["t"]), h.make_node("Add", ["s", "t"], ["y"])],
     X4, {"y": None}, {}),
    ("gelu_erf", [h.make_node("Div", ["x", "r2"], ["a"]), h.make_node("Erf", ["a"], ["e"]),
                  h.make_node("Add", ["e", "one"], ["b"]), h.make_node("Mul", ["x", "b"], ["c"]),
                  h.make_node("Mul", ["c", "half"], ["y"])], {"x": [2, 16]}, {"y": None},
     {"r2": np.float32(np.sqrt(2)), "one": np.float32(1), "half": np.float32(0.5)}),
    ("softmax_axis1_4d", [h.make_node("Softmax", ["x"], ["y"], axis=1)], X4, {"y": None}, {}),
    ("logsoftmax", [h.make_node("LogSoftmax", ["x"], ["y"], axis=-1)], {"x": [2, 7]}, {"y": None}, {}),
    ("concat_split", [h.make_node("Concat", ["x", "z"], ["c"], axis=1),
                      h.make_node("Split", ["c", "sp"], ["y", "y2"], axis=1)],
     {"x": [1, 4, 8, 8], "z": [1, 2, 8, 8]}, {"y": None, "y2": None}, {"sp": np.array([1, 5], np.int64)}),
    ("slice_steps", [h.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["y"])], X4, {"y": None},
     {"st": np.array([1, -1], np.int64), "en": np.array([7, -9], np.int64), "ax": np.array([2, 3], np.int64),
      "sp": np.array([2, -2], np.int64)}),
    ("gather_scalar_and_vector", [h.make_node("Gather", ["x", "i"], ["g"], axis=1),
                                  h.make_node("Gather", ["x", "j"], ["y"], axis=3)],
     X4, {"g": None, "y": None}, {"i": np.array(2, np.int64), "j": np.array([0, 5, -1], np.int64)}),
    ("gather_embedding", [h.make_node("Gather", ["emb", "t"], ["y"])], {"t": ([1, 5], TensorProto.INT64)},
     {"y": None}, {"emb": w(10, 6)}),
    ("reshape_flatten_squeeze", [h.make_node("Reshape", ["x", "s"], ["r"]), h.make_node("Flatten", ["r"], ["f"], axis=1),
                                 h.make_node("Unsqueeze", ["f", "a"], ["u"]), h.make_node("Squeeze", ["u", "a"], ["y"])],
     X4, {"y": None}, {"s": np.array([1, 4, 64], np.int64), "a": np.array([0], np.int64)}),
    ("transpose_pair", [h.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
                        h.make_node("Relu", ["t"], ["r"]), h.make_node("Transpose", ["r"], ["y"], perm=[0, 3, 1, 2])],
     X4, {"y": None}, {}),
    ("pad_constant_reflect", [h.make_node("Pad", ["x", "p", "v"], ["a"]), h.make_node("Pad", ["x", "p"], ["b"], mode="reflect"),
                              h.make_node("Add", ["a", "b"], ["y"])], X4, {"y": None},
     {"p": np.array([0, 0, 1, 2, 0, 0, 1, 2], np.int64), "v": np.float32(0.5)}),
    ("resize_nearest", [h.make_node("Resize", ["x", "", "sc"], ["y"], mode="nearest",
                                    coordinate_transformation_mode="asymmetric", nearest_mode="floor")],
     X4, {"y": None}, {"sc": np.array([1, 1, 2, 2], np.float32)}),
    ("resize_bilinear_half_pixel", [h.make_node("Resize", ["x", "", "sc"], ["y"], mode="linear")],
     X4, {"y": None}, {"sc": np.array([1, 1, 2, 2], np.float32)}),
    ("resize_bilinear_align", [h.make_node("Resize", ["x", "", "", "sz"], ["y"], mode="linear",
                                           coordinate_transformation_mode="align_corners")],
     X4, {"y": None}, {"sz": np.array([1, 4, 13, 11], np.int64)}),
    ("reduce_mean_max_sum", [h.make_node("ReduceMean", ["x", "a"], ["m"], keepdims=0),
                             h.make_node("ReduceMax", ["x", "a"], ["n"], keepdims=0),
                             h.make_node("ReduceSum", ["x", "a2"], ["s"], keepdims=1)],
     X4, {"m": None, "n": None, "s": None}, {"a": np.array([1, 3], np.int64), "a2": np.array([2], np.int64)}, 18),
    ("layernorm", [h.make_node("LayerNormalization", ["x", "g", "b"], ["y"], axis=-1)], {"x": [2, 3, 16]},
     {"y": None}, {"g": w(16), "b": w(16)}),
    ("batchnorm_leftover", [h.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["y"])], X4, {"y": None},
     {"g": w(4), "b": w(4), "m": w(4), "v": np.abs(w(4)) + 0.5}),
    ("where_compare_cast", [h.make_node("Greater", ["x", "z"], ["g"]), h.make_node("Equal", ["g", "t"], ["e"]),
                            h.make_node("Where", ["e", "x", "z"], ["wv"]), h.make_node("Less", ["x", "z"], ["l"]),
                            h.make_node("Cast", ["l"], ["lf"], to=TensorProto.FLOAT), h.make_node("Add", ["wv", "lf"], ["y"])],
     {"x": [2, 5], "z": [2, 5]}, {"y": None}, {"t": np.array(True)}),
    ("shape_derived_reshape", [h.make_node("Shape", ["x"], ["s"]), h.make_node("Gather", ["s", "i0"], ["n"]),
                               h.make_node("Unsqueeze", ["n", "a0"], ["nn"]), h.make_node("Concat", ["nn", "m1"], ["shp"], axis=0),
                               h.make_node("Reshape", ["x", "shp"], ["y"])], X4, {"y": None},
     {"i0": np.array(0, np.int64), "a0": np.array([0], np.int64), "m1": np.array([-1], np.int64)}),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_op_fp32_matches_onnxruntime(case, tmp_path):
    name, nodes, inputs, outputs, inits = case[:5]
    opset = case[5] if len(case) > 5 else 17
    outputs = {k: [] for k in outputs}  # shapes come from shape inference
    path = model(tmp_path / f"{name}.onnx", nodes, inputs, {k: None for k in outputs}, inits, opset)
    result = build(path, tmp_path / "out")
    v = result.manifest["verification"]
    assert v["status"] == "passed", v["problems"]
