"""A tiny classifier built with onnx.helper for the effect-report tests."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CONV_MACS = 8 * 8 * 8 * (3 * 3 * 3)  # out [1,8,8,8] x kernel 3x3x3
FC_MACS = 4 * 8


def tiny_classifier(seed: int = 0, input_name: str = "x", output_name: str = "probs", scale: float = 1.0) -> onnx.ModelProto:
    """x[1,3,8,8] -> Conv 3x3 (8) -> Relu -> GAP -> Flatten -> Gemm (4) -> Softmax."""
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((8, 3, 3, 3)) * 0.5 * scale).astype(np.float32)
    b = (rng.standard_normal(8) * 0.1).astype(np.float32)
    wf = rng.standard_normal((4, 8)).astype(np.float32)
    bf = np.zeros(4, np.float32)
    nodes = [
        helper.make_node("Conv", [input_name, "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], transB=1, name="fc"),
        helper.make_node("Softmax", ["logits"], [output_name], axis=-1, name="softmax"),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(a, n) for n, a in (("w", w), ("b", b), ("wf", wf), ("bf", bf))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def feeds(n: int, seed: int = 1, input_name: str = "x") -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{input_name: rng.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(n)]


def labels_of(model: onnx.ModelProto, inputs) -> list[int]:
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return [int(np.argmax(sess.run(None, f)[0])) for f in inputs]
