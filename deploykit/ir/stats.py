"""Model statistics for ``deploykit inspect``: op counts, parameters, MACs per node."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import onnx_ir as ir


def _shape(value: ir.Value | None) -> list[int] | None:
    if value is None or value.shape is None:
        return None
    dims = list(value.shape)
    return dims if all(isinstance(d, int) and d >= 0 for d in dims) else None


def _numel(shape: list[int] | None) -> int:
    return int(math.prod(shape)) if shape is not None else 0


def node_macs(node: ir.Node) -> int:
    """Multiply-accumulates of one node (0 where not meaningful or shapes are unknown)."""
    op = node.op_type
    out = _shape(node.outputs[0]) if node.outputs else None
    if op in ("Conv", "ConvInteger", "QLinearConv"):
        w = _shape(node.inputs[1] if op == "Conv" else node.inputs[3 if op == "QLinearConv" else 1])
        if out is None or w is None or len(w) < 3:
            return 0
        return _numel(out) * int(math.prod(w[1:]))
    if op == "ConvTranspose":
        x, w = _shape(node.inputs[0]), _shape(node.inputs[1])
        if x is None or w is None:
            return 0
        return _numel(x) * int(math.prod(w[1:]))
    if op in ("MatMul", "MatMulInteger", "Gemm"):
        a = _shape(node.inputs[0])
        if out is None or not a:  # unknown, or rank 0 (an invalid model inspect still describes)
            return 0
        k = a[-1]
        if op == "Gemm":
            trans_a = node.attributes.get("transA")
            if trans_a is not None and trans_a.as_int():
                k = a[0]
        return _numel(out) * k
    return 0


@dataclass
class ModelStats:
    ops: Counter = field(default_factory=Counter)
    params: int = 0
    param_bytes: int = 0
    macs: int = 0
    node_macs: dict[str, int] = field(default_factory=dict)

    @property
    def flops(self) -> int:
        """Approximate FLOPs (2 per MAC)."""
        return 2 * self.macs

    def to_json(self) -> dict:
        return {"ops": dict(sorted(self.ops.items())), "params": self.params, "param_bytes": self.param_bytes,
                "macs": self.macs, "flops": self.flops}


def model_stats(model: ir.Model) -> ModelStats:
    stats = ModelStats()
    for init in model.graph.initializers.values():
        if init.const_value is not None:
            n = _numel(list(init.const_value.shape))
            stats.params += n
            stats.param_bytes += init.const_value.nbytes
    for i, node in enumerate(ir.traversal.RecursiveGraphIterator(model.graph)):
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            value = node.attributes.get("value")
            if value is not None and value.type == ir.AttributeType.TENSOR:
                stats.params += value.as_tensor().size
                stats.param_bytes += value.as_tensor().nbytes
        stats.ops[node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"] += 1
        macs = node_macs(node)
        if macs:
            stats.node_macs[node.name or f"#{i}"] = macs
            stats.macs += macs
    return stats
