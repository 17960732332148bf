"""Converters for ops TFLite has no single builtin for, decomposed into ones XNNPACK runs:
Softplus/Mish/Softsign, GroupNormalization, DepthToSpace (CRD), TopK, Einsum, Conv3D and Resize
modes without a TFLite kernel (cubic, antialias, other nearest roundings) as two constant
interpolation matrices."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from deploykit_tflite.lowering import NHWC, Lowering, ident


def _ones(x, v):
    return np.full([1] * len(x.shape), v, np.float32)


def _softplus(ctx: Lowering, x, out=None):
    """log(1 + exp(x)) = relu(x) + log(1 + exp(-|x|)) (no overflow for large |x|)."""
    e = ctx.unary("EXP", ctx.unary("NEG", ctx.unary("ABS", x)))
    lg = ctx.unary("LOG", ctx.binary("ADD", e, ctx.f32(_ones(x, 1.0))))
    return ctx.binary("ADD", ctx.unary("RELU", x), lg, out=out)


def softplus(ctx: Lowering, node: ir.Node):
    perm = ctx.layout(node.inputs[0])
    _softplus(ctx, ctx.get(node.inputs[0], perm), out=ctx.out(node.outputs[0], perm))


def mish(ctx: Lowering, node: ir.Node):
    """x * tanh(softplus(x))."""
    perm = ctx.layout(node.inputs[0])
    x = ctx.get(node.inputs[0], perm)
    ctx.binary("MUL", x, ctx.unary("TANH", _softplus(ctx, x)), out=ctx.out(node.outputs[0], perm))


def softsign(ctx: Lowering, node: ir.Node):
    """x / (1 + |x|)."""
    perm = ctx.layout(node.inputs[0])
    x = ctx.get(node.inputs[0], perm)
    d = ctx.binary("ADD", ctx.unary("ABS", x), ctx.f32(_ones(x, 1.0)))
    ctx.binary("DIV", x, d, out=ctx.out(node.outputs[0], perm))


def elu_alpha(ctx: Lowering, node: ir.Node):
    """alpha != 1: relu(x) + alpha * (exp(min(x, 0)) - 1)."""
    alpha = node.attributes.get_float("alpha", 1.0)
    perm = ctx.layout(node.inputs[0])
    x = ctx.get(node.inputs[0], perm)
    neg = ctx.binary("MINIMUM", x, ctx.f32(_ones(x, 0.0)))
    em1 = ctx.binary("SUB", ctx.unary("EXP", neg), ctx.f32(_ones(x, 1.0)))
    ctx.binary("ADD", ctx.unary("RELU", x), ctx.binary("MUL", em1, ctx.f32(_ones(x, alpha))),
               out=ctx.out(node.outputs[0], perm))


def group_norm(ctx: Lowering, node: ir.Node):
    """GroupNormalization (opset 18: scale/bias per group; 21: per channel), channels last:
    [N, *S, C] -> [N, prod(S), G, C/G], MEAN over (1, 3), normalize, back, scale and shift."""
    xv = node.inputs[0]
    rank = ctx.rank(xv)
    perm = (0,) + tuple(range(2, rank)) + (1,)
    x = ctx.get(xv, perm)
    G = node.attributes.get_int("num_groups", 1)
    C = x.shape[-1]
    spatial = int(np.prod(x.shape[1:-1]))
    x4 = ctx.reshape(x, [x.shape[0], spatial, G, C // G])
    keep = ctx.opts("ReducerOptions", keepDims=True)
    red = [x.shape[0], 1, G, 1]
    mean = ctx.temp(red)
    ctx.emit("MEAN", [x4, ctx.i32([1, 3])], [mean], keep)
    d = ctx.binary("SUB", x4, mean)
    var = ctx.temp(red)
    ctx.emit("MEAN", [ctx.binary("MUL", d, d), ctx.i32([1, 3])], [var], ctx.opts("ReducerOptions", keepDims=True))
    eps = node.attributes.get_float("epsilon", 1e-5)
    n = ctx.binary("MUL", d, ctx.unary("RSQRT", ctx.binary("ADD", var, ctx.f32(np.full([1, 1, 1, 1], eps, np.float32)))))
    n = ctx.reshape(n, x.shape)
    scale, bias = ctx.const(node.inputs[1]).astype(np.float32), ctx.const(node.inputs[2]).astype(np.float32)
    if scale.size != C:  # opset 18: one value per group
        scale, bias = np.repeat(scale, C // G), np.repeat(bias, C // G)
    shape = [1] * rank
    shape[-1] = C
    y = ctx.binary("MUL", n, ctx.f32(scale.reshape(shape)))
    ctx.binary("ADD", y, ctx.f32(bias.reshape(shape)), out=ctx.out(node.outputs[0], perm))


def depth_to_space_crd(ctx: Lowering, node: ir.Node):
    """CRD orders input channels (c, i, j); TFLite's DEPTH_TO_SPACE wants (i, j, c): a channel
    permutation by RESHAPE -> TRANSPOSE -> RESHAPE first."""
    b = node.attributes.get_int("blocksize", 1)
    x = ctx.get(node.inputs[0], NHWC)
    n, h, w, cbb = x.shape
    c = cbb // (b * b)
    x5 = ctx.reshape(x, [n, h, w, c, b * b])
    t = ctx.temp([n, h, w, b * b, c])
    ctx.emit("TRANSPOSE", [x5, ctx.i32([0, 1, 2, 4, 3])], [t], ctx.opts("TransposeOptions"))
    x4 = ctx.reshape(t, [n, h, w, cbb])
    ctx.emit("DEPTH_TO_SPACE", [x4], [ctx.out(node.outputs[0], NHWC)], ctx.opts("DepthToSpaceOptions", blockSize=b))


def space_to_depth_crd(ctx: Lowering, node: ir.Node):
    """SPACE_TO_DEPTH gives channels (i, j, c); CRD wants (c, i, j): permute them afterwards."""
    b = node.attributes.get_int("blocksize", 1)
    x = ctx.get(node.inputs[0], NHWC)
    n, h, w, c = x.shape
    out = ctx.out(node.outputs[0], NHWC)
    s2d = ctx.temp(out.shape, like=x)
    ctx.emit("SPACE_TO_DEPTH", [x], [s2d], ctx.opts("SpaceToDepthOptions", blockSize=b))
    x5 = ctx.reshape(s2d, [n, h // b, w // b, b * b, c])
    t = ctx.temp([n, h // b, w // b, c, b * b], like=x)
    ctx.emit("TRANSPOSE", [x5, ctx.i32([0, 1, 2, 4, 3])], [t], ctx.opts("TransposeOptions"))
    ctx.reshape(t, out.shape, out=out)


def cumsum(ctx: Lowering, node: ir.Node):
    xv = node.inputs[0]
    rank = ctx.rank(xv)
    axis = int(np.ravel(ctx.const(node.inputs[1]))[0]) % rank
    perm = ctx.layout(xv) or ident(rank)
    ctx.emit("CUMSUM", [ctx.get(xv, perm), ctx.g.const(np.asarray(perm.index(axis), np.int32))],
             [ctx.out(node.outputs[0], perm)],
             ctx.opts("CumsumOptions", exclusive=bool(node.attributes.get_int("exclusive", 0)),
                      reverse=bool(node.attributes.get_int("reverse", 0))))


def reduce_log_sum_exp(ctx: Lowering, node: ir.Node):
    """log(sum(exp(x - max))) + max over the axes (no overflow)."""
    from deploykit_tflite.ops_math import reduced_perm, reduction_input

    x, perm, axes, keep = reduction_input(ctx, node)
    taxes = sorted(perm.index(a) for a in axes)
    red = [1 if i in taxes else d for i, d in enumerate(x.shape)]
    m = ctx.temp(red)
    ctx.emit("REDUCE_MAX", [x, ctx.i32(taxes)], [m], ctx.opts("ReducerOptions", keepDims=True))
    e = ctx.unary("EXP", ctx.binary("SUB", x, m))
    s = ctx.temp(red)
    ctx.emit("SUM", [e, ctx.i32(taxes)], [s], ctx.opts("ReducerOptions", keepDims=True))
    out = ctx.out(node.outputs[0], reduced_perm(perm, axes, keep))
    y = ctx.binary("ADD", ctx.unary("LOG", s), m)
    ctx.reshape(y, out.shape, out=out)


def topk(ctx: Lowering, node: ir.Node):
    xv = node.inputs[0]
    rank = ctx.rank(xv)
    axis = node.attributes.get_int("axis", -1) % rank
    k = int(np.ravel(ctx.const(node.inputs[1]))[0])
    cur = ctx.layout(xv) or ident(rank)
    perm = cur if cur[-1] == axis else tuple(a for a in range(rank) if a != axis) + (axis,)
    x = ctx.get(xv, perm)
    largest = node.attributes.get_int("largest", 1)
    if not largest:
        x = ctx.unary("NEG", x)
    vals = ctx.out(node.outputs[0], perm)
    idx = ctx.out(node.outputs[1], perm, dtype="int32") if len(node.outputs) > 1 and node.outputs[1].name \
        else ctx.temp(vals.shape, "int32")
    target = vals if largest else ctx.temp(vals.shape)
    ctx.emit("TOPK_V2", [x, ctx.g.const(np.asarray(k, np.int32))], [target, idx], ctx.opts("TopKV2Options"))
    if not largest:
        ctx.unary("NEG", target, out=vals)


def check_topk(node: ir.Node) -> str | None:
    k = node.inputs[1]
    if k is None or (k.const_value is None and (k.producer() is None or k.producer().op_type != "Constant")):
        return "TopK k must be constant"
    return None


# -- Einsum -----------------------------------------------------------------------------------
def _parse_einsum(eq: str, ranks: list[int]) -> tuple[list[str], str]:
    eq = eq.replace(" ", "")
    lhs, rhs = eq.split("->") if "->" in eq else (eq, None)
    terms = lhs.split(",")
    used = set(eq) - set(".,->")
    free = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in used]
    ell = ""
    out_terms = []
    for term, r in zip(terms, ranks):
        if "..." in term:
            n = r - (len(term) - 3)
            ell = "".join(free[:n]) if len(ell) < n else ell
            term = term.replace("...", ell[len(ell) - n:] if n else "")
        out_terms.append(term)
    if rhs is None:
        letters = "".join(out_terms)
        rhs = ell + "".join(sorted(c for c in set(letters) if letters.count(c) == 1 and c not in ell))
    else:
        rhs = rhs.replace("...", ell)
    return out_terms, rhs


def check_einsum(node: ir.Node) -> str | None:
    eq = node.attributes.get_string("equation", "")
    if len(node.inputs) not in (1, 2):
        return "Einsum with more than two operands"
    for term in eq.replace(" ", "").split("->")[0].split(","):
        t = term.replace("...", "")
        if len(set(t)) != len(t):
            return f"Einsum with a repeated index in one operand ({eq!r})"
    return None


def _transpose(ctx: Lowering, t, perm):
    if list(perm) == list(range(len(perm))):
        return t
    out = ctx.temp([t.shape[p] for p in perm], like=t)
    ctx.emit("TRANSPOSE", [t, ctx.i32(perm)], [out], ctx.opts("TransposeOptions"))
    return out


def _einsum_operand(ctx: Lowering, v: ir.Value, term: str, keep: set[str], order: str):
    """Operand ``v`` (indices ``term``) summed over indices not in ``keep``, laid out in ``order``."""
    drop = [i for i, c in enumerate(term) if c not in keep]
    c = ctx.const(v)
    if c is not None:
        arr = c.astype(np.float32).sum(axis=tuple(drop)) if drop else c.astype(np.float32)
        rest = "".join(ch for ch in term if ch in keep)
        return ctx.f32(np.ascontiguousarray(np.transpose(arr, [rest.index(ch) for ch in order]))), True
    if not drop:
        return ctx.get(v, tuple(term.index(ch) for ch in order)), False
    x = ctx.get(v)
    shape = [d for i, d in enumerate(x.shape) if i not in drop]
    s = ctx.temp(shape, like=x)
    ctx.emit("SUM", [x, ctx.i32(drop)], [s], ctx.opts("ReducerOptions", keepDims=False))
    rest = "".join(ch for ch in term if ch in keep)
    return _transpose(ctx, s, [rest.index(ch) for ch in order]), False


def einsum(ctx: Lowering, node: ir.Node):
    ins = list(node.inputs)
    terms, out = _parse_einsum(node.attributes.get_string("equation", ""), [ctx.rank(v) for v in ins])
    y = node.outputs[0]
    dims = {}
    for v, term in zip(ins, terms):
        dims.update(zip(term, ctx.shape(v)))
    if len(ins) == 1:
        x, _ = _einsum_operand(ctx, ins[0], terms[0], set(out), "".join(c for c in terms[0] if c in out))
        order = "".join(c for c in terms[0] if c in out)
        ctx.reshape(x, x.shape, out=ctx.out(y, tuple(out.index(c) for c in order)))
        return
    (ta, tb), (va, vb) = terms, ins
    if ctx.const(va) is not None and ctx.const(vb) is None:  # keep the constant on the right
        ta, tb, va, vb = tb, ta, vb, va
    batch = [c for c in out if c in ta and c in tb]
    contr = [c for c in ta if c in tb and c not in out]
    fa = [c for c in out if c in ta and c not in tb]
    fb = [c for c in out if c in tb and c not in ta]
    prod = lambda cs: int(np.prod([dims[c] for c in cs])) if cs else 1  # noqa: E731
    a, _ = _einsum_operand(ctx, va, ta, set(out) | set(tb), "".join(batch + fa + contr))
    b, b_const = _einsum_operand(ctx, vb, tb, set(out) | set(ta), "".join(batch + contr + fb))
    letters = batch + fa + fb
    res_shape = [dims[c] for c in letters]
    result = ctx.out(y, tuple(out.index(c) for c in letters))
    if not batch and b_const:
        a2 = ctx.reshape(a, [prod(fa), prod(contr)])
        w = np.ascontiguousarray(b.data.reshape(prod(contr), prod(fb)).T)
        fc = ctx.temp([prod(fa), prod(fb)])
        ctx.emit("FULLY_CONNECTED", [a2, ctx.f32(w), ctx.f32(np.zeros(prod(fb), np.float32))], [fc],
                 ctx.opts("FullyConnectedOptions", fusedActivationFunction=0, keepNumDims=False), weight_axis=0)
        ctx.reshape(fc, res_shape, out=result)
        return
    a3 = ctx.reshape(a, [prod(batch), prod(fa), prod(contr)])
    b3 = ctx.reshape(b, [prod(batch), prod(contr), prod(fb)])
    mm = ctx.temp([prod(batch), prod(fa), prod(fb)])
    ctx.emit("BATCH_MATMUL", [a3, b3], [mm], ctx.opts("BatchMatMulOptions", adjX=False, adjY=False))
    ctx.reshape(mm, res_shape, out=result)


# -- Conv3D -----------------------------------------------------------------------------------
def conv3d(ctx: Lowering, node: ir.Node):
    from deploykit_tflite.ops_nn import SAME, _ints, _pad_nhwc, spatial_padding

    W = ctx.const(node.inputs[1]).astype(np.float32)  # [Cout, Cin, KD, KH, KW]
    B = ctx.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
    perm = (0, 2, 3, 4, 1)
    x = ctx.get(node.inputs[0], perm)
    out = ctx.out(node.outputs[0], perm)
    strides = _ints(node, "strides", [1, 1, 1])
    dil = _ints(node, "dilations", [1, 1, 1])
    padding, explicit = spatial_padding(x.shape[1:4], list(W.shape[2:]), strides, dil, _ints(node, "pads"),
                                        node.attributes.get_string("auto_pad", "NOTSET"), out.shape[1:4])
    if explicit:
        x = _pad_nhwc(ctx, x, explicit)
    bias = ctx.f32(np.zeros(W.shape[0], np.float32) if B is None else B.astype(np.float32))
    ctx.emit("CONV_3D", [x, ctx.f32(np.ascontiguousarray(W.transpose(2, 3, 4, 1, 0))), bias], [out],
             ctx.opts("Conv3DOptions", padding=padding if padding == SAME else 1, strideD=int(strides[0]),
                      strideH=int(strides[1]), strideW=int(strides[2]), dilationDFactor=int(dil[0]),
                      dilationHFactor=int(dil[1]), dilationWFactor=int(dil[2]), fusedActivationFunction=0))


# -- Resize through interpolation matrices ------------------------------------------------------
def _axis_matrix(ctx: Lowering, node: ir.Node, n_in: int, n_out: int, axis: int) -> np.ndarray:
    """[n_in, n_out] matrix M with resize_along_axis(x) = x @ M, by running the ONNX Resize itself
    (its mode, coordinate transform, cubic_coeff_a, exclude_outside, antialias, nearest_mode) on
    the identity basis: channel k holds e_k along ``axis``, the other spatial axis has size 1."""
    from deploykit_tflite.fold import evaluate

    shape = [1, n_in, 1, 1]
    shape[axis] = n_in
    basis = np.zeros(shape, np.float32)
    for k in range(n_in):
        idx = [0, k, 0, 0]
        idx[axis] = k
        basis[tuple(idx)] = 1.0
    values: list = [basis] + [None] * (len(node.inputs) - 1)
    scales = ctx.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
    if scales is not None and scales.size:
        s = np.ones(4, np.float32)
        s[axis] = scales[axis]
        values[2] = s
    else:
        sz = list(shape)
        sz[axis] = n_out
        values[3] = np.asarray(sz, np.int64)
    res = evaluate(node, values, ctx.model.opset_imports.get("", 13))[0]
    return np.moveaxis(res, axis, 2).reshape(n_in, n_out).astype(np.float32)


def check_resize_matrices(node: ir.Node) -> str | None:
    if len(node.inputs) < 3 or node.op_type != "Resize":
        return "Resize before opset 11"
    for v in node.inputs[2:4]:
        if v is not None and v.const_value is None and (v.producer() is None or v.producer().op_type != "Constant"):
            return "Resize scales/sizes must be constant"
    if "axes" in node.attributes:
        return "Resize with the axes attribute"
    if node.attributes.get_string("coordinate_transformation_mode", "half_pixel") == "tf_crop_and_resize":
        return "Resize tf_crop_and_resize"
    if node.attributes.get_string("keep_aspect_ratio_policy", "stretch") != "stretch":
        return "Resize keep_aspect_ratio_policy"
    return None


def resize_by_matrices(ctx: Lowering, node: ir.Node):
    """y = x resized along W, then along H, each a FULLY_CONNECTED by a constant matrix."""
    xv = node.inputs[0]
    xs = ctx.shape(xv)
    ys = ctx.shape(node.outputs[0])
    n, c, h, w = xs
    oh, ow = ys[2:]
    x = ctx.get(xv, (0, 2, 1, 3))  # [N, H, C, W]
    mw = _axis_matrix(ctx, node, w, ow, 3)
    if ow != w or not np.allclose(mw, np.eye(w)):
        f = ctx.temp([n * h * c, ow])
        ctx.emit("FULLY_CONNECTED", [ctx.reshape(x, [n * h * c, w]), ctx.f32(np.ascontiguousarray(mw.T)),
                                     ctx.f32(np.zeros(ow, np.float32))], [f],
                 ctx.opts("FullyConnectedOptions", fusedActivationFunction=0, keepNumDims=False), weight_axis=0)
        x = ctx.reshape(f, [n, h, c, ow])
    x = _transpose(ctx, x, [0, 2, 3, 1])  # [N, C, OW, H]
    mh = _axis_matrix(ctx, node, h, oh, 2)
    out = ctx.out(node.outputs[0], (0, 1, 3, 2))  # held as [N, C, OW, OH]
    f = ctx.temp([n * c * ow, oh])
    ctx.emit("FULLY_CONNECTED", [ctx.reshape(x, [n * c * ow, h]), ctx.f32(np.ascontiguousarray(mh.T)),
                                 ctx.f32(np.zeros(oh, np.float32))], [f],
             ctx.opts("FullyConnectedOptions", fusedActivationFunction=0, keepNumDims=False), weight_axis=0)
    ctx.reshape(f, out.shape, out=out)

