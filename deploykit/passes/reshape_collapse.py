"""Collapse chains of pure shape changes into one Reshape.

``Reshape(S(x), shape)`` where ``S`` is a Reshape, Flatten, Squeeze or Unsqueeze reads ``x``
directly: those ops only change the shape, and the final Reshape fixes the shape anyway. This
holds only when the final shape is a constant without ``0`` entries (a ``0`` copies a dim of the
*intermediate* tensor unless ``allowzero=1``); ``-1`` is fine. The intermediate op stays if it
has other users.
"""

from __future__ import annotations

import onnx_ir as ir

from deploykit.passes._common import attr, const_array, is_onnx

_SHAPE_ONLY = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")


class ReshapeCollapsePass(ir.passes.InPlacePass):
    """Let a Reshape skip a preceding Reshape/Flatten/Squeeze/Unsqueeze."""

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        modified = False
        for node in list(model.graph):
            if not is_onnx(node, "Reshape") or len(node.inputs) < 2 or node.inputs[0] is None:
                continue
            shape = const_array(node.inputs[1])
            if shape is None or (0 in shape.tolist() and not attr(node, "allowzero", 0)):
                continue
            inner = node.inputs[0].producer()
            if inner is None or not is_onnx(inner, *_SHAPE_ONLY) or inner.inputs[0] is None:
                continue
            node.replace_input_with(0, inner.inputs[0])
            if not inner.outputs[0].uses() and not inner.outputs[0].is_graph_output():
                model.graph.remove(inner, safe=True)
            modified = True
        return ir.passes.PassResult(model, modified=modified)
