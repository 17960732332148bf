"""YOLOv5/YOLOX "Focus" -> SPACE_TO_DEPTH, before lowering to TFLite (rpi4/rpi5 and the Edge TPU).

The pattern: a ``Concat`` on the channel axis of the four stride-2 views of one NCHW tensor,
``x[..., dy::2, dx::2]`` for (dy, dx) in {0, 1}^2 (any order; each view one ``Slice`` over both
spatial axes or a chain of one ``Slice`` per axis, as PyTorch exports ``x[..., ::2, 1::2]``).
That is ``SpaceToDepth(x, blocksize=2)`` up to a channel permutation: ONNX SpaceToDepth (and
TFLite SPACE_TO_DEPTH, NHWC) orders the output channels (dy, dx, c), block ``2 * dy + dx``,
while the Concat orders them by the position ``k`` of each view, block ``k``.

Why here and not only for the Edge TPU: stride-2 STRIDED_SLICE is neither an Edge TPU op
(facts/edgetpu.md §2: "StridedSlice ... all strides 1"; as the first op of the graph it kept the
whole model on the CPU) nor delegated by XNNPACK (facts/tflite-xnnpack.md: "stride 2 -> not
delegated"), while SPACE_TO_DEPTH is both (edgetpu §2 "Slice, SpaceToDepth | All"; XNNPACK
delegates it). The rewrite is exact: it moves elements, and the permutation is

* folded into the input channels of the following convolutions' weights when the Concat feeds
  only Convs (``W'[:, q(j)] = W[:, j]`` with ``q`` the Concat channel -> SpaceToDepth channel), or
* kept as SPLIT into the 4 blocks + CONCATENATION in the Concat's block order (ops of the Edge TPU
  and of XNNPACK; a GATHER is neither) when anything else reads it, or
* nothing, when the views come in (dy, dx) order already.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from deploykit.passes._common import NameGen, add_initializer, attr, const_array, is_onnx, opset_version

BLOCK = 2
SPATIAL = (2, 3)  # NCHW
OFFSETS = frozenset((dy, dx) for dy in range(BLOCK) for dx in range(BLOCK))
_BIG = 2**62


@dataclass(frozen=True)
class Focus:
    """A matched Concat: ``source`` [N, C, H, W]; ``offsets[k]`` = (dy, dx) of the Concat's input k."""

    concat: ir.Node
    source: ir.Value
    offsets: tuple[tuple[int, int], ...]
    slices: tuple[ir.Node, ...]

    @property
    def channels(self) -> int:
        return int(self.source.shape[1])

    def channel_map(self) -> np.ndarray:
        """q: Concat channel j -> SpaceToDepth channel q[j]."""
        c = self.channels
        return np.concatenate([(BLOCK * dy + dx) * c + np.arange(c) for dy, dx in self.offsets])


def _slice_axes(node: ir.Node, shape: tuple[int, ...]) -> dict[int, tuple[int, int, int]] | None:
    """{axis: (start, step, count)} of a Slice (opset >= 10: constant inputs) on ``shape``."""
    ins = list(node.inputs) + [None] * (5 - len(node.inputs))
    starts, ends = const_array(ins[1]), const_array(ins[2])
    if starts is None or ends is None or "starts" in node.attributes:
        return None
    axes = const_array(ins[3]) if ins[3] is not None else np.arange(starts.size)
    steps = const_array(ins[4]) if ins[4] is not None else np.ones(starts.size, np.int64)
    if axes is None or steps is None:
        return None
    out: dict[int, tuple[int, int, int]] = {}
    for s, e, a, st in zip(*(np.ravel(v).astype(np.int64).tolist() for v in (starts, ends, axes, steps))):
        a %= len(shape)
        if a in out or st == 0:
            return None
        r = range(shape[a])[slice(max(min(s, _BIG), -_BIG), max(min(e, _BIG), -_BIG), st)]
        out[a] = (r.start if len(r) else 0, r.step, len(r))
    return out


def strided_view(value: ir.Value) -> tuple[ir.Value, dict[int, tuple[int, int, int]], list[ir.Node]] | None:
    """(source, {axis: (start, step, count)}, Slice nodes) when ``value`` is a chain of Slices of one
    statically shaped tensor, each axis sliced at most once; intermediate results used only by the chain."""
    axes: dict[int, tuple[int, int, int]] = {}
    nodes: list[ir.Node] = []
    while (node := value.producer()) is not None and is_onnx(node, "Slice"):
        if nodes and (len(value.uses()) != 1 or value.is_graph_output()):
            break
        x = node.inputs[0]
        if x is None or x.shape is None or not x.shape.is_static():
            return None
        got = _slice_axes(node, tuple(int(d) for d in x.shape))
        if got is None:
            return None
        got = {a: v for a, v in got.items() if v != (0, 1, int(x.shape[a]))}  # whole-axis slices move nothing
        if set(got) & set(axes):
            return None
        axes.update(got)
        nodes.append(node)
        value = x
    return (value, axes, nodes) if nodes else None


def match_focus(concat: ir.Node) -> Focus | None:
    if not is_onnx(concat, "Concat") or len(concat.inputs) != len(OFFSETS):
        return None
    y = concat.outputs[0]
    if y.shape is None or len(y.shape) != 4 or int(attr(concat, "axis", 0)) % 4 != 1:
        return None
    source, offsets, slices = None, [], []
    for v in concat.inputs:
        view = strided_view(v) if v is not None else None
        if view is None:
            return None
        src, axes, nodes = view
        if source is None:
            source = src
        if src is not source or len(src.shape) != 4 or set(axes) != set(SPATIAL):
            return None
        dims = [int(src.shape[a]) for a in SPATIAL]
        if any(d % BLOCK or axes[a] != (axes[a][0], BLOCK, d // BLOCK) for a, d in zip(SPATIAL, dims)):
            return None
        offsets.append(tuple(axes[a][0] for a in SPATIAL))
        slices += nodes
    if set(offsets) != OFFSETS:
        return None
    return Focus(concat, source, tuple(offsets), tuple(slices))


def _conv_users(y: ir.Value, channels: int) -> list[ir.Node] | None:
    """The Convs reading ``y`` as their data input with constant ungrouped weights, when only they read it."""
    if y.is_graph_output():
        return None
    users = [u.node for u in y.uses()]
    for u, node in zip(y.uses(), users):
        w = const_array(node.inputs[1]) if is_onnx(node, "Conv") and len(node.inputs) > 1 else None
        if u.idx != 0 or w is None or int(attr(node, "group", 1)) != 1 or w.ndim != 4 or w.shape[1] != channels:
            return None
    return users


def _typed(v: ir.Value, like: ir.Value, shape) -> ir.Value:
    v.type, v.shape = like.type, ir.Shape([int(d) for d in shape])
    return v


def _block_reorder(model: ir.Model, names: NameGen, f: Focus, s2d: ir.Value) -> tuple[list[ir.Node], ir.Value]:
    """SPLIT of the SpaceToDepth output into its 4 blocks, CONCATENATION in the Concat's block order."""
    n, c, h, w = (int(d) for d in s2d.shape)
    c //= len(OFFSETS)
    name = f.concat.name or "focus"
    sizes = np.full(len(OFFSETS), c, np.int64)
    if opset_version(model) >= 13:
        split = ir.node("Split", [s2d, add_initializer(model.graph, names, "focus_split", sizes)], {"axis": 1},
                        num_outputs=len(OFFSETS), name=f"{name}/blocks")
    else:
        split = ir.node("Split", [s2d], {"axis": 1, "split": [int(s) for s in sizes]}, num_outputs=len(OFFSETS),
                        name=f"{name}/blocks")
    for i, part in enumerate(split.outputs):
        part.name = names(f"{name}_block{i}")
        _typed(part, s2d, [n, c, h, w])
    parts = [split.outputs[BLOCK * dy + dx] for dy, dx in f.offsets]
    cat = ir.node("Concat", parts, {"axis": 1}, name=f"{name}/order")
    cat.outputs[0].name = names(f"{name}_ordered")
    return [split, cat], _typed(cat.outputs[0], s2d, s2d.shape)


def rewrite_focus(model: ir.Model, f: Focus, names: NameGen) -> str:
    """Replace the matched Concat; returns how the channel permutation was handled."""
    graph, y = model.graph, f.concat.outputs[0]
    name = f.concat.name or "focus"
    s2d_node = ir.node("SpaceToDepth", [f.source], {"blocksize": BLOCK}, name=f"{name}/space_to_depth")
    s2d = _typed(s2d_node.outputs[0], y, y.shape)
    s2d.name = names(f"{name}_s2d")
    new_nodes, out = [s2d_node], s2d
    q = f.channel_map()
    convs = _conv_users(y, q.size)
    if np.array_equal(q, np.arange(q.size)):
        how = "none"
    elif convs:
        how = "conv_weights"
        for conv in convs:
            w = const_array(conv.inputs[1])
            permuted = np.empty_like(w)
            permuted[:, q] = w
            old = conv.inputs[1]
            conv.replace_input_with(1, add_initializer(graph, names, f"{conv.name or 'conv'}_w_s2d", permuted))
            _drop_if_unused(graph, old)
    else:
        how = "split_concat"
        more, out = _block_reorder(model, names, f, s2d)
        new_nodes += more
    graph.insert_before(f.concat, new_nodes)
    was_output, out_name = y.is_graph_output(), y.name
    ir.convenience.replace_all_uses_with(y, out, replace_graph_outputs=True)
    if was_output:  # graph output names never change
        y.name = None
        out.name = out_name
    graph.remove(f.concat, safe=True)
    for node in f.slices:  # consumers first: the chains were collected output -> source
        if all(not o.uses() and not o.is_graph_output() for o in node.outputs):
            consts = list(node.inputs[1:])
            graph.remove(node, safe=True)
            for v in consts:
                _drop_if_unused(graph, v)
    return how


def _drop_if_unused(graph: ir.Graph, v: ir.Value | None) -> None:
    if v is not None and v.name in graph.initializers and not v.uses() and not v.is_graph_input() \
            and not v.is_graph_output():
        graph.initializers.pop(v.name)


class FocusToSpaceToDepthPass(ir.passes.InPlacePass):
    """Every Focus Concat of the graph -> SpaceToDepth (+ permutation folded or kept). ``self.how``
    counts the permutation handling per kind after a call."""

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        names, self.how = NameGen(model.graph), {}
        for node in list(model.graph):
            f = match_focus(node)
            if f is not None:
                how = rewrite_focus(model, f, names)
                self.how[how] = self.how.get(how, 0) + 1
        return ir.passes.PassResult(model, modified=bool(self.how))


def apply(model: ir.Model) -> int:
    """Rewrite every Focus of ``model`` in place; how many."""
    p = FocusToSpaceToDepthPass()
    p(model)
    return sum(p.how.values())
