"""Remove nodes that compute nothing at inference time.

* ``Identity`` (onnx_ir's :class:`~onnx_ir.passes.common.IdentityEliminationPass` rules);
* ``Dropout`` in inference mode (no ``training_mode`` input, or a constant ``False`` one) whose
  mask output is unused;
* ``Cast`` / ``CastLike`` to the dtype the input already has;
* ``Reshape`` / ``Flatten`` / ``Squeeze`` / ``Unsqueeze`` / ``Expand`` whose (static) output
  shape equals the (static) input shape.

Graph output names never change: when the removed node produces a graph output, its input
value is renamed to the output's name; when that is impossible (the input is a graph input,
an initializer or another output) the node stays.
"""

from __future__ import annotations

import onnx_ir as ir

from deploykit.passes._common import attr, bypass, const_array, is_onnx, static_shape

_SHAPE_ONLY = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Expand")


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


class IdentityEliminationPass(ir.passes.InPlacePass):
    """Drop Identity, inference Dropout, no-op Cast and no-op reshapes (see module doc)."""

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        modified = False
        graphs = [model.graph, *model.functions.values()]
        for graph in graphs:
            for node in list(ir.traversal.RecursiveGraphIterator(graph)):
                if node.graph is None or not _is_noop(node):
                    continue
                if bypass(node, node.inputs[0], node.outputs[0]):
                    modified = True
        return ir.passes.PassResult(model, modified=modified)
