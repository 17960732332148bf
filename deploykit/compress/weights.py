"""Which constant weights of a model the per-layer techniques may rewrite (not a technique itself)."""

from __future__ import annotations

from dataclasses import dataclass

from deploykit.compress._graph import GraphIndex, is_onnx

MIN_WEIGHTS = 64  # smaller tensors are not worth clustering / pruning (and are often scales)


@dataclass
class WeightLayer:
    node: str       # node name
    op_type: str
    weight: str     # initializer name


def weight_layers(index: GraphIndex, min_size: int = MIN_WEIGHTS) -> list[WeightLayer]:
    """Conv / ConvTranspose / Gemm / MatMul nodes whose weight input (index 1) is a float
    initializer read by this node only (shared weights are left alone)."""
    layers = []
    for node in index.model.graph.node:
        if not is_onnx(node, "Conv", "ConvTranspose", "Gemm", "MatMul") or len(node.input) < 2:
            continue
        name = node.input[1]
        if not index.is_param(name) or len(index.consumers.get(name, [])) != 1:
            continue
        w = index.const(name)
        if w is None or w.dtype.kind != "f" or w.size < min_size:
            continue
        layers.append(WeightLayer(node.name or name, node.op_type, name))
    return layers
