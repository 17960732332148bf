"""Dead-code elimination: nodes whose outputs nobody uses, then unused initializers.

Wraps onnx_ir's :class:`~onnx_ir.passes.common.RemoveUnusedNodesPass` (which also drops
initializers no node reads) and removes opset imports and local functions nothing refers to.
Graph inputs are never removed: they are the model's contract, even when unused.
"""

from __future__ import annotations

import onnx_ir as ir
from onnx_ir.passes.common import RemoveUnusedFunctionsPass, RemoveUnusedNodesPass


def _fingerprint(model: ir.Model) -> tuple[int, int, int]:
    nodes = sum(1 for _ in ir.traversal.RecursiveGraphIterator(model.graph))
    return nodes, len(model.graph.initializers), len(model.functions)


class DeadCodeEliminationPass(ir.passes.InPlacePass):
    """Remove unused nodes, initializers and local functions."""

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        before = _fingerprint(model)
        RemoveUnusedNodesPass()(model)
        RemoveUnusedFunctionsPass()(model)
        return ir.passes.PassResult(model, modified=_fingerprint(model) != before)
