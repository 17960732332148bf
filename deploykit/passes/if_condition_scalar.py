"""Give ``If`` a scalar condition when it has a one-element condition of rank >= 2.

ONNX's ``If`` accepts any one-element boolean tensor, and exporters write ``[1, 1]`` (openWakeWord's
wake-word models test ``score >= 0.5`` on a ``[1, 1]`` score). OpenVINO's ONNX frontend requires rank
0 or 1 ("Rank of If condition input must be equal to 0 or 1"), so intel-cpu refused them. A
``Reshape`` to ``[]`` in front of the ``If`` is valid everywhere and changes nothing else.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from deploykit.passes._common import is_onnx, static_shape


def as_scalar(value: ir.Value) -> list[ir.Node]:
    """``Reshape(value, [])`` and its shape constant: the last node's output is ``value`` as a scalar."""
    empty = ir.node("Constant", [], attributes={"value": ir.tensor(np.zeros((0,), np.int64))})
    empty.outputs[0].shape, empty.outputs[0].type = ir.Shape([0]), ir.TensorType(ir.DataType.INT64)
    scalar = ir.node("Reshape", [value, empty.outputs[0]])
    scalar.outputs[0].shape, scalar.outputs[0].type = ir.Shape([]), value.type
    return [empty, scalar]


class IfConditionScalarPass(ir.passes.InPlacePass):
    """Reshape one-element If conditions of rank >= 2 to scalars."""

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        modified = False
        for node in list(ir.traversal.RecursiveGraphIterator(model.graph)):
            if not is_onnx(node, "If") or node.graph is None or not node.inputs or node.inputs[0] is None:
                continue
            cond = node.inputs[0]
            shape = static_shape(cond)
            if shape is None or len(shape) < 2 or int(np.prod(shape)) != 1:
                continue
            nodes = as_scalar(cond)
            node.graph.insert_before(node, nodes)
            node.replace_input_with(0, nodes[-1].outputs[0])
            modified = True
        return ir.passes.PassResult(model, modified=modified)
