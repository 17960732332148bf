"""Normalization statistics: the nodes that stay float on mixed-precision targets.

A normalization divides by a statistic (variance, norm) whose small values matter: ``var + eps``
near zero decides ``1/sqrt(var + eps)``. Exporters spell the statistic out step by step, e.g.
jax2tf's LayerNorm: ``mean = ReduceSum(x) * 1/C``, ``var = ReduceSum(x*x) * 1/C - mean*mean``,
``Max(0, var)``, ``+ eps``, ``Sqrt``, ``Reciprocal``, ``* gamma``. In int8 the subtraction of two
nearly equal numbers keeps nothing of a row's variance when it is small against the mean (padding,
runs of one byte), the reciprocal of its square root explodes, and the output breaks on inputs the
calibration set did not happen to cover (magika: held-out cosine 0.0003 on 2 of 12 files).

So every tensor computed from a reduction and constants alone (the *statistics chain*) is a
statistic, and every node reading one stays float: the chain itself and the nodes that apply
it to the activations (``x - mean``, ``xc * rstd``). A reduction whose statistic is applied that
way (read by anything but a dot product: not an SE block's ReduceMean -> Conv) stays float too,
with the square it sums (``x*x``, ``Pow(x, 2)``): an int8 ``E[x^2]`` loses the variance before the
subtraction. Apart from the square, these tensors have one value per position, so the float ops
are cheap.
"""

from __future__ import annotations

from deploykit.quant.collect import GraphIndex
from deploykit.quant.plan import _node_key
from deploykit.quant.roles import WEIGHT_OPS

# Reductions that compute statistics (not ReduceMax/Min: a softmax's max is no statistic)
REDUCTIONS = frozenset({"ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL2"})
# Ops whose consumers see statistics even when their input is no reduction (x^2, norms, reciprocals)
STATISTICS_OPS = REDUCTIONS | {"Pow", "Sqrt", "Reciprocal"}
# Element-wise and shape ops that carry a statistic along: their output is one when every data
# input is a statistic or a constant
CHAIN_OPS = frozenset({
    "Add", "Sub", "Mul", "Div", "Max", "Min", "Pow", "Sqrt", "Reciprocal", "Neg", "Abs", "Clip",
    "Relu", "Reshape", "Expand", "Unsqueeze", "Squeeze", "Flatten", "Identity", "Cast", "Transpose",
})
# Ops whose later inputs are shapes or axes, not data
_FIRST_INPUT_ONLY = frozenset({"Reshape", "Expand", "Unsqueeze", "Squeeze", "Clip", "Flatten", "Transpose"})


def statistics_tensors(index: GraphIndex) -> set[str]:
    """Tensors computed from a statistics reduction and constants only."""
    stats: set[str] = set()
    for node in index.model.graph.node:  # topological order
        if node.op_type in REDUCTIONS:
            stats.update(o for o in node.output if o)
            continue
        if node.op_type not in CHAIN_OPS:
            continue
        data = node.input[:1] if node.op_type in _FIRST_INPUT_ONLY else node.input
        live = [i for i in data if i and index.const(i) is None]
        if live and all(i in stats for i in live):
            stats.update(o for o in node.output if o)
    return stats


def statistics_nodes(index: GraphIndex) -> set[str]:
    """Keys of the nodes that stay float: see the module docstring."""
    stats = statistics_tensors(index)
    readers = {}  # node id -> node key, for the nodes that read a statistic
    for k, node in enumerate(index.model.graph.node):
        if node.op_type in WEIGHT_OPS:
            continue
        if any(i in stats or ((p := index.producer.get(i)) is not None and p.op_type in STATISTICS_OPS)
               for i in node.input if i):
            readers[id(node)] = _node_key(node, k)
    keys = set(readers.values())
    for k, node in enumerate(index.model.graph.node):
        if node.op_type in REDUCTIONS and _applied(index, node.output[0], stats, readers):
            keys.add(_node_key(node, k))
            square = index.producer.get(node.input[0]) if node.input else None
            if square is not None and _is_square(index, square):
                keys.add(_node_key(square, list(index.model.graph.node).index(square)))
    return keys


def _applied(index: GraphIndex, tensor: str, stats: set[str], readers: dict) -> bool:
    """Whether the statistic ``tensor`` reaches a float reader that is not itself in the chain
    (it normalizes something) -- searched along the chain."""
    seen, todo = set(), [tensor]
    while todo:
        t = todo.pop()
        if t in seen:
            continue
        seen.add(t)
        for node, _ in index.consumers.get(t, []):
            if id(node) not in readers:
                continue
            chained = [o for o in node.output if o in stats]
            if not chained:
                return True
            todo += chained
    return False


def _is_square(index: GraphIndex, node) -> bool:
    if node.op_type == "Mul" and len(node.input) == 2 and node.input[0] == node.input[1]:
        return True
    if node.op_type == "Pow" and len(node.input) == 2:
        e = index.const(node.input[1])
        return e is not None and e.size == 1 and float(e.ravel()[0]) == 2.0
    return False
