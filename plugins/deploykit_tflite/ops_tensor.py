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


def reshape_layout(xs, ys, perm) -> tuple[int, ...] | None:
    """An output layout that makes ``reshape`` a plain RESHAPE of the input held in ``perm``
    (only size-1 axes inserted/removed), else ``None``."""
    nx = [i for i, d in enumerate(xs) if d != 1]
    ny = [j for j, d in enumerate(ys) if d != 1]
    if [xs[i] for i in nx] != [ys[j] for j in ny]:
        return None
    m = dict(zip(nx, ny))
    order = [m[a] for a in perm if xs[a] != 1]
    q = list(range(len(ys)))
    for pos, ax in zip(sorted(ny), order):
        q[pos] = ax
    return tuple(q)


def reshape(ctx: Lowering, node: ir.Node):
    """Reshape / Flatten / Squeeze / Unsqueeze: the output shape comes from shape inference."""
    xv, y = node.inputs[0], node.outputs[0]
    xs, ys = ctx.shape(xv), ctx.shape(y)
    perm = ctx.layout(xv) or ident(len(xs))
    q = reshape_layout(xs, ys, perm) if perm != ident(len(xs)) else None
    if q is not None:
        x = ctx.get(xv, perm)
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


def resize(ctx: Lowering, node: ir.Node):
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
    if mode == "linear":
        ctx.emit("RESIZE_BILINEAR", [x, size], [out],
                 ctx.opts("ResizeBilinearOptions", alignCorners=align, halfPixelCenters=half))
    else:
        ctx.emit("RESIZE_NEAREST_NEIGHBOR", [x, size], [out],
                 ctx.opts("ResizeNearestNeighborOptions", alignCorners=align, halfPixelCenters=half))


def check_resize(node: ir.Node) -> str | None:
    mode = node.attributes.get("mode").value if "mode" in node.attributes else "nearest"
    if mode not in ("nearest", "linear"):
        return f"{node.op_type} mode {mode!r} has no TFLite kernel"
    x = node.inputs[0]
    if x is not None and x.shape is not None and len(x.shape) != 4:
        return f"{node.op_type} on a rank-{len(x.shape)} tensor (TFLite resizes 4-D NHWC only)"
    ctm = node.attributes.get("coordinate_transformation_mode")
    ctm = ctm.value if ctm is not None else None
    if ctm not in (None, "asymmetric", "half_pixel", "pytorch_half_pixel", "align_corners", "tf_half_pixel_for_nn"):
        return f"coordinate_transformation_mode {ctm!r}"
    if mode == "nearest":
        nm = node.attributes.get("nearest_mode")
        nm = nm.value if nm is not None else "round_prefer_floor"
        if ctm == "asymmetric" and nm != "floor":
            return f"nearest_mode {nm!r} with asymmetric coordinates"
    return None


def depth_space(ctx: Lowering, node: ir.Node):
    x = ctx.get(node.inputs[0], NHWC)
    code, kind = ("DEPTH_TO_SPACE", "DepthToSpaceOptions") if node.op_type == "DepthToSpace" else \
        ("SPACE_TO_DEPTH", "SpaceToDepthOptions")
    ctx.emit(code, [x], [ctx.out(node.outputs[0], NHWC)],
             ctx.opts(kind, blockSize=node.attributes.get_int("blocksize", 1)))


def check_depth_space(node: ir.Node) -> str | None:
    if node.op_type == "DepthToSpace" and "mode" in node.attributes and node.attributes["mode"].value == "CRD":
        return "DepthToSpace mode CRD (TFLite implements DCR)"
    return None


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
