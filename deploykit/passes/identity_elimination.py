"""Remove nodes that compute nothing at inference time.

* ``Identity`` (onnx_ir's :class:`~onnx_ir.passes.common.IdentityEliminationPass` rules);
* ``Dropout`` in inference mode (no ``training_mode`` input, or a constant ``False`` one) whose
  mask output is unused;
* ``Cast`` / ``CastLike`` to the dtype the input already has;
* ``Reshape`` / ``Flatten`` / ``Squeeze`` / ``Unsqueeze`` / ``Expand`` whose (static) output
  shape equals the (static) input shape;
* ``Max(x, -inf)`` / ``Min(x, +inf)`` that do not broadcast ``x`` (a JAX softmax spells
  ``Max(-inf, ReduceMax(x))``; an infinite constant has no int8 form);
* ``Expand`` read only by broadcasting element-wise ops whose output shapes stay the same without
  it (``x / norm.expand_as(x)`` of ``F.normalize``: TFLite's BROADCAST_TO has no XNNPACK kernel).

Graph output names never change: when the removed node produces a graph output, its input
value is renamed to the output's name; when that is impossible (the input is a graph input,
an initializer or another output) the node stays.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from deploykit.passes._common import attr, bypass, const_array, is_onnx, static_shape

_SHAPE_ONLY = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Expand")
# element-wise ops with multidirectional (numpy) broadcasting of every input
_BROADCASTING = ("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Equal", "Less", "Greater",
                 "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", "Where", "BitShift", "Mod")


def _broadcast(shapes) -> tuple[int, ...] | None:
    try:
        return tuple(int(d) for d in np.broadcast_shapes(*shapes))
    except ValueError:
        return None


def _redundant_expand(node: ir.Node) -> bool:
    """An Expand whose every reader broadcasts anyway and keeps its output shape without it."""
    if not is_onnx(node, "Expand") or not node.inputs or node.inputs[0] is None:
        return False
    x, y = node.inputs[0], node.outputs[0]
    if y.is_graph_output() or static_shape(x) is None or not y.uses():
        return False
    for user, _ in y.uses():
        if not is_onnx(user, *_BROADCASTING) or len(user.outputs) != 1:
            return False
        shapes = [static_shape(x if v is y else v) for v in user.inputs]
        out = static_shape(user.outputs[0])
        if out is None or any(sh is None for sh in shapes) or _broadcast(shapes) != out:
            return False
    return True


def _is_noop(node: ir.Node) -> bool:
    if not node.inputs or node.inputs[0] is None:
        return False
    x, y = node.inputs[0], node.outputs[0]
    if is_onnx(node, "Identity"):
        return True
    if is_onnx(node, "Dropout"):
        if len(node.outputs) > 1 and (node.outputs[1].uses() or node.outputs[1].is_graph_output()):
            return False
        if len(node.inputs) > 2 and node.inputs[2] is not None:
            training = const_array(node.inputs[2])
            return training is not None and not bool(training.reshape(-1)[0])
        return attr(node, "is_test", 1) != 0
    if is_onnx(node, "Cast"):
        to = attr(node, "to")
        return x.dtype is not None and to is not None and int(x.dtype) == int(to)
    if is_onnx(node, "CastLike"):
        return x.dtype is not None and node.inputs[1] is not None and x.dtype == node.inputs[1].dtype
    if is_onnx(node, *_SHAPE_ONLY):
        sx, sy = static_shape(x), static_shape(y)
        return sx is not None and sx == sy and (x.dtype is None or y.dtype is None or x.dtype == y.dtype)
    return False


def _infinite_bound_operand(node: ir.Node) -> ir.Value | None:
    """The operand ``x`` of ``Max(x, -inf...)`` / ``Min(x, +inf...)`` (2 inputs, either order) when
    the constant neither changes ``x``'s shape nor its dtype; else ``None``."""
    if not is_onnx(node, "Max", "Min") or len(node.inputs) != 2 or any(v is None for v in node.inputs):
        return None
    inf = -np.inf if node.op_type == "Max" else np.inf
    for k in (0, 1):
        c, x = const_array(node.inputs[k]), node.inputs[1 - k]
        if c is None or c.size == 0 or c.dtype.kind != "f" or not np.all(c == inf):
            continue
        sx, sy = static_shape(x), static_shape(node.outputs[0])
        if c.size == 1 and x.shape is not None and c.ndim <= len(x.shape):
            return x
        if sx is not None and sx == sy:
            return x
    return None


class IdentityEliminationPass(ir.passes.InPlacePass):
    """Drop Identity, inference Dropout, no-op Cast and no-op reshapes (see module doc)."""

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        modified = False
        graphs = [model.graph, *model.functions.values()]
        for graph in graphs:
            for node in list(ir.traversal.RecursiveGraphIterator(graph)):
                if node.graph is None:
                    continue
                src = node.inputs[0] if (_is_noop(node) or _redundant_expand(node)) else _infinite_bound_operand(node)
                if src is not None and bypass(node, src, node.outputs[0]):
                    modified = True
        return ir.passes.PassResult(model, modified=modified)
