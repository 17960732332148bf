"""Converters for data movement: reshape family, transpose, concat/split/slice/gather, pad,
resize, depth/space, expand/tile. Axes are remapped into the layout the input is held in."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from deploykit_tflite.lowering import NHWC, Lowering, UnsupportedNode, ident
from deploykit_tflite.ops_math import common_layout, reduced_perm


def _const_ints(ctx: Lowering, node: ir.Node, index: int, attr: str | None = None):
    if attr is not None and attr in node.attributes:
        return [int(v) for v in node.attributes[attr].value]
    if len(node.inputs) > index and node.inputs[index] is not None:
        c = ctx.const(node.inputs[index])
        if c is None:
            raise UnsupportedNode(f"{node.op_type} {node.name!r}: input {index} must be constant")
        return [int(v) for v in np.ravel(c)]
    return None


def _blocks(xd: list[int], yd: list[int]) -> list[tuple[list[int], list[int]]] | None:
    """Split two shapes without 1s into (x positions, y positions) blocks of equal product, each
    block a merge or split of contiguous axes (the reshape acts block by block)."""
    blocks, i, j = [], 0, 0
    while i < len(xd) and j < len(yd):
        bx, by, px, py = [i], [j], xd[i], yd[j]
        i, j = i + 1, j + 1
        while px != py:
            if px < py and i < len(xd):
                bx.append(i)
                px, i = px * xd[i], i + 1
            elif py < px and j < len(yd):
                by.append(j)
                py, j = py * yd[j], j + 1
            else:
                return None
        blocks.append((bx, by))
    return blocks if i == len(xd) and j == len(yd) else None


def _with_ones(order: list[int], shape) -> tuple[int, ...]:
    """``order`` (the non-1 axes) with the size-1 axes inserted at their own index."""
    q = list(order)
    for a, d in enumerate(shape):
        if d == 1:
            q.insert(min(a, len(q)), a)
    return tuple(q)


def reshape_plan(xs, ys, perm) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(layout to read the input in, layout the output is then held in) so that the reshape is a
    plain RESHAPE: the merge/split blocks of non-1 axes keep the order they have in ``perm``
    (so a tensor held NHWC reshaped [N, C, H, W] -> [N, G, C/G, H, W] stays channels-last as
    [N, H, W, G, C/G]); at most the members inside a block need reordering (one TRANSPOSE)."""
    nx = [a for a, d in enumerate(xs) if d != 1]
    ny = [a for a, d in enumerate(ys) if d != 1]
    blocks = _blocks([xs[a] for a in nx], [ys[a] for a in ny])
    if blocks is None:
        return None
    pos = {a: k for k, a in enumerate(a for a in perm if xs[a] != 1)}
    blocks.sort(key=lambda b: min(pos[nx[i]] for i in b[0]))
    xorder = [nx[i] for bx, _ in blocks for i in bx]
    yorder = [ny[j] for _, by in blocks for j in by]
    return _with_ones(xorder, xs), _with_ones(yorder, ys)


def reshape(ctx: Lowering, node: ir.Node):
    """Reshape / Flatten / Squeeze / Unsqueeze: the output shape comes from shape inference."""
    xv, y = node.inputs[0], node.outputs[0]
    xs, ys = ctx.shape(xv), ctx.shape(y)
    perm = ctx.layout(xv) or ident(len(xs))
    plan = reshape_plan(xs, ys, perm)
    # a plan that needs a TRANSPOSE anyway pays off only when it leaves the output channels-last
    # (channel shuffle); else the ONNX layout is the better guess for what comes next (attention)
    same = plan is not None and [a for a in plan[0] if xs[a] != 1] == [a for a in perm if xs[a] != 1]
    if plan is not None and (same or (len(ys) == 4 and tuple(plan[1]) == NHWC)):
        xin, q = (perm if same else plan[0]), plan[1]
        x = ctx.get(xv, xin)
        out = ctx.out(y, q)
    else:
        x = ctx.get(xv)
        out = ctx.out(y)
    ctx.reshape(x, out.shape, out=out)


def transpose(ctx: Lowering, node: ir.Node):
    """No operator: the output is the input held in a composed layout (pairs cancel)."""
    xv, y = node.inputs[0], node.outputs[0]
    rank = ctx.rank(xv)
    q = node.attributes.get("perm")
    q = list(q.value) if q is not None else list(reversed(range(rank)))
    qinv = list(np.argsort(q))
    t, p = ctx.env[xv.name]
    ctx.env[y.name] = (t, tuple(int(qinv[a]) for a in p))


def concat(ctx: Lowering, node: ir.Node):
    y = node.outputs[0]
    rank = len(ctx.shape(y))
    axis = node.attributes.get_int("axis", 0) % rank
    ins = [v for v in node.inputs if v is not None and 0 not in ctx.shape(v)]
    perm = common_layout(ctx, ins, rank)
    tensors = [ctx.get(v, perm) for v in ins]
    out = ctx.out(y, perm)
    if len(tensors) == 1:
        ctx.reshape(tensors[0], out.shape, out=out)
        return
    ctx.emit("CONCATENATION", tensors, [out],
             ctx.opts("ConcatenationOptions", axis=perm.index(axis), fusedActivationFunction=0))


def split(ctx: Lowering, node: ir.Node):
    xv = node.inputs[0]
    shape = ctx.shape(xv)
    rank = len(shape)
    axis = node.attributes.get_int("axis", 0) % rank
    sizes = _const_ints(ctx, node, 1, "split")
    n = len(node.outputs)
    if sizes is None:
        dim = shape[axis]
        chunk = -(-dim // n)
        sizes = [min(chunk, dim - i * chunk) for i in range(n)]
    perm = ctx.layout(xv) or ident(rank)
    x = ctx.get(xv, perm)
    outs = [ctx.out(y, perm) for y in node.outputs]
    taxis = perm.index(axis)
    if len(set(sizes)) == 1:
        ctx.emit("SPLIT", [ctx.g.const(np.asarray(taxis, np.int32)), x], outs, ctx.opts("SplitOptions", numSplits=n))
    else:
        ctx.emit("SPLIT_V", [x, ctx.i32(sizes), ctx.g.const(np.asarray(taxis, np.int32))], outs,
                 ctx.opts("SplitVOptions", numSplits=n))


def slice_(ctx: Lowering, node: ir.Node):
    xv = node.inputs[0]
    shape = ctx.shape(xv)
    rank = len(shape)
    starts = _const_ints(ctx, node, 1, "starts")
    ends = _const_ints(ctx, node, 2, "ends")
    axes = _const_ints(ctx, node, 3, "axes") or list(range(len(starts)))
    steps = _const_ints(ctx, node, 4) or [1] * len(starts)
    begin, size, stride = [0] * rank, list(shape), [1] * rank
    for s, e, a, st in zip(starts, ends, axes, steps):
        a %= rank
        clamp = lambda v: max(min(v, 2**62), -(2**62))  # noqa: E731
        r = range(shape[a])[slice(clamp(s), clamp(e), st)]
        begin[a], size[a], stride[a] = (r.start if len(r) else 0), len(r), st
    perm = ctx.layout(xv) or ident(rank)
    x = ctx.get(xv, perm)
    out = ctx.out(node.outputs[0], perm)
    tb = [begin[p] for p in perm]
    ts = [size[p] for p in perm]
    tst = [stride[p] for p in perm]
    if all(s == 1 for s in tst):
        ctx.emit("SLICE", [x, ctx.i32(tb), ctx.i32(ts)], [out], ctx.opts("SliceOptions"))
        return
    end, mask = [], 0
    for i, (b, n, st) in enumerate(zip(tb, ts, tst)):
        e = b + n * st
        if e < 0:
            mask |= 1 << i
            e = 0
        end.append(e)
    ctx.emit("STRIDED_SLICE", [x, ctx.i32(tb), ctx.i32(end), ctx.i32(tst)], [out],
             ctx.opts("StridedSliceOptions", endMask=mask))


def gather(ctx: Lowering, node: ir.Node):
    dv, iv = node.inputs
    shape = ctx.shape(dv)
    rank = len(shape)
    axis = node.attributes.get_int("axis", 0) % rank
    idx = ctx.const(iv)
    perm = ctx.layout(dv) or ident(rank)
    if idx is not None:
        idx = np.where(idx < 0, idx + shape[axis], idx).astype(np.int32)
        if idx.ndim == 0:  # one index: slice + drop the axis
            x = ctx.get(dv, perm)
            ta = perm.index(axis)
            size = list(x.shape)
            size[ta] = 1
            begin = [0] * rank
            begin[ta] = int(idx)
            s = ctx.temp(size, like=x)
            ctx.emit("SLICE", [x, ctx.i32(begin), ctx.i32(size)], [s], ctx.opts("SliceOptions"))
            ctx.reshape(s, [d for i, d in enumerate(size) if i != ta], out=ctx.out(node.outputs[0], reduced_perm(perm, [axis], False)))
            return
        if idx.ndim == 1:
            x = ctx.get(dv, perm)
            ctx.emit("GATHER", [x, ctx.g.const(idx)], [ctx.out(node.outputs[0], perm)],
                     ctx.opts("GatherOptions", axis=perm.index(axis), batchDims=0))
            return
        indices = ctx.g.const(idx)
    else:
        indices = ctx.get(iv)
    ctx.emit("GATHER", [ctx.get(dv), indices], [ctx.out(node.outputs[0])],
             ctx.opts("GatherOptions", axis=axis, batchDims=0))


def pad(ctx: Lowering, node: ir.Node):
    xv = node.inputs[0]
    rank = ctx.rank(xv)
    pads = _const_ints(ctx, node, 1, "pads")
    mode = node.attributes.get_string("mode", "constant")
    value = 0.0
    if "value" in node.attributes:
        value = node.attributes.get_float("value", 0.0)
    elif len(node.inputs) > 2 and node.inputs[2] is not None:
        value = float(np.ravel(ctx.const(node.inputs[2]))[0])
    axes = _const_ints(ctx, node, 3)
    full = [[0, 0] for _ in range(rank)]
    axes = [a % rank for a in axes] if axes else list(range(rank))
    for i, a in enumerate(axes):
        full[a] = [pads[i], pads[i + len(axes)]]
    perm = ctx.layout(xv) or ident(rank)
    x = ctx.get(xv, perm)
    out = ctx.out(node.outputs[0], perm)
    tp = ctx.g.const(np.asarray([full[p] for p in perm], np.int32))
    if mode == "reflect":
        ctx.emit("MIRROR_PAD", [x, tp], [out], ctx.opts("MirrorPadOptions", mode=0))
    elif value == 0.0:
        ctx.emit("PAD", [x, tp], [out], ctx.opts("PadOptions"))
    else:
        ctx.emit("PADV2", [x, tp, ctx.g.const(np.asarray([value], x.dtype))], [out], ctx.opts("PadV2Options"))


def check_pad(node: ir.Node) -> str | None:
    mode = (node.attributes.get("mode").value if "mode" in node.attributes else "constant")
    if mode not in ("constant", "reflect"):
        return f"Pad mode {mode!r} has no TFLite kernel"
    return None


def _attr(node: ir.Node, name: str, default):
    a = node.attributes.get(name)
    return a.value if a is not None else default


def needs_matrices(node: ir.Node, opset: int = 13) -> bool:
    """True when no TFLite resize kernel reproduces this Resize (cubic, antialias, nearest
    roundings or coordinate transforms TFLite lacks): it then lowers to two constant matrices."""
    mode = _attr(node, "mode", "nearest")
    ctm = _attr(node, "coordinate_transformation_mode", None)
    if mode not in ("nearest", "linear") or _attr(node, "antialias", 0):
        return True
    if ctm not in (None, "asymmetric", "half_pixel", "pytorch_half_pixel", "align_corners", "tf_half_pixel_for_nn"):
        return True
    if mode == "nearest" and ctm == "asymmetric" and _attr(node, "nearest_mode", "round_prefer_floor") != "floor":
        return True
    return False


def resize(ctx: Lowering, node: ir.Node):
    if node.op_type == "Resize" and needs_matrices(node):
        from deploykit_tflite.ops_extra import resize_by_matrices

        resize_by_matrices(ctx, node)
        return
    x = ctx.get(node.inputs[0], NHWC)
    out = ctx.out(node.outputs[0], NHWC)
    if x.shape[0] != out.shape[0] or x.shape[3] != out.shape[3]:
        raise UnsupportedNode(f"{node.op_type} {node.name!r} resizes batch or channels")
    mode = node.attributes.get_string("mode", "nearest")
    default_ctm = "asymmetric" if node.op_type == "Upsample" or ctx.model.opset_imports.get("", 11) < 11 else "half_pixel"
    ctm = node.attributes.get_string("coordinate_transformation_mode", default_ctm)
    size = ctx.i32(out.shape[1:3])
    align = ctm == "align_corners"
    half = ctm in ("half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn")
    repeat = 0 if mode == "linear" else _repeat_factor(ctx, node, x.shape[1:3], out.shape[1:3])
    if mode == "linear":
        ctx.emit("RESIZE_BILINEAR", [x, size], [out],
                 ctx.opts("ResizeBilinearOptions", alignCorners=align, halfPixelCenters=half))
    elif repeat == 1:  # same size: identity
        ctx.reshape(x, out.shape, out=out)
    elif repeat and ctx.nearest_as_depth_to_space:
        # XNNPACK delegates no RESIZE_NEAREST_NEIGHBOR (fp32 or int8): x2 nearest = 4 copies side by
        # side in channels (CONCATENATION) + DEPTH_TO_SPACE, both delegated; x4, x8: repeated
        src = x.source  # same values: int8 keeps the input's parameters through every step
        for _ in range(repeat.bit_length() - 1):
            n, h, w, c = x.shape
            tiled = ctx.temp([n, h, w, 4 * c], like=x)
            tiled.source = src
            ctx.emit("CONCATENATION", [x] * 4, [tiled], ctx.opts("ConcatenationOptions", axis=3))
            step = out if [2 * h, 2 * w] == list(out.shape[1:3]) else ctx.temp([n, 2 * h, 2 * w, c], like=x)
            ctx.emit("DEPTH_TO_SPACE", [tiled], [step], ctx.opts("DepthToSpaceOptions", blockSize=2))
            x = step
    else:
        ctx.emit("RESIZE_NEAREST_NEIGHBOR", [x, size], [out],
                 ctx.opts("ResizeNearestNeighborOptions", alignCorners=align, halfPixelCenters=half))


def _repeat_factor(ctx: Lowering, node: ir.Node, in_hw, out_hw) -> int:
    """s (1, 2, 4 or 8) when this nearest resize repeats every pixel s x s times, else 0 (checked on
    the node's own coordinate transform and rounding through its interpolation matrices)."""
    s = out_hw[0] // in_hw[0]
    if node.op_type != "Resize" or len(node.inputs) < 3 or s not in (1, 2, 4, 8) or list(out_hw) != [d * s for d in in_hw]:
        return 0
    from deploykit_tflite.ops_extra import _axis_matrix

    for n, axis in zip(in_hw, (2, 3)):
        want = np.repeat(np.eye(n, dtype=np.float32), s, axis=1)
        if not np.array_equal(_axis_matrix(ctx, node, n, n * s, axis), want):
            return 0
    return s


def check_resize(node: ir.Node) -> str | None:
    x = node.inputs[0]
    if x is not None and x.shape is not None and len(x.shape) != 4:
        return f"{node.op_type} on a rank-{len(x.shape)} tensor (TFLite resizes 4-D NHWC only)"
    if needs_matrices(node):
        if node.op_type != "Resize":
            return f"{node.op_type} mode {_attr(node, 'mode', 'nearest')!r}"
        from deploykit_tflite.ops_extra import check_resize_matrices

        return check_resize_matrices(node)
    return None


def depth_space(ctx: Lowering, node: ir.Node):
    if node.attributes.get_string("mode", "DCR") == "CRD":
        from deploykit_tflite.ops_extra import depth_to_space_crd, space_to_depth_crd

        (depth_to_space_crd if node.op_type == "DepthToSpace" else space_to_depth_crd)(ctx, node)
        return
    x = ctx.get(node.inputs[0], NHWC)
    code, kind = ("DEPTH_TO_SPACE", "DepthToSpaceOptions") if node.op_type == "DepthToSpace" else \
        ("SPACE_TO_DEPTH", "SpaceToDepthOptions")
    ctx.emit(code, [x], [ctx.out(node.outputs[0], NHWC)],
             ctx.opts(kind, blockSize=node.attributes.get_int("blocksize", 1)))


def expand(ctx: Lowering, node: ir.Node):
    y = node.outputs[0]
    rank = len(ctx.shape(y))
    perm = common_layout(ctx, [node.inputs[0]], rank)
    x = ctx.get_bcast(node.inputs[0], rank, perm)
    out = ctx.out(y, perm)
    ctx.emit("BROADCAST_TO", [x, ctx.i32(out.shape)], [out])


def tile(ctx: Lowering, node: ir.Node):
    xv = node.inputs[0]
    reps = _const_ints(ctx, node, 1)
    perm = ctx.layout(xv) or ident(len(reps))
    ctx.emit("TILE", [ctx.get(xv, perm), ctx.i32([reps[p] for p in perm])], [ctx.out(node.outputs[0], perm)])
