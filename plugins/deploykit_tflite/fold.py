"""Build-time folding of nodes whose result is known: all inputs constant, or ``Shape``/``Size``
of a statically shaped value. Evaluated with ``onnx.reference`` (one node at a time)."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir

NEVER_FOLD = frozenset({"If", "Loop", "Scan", "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial"})
MAX_FOLDED_ELEMENTS = 64 * 1024 * 1024


def is_foldable(node: ir.Node, is_const) -> bool:
    """``is_const(value) -> bool``; True when the node's outputs can be computed at build time."""
    if node.domain not in ("", "ai.onnx") or node.op_type in NEVER_FOLD:
        return False
    if node.op_type in ("Shape", "Size"):
        v = node.inputs[0]
        return v is not None and v.shape is not None and v.shape.is_static()
    inputs = [v for v in node.inputs if v is not None]
    return all(is_const(v) for v in inputs)


def evaluate(node: ir.Node, values: list[np.ndarray | None], opset: int) -> list[np.ndarray]:
    from onnx.reference import ReferenceEvaluator

    proto = ir.serde.serialize_node(node)
    names = [f"i{i}" if v is not None else "" for i, v in enumerate(values)]
    outs = [f"o{i}" for i in range(len(node.outputs))]
    del proto.input[:]
    proto.input.extend(names)
    del proto.output[:]
    proto.output.extend(outs)
    inputs = [onnx.helper.make_tensor_value_info(n, onnx.helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
              for n, v in zip(names, values) if v is not None]
    graph = onnx.helper.make_graph([proto], "fold", inputs, [onnx.helper.make_value_info(o, onnx.TypeProto()) for o in outs])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
    feeds = {n: v for n, v in zip(names, values) if v is not None}
    return [np.asarray(r) for r in ReferenceEvaluator(model).run(None, feeds)]


def fold_node(ctx, node: ir.Node) -> bool:
    """Fold ``node`` into ``ctx.consts`` when possible; returns True when folded."""
    if not is_foldable(node, lambda v: v.name in ctx.consts):
        return False
    if node.op_type == "Shape":
        shape = ctx.shape(node.inputs[0])
        start = node.attributes.get_int("start", 0)
        end = node.attributes.get_int("end", len(shape))
        ctx.consts[node.outputs[0].name] = np.asarray(shape[start:end], np.int64)
        return True
    if node.op_type == "Size":
        ctx.consts[node.outputs[0].name] = np.asarray(int(np.prod(ctx.shape(node.inputs[0]))), np.int64)
        return True
    values = [None if v is None else ctx.consts[v.name] for v in node.inputs]
    opset = ctx.model.opset_imports.get("", 13)
    results = evaluate(node, values, opset)
    if sum(r.size for r in results) > MAX_FOLDED_ELEMENTS:
        return False
    for v, r in zip(node.outputs, results):
        ctx.consts[v.name] = r
    return True
