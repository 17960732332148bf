"""Helpers for the edgetpu plugin tests: registry, tiny ONNX models, reading .tflite files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PLUGINS = "profiles,onnxruntime,tflite,edgetpu"
ENV = {"DEPLOYKIT_PLUGINS": PLUGINS}


def registry():
    import deploykit_edgetpu
    import deploykit_onnxruntime
    import deploykit_profiles
    import deploykit_tflite

    from deploykit.plugins import Registry

    return Registry.from_plugins([deploykit_profiles, deploykit_onnxruntime, deploykit_tflite, deploykit_edgetpu])


def backend(target: str = "coral-usb"):
    reg = registry()
    profile = reg.target(target)
    return reg.backend_for(profile)(profile)


def model(path: Path, nodes, inputs: dict, outputs: dict, inits: dict | None = None, opset: int = 17) -> Path:
    graph = helper.make_graph(
        nodes, "edgetpu_test", [helper.make_tensor_value_info(k, TensorProto.FLOAT, v) for k, v in inputs.items()],
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, v) for k, v in outputs.items()],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()])
    m = onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]))
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return path


def real_input(path: Path) -> tuple[str, list[int]]:
    m = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    i = [i for i in m.graph.input if i.name not in inits][0]
    return i.name, [d.dim_value for d in i.type.tensor_type.shape.dim]


def calibration(path: Path, out: Path, n: int = 8, low: float = 0.0, high: float = 1.0) -> Path:
    _, shape = real_input(path)
    np.save(out, np.random.default_rng(0).uniform(low, high, [n] + shape[1:]).astype(np.float32))
    return out


def tflite_contents(path: Path) -> tuple[list[str], list[list[str]], list[str]]:
    """(op names, per op the type names of all its tensors, graph I/O type names) of a .tflite."""
    from ai_edge_litert import schema_py_generated as s
    from ai_edge_litert.tools import flatbuffer_utils

    m = flatbuffer_utils.read_model(str(path))
    names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    types = {v: k for k, v in vars(s.TensorType).items() if not k.startswith("_")}
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in m.operatorCodes]
    sub = m.subgraphs[0]
    ops = [names[codes[op.opcodeIndex]] for op in sub.operators]
    op_types = [[types[sub.tensors[i].type] for i in list(op.inputs) + list(op.outputs) if i >= 0] for op in sub.operators]
    io = [types[sub.tensors[i].type] for i in list(sub.inputs) + list(sub.outputs)]
    return ops, op_types, io


def assert_all_integer(path: Path) -> list[str]:
    """Every operator works on int8 (int32 only for biases/shapes); no float tensor, no (DE)QUANTIZE to float."""
    ops, op_types, io = tflite_contents(path)
    assert io and all(t == "INT8" for t in io), io
    for op, types in zip(ops, op_types):
        assert op != "DEQUANTIZE", ops
        assert all(t in ("INT8", "INT32") for t in types), (op, types)
    return ops


def report(bundle: Path) -> dict:
    return json.loads((bundle / "report.json").read_text())


# -- small models with meaningful (random) weights for the Edge TPU rewrite rules ------------------------


def _conv_w(rng, cout, cin, k, scale=None):
    return rng.normal(0, scale or (2.0 / (cin * k * k)) ** 0.5, (cout, cin, k, k)).astype(np.float32)


def lrn_cnn(path: Path, size: int = 5, beta: float = 0.75) -> Path:
    """AlexNet-style stem: Conv-Relu-LRN-MaxPool-Conv-Relu-LRN-GAP-Gemm (logits), random weights, and LRN
    parameters under which the normalization changes the activations noticeably (alpha 0.1 / 0.05)."""
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("LRN", ["r1"], ["n1"], size=size, alpha=0.1, beta=beta, bias=1.0, name="lrn1"),
             helper.make_node("MaxPool", ["n1"], ["p1"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                              name="pool1"),
             helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("LRN", ["r2"], ["n2"], size=size, alpha=0.05, beta=beta, bias=2.0, name="lrn2"),
             helper.make_node("GlobalAveragePool", ["n2"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "wfc", "bfc"], ["y"], transB=1, name="fc")]
    inits = {"w1": _conv_w(rng, 16, 3, 3), "b1": rng.normal(0, 0.1, 16).astype(np.float32),
             "w2": _conv_w(rng, 32, 16, 3), "b2": rng.normal(0, 0.1, 32).astype(np.float32),
             "wfc": rng.normal(0, 0.3, (10, 32)).astype(np.float32), "bfc": np.zeros(10, np.float32)}
    return model(path, nodes, {"x": [1, 3, 32, 32]}, {"y": [1, 10]}, inits)


def shuffle_cnn(path: Path, groups: int = 3) -> Path:
    """ShuffleNet-style unit: Conv-Relu, grouped 1x1 Conv-Relu, channel shuffle (Reshape 5-D, Transpose,
    Reshape), depthwise 3x3, grouped 1x1, residual Add, Relu, GAP, Gemm (logits); random weights."""
    rng = np.random.default_rng(5)
    c, g = 8 * groups, groups
    nodes = [helper.make_node("Conv", ["x", "w0", "b0"], ["c0"], pads=[1, 1, 1, 1], name="stem"),
             helper.make_node("Relu", ["c0"], ["r0"], name="stem_relu"),
             helper.make_node("Conv", ["r0", "wg1", "bg1"], ["c1"], group=g, name="gconv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="gconv1_relu"),
             helper.make_node("Reshape", ["r1", "s5"], ["t5"], name="shuffle_reshape"),
             helper.make_node("Transpose", ["t5"], ["t5t"], perm=[0, 2, 1, 3, 4], name="shuffle_transpose"),
             helper.make_node("Reshape", ["t5t", "s4"], ["sh"], name="shuffle_back"),
             helper.make_node("Conv", ["sh", "wdw", "bdw"], ["dw"], group=c, pads=[1, 1, 1, 1], name="dwconv"),
             helper.make_node("Conv", ["dw", "wg2", "bg2"], ["c2"], group=g, name="gconv2"),
             helper.make_node("Add", ["c2", "r0"], ["res"], name="residual"),
             helper.make_node("Relu", ["res"], ["rr"], name="out_relu"),
             helper.make_node("GlobalAveragePool", ["rr"], ["gap"], name="gap"),
             helper.make_node("Flatten", ["gap"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "wfc", "bfc"], ["y"], transB=1, name="fc")]
    inits = {"w0": _conv_w(rng, c, 3, 3), "b0": rng.normal(0, 0.1, c).astype(np.float32),
             "wg1": _conv_w(rng, c, c // g, 1), "bg1": rng.normal(0, 0.1, c).astype(np.float32),
             "s5": np.array([1, g, c // g, 16, 16], np.int64), "s4": np.array([1, c, 16, 16], np.int64),
             "wdw": _conv_w(rng, c, 1, 3), "bdw": rng.normal(0, 0.1, c).astype(np.float32),
             "wg2": _conv_w(rng, c, c // g, 1), "bg2": rng.normal(0, 0.1, c).astype(np.float32),
             "wfc": rng.normal(0, 0.3, (10, c)).astype(np.float32), "bfc": np.zeros(10, np.float32)}
    return model(path, nodes, {"x": [1, 3, 16, 16]}, {"y": [1, 10]}, inits)
