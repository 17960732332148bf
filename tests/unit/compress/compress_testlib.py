"""Small models and runners for the compression tests (onnx.helper only, nothing downloaded)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(0)


def init(name: str, array) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def make_model(nodes, inputs, outputs, initializers=(), opset: int = 17) -> onnx.ModelProto:
    """``inputs``/``outputs``: ``[(name, shape)]`` float32 tensors."""
    graph = helper.make_graph(
        nodes, "test",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
        list(initializers),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return onnx.shape_inference.infer_shapes(model)


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def feeds(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {vi.name: rng.standard_normal([d.dim_value for d in vi.type.tensor_type.shape.dim]).astype(np.float32)
            for vi in model.graph.input}


def weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def param_count(model: onnx.ModelProto) -> int:
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer)


def conv_bn_relu_conv(c_mid: int = 16) -> onnx.ModelProto:
    """Conv(3->c) -> BN -> Relu -> depthwise Conv -> Relu -> Conv(c->8) -> GAP -> Flatten -> Gemm(8->4)."""
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("BatchNormalization", ["c1", "g", "beta", "mean", "var"], ["bn"], name="bn1"),
        helper.make_node("Relu", ["bn"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "wdw", "bdw"], ["dw"], group=c_mid, pads=[1, 1, 1, 1], name="dw"),
        helper.make_node("Relu", ["dw"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "w2", "b2"], ["c2"], name="conv2"),
        helper.make_node("GlobalAveragePool", ["c2"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "wfc", "bfc"], ["y"], transB=1, name="fc"),
    ]
    inits = [
        init("w1", RNG.normal(0, 0.3, (c_mid, 3, 3, 3)).astype(np.float32)),
        init("b1", RNG.normal(0, 0.1, c_mid).astype(np.float32)),
        init("g", RNG.uniform(0.5, 1.5, c_mid).astype(np.float32)),
        init("beta", RNG.normal(0, 0.1, c_mid).astype(np.float32)),
        init("mean", RNG.normal(0, 0.1, c_mid).astype(np.float32)),
        init("var", RNG.uniform(0.5, 1.5, c_mid).astype(np.float32)),
        init("wdw", RNG.normal(0, 0.3, (c_mid, 1, 3, 3)).astype(np.float32)),
        init("bdw", RNG.normal(0, 0.1, c_mid).astype(np.float32)),
        init("w2", RNG.normal(0, 0.3, (8, c_mid, 1, 1)).astype(np.float32)),
        init("b2", RNG.normal(0, 0.1, 8).astype(np.float32)),
        init("wfc", RNG.normal(0, 0.5, (4, 8)).astype(np.float32)),
        init("bfc", RNG.normal(0, 0.1, 4).astype(np.float32)),
    ]
    return make_model(nodes, [("x", [1, 3, 8, 8])], [("y", [1, 4])], inits)


def mlp(k: int = 64, n: int = 48, out: int = 10) -> onnx.ModelProto:
    """MatMul(k->n) + Add -> Relu -> Gemm(n->out): constant weights for low-rank tests."""
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["m"], name="mm"),
        helper.make_node("Add", ["m", "b1"], ["a"], name="add"),
        helper.make_node("Relu", ["a"], ["r"], name="relu"),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], transB=1, alpha=0.5, name="fc"),
    ]
    inits = [init("w1", RNG.normal(0, 0.2, (k, n)).astype(np.float32)), init("b1", RNG.normal(0, 0.1, n).astype(np.float32)),
             init("w2", RNG.normal(0, 0.2, (out, n)).astype(np.float32)), init("b2", RNG.normal(0, 0.1, out).astype(np.float32))]
    return make_model(nodes, [("x", [2, k])], [("y", [2, out])], inits)
