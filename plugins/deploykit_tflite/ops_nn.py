"""Converters for the NN ops: convolutions, matmuls, pooling, normalizations, softmax.

Filter layouts (facts §3): CONV_2D OHWI, DEPTHWISE_CONV_2D [1, KH, KW, Cin*M], FULLY_CONNECTED
[out, in], TRANSPOSE_CONV [Cout, KH, KW, Cin] with inputs (output_shape, weights, x, bias).
Bias is always written (zero-filled when the ONNX node has none): facts §0.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from deploykit.passes._common import non_negative
from deploykit_tflite.lowering import NHWC, Lowering, UnsupportedNode, ident

SAME, VALID = 0, 1
FLOAT_LOWEST = -3.4028234663852886e38


def _ints(node: ir.Node, name: str, default=None):
    a = node.attributes.get(name)
    return list(a.value) if a is not None else default


def spatial_padding(in_hw, k_hw, strides, dil, pads, auto_pad, out_hw, allow_same=True):
    """(padding enum, explicit [[top, bottom], [left, right]] or None) so that a TFLite window op
    reproduces the ONNX output size and alignment."""
    n = len(in_hw)
    eff = [(k - 1) * d + 1 for k, d in zip(k_hw, dil)]
    same = []
    for i in range(n):
        o = -(-in_hw[i] // strides[i])
        total = max((o - 1) * strides[i] + eff[i] - in_hw[i], 0)
        same.append((total // 2, total - total // 2, o))
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begin = [(s[0] if auto_pad == "SAME_UPPER" else s[1]) for s in same]
        end = [(s[1] if auto_pad == "SAME_UPPER" else s[0]) for s in same]
    elif auto_pad == "VALID":
        begin, end = [0] * n, [0] * n
    else:
        pads = pads or [0] * (2 * n)
        begin, end = list(pads[:n]), list(pads[n:])
    # ceil_mode and friends: the ONNX output may need extra padding at the end
    for i in range(n):
        need = (out_hw[i] - 1) * strides[i] + eff[i] - (in_hw[i] + begin[i] + end[i])
        if need > 0:
            end[i] += need
    valid = all(b == 0 for b in begin) and all(
        (in_hw[i] + end[i] - eff[i]) // strides[i] + 1 == out_hw[i] for i in range(n))
    if valid and all(e == 0 for e in end):
        return VALID, None
    # SAME before VALID + end padding: padding only at the end is what SAME does on an odd size
    # (MTCNN's 3x3/2 max pool on 46x46), and a separate PADV2 has no XNNPACK kernel
    if allow_same and all(begin[i] == same[i][0] and end[i] == same[i][1] and out_hw[i] == same[i][2] for i in range(n)):
        return SAME, None
    if valid:
        return VALID, [[0, e] for e in end]
    return VALID, [[b, e] for b, e in zip(begin, end)]


def _pad_nhwc(ctx: Lowering, x, explicit, value=None):
    pads = [[0, 0]] + [list(p) for p in explicit] + [[0, 0]]
    shape = [x.shape[0]] + [x.shape[1 + i] + sum(explicit[i]) for i in range(len(explicit))] + [x.shape[-1]]
    out = ctx.temp(shape, like=x)
    if value is None:
        ctx.emit("PAD", [x, ctx.g.const(np.asarray(pads, np.int32))], [out], ctx.opts("PadOptions"))
    else:
        ctx.emit("PADV2", [x, ctx.g.const(np.asarray(pads, np.int32)), ctx.f32(np.asarray([value], np.float32))],
                 [out], ctx.opts("PadV2Options"))
    return out


def _conv2d(ctx: Lowering, x, W: np.ndarray, B, group, strides, dil, pads, auto_pad, out):
    """NHWC conv of ``x`` by ONNX OIHW weights ``W`` into ``out`` (NHWC)."""
    cin = x.shape[3]
    cout, cig, kh, kw = W.shape
    padding, explicit = spatial_padding(x.shape[1:3], [kh, kw], strides, dil, pads, auto_pad, out.shape[1:3])
    if explicit:
        x = _pad_nhwc(ctx, x, explicit)
    bias = ctx.f32(np.zeros(cout, np.float32) if B is None else B.astype(np.float32).reshape(cout))
    common = dict(padding=padding, strideH=int(strides[0]), strideW=int(strides[1]),
                  dilationHFactor=int(dil[0]), dilationWFactor=int(dil[1]), fusedActivationFunction=0)
    if group > 1 and group == cin and cig == 1:
        filt = ctx.f32(W.transpose(1, 2, 3, 0))
        ctx.emit("DEPTHWISE_CONV_2D", [x, filt, bias], [out],
                 ctx.opts("DepthwiseConv2DOptions", depthMultiplier=cout // cin, **common), weight_axis=3)
    else:
        filt = ctx.f32(W.transpose(0, 2, 3, 1))
        ctx.emit("CONV_2D", [x, filt, bias], [out], ctx.opts("Conv2DOptions", **common), weight_axis=0)


def conv(ctx: Lowering, node: ir.Node):
    xv, wv = node.inputs[0], node.inputs[1]
    W = ctx.const(wv).astype(np.float32, copy=False)  # no copy: the filter is laid out by a view
    B = ctx.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
    group = node.attributes.get_int("group", 1)
    nd = W.ndim - 2
    strides = _ints(node, "strides", [1] * nd)
    dil = _ints(node, "dilations", [1] * nd)
    pads = _ints(node, "pads")
    auto_pad = node.attributes.get_string("auto_pad", "NOTSET")
    y = node.outputs[0]
    if nd == 3:
        from deploykit_tflite.ops_extra import conv3d

        conv3d(ctx, node)
        return
    if nd == 2:
        _conv2d(ctx, ctx.get(xv, NHWC), W, B, group, strides, dil, pads, auto_pad, ctx.out(y, NHWC))
        return
    # Conv1D: [N, C, L] held as [N, L, C] -> [N, 1, L, C]
    xt = ctx.get(xv, (0, 2, 1))
    x4 = ctx.reshape(xt, [xt.shape[0], 1, xt.shape[1], xt.shape[2]])
    out = ctx.out(y, (0, 2, 1))
    o4 = ctx.temp([out.shape[0], 1, out.shape[1], out.shape[2]])
    pads4 = None if pads is None else [0, pads[0], 0, pads[1]]
    _conv2d(ctx, x4, W[:, :, None, :], B, group, [1, strides[0]], [1, dil[0]], pads4, auto_pad, o4)
    ctx.reshape(o4, out.shape, out=out)


def check_conv(node: ir.Node) -> str | None:
    w = node.inputs[1]
    if w is None or w.const_value is None:
        return "Conv weights must be constant"
    if len(w.shape or []) not in (3, 4, 5):
        return "only 1-D, 2-D and 3-D convolutions lower to TFLite"
    if len(w.shape) == 5 and node.attributes.get_int("group", 1) != 1:
        return "grouped 3-D convolution has no TFLite kernel"
    return None


def conv_transpose(ctx: Lowering, node: ir.Node):
    xv = node.inputs[0]
    W = ctx.const(node.inputs[1]).astype(np.float32, copy=False)  # [Cin, Cout, KH, KW] or [Cin, Cout, K]
    B = ctx.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
    auto_pad = node.attributes.get_string("auto_pad", "NOTSET")
    if W.ndim == 4:
        _conv_transpose2d(ctx, node, ctx.get(xv, NHWC), W, B, _ints(node, "strides", [1, 1]),
                          _ints(node, "pads", [0, 0, 0, 0]), auto_pad, ctx.out(node.outputs[0], NHWC))
        return
    # 1-D: [N, C, L] held as [N, L, C] -> [N, 1, L, C]
    xt = ctx.get(xv, (0, 2, 1))
    out = ctx.out(node.outputs[0], (0, 2, 1))
    o4 = ctx.temp([out.shape[0], 1, out.shape[1], out.shape[2]])
    pads = _ints(node, "pads", [0, 0])
    _conv_transpose2d(ctx, node, ctx.reshape(xt, [xt.shape[0], 1, xt.shape[1], xt.shape[2]]), W[:, :, None, :], B,
                      [1, _ints(node, "strides", [1])[0]], [0, pads[0], 0, pads[1]], auto_pad, o4)
    ctx.reshape(o4, out.shape, out=out)


def _conv_transpose2d(ctx: Lowering, node: ir.Node, x, W: np.ndarray, B, strides, pads, auto_pad, out):
    cin, cout, kh, kw = W.shape
    n, ih, iw, _ = x.shape
    full = [(ih - 1) * strides[0] + kh, (iw - 1) * strides[1] + kw]
    oh, ow = out.shape[1:3]
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        tot = [full[0] - oh, full[1] - ow]
        begin = [t // 2 if auto_pad == "SAME_UPPER" else t - t // 2 for t in tot]
    else:
        begin = [pads[0], pads[1]]
    bias = ctx.f32(np.zeros(cout, np.float32) if B is None else B.astype(np.float32))
    filt = ctx.f32(W.transpose(1, 2, 3, 0))
    same = (oh == ih * strides[0] and ow == iw * strides[1]
            and begin == [(full[0] - oh) // 2, (full[1] - ow) // 2])
    opts = dict(strideH=int(strides[0]), strideW=int(strides[1]))
    if same:
        ctx.emit("TRANSPOSE_CONV", [ctx.i32([n, oh, ow, cout]), filt, x, bias], [out],
                 ctx.opts("TransposeConvOptions", padding=SAME, **opts), weight_axis=0, weight_input=1)
        return
    extra = [max(0, begin[0] + oh - full[0]), max(0, begin[1] + ow - full[1])]
    tmp = ctx.temp([n, full[0], full[1], cout])
    ctx.emit("TRANSPOSE_CONV", [ctx.i32([n, full[0], full[1], cout]), filt, x,
                                ctx.f32(np.zeros(cout, np.float32)) if any(extra) else bias], [tmp],
             ctx.opts("TransposeConvOptions", padding=VALID, **opts), weight_axis=0, weight_input=1)
    if not any(extra):
        ctx.emit("SLICE", [tmp, ctx.i32([0, begin[0], begin[1], 0]), ctx.i32(out.shape)], [out], ctx.opts("SliceOptions"))
        return
    # output_padding past the last kernel tap: those rows/columns hold only the bias
    padded = _pad_nhwc(ctx, tmp, [[0, extra[0]], [0, extra[1]]])
    sl = ctx.temp(out.shape)
    ctx.emit("SLICE", [padded, ctx.i32([0, begin[0], begin[1], 0]), ctx.i32(out.shape)], [sl], ctx.opts("SliceOptions"))
    ctx.binary("ADD", sl, bias, out=out)


def check_conv_transpose(node: ir.Node) -> str | None:
    w = node.inputs[1]
    if w is None or w.const_value is None or len(w.shape or []) not in (3, 4):
        return "ConvTranspose needs constant 1-D or 2-D weights"
    if node.attributes.get_int("group", 1) != 1:
        return "grouped ConvTranspose has no TFLite kernel"
    if any(d != 1 for d in _ints(node, "dilations", [1])):
        return "dilated ConvTranspose has no TFLite kernel"
    return None


def _fc(ctx: Lowering, a, Wt: np.ndarray, bias: np.ndarray, out):
    rows, (m, k) = int(np.prod(out.shape[:-1])), Wt.shape
    if ctx.rows_as_conv and rows > 1 and int(np.prod(a.shape)) == rows * k:
        # the same product as a 1x1 convolution over a [1, rows, 1, K] image (Edge TPU: see Lowering)
        y4 = ctx.temp([1, rows, 1, m], like=out)
        ctx.emit("CONV_2D", [ctx.reshape(a, [1, rows, 1, k]), ctx.f32(Wt.reshape(m, 1, 1, k)), ctx.f32(bias)], [y4],
                 ctx.opts("Conv2DOptions", padding=VALID, strideH=1, strideW=1, dilationHFactor=1, dilationWFactor=1,
                          fusedActivationFunction=0), weight_axis=0)
        ctx.reshape(y4, out.shape, out=out)
        return
    ctx.emit("FULLY_CONNECTED", [a, ctx.f32(Wt), ctx.f32(bias)], [out],
             ctx.opts("FullyConnectedOptions", fusedActivationFunction=0, keepNumDims=False), weight_axis=0)


def gemm(ctx: Lowering, node: ir.Node):
    av, bv = node.inputs[0], node.inputs[1]
    cv = node.inputs[2] if len(node.inputs) > 2 else None
    alpha = node.attributes.get_float("alpha", 1.0)
    beta = node.attributes.get_float("beta", 1.0)
    ta, tb = node.attributes.get_int("transA", 0), node.attributes.get_int("transB", 0)
    a = ctx.get(av, (1, 0) if ta else None)
    out = ctx.out(node.outputs[0])
    Bc, Cc = ctx.const(bv), ctx.const(cv)
    n_out = out.shape[1]
    if Bc is not None and (cv is None or (Cc is not None and Cc.size in (1, n_out))):
        Wt = (Bc if tb else Bc.T).astype(np.float32, copy=False)  # a view when already float32
        if alpha != 1.0:
            Wt = Wt * np.float32(alpha)
        bias = np.zeros(n_out, np.float32) if Cc is None else np.broadcast_to(Cc.reshape(-1) * beta, (n_out,))
        _fc(ctx, a, Wt, bias.astype(np.float32), out)
        return
    b = ctx.get(bv, (1, 0) if tb else None)
    mm = ctx.temp(out.shape) if (alpha != 1.0 or cv is not None) else out
    ctx.emit("BATCH_MATMUL", [a, b], [mm], ctx.opts("BatchMatMulOptions", adjX=False, adjY=False))
    if alpha != 1.0:
        mm = ctx.binary("MUL", mm, ctx.f32(np.float32(alpha)), out=None if cv is not None else out)
    if cv is not None:
        c = ctx.get_bcast(cv, 2) if Cc is None else ctx.f32((Cc * beta).astype(np.float32))
        if Cc is None and beta != 1.0:
            c = ctx.binary("MUL", c, ctx.f32(np.full([1, 1], beta, np.float32)))
        ctx.binary("ADD", mm, c, out=out)


def matmul(ctx: Lowering, node: ir.Node):
    av, bv = node.inputs
    Bc = ctx.const(bv)
    out = ctx.out(node.outputs[0])
    ra = ctx.rank(av)
    if Bc is not None and Bc.ndim == 2:
        a = ctx.get(av)
        k, n = Bc.shape
        rows = int(np.prod(ctx.shape(av))) // k
        if ra == 2:
            _fc(ctx, a, Bc.T.astype(np.float32, copy=False), np.zeros(n, np.float32), out)
            return
        if ra == 1:
            a = ctx.reshape(a, [1, k])
        fc = ctx.temp([rows, n])
        _fc(ctx, a, Bc.T.astype(np.float32, copy=False), np.zeros(n, np.float32), fc)
        ctx.reshape(fc, out.shape, out=out)
        return
    rb = ctx.rank(bv)
    a, b = ctx.get(av), ctx.get(bv)
    if ra == 1 or rb == 1:  # numpy rules: a 1-D operand is a row (left) or column (right), dropped after
        a = ctx.reshape(a, [1, a.shape[0]]) if ra == 1 else a
        b = ctx.reshape(b, [b.shape[0], 1]) if rb == 1 else b
        shape = list(np.broadcast_shapes(tuple(a.shape[:-2]), tuple(b.shape[:-2]))) + [a.shape[-2], b.shape[-1]]
        mm = ctx.temp(shape)
        ctx.emit("BATCH_MATMUL", [a, b], [mm], ctx.opts("BatchMatMulOptions", adjX=False, adjY=False))
        ctx.reshape(mm, out.shape, out=out)
        return
    ctx.emit("BATCH_MATMUL", [a, b], [out], ctx.opts("BatchMatMulOptions", adjX=False, adjY=False))


def pool(ctx: Lowering, node: ir.Node):
    k = _ints(node, "kernel_shape")
    strides = _ints(node, "strides", [1] * len(k))
    pads = _ints(node, "pads")
    auto_pad = node.attributes.get_string("auto_pad", "NOTSET")
    if len(k) == 2:
        _pool2d(ctx, node, ctx.get(node.inputs[0], NHWC), ctx.out(node.outputs[0], NHWC), k, strides, pads, auto_pad)
        return
    # 1-D: [N, C, L] held as [N, L, C] -> [N, 1, L, C]
    xt = ctx.get(node.inputs[0], (0, 2, 1))
    out = ctx.out(node.outputs[0], (0, 2, 1))
    o4 = ctx.temp([out.shape[0], 1, out.shape[1], out.shape[2]])
    _pool2d(ctx, node, ctx.reshape(xt, [xt.shape[0], 1, xt.shape[1], xt.shape[2]]), o4, [1, k[0]], [1, strides[0]],
            None if pads is None else [0, pads[0], 0, pads[1]], auto_pad)
    ctx.reshape(o4, out.shape, out=out)


def _pool2d(ctx: Lowering, node: ir.Node, x, out, k, strides, pads, auto_pad):
    kind = node.op_type
    count_pad = node.attributes.get_int("count_include_pad", 0)
    padding, explicit = spatial_padding(x.shape[1:3], k, strides, [1, 1], pads, auto_pad, out.shape[1:3],
                                        allow_same=not (kind == "AveragePool" and count_pad))
    code = "MAX_POOL_2D" if kind == "MaxPool" else "AVERAGE_POOL_2D"
    correction = None
    if explicit:
        if kind == "MaxPool":  # -inf padding (PADV2, no XNNPACK kernel); zeros are exact on an input >= 0
            x = _pad_nhwc(ctx, x, explicit, None if non_negative(node.inputs[0]) else FLOAT_LOWEST)
        else:
            if not count_pad:  # exact: average over the real elements only
                ones = np.pad(np.ones(x.shape[1:3], np.float32), explicit)
                cnt = np.zeros(out.shape[1:3], np.float32)
                for i in range(out.shape[1]):
                    for j in range(out.shape[2]):
                        cnt[i, j] = ones[i * strides[0]:i * strides[0] + k[0], j * strides[1]:j * strides[1] + k[1]].sum()
                correction = (k[0] * k[1] / np.maximum(cnt, 1)).reshape(1, out.shape[1], out.shape[2], 1)
            x = _pad_nhwc(ctx, x, explicit)
    opts = ctx.opts("Pool2DOptions", padding=padding, strideH=int(strides[0]), strideW=int(strides[1]),
                    filterHeight=int(k[0]), filterWidth=int(k[1]), fusedActivationFunction=0)
    if correction is not None and not np.allclose(correction, 1.0):
        tmp = ctx.temp(out.shape)
        ctx.emit(code, [x], [tmp], opts)
        ctx.binary("MUL", tmp, ctx.f32(correction.astype(np.float32)), out=out)
    else:
        ctx.emit(code, [x], [out], opts)


def check_pool(node: ir.Node) -> str | None:
    k = _ints(node, "kernel_shape", [])
    if len(k) not in (1, 2):
        return "only 1-D and 2-D pooling lower to TFLite"
    if len(node.outputs) > 1 and node.outputs[1] is not None and node.outputs[1].name:
        return "MaxPool with the Indices output"
    if any(d != 1 for d in _ints(node, "dilations", [1] * len(k))):
        return "dilated pooling has no TFLite kernel"
    if node.op_type == "AveragePool" and node.attributes.get_int("count_include_pad", 0) and \
            node.attributes.get_int("ceil_mode", 0):
        return "AveragePool with ceil_mode and count_include_pad"
    return None


def global_pool(ctx: Lowering, node: ir.Node):
    rank = ctx.rank(node.inputs[0])
    perm = NHWC if rank == 4 else (0,) + tuple(range(2, rank)) + (1,)
    x = ctx.get(node.inputs[0], perm)
    out = ctx.out(node.outputs[0], perm)
    code = "MEAN" if node.op_type == "GlobalAveragePool" else "REDUCE_MAX"
    ctx.emit(code, [x, ctx.i32(list(range(1, rank - 1)))], [out], ctx.opts("ReducerOptions", keepDims=True))


def const_like(ctx: Lowering, arr: np.ndarray, rank: int, perm, axis: int = 1):
    """Per-channel constant ``arr`` [C] laid out to broadcast against a rank-``rank`` tensor in ``perm``."""
    shape = [1] * rank
    shape[axis] = arr.size
    return ctx.f32(np.transpose(arr.astype(np.float32).reshape(shape), perm))


def batchnorm(ctx: Lowering, node: ir.Node):
    xv = node.inputs[0]
    g, b, m, v = (ctx.const(node.inputs[i]).astype(np.float64) for i in range(1, 5))
    eps = node.attributes.get_float("epsilon", 1e-5)
    scale = g / np.sqrt(v + eps)
    shift = b - m * scale
    rank = ctx.rank(xv)
    perm = ctx.layout(xv) or ident(rank)
    if rank == 4:
        perm = NHWC
    x = ctx.get(xv, perm)
    y = ctx.binary("MUL", x, const_like(ctx, scale, rank, perm))
    ctx.binary("ADD", y, const_like(ctx, shift, rank, perm), out=ctx.out(node.outputs[0], perm))


def _normalize(ctx: Lowering, x, axes, eps, out_shape, stats: list | None = None):
    keep = ctx.opts("ReducerOptions", keepDims=True)
    red = [d if i not in axes else 1 for i, d in enumerate(x.shape)]
    mean = ctx.temp(red)
    ctx.emit("MEAN", [x, ctx.i32(axes)], [mean], keep)
    d = ctx.binary("SUB", x, mean)
    sq = ctx.binary("MUL", d, d)
    var = ctx.temp(red)
    ctx.emit("MEAN", [sq, ctx.i32(axes)], [var], ctx.opts("ReducerOptions", keepDims=True))
    inv = ctx.unary("RSQRT", ctx.binary("ADD", var, ctx.f32(np.float32(eps))))
    if stats is not None:
        stats += [mean, inv]
    return ctx.binary("MUL", d, inv)


def layernorm(ctx: Lowering, node: ir.Node):
    xv = node.inputs[0]
    rank = ctx.rank(xv)
    axis = node.attributes.get_int("axis", -1) % rank
    perm = ctx.layout(xv) or ident(rank)
    x = ctx.get(xv, perm)
    axes = sorted(perm.index(a) for a in range(axis, rank))
    stats: list = []
    n = _normalize(ctx, x, axes, node.attributes.get_float("epsilon", 1e-5), x.shape, stats)
    for k in (1, 2):  # optional Mean and InvStdDev outputs
        if len(node.outputs) > k and node.outputs[k].name:
            ctx.reshape(stats[k - 1], stats[k - 1].shape, out=ctx.out(node.outputs[k], perm))
    out = ctx.out(node.outputs[0], perm)
    has_b = len(node.inputs) > 2 and node.inputs[2] is not None
    y = ctx.binary("MUL", n, ctx.get_bcast(node.inputs[1], rank, perm), out=None if has_b else out)
    if has_b:
        ctx.binary("ADD", y, ctx.get_bcast(node.inputs[2], rank, perm), out=out)


def instancenorm(ctx: Lowering, node: ir.Node):
    xv = node.inputs[0]
    rank = ctx.rank(xv)
    perm = NHWC if rank == 4 else ident(rank)
    x = ctx.get(xv, perm)
    axes = sorted(perm.index(a) for a in range(2, rank))
    n = _normalize(ctx, x, axes, node.attributes.get_float("epsilon", 1e-5), x.shape)
    y = ctx.binary("MUL", n, const_like(ctx, ctx.const(node.inputs[1]), rank, perm))
    ctx.binary("ADD", y, const_like(ctx, ctx.const(node.inputs[2]), rank, perm), out=ctx.out(node.outputs[0], perm))


def lrn(ctx: Lowering, node: ir.Node):
    size = node.attributes.get_int("size", 1)
    x = ctx.get(node.inputs[0], NHWC)
    ctx.emit("LOCAL_RESPONSE_NORMALIZATION", [x], [ctx.out(node.outputs[0], NHWC)],
             ctx.opts("LocalResponseNormalizationOptions", radius=(size - 1) // 2,
                      bias=node.attributes.get_float("bias", 1.0),
                      alpha=node.attributes.get_float("alpha", 1e-4) / size,
                      beta=node.attributes.get_float("beta", 0.75)))


def check_lrn(node: ir.Node) -> str | None:
    return None if node.attributes.get_int("size", 1) % 2 == 1 else "LRN with an even size"


def softmax(ctx: Lowering, node: ir.Node):
    xv = node.inputs[0]
    rank = ctx.rank(xv)
    code = "SOFTMAX" if node.op_type == "Softmax" else "LOG_SOFTMAX"
    opset = ctx.model.opset_imports.get("", 13)
    axis = node.attributes.get_int("axis", -1 if opset >= 13 else 1) % max(rank, 1)
    opts = ctx.opts("SoftmaxOptions", beta=1.0) if code == "SOFTMAX" else ctx.opts("LogSoftmaxOptions")
    if opset < 13 and axis != rank - 1:  # coerced to 2-D [prod(:axis), prod(axis:)]
        shape = ctx.shape(xv)
        x2 = ctx.reshape(ctx.get(xv), [int(np.prod(shape[:axis])), int(np.prod(shape[axis:]))])
        tmp = ctx.temp(x2.shape)
        ctx.emit(code, [x2], [tmp], opts)
        ctx.reshape(tmp, shape, out=ctx.out(node.outputs[0]))
        return
    cur = ctx.layout(xv) or ident(rank)
    perm = cur if cur[-1] == axis else tuple(a for a in range(rank) if a != axis) + (axis,)
    ctx.emit(code, [ctx.get(xv, perm)], [ctx.out(node.outputs[0], perm)], opts)

