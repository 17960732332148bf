"""Merge consecutive Transposes and drop identity Transposes.

``Transpose(Transpose(x, p1), p2)`` reads ``x`` directly with the composed permutation
``p1[p2]``; when that is the identity the outer Transpose disappears (its users read ``x``).
The inner Transpose stays only if something else still uses it. A Transpose whose own
permutation is the identity is removed as well. Layout-conversion pairs that exporters leave
behind (NCHW->NHWC->NCHW) cancel this way.
"""

from __future__ import annotations

import onnx_ir as ir

from deploykit.passes._common import attr, bypass, is_onnx


def _perm(node: ir.Node) -> list[int] | None:
    perm = attr(node, "perm")
    if perm is not None:
        return list(perm)
    x = node.inputs[0]
    if x is None or x.shape is None:
        return None
    return list(reversed(range(len(x.shape))))


class TransposeCancellationPass(ir.passes.InPlacePass):
    """Compose Transpose chains; remove identity permutations."""

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        modified = False
        for node in list(model.graph):
            if node.graph is None or not is_onnx(node, "Transpose") or node.inputs[0] is None:
                continue
            p2 = _perm(node)
            if p2 is None:
                continue
            inner = node.inputs[0].producer()
            if inner is not None and is_onnx(inner, "Transpose") and inner.inputs[0] is not None:
                p1 = _perm(inner)
                if p1 is None or len(p1) != len(p2):
                    continue
                p2 = [p1[i] for i in p2]
                node.replace_input_with(0, inner.inputs[0])
                node.attributes["perm"] = ir.AttrInt64s("perm", p2)
                if not inner.outputs[0].uses() and not inner.outputs[0].is_graph_output():
                    model.graph.remove(inner, safe=True)
                modified = True
            if p2 == list(range(len(p2))) and bypass(node, node.inputs[0], node.outputs[0]):
                modified = True
        return ir.passes.PassResult(model, modified=modified)
