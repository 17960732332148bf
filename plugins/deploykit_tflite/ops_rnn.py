"""Converters for the recurrent ops LSTM and GRU: unrolled over the (static) sequence length.

Each step is FULLY_CONNECTED + SPLIT + LOGISTIC/TANH + MUL/ADD -- ops XNNPACK delegates in fp32
and the int8 path can quantize or keep float -- instead of UNIDIRECTIONAL_SEQUENCE_LSTM, which
XNNPACK does not delegate and whose int8 form needs int16 cell state. The input projection of all
steps is one FULLY_CONNECTED; per step only the recurrent FULLY_CONNECTED runs.
ONNX gate orders: LSTM i, o, f, c; GRU z, r, h.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from deploykit_tflite.lowering import Lowering, ident

ACT = {"Sigmoid": "LOGISTIC", "Tanh": "TANH", "Relu": "RELU"}


def _input(node: ir.Node, i: int):
    return node.inputs[i] if len(node.inputs) > i and node.inputs[i] is not None else None


def check_rnn(node: ir.Node) -> str | None:
    if node.inputs[1] is None or node.inputs[1].const_value is None or \
            node.inputs[2] is None or node.inputs[2].const_value is None:
        return f"{node.op_type} weights W and R must be constant"
    acts = node.attributes.get("activations")
    if acts is not None and any(a not in ACT for a in acts.value):
        return f"{node.op_type} activations {list(acts.value)} (supported: Sigmoid, Tanh, Relu)"
    if node.op_type == "LSTM":
        if node.attributes.get_int("input_forget", 0):
            return "LSTM input_forget=1"
        if _input(node, 7) is not None:
            return "LSTM with peephole weights (P)"
    seq_lens = _input(node, 4)
    if seq_lens is not None:
        c = seq_lens.const_value
        if c is None:
            return f"{node.op_type} sequence_lens must be constant (and equal to the sequence length)"
    return None


class _Unroller:
    """Shared plumbing: time-major inputs, per-step slices, stacking the outputs."""

    def __init__(self, ctx: Lowering, node: ir.Node, gates: int):
        self.ctx, self.node, self.gates = ctx, node, gates
        self.layout = node.attributes.get_int("layout", 0)
        x = ctx.get(node.inputs[0])
        xs = x.shape
        self.S, self.N = (xs[0], xs[1]) if self.layout == 0 else (xs[1], xs[0])
        self.I = xs[2]
        self.H = node.attributes.get_int("hidden_size", 0) or ctx.const(node.inputs[2]).shape[-1]
        self.W = ctx.const(node.inputs[1]).astype(np.float32)  # [dirs, G*H, I]
        self.R = ctx.const(node.inputs[2]).astype(np.float32)  # [dirs, G*H, H]
        B = ctx.const(_input(node, 3))
        G, H = gates, self.H
        self.B = (np.zeros((self.W.shape[0], 2 * G * H), np.float32) if B is None else B.astype(np.float32))
        direction = node.attributes.get_string("direction", "forward")
        self.dirs = ["forward", "reverse"] if direction == "bidirectional" else [direction]
        acts = node.attributes.get("activations")
        self.acts = list(acts.value) if acts is not None else None
        self.clip = node.attributes.get_float("clip", 0.0) or None
        seq_lens = ctx.const(_input(node, 4))
        if seq_lens is not None and np.any(np.asarray(seq_lens) != self.S):
            from deploykit_tflite.lowering import UnsupportedNode

            raise UnsupportedNode(f"{node.op_type} {node.name!r}: sequence_lens differ from the sequence length")
        # time-major [S*N, I] rows for the input projection
        if self.layout == 1:
            x = ctx.get(node.inputs[0], (1, 0, 2))
        self.x2 = ctx.reshape(x, [self.S * self.N, self.I])

    def act(self, d: int, k: int, default: str) -> str:
        if self.acts is None:
            return ACT[default]
        per = len(self.acts) // len(self.dirs)
        return ACT[self.acts[d * per + k]]

    def projection(self, W: np.ndarray, b: np.ndarray):
        """x_t W^T + b for every step at once: [S, N, cols] -> list of per-step [N, cols] tensors."""
        ctx = self.ctx
        cols = W.shape[0]
        p = ctx.temp([self.S * self.N, cols])
        ctx.emit("FULLY_CONNECTED", [self.x2, ctx.f32(W), ctx.f32(b.astype(np.float32))], [p],
                 ctx.opts("FullyConnectedOptions", fusedActivationFunction=0, keepNumDims=False), weight_axis=0)
        if self.S == 1:
            return [p]
        # one SLICE per step (XNNPACK delegates SPLIT only up to 4 outputs)
        p3 = ctx.reshape(p, [self.S, self.N, cols])
        steps = []
        for t in range(self.S):
            st = ctx.temp([1, self.N, cols])
            ctx.emit("SLICE", [p3, ctx.i32([t, 0, 0]), ctx.i32([1, self.N, cols])], [st], ctx.opts("SliceOptions"))
            steps.append(ctx.reshape(st, [self.N, cols]))
        return steps

    def fc(self, h, W: np.ndarray, b: np.ndarray | None = None):
        ctx = self.ctx
        out = ctx.temp([self.N, W.shape[0]])
        bias = np.zeros(W.shape[0], np.float32) if b is None else b.astype(np.float32)
        ctx.emit("FULLY_CONNECTED", [h, ctx.f32(W), ctx.f32(bias)], [out],
                 ctx.opts("FullyConnectedOptions", fusedActivationFunction=0, keepNumDims=False), weight_axis=0)
        return out

    def split(self, t, n: int):
        ctx = self.ctx
        outs = [ctx.temp([self.N, self.H]) for _ in range(n)]
        ctx.emit("SPLIT", [ctx.g.const(np.asarray(1, np.int32)), t], outs, ctx.opts("SplitOptions", numSplits=n))
        return outs

    def apply(self, code: str, t):
        ctx = self.ctx
        if self.clip is not None:
            t = ctx.binary("MAXIMUM", t, ctx.f32(np.full([1, 1], -self.clip, np.float32)))
            t = ctx.binary("MINIMUM", t, ctx.f32(np.full([1, 1], self.clip, np.float32)))
        return ctx.unary(code, t)

    def initial(self, index: int, d: int):
        v = _input(self.node, index)
        if v is None:
            return None  # zeros: the first step skips the recurrent terms
        full = self.ctx.get(v)  # [dirs, N, H]
        if len(self.dirs) == 1:
            return self.ctx.reshape(full, [self.N, self.H])
        s = self.ctx.temp([1, self.N, self.H])
        self.ctx.emit("SLICE", [full, self.ctx.i32([d, 0, 0]), self.ctx.i32([1, self.N, self.H])], [s],
                      self.ctx.opts("SliceOptions"))
        return self.ctx.reshape(s, [self.N, self.H])

    def finish(self, hs_per_dir: list[list], finals: list[list]):
        """Y (stacked per-step states), Y_h, Y_c (finals: per output, per direction)."""
        ctx, node = self.ctx, self.node
        S, N, H, D = self.S, self.N, self.H, len(self.dirs)
        y = node.outputs[0] if len(node.outputs) > 0 and node.outputs[0].name else None
        if y is not None:  # unused outputs are dropped later (TFLGraph.remove_dead)
            # time-major [S, D, N, H] (layout 0) or batch-major [N, S, D, H] (layout 1)
            rows = []
            for t in range(S):
                per_dir = [ctx.reshape(hs_per_dir[d][t], [1, 1, N, H]) for d in range(D)]
                rows.append(per_dir[0] if D == 1 else self._concat(per_dir, 1, [1, D, N, H]))
            full_shape = [S, D, N, H]
            # layout 1: hold Y [N, S, D, H] as the time-major tensor [S, D, N, H]
            out = ctx.out(y) if self.layout == 0 else ctx.out(y, (1, 2, 0, 3))
            if S == 1:
                ctx.reshape(rows[0], full_shape, out=out)
            else:
                self._stack(rows, out)
        for k, finals_k in enumerate(finals, start=1):
            v = node.outputs[k] if len(node.outputs) > k and node.outputs[k].name else None
            if v is None:
                continue
            parts = [ctx.reshape(f, [1, N, H]) for f in finals_k]
            perm = ident(3) if self.layout == 0 else (1, 0, 2)
            out = ctx.out(v, perm)
            if D == 1:
                ctx.reshape(parts[0], out.shape, out=out)
            else:
                ctx.emit("CONCATENATION", parts, [out], ctx.opts("ConcatenationOptions", axis=0))

    def _stack(self, rows, out):
        """CONCATENATION on axis 0 as a tree of at most 4 inputs each (XNNPACK's limit)."""
        ctx = self.ctx
        while len(rows) > 4:
            groups = [rows[i:i + 4] for i in range(0, len(rows), 4)]
            rows = [g[0] if len(g) == 1 else self._concat(g, 0, [sum(r.shape[0] for r in g)] + list(g[0].shape[1:]))
                    for g in groups]
        ctx.emit("CONCATENATION", rows, [out], ctx.opts("ConcatenationOptions", axis=0))

    def _concat(self, parts, axis, shape):
        out = self.ctx.temp(shape)
        self.ctx.emit("CONCATENATION", parts, [out], self.ctx.opts("ConcatenationOptions", axis=axis))
        return out


def lstm(ctx: Lowering, node: ir.Node):
    u = _Unroller(ctx, node, 4)
    H = u.H
    hs_all, h_fin, c_fin = [], [], []
    for d, direction in enumerate(u.dirs):
        W, R, B = u.W[d], u.R[d], u.B[d]
        xs = u.projection(W, B[:4 * H] + B[4 * H:])
        h, c = u.initial(5, d), u.initial(6, d)
        order = range(u.S) if direction == "forward" else range(u.S - 1, -1, -1)
        hs = [None] * u.S
        f_act, g_act, h_act = u.act(d, 0, "Sigmoid"), u.act(d, 1, "Tanh"), u.act(d, 2, "Tanh")
        for t in order:
            gates = xs[t] if h is None else ctx.binary("ADD", xs[t], u.fc(h, R))
            gi, go, gf, gc = u.split(gates, 4)
            i, o, f = u.apply(f_act, gi), u.apply(f_act, go), u.apply(f_act, gf)
            g = u.apply(g_act, gc)
            ig = ctx.binary("MUL", i, g)
            c = ig if c is None else ctx.binary("ADD", ctx.binary("MUL", f, c), ig)
            h = ctx.binary("MUL", o, u.apply(h_act, c))
            hs[t] = h
        hs_all.append(hs)
        h_fin.append(h)
        c_fin.append(c)
    u.finish(hs_all, [h_fin, c_fin])


def gru(ctx: Lowering, node: ir.Node):
    u = _Unroller(ctx, node, 3)
    H = u.H
    lbr = node.attributes.get_int("linear_before_reset", 0)
    hs_all, h_fin = [], []
    for d, direction in enumerate(u.dirs):
        W, R, B = u.W[d], u.R[d], u.B[d]
        wb, rb = B[:3 * H], B[3 * H:]
        # input projection with the input bias, plus the recurrent bias of z and r (always additive)
        xs = u.projection(W, wb + np.concatenate([rb[:2 * H], np.zeros(H, np.float32)]))
        h = u.initial(5, d)
        order = range(u.S) if direction == "forward" else range(u.S - 1, -1, -1)
        hs = [None] * u.S
        f_act, g_act = u.act(d, 0, "Sigmoid"), u.act(d, 1, "Tanh")
        for t in order:
            xz, xr, xh = u.split(xs[t], 3)
            if h is None:  # zero state: z, r see no recurrent term; the candidate only the bias
                z = u.apply(f_act, xz)
                hh = u.apply(g_act, xh if not np.any(rb[2 * H:]) else ctx.binary(
                    "ADD", xh, ctx.binary("MUL", u.apply(f_act, xr), ctx.f32(rb[2 * H:].reshape(1, H)))
                    if lbr else ctx.f32(rb[2 * H:].reshape(1, H))))
                h = ctx.binary("SUB", hh, ctx.binary("MUL", z, hh))
                hs[t] = h
                continue
            if lbr:
                rz, rr, rh = u.split(u.fc(h, R, np.concatenate([np.zeros(2 * H, np.float32), rb[2 * H:]])), 3)
                z = u.apply(f_act, ctx.binary("ADD", xz, rz))
                r = u.apply(f_act, ctx.binary("ADD", xr, rr))
                hh = u.apply(g_act, ctx.binary("ADD", xh, ctx.binary("MUL", r, rh)))
            else:
                rz, rr = u.split(u.fc(h, R[:2 * H]), 2)
                z = u.apply(f_act, ctx.binary("ADD", xz, rz))
                r = u.apply(f_act, ctx.binary("ADD", xr, rr))
                hh = u.apply(g_act, ctx.binary("ADD", xh, u.fc(ctx.binary("MUL", r, h), R[2 * H:], rb[2 * H:])))
            # h = (1 - z) * hh + z * h = hh + z * (h - hh)
            h = ctx.binary("ADD", hh, ctx.binary("MUL", z, ctx.binary("SUB", h, hh)))
            hs[t] = h
        hs_all.append(hs)
        h_fin.append(h)
    u.finish(hs_all, [h_fin])
