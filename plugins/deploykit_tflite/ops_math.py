"""Converters for elementwise math, activations, reductions, comparisons and casts.

All of these are layout-agnostic: the output keeps the layout of the first non-constant
full-rank input, constants are laid out to match, and reduction axes are remapped.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from deploykit_tflite.lowering import DTYPES, Lowering, UnsupportedNode, ident, np_dtype

BINARY = {"Add": "ADD", "Sub": "SUB", "Mul": "MUL", "Div": "DIV", "Pow": "POW", "Max": "MAXIMUM",
          "Min": "MINIMUM", "Sum": "ADD", "Mean": "ADD", "Equal": "EQUAL", "Less": "LESS",
          "LessOrEqual": "LESS_EQUAL", "Greater": "GREATER", "GreaterOrEqual": "GREATER_EQUAL",
          "And": "LOGICAL_AND", "Or": "LOGICAL_OR"}
COMPARISONS = frozenset({"EQUAL", "LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL", "LOGICAL_AND", "LOGICAL_OR"})
UNARY = {"Relu": "RELU", "Sigmoid": "LOGISTIC", "Tanh": "TANH", "Exp": "EXP", "Log": "LOG", "Sqrt": "SQRT",
         "Abs": "ABS", "Neg": "NEG", "Floor": "FLOOR", "Ceil": "CEIL", "Round": "ROUND", "Sin": "SIN",
         "Cos": "COS", "Not": "LOGICAL_NOT", "HardSwish": "HARD_SWISH", "Sign": "SIGN"}
REDUCE = {"ReduceMean": "MEAN", "ReduceMax": "REDUCE_MAX", "ReduceMin": "REDUCE_MIN", "ReduceSum": "SUM",
          "ReduceProd": "REDUCE_PROD", "ReduceL2": "SUM", "ReduceSumSquare": "SUM", "ReduceL1": "SUM"}
RELU, RELU_N1_TO_1, RELU6 = 1, 2, 3


def common_layout(ctx: Lowering, values, rank: int) -> tuple[int, ...]:
    for v in values:
        if v is not None and ctx.const(v) is None and ctx.rank(v) == rank:
            return ctx.layout(v)
    return ident(rank)


def _scalar(arr) -> float | None:
    if arr is None or arr.size != 1:
        return None
    return float(np.ravel(arr)[0])


def elementwise(ctx: Lowering, node: ir.Node):
    y = node.outputs[0]
    rank = len(ctx.shape(y))
    code = BINARY[node.op_type]
    ins = list(node.inputs)
    perm = common_layout(ctx, ins, rank)
    out = ctx.out(y, perm, dtype="bool" if code in COMPARISONS else None)
    if node.op_type == "Div" and np_dtype(y).startswith("float"):
        c = ctx.const(ins[1])
        if c is not None and c.dtype.kind == "f" and np.all(c != 0):  # x / c -> x * (1/c)
            ctx.consts[ins[1].name + "#reciprocal"] = (1.0 / c.astype(np.float64)).astype(np.float32)
            recip = ir.Value(name=ins[1].name + "#reciprocal")
            ctx.binary("MUL", ctx.get_bcast(ins[0], rank, perm), ctx.get_bcast(recip, rank, perm), out=out)
            return
    if node.op_type == "Pow":
        e = _scalar(ctx.const(ins[1]))
        x = ctx.get_bcast(ins[0], rank, perm)
        if e == 2.0:
            ctx.binary("MUL", x, x, out=out)
            return
        if e == 0.5:
            ctx.unary("SQRT", x, out=out)
            return
        if e == 1.0:
            ctx.reshape(x, out.shape, out=out)
            return
    tensors = [ctx.get_bcast(v, rank, perm) for v in ins]
    if node.op_type == "Mean":
        acc = tensors[0]
        for t in tensors[1:]:
            acc = ctx.binary("ADD", acc, t)
        ctx.binary("MUL", acc, ctx.f32(np.float32(1.0 / len(tensors))), out=out)
        return
    if len(tensors) == 1:
        ctx.reshape(tensors[0], out.shape, out=out)
        return
    acc = tensors[0]
    for i, t in enumerate(tensors[1:], start=2):
        last = i == len(tensors)
        acc = ctx.binary(code, acc, t, out=out if last else None, dtype=out.dtype if last else None)


def unary(ctx: Lowering, node: ir.Node):
    xv = node.inputs[0]
    perm = ctx.layout(xv)
    ctx.unary(UNARY[node.op_type], ctx.get(xv, perm), out=ctx.out(node.outputs[0], perm))


def reciprocal(ctx: Lowering, node: ir.Node):
    perm = ctx.layout(node.inputs[0])
    x = ctx.get(node.inputs[0], perm)
    ctx.binary("DIV", ctx.f32(np.ones([1] * len(x.shape), np.float32)), x, out=ctx.out(node.outputs[0], perm))


def _computed_bound(ctx: Lowering, node: ir.Node, i: int) -> ir.Value | None:
    v = node.inputs[i] if len(node.inputs) > i else None
    return v if v is not None and ctx.const(v) is None else None


def clip(ctx: Lowering, node: ir.Node):
    xv = node.inputs[0]
    if _computed_bound(ctx, node, 1) or _computed_bound(ctx, node, 2):
        # bounds computed at run time (openWakeWord's log-mel floor ``max - 80 dB``): MAXIMUM / MINIMUM
        # with the bound broadcast to x's rank
        rank, perm = ctx.rank(xv), ctx.layout(xv)
        x, out = ctx.get(xv, perm), ctx.out(node.outputs[0], perm)
        bounds = [(code, node.inputs[i]) for code, i in (("MAXIMUM", 1), ("MINIMUM", 2))
                  if len(node.inputs) > i and node.inputs[i] is not None]
        for k, (code, v) in enumerate(bounds):
            b = ctx.get_bcast(v, rank, perm) if ctx.const(v) is None else ctx.f32(np.full([1] * rank, _scalar(ctx.const(v)), np.float32))
            x = ctx.binary(code, x, b, out=out if k == len(bounds) - 1 else None)
        return
    if len(node.inputs) > 1 or "min" not in node.attributes:
        lo = _scalar(ctx.const(node.inputs[1])) if len(node.inputs) > 1 and node.inputs[1] is not None else None
        hi = _scalar(ctx.const(node.inputs[2])) if len(node.inputs) > 2 and node.inputs[2] is not None else None
    else:
        lo = node.attributes.get_float("min", None)
        hi = node.attributes.get_float("max", None)
    lo = None if lo is not None and lo <= -3.0e38 else lo
    hi = None if hi is not None and hi >= 3.0e38 else hi
    perm = ctx.layout(xv)
    x = ctx.get(xv, perm)
    out = ctx.out(node.outputs[0], perm)
    named = {(0.0, 6.0): "RELU6", (0.0, None): "RELU", (-1.0, 1.0): "RELU_N1_TO_1"}
    if (lo, hi) in named:
        ctx.unary(named[(lo, hi)], x, out=out)
        return
    if lo is not None:
        x = ctx.binary("MAXIMUM", x, ctx.f32(np.full([1] * len(x.shape), lo, np.float32)),
                       out=out if hi is None else None)
    if hi is not None:
        ctx.binary("MINIMUM", x, ctx.f32(np.full([1] * len(x.shape), hi, np.float32)), out=out)
    if lo is None and hi is None:
        ctx.reshape(x, out.shape, out=out)


def check_clip(node: ir.Node) -> str | None:
    for v in node.inputs[1:]:  # computed bounds become MAXIMUM/MINIMUM; they must be one value each
        if v is not None and v.shape is not None and v.shape.is_static() and int(np.prod([int(d) for d in v.shape])) != 1:
            return "Clip bounds must be scalars"
    return None


def leaky_relu(ctx: Lowering, node: ir.Node):
    perm = ctx.layout(node.inputs[0])
    ctx.emit("LEAKY_RELU", [ctx.get(node.inputs[0], perm)], [ctx.out(node.outputs[0], perm)],
             ctx.opts("LeakyReluOptions", alpha=node.attributes.get_float("alpha", 0.01)))


def prelu(ctx: Lowering, node: ir.Node):
    xv, sv = node.inputs
    rank = ctx.rank(xv)
    perm = ctx.layout(xv)
    ctx.emit("PRELU", [ctx.get(xv, perm), ctx.get_bcast(sv, rank, perm)], [ctx.out(node.outputs[0], perm)])


def elu(ctx: Lowering, node: ir.Node):
    if node.attributes.get_float("alpha", 1.0) != 1.0:
        from deploykit_tflite.ops_extra import elu_alpha

        elu_alpha(ctx, node)
        return
    perm = ctx.layout(node.inputs[0])
    ctx.unary("ELU", ctx.get(node.inputs[0], perm), out=ctx.out(node.outputs[0], perm))


def check_elu(node: ir.Node) -> str | None:
    return None


def hard_sigmoid(ctx: Lowering, node: ir.Node):
    """clip(a*x + b, 0, 1) = relu6(6a*x + 6b) / 6: MUL, ADD with fused RELU6, MUL (all XNNPACK ops)."""
    alpha = node.attributes.get_float("alpha", 0.2)
    beta = node.attributes.get_float("beta", 0.5)
    perm = ctx.layout(node.inputs[0])
    x = ctx.get(node.inputs[0], perm)
    ones = [1] * len(x.shape)
    if abs(6 * alpha - 1.0) > 1e-7:
        x = ctx.binary("MUL", x, ctx.f32(np.full(ones, 6 * alpha, np.float32)))
    t = ctx.temp(x.shape)
    ctx.emit("ADD", [x, ctx.f32(np.full(ones, 6 * beta, np.float32))], [t],
             ctx.opts("AddOptions", fusedActivationFunction=RELU6))
    ctx.binary("MUL", t, ctx.f32(np.full(ones, 1.0 / 6.0, np.float32)), out=ctx.out(node.outputs[0], perm))


def gelu(ctx: Lowering, node: ir.Node):
    perm = ctx.layout(node.inputs[0])
    approx = node.attributes.get_string("approximate", "none") == "tanh"
    ctx.emit("GELU", [ctx.get(node.inputs[0], perm)], [ctx.out(node.outputs[0], perm)],
             ctx.opts("GeluOptions", approximate=approx))


ERF_P = 0.3275911
ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def erf(ctx: Lowering, node: ir.Node):
    """erf(x) = sign(x) * (1 - poly(t) * exp(-x^2)), t = 1 / (1 + p|x|) (Abramowitz-Stegun 7.1.26,
    |error| <= 1.5e-7); TFLite has no ERF builtin."""
    perm = ctx.layout(node.inputs[0])
    x = ctx.get(node.inputs[0], perm)
    one = [1] * len(x.shape)
    c = lambda v: ctx.f32(np.full(one, v, np.float32))  # noqa: E731
    ax = ctx.unary("ABS", x)
    t = ctx.binary("DIV", c(1.0), ctx.binary("ADD", ctx.binary("MUL", ax, c(ERF_P)), c(1.0)))
    poly = ctx.binary("MUL", t, c(ERF_A[4]))
    for a in reversed(ERF_A[:4]):
        poly = ctx.binary("MUL", ctx.binary("ADD", poly, c(a)), t)
    e = ctx.unary("EXP", ctx.unary("NEG", ctx.binary("MUL", x, x)))
    y = ctx.binary("SUB", c(1.0), ctx.binary("MUL", poly, e))
    # sign(x) as x / (|x| + 1e-30): XNNPACK delegates DIV but not SIGN (one partition for GELU)
    sign = ctx.binary("DIV", x, ctx.binary("ADD", ax, c(1e-30)))
    ctx.binary("MUL", y, sign, out=ctx.out(node.outputs[0], perm))


def _axes(ctx: Lowering, node: ir.Node, rank: int) -> list[int]:
    a = node.attributes.get("axes")
    if a is not None:
        axes = list(a.value)
    elif len(node.inputs) > 1 and node.inputs[1] is not None:
        axes = [int(v) for v in np.ravel(ctx.const(node.inputs[1]))]
    else:
        axes = []
    if not axes:
        return [] if node.attributes.get_int("noop_with_empty_axes", 0) else list(range(rank))
    return sorted(int(v) % rank for v in axes)


def reduced_perm(perm, axes, keep: bool) -> tuple[int, ...]:
    """Layout of a reduction's output when its input is held in ``perm``."""
    if keep:
        return tuple(perm)
    return tuple(a - sum(b < a for b in axes) for a in perm if a not in axes)


def reduction_input(ctx: Lowering, node: ir.Node):
    """(input tensor in its held layout, that layout, reduced ONNX axes, keepdims) of a Reduce* node."""
    xv = node.inputs[0]
    rank = ctx.rank(xv)
    axes = _axes(ctx, node, rank)
    keep = bool(node.attributes.get_int("keepdims", 1))
    perm = ctx.layout(xv) or ident(rank)
    return ctx.get(xv, perm), perm, axes, keep


def reduce(ctx: Lowering, node: ir.Node):
    x, perm, axes, keep = reduction_input(ctx, node)
    out = ctx.out(node.outputs[0], reduced_perm(perm, axes, keep))
    if not axes:
        ctx.reshape(x, out.shape, out=out)
        return
    if node.op_type in ("ReduceL2", "ReduceSumSquare"):
        x = ctx.binary("MUL", x, x)
    elif node.op_type == "ReduceL1":
        x = ctx.unary("ABS", x)
    taxes = sorted(perm.index(a) for a in axes)
    target = out
    if node.op_type == "ReduceL2":
        target = ctx.temp(out.shape)
    ctx.emit(REDUCE[node.op_type], [x, ctx.i32(taxes)], [target], ctx.opts("ReducerOptions", keepDims=keep))
    if node.op_type == "ReduceL2":
        ctx.unary("SQRT", target, out=out)


def argmax(ctx: Lowering, node: ir.Node):
    xv = node.inputs[0]
    rank = ctx.rank(xv)
    axis = node.attributes.get_int("axis", 0) % rank
    keep = bool(node.attributes.get_int("keepdims", 1))
    perm = ctx.layout(xv) or ident(rank)
    x = ctx.get(xv, perm)
    out = ctx.out(node.outputs[0], reduced_perm(perm, [axis], keep))
    code, kind = ("ARG_MAX", "ArgMaxOptions") if node.op_type == "ArgMax" else ("ARG_MIN", "ArgMinOptions")
    shape = [d for i, d in enumerate(x.shape) if i != perm.index(axis)]
    last = node.attributes.get_int("select_last_index", 0)
    target = ctx.temp(shape, "int32") if (keep or last) else out
    if last:  # the last extreme = the first one along the reversed axis, counted from the end
        rx = ctx.temp(x.shape, like=x)
        ctx.emit("REVERSE_V2", [x, ctx.i32([perm.index(axis)])], [rx], ctx.opts("ReverseV2Options"))
        x = rx
    ctx.emit(code, [x, ctx.i32([perm.index(axis)])], [target], ctx.opts(kind, outputType=2))
    if last:
        n = ctx.g.const(np.asarray(x.shape[perm.index(axis)] - 1, np.int32))
        rev = ctx.temp(shape, "int32")
        ctx.emit("SUB", [n, target], [rev], ctx.opts("SubOptions"))
        target = rev
    if keep or last:
        ctx.reshape(target, out.shape, out=out)


def check_argmax(node: ir.Node) -> str | None:
    return None


def cast(ctx: Lowering, node: ir.Node):
    from deploykit_tflite.graph import TENSOR_TYPES

    xv, y = node.inputs[0], node.outputs[0]
    perm = ctx.layout(xv)
    x = ctx.get(xv, perm)
    to = DTYPES.get(np_dtype(y))
    if to is None:
        raise UnsupportedNode(f"Cast {node.name!r} to {np_dtype(y)}")
    if to == x.dtype:
        ctx.env[y.name] = (x, ctx.env[xv.name][1] if xv.name in ctx.env else perm or ident(len(x.shape)))
        return
    ctx.emit("CAST", [x], [ctx.out(y, perm, dtype=to)],
             ctx.opts("CastOptions", inDataType=TENSOR_TYPES[x.dtype], outDataType=TENSOR_TYPES[to]))


def where(ctx: Lowering, node: ir.Node):
    y = node.outputs[0]
    rank = len(ctx.shape(y))
    perm = common_layout(ctx, node.inputs, rank)
    ts = [ctx.get_bcast(v, rank, perm) for v in node.inputs]
    ctx.emit("SELECT_V2", ts, [ctx.out(y, perm)])


def identity(ctx: Lowering, node: ir.Node):
    xv, y = node.inputs[0], node.outputs[0]
    if xv.name in ctx.consts:
        ctx.consts[y.name] = ctx.consts[xv.name]
    else:
        ctx.env[y.name] = ctx.env[xv.name]
