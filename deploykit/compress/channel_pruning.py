"""Structured channel pruning: remove output channels of Conv/Gemm/MatMul layers and fix every
consumer, giving a smaller dense model that every backend runs faster.

Channels are pruned per *group*: the set of tensors that must keep the same channel indices.
Starting from a producing layer (``Conv`` with ``group=1``, ``Gemm``, ``MatMul`` with a constant
weight), the group grows through channel-wise ops:

- *pass-through*: unary activations, ``Clip``, ``BatchNormalization`` (its parameters are sliced),
  depthwise ``Conv`` (weight, bias and ``group`` sliced), pooling, ``Add/Sub/Mul/Div/PRelu`` with a
  per-channel constant (sliced) — and the same ops with two variable inputs (a residual ``Add``, a
  squeeze-excite ``Mul``), which pull the other branch's producer into the group, so that every
  branch is pruned identically;
- *consumers* whose input dimension shrinks: ``Conv`` (``group=1``), ``Gemm``/``MatMul`` with a
  constant weight, ``Flatten`` feeding them.

A group that reaches anything else (a graph input/output, ``Concat``, ``Reshape``, ``Transpose``,
grouped convs, ...) is left alone and reported as skipped with the reason. Channels are ranked by
the L2 norm of their filters over all producing layers (scaled by a following BatchNorm), and the
kept count is rounded to a multiple of 4 for wide layers (SIMD friendly).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import onnx

from deploykit.compress._graph import GraphIndex, attr, copy_model, is_onnx, refresh_shapes, set_attr

UNARY = {"Relu", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Elu", "Selu", "Celu", "Softplus",
         "Softsign", "Gelu", "Identity", "Clip", "Mish", "ThresholdedRelu", "Erf", "Neg", "Abs"}
POOL = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool", "GlobalLpPool"}
BINARY = {"Add", "Sub", "Mul", "Div", "PRelu"}
AUTO_RATIOS = (0.125, 0.25, 0.375, 0.5, 0.625, 0.75)


class Unprunable(Exception):
    """The group reaches an op whose channels cannot be sliced; the message says which and why."""


@dataclass
class Group:
    """Tensors sharing one channel axis, and what to slice when channels go."""

    key: str
    axis: int
    rank: int
    channels: int
    tensors: set[str] = field(default_factory=set)
    sources: list[onnx.NodeProto] = field(default_factory=list)
    passthrough: list[onnx.NodeProto] = field(default_factory=list)
    consumers: list[tuple[onnx.NodeProto, int]] = field(default_factory=list)  # (node, spatial size for Flatten)
    macs: int = 0

    def to_json(self) -> dict:
        return {"channels": self.channels, "layers": [n.name for n in self.sources],
                "consumers": [n.name for n, _ in self.consumers]}


def _shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    shapes = {}
    for vi in [*model.graph.value_info, *model.graph.input, *model.graph.output]:
        t = vi.type.tensor_type
        if t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim):
            shapes[vi.name] = [d.dim_value for d in t.shape.dim]
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


class GroupFinder:
    """Grows channel groups from the producing layers of a shape-inferred model."""

    def __init__(self, model: onnx.ModelProto):
        self.index = GraphIndex(model)
        self.shapes = _shapes(model if model.graph.value_info else refresh_shapes(copy_model(model)))

    def source_axis(self, node: onnx.NodeProto) -> int | None:
        """Channel axis of ``node``'s output when it is a producing layer with a constant weight."""
        ix = self.index
        if len(node.input) < 2 or ix.const(node.input[1]) is None or len(node.output) != 1:
            return None
        if is_onnx(node, "Conv") and attr(node, "group", 1) == 1:
            return 1
        w = ix.const(node.input[1])
        if is_onnx(node, "Gemm") and not attr(node, "transA", 0) and w.ndim == 2:
            return 1
        if is_onnx(node, "MatMul") and w.ndim == 2 and node.output[0] in self.shapes:
            return len(self.shapes[node.output[0]]) - 1
        return None

    def grow(self, seed: onnx.NodeProto) -> Group:
        axis = self.source_axis(seed)
        out = seed.output[0]
        if out not in self.shapes:
            raise Unprunable("output shape unknown")
        shape = self.shapes[out]
        group = Group(key=seed.name, axis=axis, rank=len(shape), channels=shape[axis])
        seen_nodes: set[tuple[int, str]] = set()  # (node, role): a conv may consume and produce one group
        queue = [out]
        while queue:
            t = queue.pop()
            if t in group.tensors:
                continue
            self._check_tensor(group, t)
            group.tensors.add(t)
            queue += self._visit_producer(group, t, seen_nodes)
            for node in self.index.consumers.get(t, []):
                queue += self._visit_consumer(group, node, t, seen_nodes)
        return group

    def _check_tensor(self, group: Group, t: str) -> None:
        if t in self.index.graph_outputs:
            raise Unprunable(f"channels reach graph output {t!r}")
        if t in self.index.graph_inputs:
            raise Unprunable(f"channels reach graph input {t!r}")
        shape = self.shapes.get(t)
        if shape is None or len(shape) != group.rank or shape[group.axis] != group.channels:
            raise Unprunable(f"tensor {t!r} has shape {shape}, not {group.channels} channels on axis {group.axis}")

    def _visit_producer(self, group: Group, t: str, seen: set[tuple[int, str]]) -> list[str]:
        node = self.index.producer.get(t)
        if node is None:
            raise Unprunable(f"tensor {t!r} has no producer")
        if (id(node), "source") in seen or (id(node), "pass") in seen:
            return []
        if self.source_axis(node) == group.axis:
            seen.add((id(node), "source"))
            group.sources.append(node)
            group.macs += self._macs(node)
            return []
        seen.add((id(node), "pass"))
        return self._passthrough(group, node)

    def _visit_consumer(self, group: Group, node: onnx.NodeProto, t: str, seen: set[tuple[int, str]]) -> list[str]:
        if (id(node), "consumer") in seen or (id(node), "pass") in seen:
            return []
        ix = self.index
        data_only = len(node.input) >= 2 and node.input[0] == t and t not in node.input[1:]
        if is_onnx(node, "Conv") and data_only and attr(node, "group", 1) == 1 and ix.const(node.input[1]) is not None:
            seen.add((id(node), "consumer"))
            group.consumers.append((node, 1))
            group.macs += self._macs(node)
            return []
        if is_onnx(node, "Gemm", "MatMul") and data_only and self._matrix_consumer(node, group.axis == group.rank - 1):
            seen.add((id(node), "consumer"))
            group.consumers.append((node, 1))
            group.macs += self._macs(node)
            return []
        if is_onnx(node, "Flatten") and attr(node, "axis", 1) == 1 and group.axis == 1:
            users = ix.consumers.get(node.output[0], [])
            shape = self.shapes.get(t)
            if (users and node.output[0] not in ix.graph_outputs and shape
                    and all(is_onnx(u, "Gemm", "MatMul") and u.input[0] == node.output[0] and self._matrix_consumer(u, True)
                            for u in users)):
                seen.add((id(node), "pass"))
                spatial = math.prod(shape[2:])
                for u in users:
                    seen.add((id(u), "consumer"))
                    group.consumers.append((u, spatial))
                    group.macs += self._macs(u)
                return []
            raise Unprunable(f"Flatten {node.name!r} does not feed only Gemm/MatMul layers")
        if (id(node), "source") in seen:
            raise Unprunable(f"{node.op_type} {node.name!r} reads and writes these channels in a way that cannot be sliced")
        seen.add((id(node), "pass"))
        return self._passthrough(group, node)

    def _matrix_consumer(self, node: onnx.NodeProto, last_axis: bool) -> bool:
        w = self.index.const(node.input[1])
        if w is None or w.ndim != 2 or not last_axis:
            return False
        return not (node.op_type == "Gemm" and attr(node, "transA", 0))

    def _passthrough(self, group: Group, node: onnx.NodeProto) -> list[str]:
        """Validate a channel-wise op; return its tensors that join the group."""
        ix, op = self.index, node.op_type
        where = f"{op} {node.name!r}"
        if node.domain not in ("", "ai.onnx"):
            raise Unprunable(f"{where} is a custom op")
        outs = [o for o in node.output if o]
        if len(outs) != 1:
            raise Unprunable(f"{where} has {len(outs)} outputs")
        if op in UNARY or op in POOL:
            if op == "Clip" and any(i and ix.const(i) is None for i in node.input[1:]):
                raise Unprunable(f"{where} has non-constant bounds")
            if op in POOL and group.axis != 1:
                raise Unprunable(f"{where} pools a non-channel-first tensor")
            group.passthrough.append(node)
            return [node.input[0], node.output[0]]
        if op == "BatchNormalization":
            if group.axis != 1:
                raise Unprunable(f"{where} normalizes axis 1, not the pruned axis {group.axis}")
            if any(ix.const(i) is None for i in node.input[1:5]):
                raise Unprunable(f"{where} has non-constant parameters")
            group.passthrough.append(node)
            return [node.input[0], node.output[0]]
        if op == "Conv":
            w = ix.const(node.input[1])
            g = attr(node, "group", 1)
            if w is None or g != group.channels or w.shape[0] != g or w.shape[1] != 1 or group.axis != 1:
                raise Unprunable(f"{where} is a grouped convolution that is not depthwise over these channels")
            if len(node.input) > 2 and node.input[2] and ix.const(node.input[2]) is None:
                raise Unprunable(f"{where} has a non-constant bias")
            group.passthrough.append(node)
            group.macs += self._macs(node)
            return [node.input[0], node.output[0]]
        if op in BINARY:
            joined = [node.output[0]]
            for name in node.input[:2]:
                c = ix.const(name)
                if c is None:
                    joined.append(name)
                    continue
                k = group.axis - (group.rank - c.ndim)
                if c.ndim > group.rank or (k >= 0 and c.shape[k] not in (1, group.channels)):
                    raise Unprunable(f"{where} has a constant of shape {list(c.shape)}")
            group.passthrough.append(node)
            return joined
        raise Unprunable(f"channels reach {where}, which cannot be sliced per channel")

    def _macs(self, node: onnx.NodeProto) -> int:
        w = self.index.const(node.input[1])
        out = self.shapes.get(node.output[0])
        if w is None or out is None:
            return 0
        if node.op_type == "Conv":
            return math.prod(out) * math.prod(w.shape[1:])
        return math.prod(out) * (w.shape[1] if node.op_type == "Gemm" and attr(node, "transB", 0) else w.shape[0])


def find_groups(model: onnx.ModelProto) -> tuple[dict[str, Group], list[dict]]:
    """Every prunable channel group (by the name of its first producing layer) and skipped layers."""
    finder = GroupFinder(model)
    groups: dict[str, Group] = {}
    skipped: list[dict] = []
    done: set[str] = set()
    for node in model.graph.node:
        if finder.source_axis(node) is None or node.output[0] in done:
            continue
        try:
            group = finder.grow(node)
        except Unprunable as e:
            done.add(node.output[0])
            skipped.append({"layer": node.name, "reason": str(e)})
            continue
        done.update(group.tensors)
        if group.channels < 4:
            skipped.append({"layer": node.name, "reason": f"only {group.channels} channels"})
            continue
        groups[group.key] = group
    return groups, skipped


def importance(index: GraphIndex, group: Group) -> np.ndarray:
    """Per-channel score: L2 norms of the producing filters, each layer normalized to mean 1."""
    score = np.zeros(group.channels)
    for node in group.sources:
        w = index.const(node.input[1]).astype(np.float64)
        if node.op_type == "Conv":
            norms = np.sqrt((w.reshape(w.shape[0], -1) ** 2).sum(1))
        elif node.op_type == "Gemm" and attr(node, "transB", 0):
            norms = np.sqrt((w ** 2).sum(1))
        else:
            norms = np.sqrt((w ** 2).sum(0))
        for user in index.consumers.get(node.output[0], []):
            if is_onnx(user, "BatchNormalization"):
                scale, var = index.const(user.input[1]), index.const(user.input[4])
                norms = norms * np.abs(scale) / np.sqrt(var + float(attr(user, "epsilon", 1e-5)))
        score += norms / (norms.mean() or 1.0)
    return score


def keep_count(channels: int, ratio: float) -> int:
    keep = channels - int(round(channels * ratio))
    if channels >= 16:
        keep = min(channels, int(math.ceil(keep / 4) * 4))
    return max(1, keep)


class _Slicer:
    def __init__(self, index: GraphIndex):
        self.index = index

    def take(self, node: onnx.NodeProto, i: int, keep: np.ndarray, axis: int) -> None:
        """Replace input ``i`` of ``node`` by a fresh constant sliced along ``axis``."""
        name = node.input[i]
        value = self.index.const(name)
        new = self.index.fresh(f"{name}_pruned")
        self.index.set_init(new, np.take(value, keep, axis=axis))
        node.input[i] = new


def apply_group(index: GraphIndex, group: Group, keep: np.ndarray) -> None:
    """Slice every tensor of ``group`` to the channels ``keep`` (sorted indices)."""
    s = _Slicer(index)
    for node in group.sources:
        if node.op_type == "Conv":
            s.take(node, 1, keep, 0)
            if len(node.input) > 2 and node.input[2]:
                s.take(node, 2, keep, 0)
        else:
            w_axis = 0 if node.op_type == "Gemm" and attr(node, "transB", 0) else 1
            s.take(node, 1, keep, w_axis)
            if len(node.input) > 2 and node.input[2]:
                c = index.const(node.input[2])
                if c is not None and c.ndim >= 1 and c.shape[-1] == group.channels:
                    s.take(node, 2, keep, c.ndim - 1)
    for node in group.passthrough:
        if node.op_type == "BatchNormalization":
            for i in range(1, 5):
                s.take(node, i, keep, 0)
        elif node.op_type == "Conv":  # depthwise
            s.take(node, 1, keep, 0)
            if len(node.input) > 2 and node.input[2]:
                s.take(node, 2, keep, 0)
            set_attr(node, "group", int(len(keep)))
        elif node.op_type in BINARY:
            for i in (0, 1):
                c = index.const(node.input[i])
                if c is None:
                    continue
                k = group.axis - (group.rank - c.ndim)
                if k >= 0 and c.shape[k] == group.channels and group.channels > 1:
                    s.take(node, i, keep, k)
    for node, spatial in group.consumers:
        if node.op_type == "Conv":
            s.take(node, 1, keep, 1)
        else:
            rows = (keep[:, None] * spatial + np.arange(spatial)[None, :]).ravel()
            axis = 1 if node.op_type == "Gemm" and attr(node, "transB", 0) else 0
            s.take(node, 1, rows, axis)


def prune_channels(model: onnx.ModelProto, ratios: dict[str, float]) -> onnx.ModelProto:
    """A copy of ``model`` with each group in ``ratios`` (group key -> ratio) pruned."""
    out = copy_model(model)
    if not ratios:
        return out
    groups, _ = find_groups(out)
    index = GraphIndex(out)
    for key, ratio in ratios.items():
        group = groups.get(key)
        if group is None or ratio <= 0:
            continue
        n = keep_count(group.channels, ratio)
        if n >= group.channels:
            continue
        keep = np.sort(np.argsort(-importance(index, group), kind="stable")[:n])
        apply_group(index, group, keep)
    used = {i for n in out.graph.node for i in n.input}
    keep_inits = [t for t in out.graph.initializer if t.name in used or t.name in index.graph_outputs]
    del out.graph.initializer[:]
    out.graph.initializer.extend(keep_inits)
    return refresh_shapes(out)


def auto_options(groups: dict[str, Group]) -> dict[str, list[tuple[float, float]]]:
    """For the budget search: per group, (ratio, MACs saved), mild first; distinct kept counts."""
    options = {}
    for key, g in groups.items():
        seen, opts = set(), []
        for r in AUTO_RATIOS:
            n = keep_count(g.channels, r)
            if n in seen or n >= g.channels:
                continue
            seen.add(n)
            opts.append((r, float(g.macs) * (1 - n / g.channels)))
        if opts:
            options[key] = opts
    return options
