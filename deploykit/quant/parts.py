"""Parts of graph outputs: an output that is (through layout-only ops) a Concat of branches.

A detector's ``[1, 4 + classes, anchors]`` output joins box coordinates in pixels and class
probabilities in [0, 1]. Metrics over the whole tensor are dominated by the pixels: every class
score of an int8 YOLOv8 was zero while the output's cosine was 0.999. Each branch is therefore
scored on its own slice, and a branch computed by Sigmoid/Softmax is a probability part.

A :class:`ConcatTail` records how such an output is made from its branches: the Concat axis,
the branch shapes and the layout-only ops after it, as plain JSON-able data. It computes the
masks of the parts in the output (labels pushed through the same ops) and can rebuild the output
from the branches (a runner joining separately quantized branches in float).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# ops that only move data: the tail after the Concat may hold these (and element-wise ops, which
# keep positions but make the tail unusable for a runner-side join)
LAYOUT_OPS = frozenset({"Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Identity"})
# element-wise ops that keep every element in its place (a constant operand broadcasts into the output)
ELEMENTWISE_OPS = frozenset({"Relu", "Sigmoid", "Tanh", "Clip", "Mul", "Add", "Sub", "Div", "Neg", "Abs",
                             "LeakyRelu", "HardSigmoid", "Exp"})
PROBABILITY_OPS = frozenset({"Sigmoid", "Softmax", "HardSigmoid"})
MAX_PARTS = 8


@dataclass
class ConcatTail:
    """How graph output ``output`` is assembled from the branches of one Concat.

    :ivar branches: the Concat's input tensors, in order.
    :ivar shapes: their static shapes.
    :ivar axis: the Concat axis (non-negative).
    :ivar tail: ops after the Concat as ``[op, argument]``: ``["reshape", shape]``,
        ``["transpose", perm]`` or ``["elementwise", op_type]``.
    :ivar nodes: names of the Concat and the tail nodes (node keys), Concat first.
    :ivar probability: per branch, whether it is a probability (Sigmoid/Softmax producer).
    :ivar producers: per branch, the op type that computes it (for labels).
    :ivar sources: per branch, the tensor a runner-side join starts from: the input of a Sigmoid
        that computes the branch (and feeds only the Concat), else the branch itself.
    :ivar branch_ops: per branch, ops applied in float before the Concat (``["sigmoid"]`` or none).
    :ivar branch_nodes: node keys of those ops (part of the float tail when the Concat is split).
    """

    output: str
    branches: list[str]
    shapes: list[list[int]]
    axis: int
    tail: list[list[Any]] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)
    probability: list[bool] = field(default_factory=list)
    producers: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    branch_ops: list[list[str]] = field(default_factory=list)
    branch_nodes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.branches)
        self.sources = list(self.sources) or list(self.branches)
        self.branch_ops = [list(b) for b in self.branch_ops] or [[] for _ in range(n)]

    @property
    def float_nodes(self) -> list[str]:
        """Nodes computed in float when the Concat is split: branch ops, the Concat, the tail."""
        return [*self.branch_nodes, *self.nodes]

    @property
    def joinable(self) -> bool:
        """Only layout ops after the Concat: a runner can rebuild the output from the branches."""
        return all(op in ("reshape", "transpose") for op, _ in self.tail)

    def labels(self) -> list[str]:
        n = len(self.branches)
        return [f"part {i + 1}/{n} ({self.producers[i] or 'input'}{', probability' if self.probability[i] else ''})"
                for i in range(n)]

    def join(self, arrays: list[np.ndarray], from_sources: bool = False) -> np.ndarray:
        """The output from its branches (element-wise tail ops are not applied: see ``joinable``);
        ``from_sources``: ``arrays`` are the :attr:`sources` (branch ops applied first)."""
        arrays = [np.asarray(a) for a in arrays]
        if from_sources:
            arrays = [_apply(ops, a) for ops, a in zip(self.branch_ops, arrays)]
        y = np.concatenate(arrays, axis=self.axis)
        for op, arg in self.tail:
            if op == "reshape":
                y = y.reshape(arg)
            elif op == "transpose":
                y = np.transpose(y, arg)
        return y

    def masks(self) -> list[np.ndarray]:
        """Boolean masks (the output's shape) of each branch's elements."""
        labels = self.join([np.full(s, i, np.int32) for i, s in enumerate(self.shapes)])
        return [labels == i for i in range(len(self.branches))]

    def to_json(self) -> dict[str, Any]:
        return {"output": self.output, "branches": list(self.branches), "shapes": [list(s) for s in self.shapes],
                "axis": self.axis, "tail": [list(t) for t in self.tail], "nodes": list(self.nodes),
                "probability": list(self.probability), "producers": list(self.producers), "labels": self.labels(),
                "sources": list(self.sources), "branch_ops": [list(b) for b in self.branch_ops],
                "branch_nodes": list(self.branch_nodes)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ConcatTail:
        return cls(d["output"], list(d["branches"]), [list(s) for s in d["shapes"]], int(d["axis"]),
                   [list(t) for t in d.get("tail", [])], list(d.get("nodes", [])), list(d.get("probability", [])),
                   list(d.get("producers", [])), list(d.get("sources", [])), list(d.get("branch_ops", [])),
                   list(d.get("branch_nodes", [])))


def _apply(ops: list[str], a: np.ndarray) -> np.ndarray:
    for op in ops:
        if op == "sigmoid":
            a = (1.0 / (1.0 + np.exp(-a.astype(np.float32)))).astype(np.float32)
    return a


def _static_shape(value) -> list[int] | None:
    shape = getattr(value, "shape", None)
    if shape is None or not shape.is_static():
        return None
    return [int(d) for d in shape.dims]


def _is_const(value) -> bool:
    if value is None:
        return True
    if value.const_value is not None or value.is_initializer():
        return True
    p = value.producer()
    return p is not None and p.op_type == "Constant"


def _attr(node, name: str, default=None):
    a = node.attributes.get(name)
    return default if a is None else a.value


def _producer_op(value) -> str:
    """The op computing ``value``, looking through layout-only ops."""
    for _ in range(64):
        node = value.producer() if value is not None else None
        if node is None:
            return ""
        if node.op_type not in LAYOUT_OPS and node.op_type not in ("Slice", "Split", "Gather"):
            return node.op_type
        value = node.inputs[0] if node.inputs else None
    return ""


def find_concat_tails(model) -> dict[str, ConcatTail]:
    """Graph output -> :class:`ConcatTail` for outputs of an ``onnx_ir`` model made by one Concat
    (then layout-only or element-wise ops, each value with a single consumer). Outputs whose
    shapes are not static are skipped. Node keys follow :func:`deploykit.quant.plan._node_key`."""
    graph = model.graph
    keys = {id(n): (n.name or f"{n.op_type}#{k}") for k, n in enumerate(graph)}
    outputs = {v.name for v in graph.outputs}
    found: dict[str, ConcatTail] = {}
    for out_value in graph.outputs:
        chain = []
        value = out_value
        node = value.producer()
        while node is not None and node.op_type != "Concat":
            data_inputs = [v for v in node.inputs if not _is_const(v)]
            if node.op_type not in LAYOUT_OPS | ELEMENTWISE_OPS or len(data_inputs) != 1 or node.domain not in ("", "ai.onnx"):
                node = None
                break
            chain.append(node)
            value = data_inputs[0]
            if len(value.uses()) != 1 or value.name in outputs:
                node = None
                break
            node = value.producer()
        if node is None or not (2 <= len(node.inputs) <= MAX_PARTS) or any(v is None for v in node.inputs):
            continue
        branch_shapes = [_static_shape(v) for v in node.inputs]
        cat_shape = _static_shape(node.outputs[0])
        out_shape = _static_shape(out_value)
        if cat_shape is None or out_shape is None or any(sh is None for sh in branch_shapes):
            continue
        axis = int(_attr(node, "axis", 0))
        axis = axis + len(cat_shape) if axis < 0 else axis
        tail: list[list[Any]] = []
        ok = True
        for t in reversed(chain):
            t_out = _static_shape(t.outputs[0])
            if t.op_type in ELEMENTWISE_OPS:
                data_in = next(v for v in t.inputs if not _is_const(v))
                if t_out is None or t_out != _static_shape(data_in):
                    ok = False
                    break
                tail.append(["elementwise", t.op_type])
            elif t.op_type == "Transpose":
                perm = _attr(t, "perm")
                rank = len(_static_shape(t.inputs[0]) or [])
                tail.append(["transpose", [int(p) for p in perm] if perm else list(range(rank))[::-1]])
            elif t.op_type == "Identity":
                continue
            else:  # Reshape, Flatten, Squeeze, Unsqueeze: a reshape to the (static) output shape
                if t_out is None:
                    ok = False
                    break
                tail.append(["reshape", t_out])
        if not ok:
            continue
        producers = [_producer_op(v) for v in node.inputs]
        sources, branch_ops, branch_nodes = [], [], []
        for v in node.inputs:  # a Sigmoid computing a branch for the Concat alone: a join can apply it in float
            p = v.producer()
            if p is not None and p.op_type == "Sigmoid" and len(v.uses()) == 1 and p.inputs[0] is not None \
                    and _static_shape(p.inputs[0]) == _static_shape(v):
                sources.append(p.inputs[0].name)
                branch_ops.append(["sigmoid"])
                branch_nodes.append(keys[id(p)])
            else:
                sources.append(v.name)
                branch_ops.append([])
        ct = ConcatTail(out_value.name, [v.name for v in node.inputs], [list(sh) for sh in branch_shapes], axis, tail,
                        [keys[id(node)]] + [keys[id(t)] for t in reversed(chain)],
                        [p in PROBABILITY_OPS for p in producers], producers, sources, branch_ops, branch_nodes)
        try:
            if list(ct.masks()[0].shape) != out_shape:
                continue  # the recorded tail does not reproduce the output's shape: do not trust it
        except ValueError:
            continue
        found[out_value.name] = ct
    return found


def topk_agreement(ref: np.ndarray, out: np.ndarray, k: int | None = None) -> float:
    """Fraction of the ``k`` largest reference values whose positions are also among the output's
    ``k`` largest (default k: 1 % of the values, between 1 and 100). For probability parts of
    detectors: do the confident scores survive?"""
    r, o = np.ravel(ref), np.ravel(out)
    if r.size == 0:
        return 1.0
    k = k or int(min(100, max(1, math.ceil(r.size / 100))))
    k = min(k, r.size)
    top_r = np.argpartition(-r, k - 1)[:k]
    # ties in the output (e.g. every score quantized to zero) do not count as agreement
    kth = np.partition(-o, k - 1)[k - 1]
    top_o = set(np.nonzero(-o < kth)[0].tolist())
    ties = np.nonzero(-o == kth)[0]
    if len(top_o) + len(ties) <= k:
        top_o.update(ties.tolist())
    return float(len(top_o.intersection(top_r.tolist())) / k)


def cut_joined_outputs(model, joins: dict[str, ConcatTail]):
    """A copy of the ``onnx_ir`` model that ends at the branch sources of each joined output (the
    Concat, its tail and branch ops removed; the sources become graph outputs in its place)."""
    import onnx
    import onnx_ir as ir

    proto = ir.to_proto(model)
    g = proto.graph
    drop = {k for t in joins.values() for k in t.float_nodes}
    keep = [n for k, n in enumerate(g.node) if (n.name or f"{n.op_type}#{k}") not in drop]
    del g.node[:]
    g.node.extend(keep)
    values = {v.name: v for v in model.graph.outputs}
    for node in model.graph:
        values.update({v.name: v for v in node.outputs})
    outputs = []
    for out in g.output:
        t = joins.get(out.name)
        if t is None:
            outputs.append(out)
            continue
        for src in t.sources:
            v = values[src]
            elem = v.dtype.value if v.dtype is not None else onnx.TensorProto.FLOAT
            shape = [int(d) for d in v.shape.dims] if v.shape is not None else None
            outputs.append(onnx.helper.make_tensor_value_info(src, elem, shape))
    del g.output[:]
    g.output.extend(outputs)
    return ir.from_proto(proto)
