"""Helpers for the pass tests: build small models, run them in onnxruntime, compare."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

F32 = TensorProto.FLOAT


def init(name: str, array) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def make_model(nodes, inputs, outputs, initializers=(), opset: int = 17) -> onnx.ModelProto:
    """``inputs``/``outputs``: ``[(name, shape)]`` float32 tensors (shape may be None for outputs)."""
    graph = helper.make_graph(
        nodes,
        "test",
        [helper.make_tensor_value_info(n, F32, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, F32, s) for n, s in outputs],
        list(initializers),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return onnx.shape_inference.infer_shapes(model)


def to_ir(proto: onnx.ModelProto) -> ir.Model:
    return ir.from_proto(proto)


def run(model: onnx.ModelProto | ir.Model, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    proto = ir.to_proto(model) if isinstance(model, ir.Model) else model
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def random_feeds(proto: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for vi in proto.graph.input:
        shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        feeds[vi.name] = rng.standard_normal(shape).astype(np.float32) * 3
    return feeds


def assert_same_outputs(before: onnx.ModelProto, after: ir.Model | onnx.ModelProto, feeds=None, rtol=1e-5) -> None:
    """ORT outputs of ``before`` and ``after`` agree (atol relative to the output range)."""
    feeds = feeds if feeds is not None else random_feeds(before)
    ref, got = run(before, feeds), run(after, feeds)
    assert len(ref) == len(got)
    for r, g in zip(ref, got):
        assert r.shape == g.shape and r.dtype == g.dtype
        scale = float(np.abs(r).max()) if r.size else 0.0
        np.testing.assert_allclose(g, r, rtol=rtol, atol=1e-4 * max(scale, 1.0))


def op_types(model: ir.Model) -> list[str]:
    return [n.op_type for n in model.graph]


def apply(pass_cls, proto: onnx.ModelProto, **kwargs):
    """Run one pass on a fresh IR copy of ``proto``; return ``(model, modified)``."""
    model = to_ir(proto)
    result = pass_cls(**kwargs)(model)
    return result.model, result.modified


helper = helper
