"""Helpers for the openvino plugin tests: models that make the current ``convert_model`` emit
layers OpenVINO 2022.3 cannot read (Interpolate-11, TopK-11, ScaledDotProductAttention-13)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PLUGINS = "profiles,onnxruntime,openvino"
ENV = {"DEPLOYKIT_PLUGINS": PLUGINS}


def _save(graph, path: Path, opset: int = 17) -> Path:
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m = onnx.shape_inference.infer_shapes(m)
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return Path(path)


def resize_topk_model(path: Path) -> Path:
    """Conv -> Resize (x2, nearest and linear) -> Add -> MaxPool -> TopK over channels."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.05, "w"),
        # channel biases far apart: TopK over channels has no near-ties that FP16 weights could swap
        numpy_helper.from_array(np.arange(8, dtype=np.float32), "b"),
        numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
        numpy_helper.from_array(np.array([4], np.int64), "k"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Resize", ["r", "", "scales"], ["up_n"], mode="nearest", name="resize_nearest"),
        helper.make_node("Resize", ["r", "", "scales"], ["up_l"], mode="linear", name="resize_linear"),
        helper.make_node("Add", ["up_n", "up_l"], ["cat"], name="add"),
        helper.make_node("MaxPool", ["cat"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
        helper.make_node("TopK", ["p", "k"], ["values", "indices"], axis=1, name="topk"),
    ]
    graph = helper.make_graph(nodes, "resize_topk", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("values", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("indices", TensorProto.INT64, None)], inits)
    return _save(graph, path)


def attention_model(path: Path, seq: int = 8, dim: int = 16) -> Path:
    """Single-head self-attention MatMul-Mul-Softmax-MatMul (fused into ScaledDotProductAttention by 2026)."""
    rng = np.random.default_rng(1)
    w = {n: (rng.standard_normal((dim, dim)) / np.sqrt(dim)).astype(np.float32) for n in ("wq", "wk", "wv", "wo")}
    inits = [numpy_helper.from_array(v, k) for k, v in w.items()]
    inits.append(numpy_helper.from_array(np.array(1.0 / np.sqrt(dim), np.float32), "scale"))
    nodes = [
        helper.make_node("MatMul", ["x", "wq"], ["q"]),
        helper.make_node("MatMul", ["x", "wk"], ["k"]),
        helper.make_node("MatMul", ["x", "wv"], ["v"]),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["s"]),
        helper.make_node("Mul", ["s", "scale"], ["ss"]),
        helper.make_node("Softmax", ["ss"], ["p"], axis=-1),
        helper.make_node("MatMul", ["p", "v"], ["a"]),
        helper.make_node("MatMul", ["a", "wo"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "attention", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, seq, dim])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, seq, dim])], inits)
    return _save(graph, path)


def pad_conv_model(path: Path, pads=(0, 0, 1, 2, 0, 0, 2, 1), mode: str = "constant") -> Path:
    """Conv -> constant Pad (converted to Pad-12 by the current frontend; negative pads crop) -> Relu."""
    rng = np.random.default_rng(2)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.2, "w"),
             numpy_helper.from_array(np.array(pads, np.int64), "pads")]
    pad_inputs = ["c", "pads"]
    if mode == "constant":
        inits.append(numpy_helper.from_array(np.array(0.25, np.float32), "value"))
        pad_inputs.append("value")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Pad", pad_inputs, ["p"], mode=mode, name="pad"),
        helper.make_node("Relu", ["p"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(nodes, "pad_conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 12, 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return _save(graph, path, opset=13)


def scatter_model(path: Path) -> Path:
    """Conv -> ScatterElements (ScatterElementsUpdate-12 in the current frontend: no downgrade rule, so
    the ncs2 lowering converts with OpenVINO 2022.3 instead)."""
    rng = np.random.default_rng(3)
    idx = np.stack([rng.permutation(4) for _ in range(12 * 12)], -1).reshape(1, 4, 12, 12).astype(np.int64)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.2, "w"),
             numpy_helper.from_array(idx, "idx")]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("ScatterElements", ["c", "idx", "c"], ["y"], axis=1, name="scatter"),
    ]
    graph = helper.make_graph(nodes, "scatter", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 12, 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 12, 12])], inits)
    return _save(graph, path, opset=13)
