"""int8 precision: full-integer TFLite graph from per-tensor activation parameters.

Input: ``params`` {ONNX value name: QuantParams} (from the core quantization engine when
present, else :func:`minmax_params`), ``fallback`` (ONNX node names to keep float).
Rules (facts §1, §2, §4):
- weights int8 symmetric per output channel (axis 0 CONV/FC/TRANSPOSE_CONV, 3 DEPTHWISE), in
  [-127, 127]; bias int32 with scale = input_scale * weight_scale[c], computed exactly;
- ops whose output must reuse the input's params (pooling, reshape, transpose, pad, slice, split,
  resize, ...) take the input's params; CONCATENATION inputs are requantized to the output's;
- LOGISTIC / TANH get their fixed output params;
- ops XNNPACK does not run in int8 (SOFTMAX, HARD_SWISH, AVERAGE_POOL_2D, GELU, ...) and fallback
  nodes stay float; DEQUANTIZE / QUANTIZE are inserted only where float and int8 tensors meet,
  so float islands stay inside one XNNPACK partition.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deploykit_tflite.graph import Op, QParams, Tensor, TFLGraph

WEIGHTED = {"CONV_2D": (1, 2), "DEPTHWISE_CONV_2D": (1, 2), "FULLY_CONNECTED": (1, 2), "TRANSPOSE_CONV": (1, 3)}
# int8 ops with their own (calibrated) output params
REQUANTIZING = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "ADD", "SUB",
                          "MUL", "MEAN", "SUM", "CONCATENATION", "LEAKY_RELU", "ELU"})
# int8 ops whose output params equal their data input's: op -> index of the data input
PASSTHROUGH = {"RESHAPE": 0, "TRANSPOSE": 0, "MAX_POOL_2D": 0, "PAD": 0, "PADV2": 0, "SLICE": 0,
               "STRIDED_SLICE": 0, "SPLIT": 1, "SPLIT_V": 0, "GATHER": 0, "RESIZE_BILINEAR": 0,
               "DEPTH_TO_SPACE": 0, "SPACE_TO_DEPTH": 0, "REDUCE_MAX": 0, "BROADCAST_TO": 0, "TILE": 0,
               "MAXIMUM": 0, "MINIMUM": 0}
FIXED = {"LOGISTIC": (1.0 / 256, -128), "TANH": (1.0 / 128, 0)}
# int8 comparisons of an activation with a constant inside its range (bool output): the constant takes
# the activation's params. SELECT_V2 copies int8 values: both value inputs take the output's params.
COMPARISONS = frozenset({"GREATER", "GREATER_EQUAL", "LESS", "LESS_EQUAL", "EQUAL", "NOT_EQUAL"})
SELECTS = frozenset({"SELECT", "SELECT_V2"})
NEVER_REQUANT_NEEDED = frozenset(PASSTHROUGH) | frozenset(FIXED)
# element-wise max/min: with one constant they keep the input's params; with two activations both are
# requantized to the output's (an order-preserving map, so max/min commute with it)
TWO_SIDED = frozenset({"MAXIMUM", "MINIMUM"})
# XNNPACK's int8 scale-ratio limits (facts §2): outside them the node leaves the delegate and
# splits the graph. ADD/SUB: input_scale / output_scale; MUL: in1 * in2 / output_scale;
# CONV/FC requantization: input_scale * weight_scale / output_scale.
ADD_RATIO_MIN = 2.0 ** -10
MUL_RATIO_MIN = 2.0 ** -16
REQUANT_RATIO_MIN = 2.0 ** -30
# rescale factors TFLite's int8 arithmetic kernels can represent at all (below 2^-31 they abort)
REPRESENTABLE_RATIO = (2.0 ** -24, 2.0 ** 24)


def _act_params(p) -> QParams | None:
    """QParams of a per-tensor int8 activation from a deploykit QuantParams (or None)."""
    if p is None or getattr(p, "dtype", "int8") != "int8" or np.size(p.scale) != 1:
        return None
    return QParams.per_tensor(float(np.ravel(p.scale)[0]), int(np.ravel(p.zero_point)[0]))


def _range_params(lo: float, hi: float, min_scale: float = 0.0) -> QParams:
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = max((hi - lo) / 255.0, min_scale) or 1.0
    zp = int(np.clip(np.round(-128 - lo / scale), -128, 127))
    return QParams.per_tensor(scale, zp)


def _quantize(data: np.ndarray, q: QParams, dtype: str = "int8") -> np.ndarray:
    info = np.iinfo(dtype)
    shape = [1] * data.ndim
    if q.scale.size > 1:
        shape[q.axis] = -1
    s = q.scale.reshape(shape) if q.scale.size > 1 else q.scale[0]
    z = q.zero_point.reshape(shape) if q.scale.size > 1 else q.zero_point[0]
    return np.clip(np.round(data.astype(np.float64) / s) + z, info.min, info.max).astype(dtype)


class Int8Rewriter:
    """Turns a float TFLGraph into int8 where XNNPACK's int8 kernels apply.

    The op sets are class attributes so a stricter target (Edge TPU) can widen them in a subclass.
    """

    PASSTHROUGH: dict[str, int] = PASSTHROUGH  # op -> data input index; output keeps its params
    FIXED: dict[str, tuple[float, int]] = FIXED  # op -> fixed output (scale, zero point)
    REQUANTIZING: frozenset[str] = REQUANTIZING  # ops with their own output params
    COMPARISONS: frozenset[str] = COMPARISONS  # activation vs constant, bool output
    SELECTS: frozenset[str] = SELECTS  # bool condition; value inputs on the output's params
    SAME_OUTPUT_INPUTS: frozenset[str] = frozenset({"CONCATENATION"})  # inputs requantized to the output's
    # MAXIMUM/MINIMUM with a constant bound as the saturation of a requantization (XNNPACK has no int8
    # MAXIMUM/MINIMUM: each one split the delegated graph)
    CLAMP_AS_REQUANTIZE = True

    def __init__(self, graph: TFLGraph, params: dict[str, Any], fallback: set[str]):
        self.g = graph
        self.params = params
        self.fallback = set(fallback or ())
        self.ops: list[Op] = []
        self._q: dict[tuple[int, bytes], Tensor] = {}
        self._f: dict[int, Tensor] = {}
        self.float_ops: dict[str, int] = {}
        self.derived: dict[int, QParams] = {}
        self.graph_inputs = {id(t) for t in graph.inputs}

    def qp(self, t: Tensor) -> QParams | None:
        if t.quant is not None and t.dtype == "int8":
            return t.quant
        if id(t) in self.derived:
            return self.derived[id(t)]
        return _act_params(self.params.get(t.source)) if t.source else None

    def derive(self, op: Op) -> None:
        """Params for an unnamed temporary from interval arithmetic: ADD/SUB/MUL by a scalar
        constant (e.g. the MUL, ADD+RELU6 chain of HardSigmoid), then the fused activation."""
        out = op.outputs[0]
        if op.code not in ("ADD", "SUB", "MUL") or len(op.outputs) != 1 or out.source or out.dtype != "float32":
            return
        consts = [t for t in op.inputs if t.is_const and t.data.size == 1]
        acts = [t for t in op.inputs if not t.is_const]
        if len(consts) != 1 or len(acts) != 1 or self.qp(acts[0]) is None:
            return
        q, c = self.qp(acts[0]), float(np.ravel(consts[0].data)[0])
        lo, hi = (-128 - q.zero_point[0]) * q.scale[0], (127 - q.zero_point[0]) * q.scale[0]
        if op.code == "MUL":
            lo, hi = sorted((lo * c, hi * c))
        elif op.code == "ADD":
            lo, hi = lo + c, hi + c
        else:
            lo, hi = (lo - c, hi - c) if op.inputs[0] is acts[0] else (c - hi, c - lo)
        act = getattr(op.options, "fusedActivationFunction", 0)
        bounds = {1: (0.0, np.inf), 2: (-1.0, 1.0), 3: (0.0, 6.0)}.get(act)
        if bounds:
            lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
        if hi > lo:
            self.derived[id(out)] = _range_params(lo, hi)

    def as_int8(self, t: Tensor, q: QParams | None = None, min_scale: float = 0.0) -> Tensor:
        """``t`` as an int8 tensor with params ``q`` (default: its own), quantizing if needed.

        ``min_scale``: for a constant without ``q``, the smallest scale its params may take."""
        if t.is_const:
            if q is None:
                q = _range_params(np.min(t.data, initial=0.0), np.max(t.data, initial=0.0), min_scale)
            c = self.g.const(_quantize(t.data, q), hint=t.name + "_q")
            c.quant = q
            return c
        q = q or self.qp(t)
        if t.dtype == "int8" and q.same(t.quant):
            return t
        key = (id(t), q.scale.tobytes() + q.zero_point.tobytes())
        if key not in self._q:
            src = t
            if t.dtype != "int8" and t.dtype != "float32":
                raise AssertionError(t.dtype)
            out = self.g.tensor(t.shape, "int8", hint=t.name + "_q", source=t.source, quant=q)
            self.ops.append(Op("QUANTIZE", [src], [out]))
            self._q[key] = out
        return self._q[key]

    def as_float(self, t: Tensor | None) -> Tensor | None:
        if t is None or t.dtype != "int8" or t.is_const:
            return t
        if id(t) not in self._f:
            out = self.g.tensor(t.shape, "float32", hint=t.name + "_dq", source=t.source)
            self.ops.append(Op("DEQUANTIZE", [t], [out]))
            self._f[id(t)] = out
        return self._f[id(t)]

    def _float(self, op: Op) -> None:
        op.inputs = [self.as_float(t) for t in op.inputs]
        self.ops.append(op)
        computes_float = any(t is not None and not t.is_const and t.dtype in ("float32", "float16")
                             for t in list(op.inputs) + list(op.outputs))
        if op.code not in ("QUANTIZE", "DEQUANTIZE") and computes_float:
            self.float_ops[op.code] = self.float_ops.get(op.code, 0) + 1

    def _weighted(self, op: Op) -> None:
        wi, bi = WEIGHTED[op.code]
        xi = 2 if op.code == "TRANSPOSE_CONV" else 0
        x = self.as_int8(op.inputs[xi])
        w = op.inputs[wi].data.astype(np.float32)
        axis = op.attrs.get("weight_axis", 0)
        red = tuple(i for i in range(w.ndim) if i != axis)
        amax = np.abs(w).max(axis=red).astype(np.float64)
        ws = amax / 127.0
        out_q = self.qp(op.outputs[0])
        # tiny channels (e.g. pruned to ~1e-40) would get denormal scales, which XNNPACK rejects:
        # floor the scale where the channel's output is far below the output's resolution anyway
        floor = (REQUANT_RATIO_MIN * out_q.scale[0] / x.quant.scale[0]) if out_q is not None else 0.0
        ws = np.where(amax > 0, np.maximum(ws, max(floor, np.finfo(np.float32).tiny * 2**24)), 1.0).astype(np.float32)
        wq = QParams(ws, np.zeros(ws.shape, np.int64), axis)
        wt = self.g.const(_quantize(w, wq), hint=op.inputs[wi].name + "_q")
        wt.quant = wq
        bias = op.inputs[bi].data.astype(np.float64) if op.inputs[bi] is not None else np.zeros(ws.size)
        bs = (x.quant.scale[0].astype(np.float64) * ws.astype(np.float64))
        bt = self.g.const(np.clip(np.round(bias / bs), -(2**31), 2**31 - 1).astype(np.int32), hint="bias_q")
        bt.quant = QParams(bs.astype(np.float32), np.zeros(bs.shape, np.int64), 0)
        op.inputs[xi], op.inputs[wi], op.inputs[bi] = x, wt, bt

    def _const_min_scale(self, op: Op, t: Tensor) -> float:
        """Smallest scale a constant operand of ADD/SUB/MUL may take so the op stays in XNNPACK.

        A constant far below the output's resolution (a 1e-7 bias) would otherwise get its own
        tiny scale; at the floor it rounds to what the output can represent anyway."""
        if not t.is_const or op.code not in ("ADD", "SUB", "MUL") or len(op.outputs) != 1:
            return 0.0
        out_q = self.qp(op.outputs[0])
        if out_q is None:
            return 0.0
        if op.code in ("ADD", "SUB"):
            return ADD_RATIO_MIN * 1.01 * float(out_q.scale[0])
        other = [self.qp(u) for u in op.inputs if u is not t and u is not None and not u.is_const]
        if len(other) != 1 or other[0] is None:
            return 0.0
        return MUL_RATIO_MIN * 1.01 * float(out_q.scale[0]) / float(other[0].scale[0])

    def _comparison_params(self, op: Op) -> QParams | None:
        """The activation's params when ``op`` compares it with a constant its range holds."""
        acts = [t for t in op.inputs if not t.is_const]
        consts = [t for t in op.inputs if t.is_const]
        if len(acts) != 1 or len(consts) != 1 or acts[0].dtype not in ("float32", "int8"):
            return None
        q = self.qp(acts[0])
        if q is None or q.scale.size != 1:
            return None
        lo, hi = (-128 - q.zero_point[0]) * q.scale[0], (127 - q.zero_point[0]) * q.scale[0]
        c = consts[0].data
        return q if np.isfinite(c).all() and lo <= np.min(c) and np.max(c) <= hi else None

    def _int8_possible(self, op: Op) -> bool:
        if op.node in self.fallback:
            return False
        if op.code in self.COMPARISONS:
            return self._comparison_params(op) is not None
        if op.code in self.SELECTS:
            values = [t for t in op.inputs[1:] if t is not None]
            return (self.qp(op.outputs[0]) is not None and op.inputs[0].dtype == "bool"
                    and all(t.is_const or self.qp(t) is not None for t in values))
        acts = [t for t in op.inputs if t is not None and not t.is_const and t.dtype in ("float32", "int8")]
        if op.code in TWO_SIDED and len(acts) == 2:  # max(x, a*x) of LeakyReLU, TF's Maximum of two tensors
            return all(self.qp(t) is not None for t in acts) and self.qp(op.outputs[0]) is not None
        if op.code in self.PASSTHROUGH:
            data = op.inputs[self.PASSTHROUGH[op.code]]
            if op.code == "GATHER" and data.is_const:  # embedding table: quantized with the output's params
                return self.qp(op.outputs[0]) is not None
            ok = data.dtype == "int8" or (id(data) in self.graph_inputs and self.qp(data) is not None)
            return ok and all(t is data or t.is_const for t in acts)
        if op.code in self.FIXED:
            return self.qp(op.inputs[0]) is not None
        if op.code in self.REQUANTIZING:
            ok = all(self.qp(t) is not None for t in acts) and all(self.qp(t) is not None for t in op.outputs)
            return ok and self._representable(op, acts)
        return False

    def _representable(self, op: Op, acts: list[Tensor]) -> bool:
        """TFLite's int8 ADD/SUB/MUL kernels abort (a CHECK in QuantizeMultiplier, SIGABRT at
        allocate) when a rescale factor is below 2^-31 or far above 1: an attention-mask bias of
        -3.4e38 (MiniLM: ``(1 - mask) * finfo.min``) next to scores of ~1 gives in/out scale
        ratios of 1e-37. Such an op stays float; its result is no int8 value anyway."""
        if op.code not in ("ADD", "SUB", "MUL") or len(op.outputs) != 1:
            return True
        out = float(self.qp(op.outputs[0]).scale[0])
        scales = [float(self.qp(t).scale[0]) for t in acts]
        # a constant is quantized with at least _const_min_scale (an epsilon far below the output's
        # resolution takes the floor), so its ratio is judged at the scale it will really get
        scales += [max(float(np.max(np.abs(t.data))) / 127.0, self._const_min_scale(op, t)) or 1.0
                   for t in op.inputs if t is not None and t.is_const]
        if not scales or out <= 0:
            return True
        ratios = [np.prod(scales) / out] if op.code == "MUL" else [sc / out for sc in scales]
        return all(REPRESENTABLE_RATIO[0] <= r <= REPRESENTABLE_RATIO[1] for r in ratios)

    def _clamp_params(self, code: str, q: QParams, c: float) -> QParams | None:
        """Params covering ``q``'s range cut at ``c`` whose lowest (MAXIMUM) or highest (MINIMUM) code
        is exactly ``c``: requantizing to them saturates exactly like the clamp. ``q`` itself when
        the clamp cuts nothing; None when no such params exist (a bound beyond zero or the range)."""
        s, z = float(q.scale[0]), int(q.zero_point[0])
        lo, hi = (-128 - z) * s, (127 - z) * s
        if (code == "MAXIMUM" and c <= lo) or (code == "MINIMUM" and c >= hi):
            return q
        span = hi - c if code == "MAXIMUM" else c - lo
        # zero must stay representable (int8 zero points), and the rescale within XNNPACK's QUANTIZE limit
        if (c > 0 if code == "MAXIMUM" else c < 0) or span * 128 < hi - lo:
            return None
        scale = span / 255.0
        if c == 0:
            return QParams.per_tensor(scale, -128 if code == "MAXIMUM" else 127)
        if code == "MAXIMUM":
            zp = int(np.clip(np.round(-128 - c / scale), -127, 127))
            return QParams.per_tensor(c / (-128 - zp), zp)
        zp = int(np.clip(np.round(127 - c / scale), -128, 126))
        return QParams.per_tensor(c / (127 - zp), zp)

    def _const_clamp(self, op: Op) -> bool:
        """MAXIMUM(x, c) / MINIMUM(x, c) with a scalar constant: the output takes params whose end code
        is ``c`` and the clamp becomes the saturation of a requantization -- folded into x's producer
        when that requantizes anyway and x has no other reader (openWakeWord's ``max(leaky_relu, -0.4)``
        after every conv: 19 int8 MAXIMUM outside XNNPACK, 20 partitions), else one QUANTIZE."""
        if not self.CLAMP_AS_REQUANTIZE or op.code not in TWO_SIDED or len(op.outputs) != 1 or op.node in self.fallback:
            return False
        consts = [t for t in op.inputs if t is not None and t.is_const]
        acts = [t for t in op.inputs if t is not None and not t.is_const]
        if len(consts) != 1 or len(acts) != 1 or consts[0].data.size != 1 or not np.isfinite(consts[0].data).all():
            return False
        x, out = acts[0], op.outputs[0]
        if not (x.dtype == "int8" or (id(x) in self.graph_inputs and self.qp(x) is not None)):
            return False
        xq = self.as_int8(x)
        q = self._clamp_params(op.code, xq.quant, float(np.ravel(consts[0].data)[0]))
        if q is None:
            return False
        is_output = any(t is out for t in self.g.outputs)
        producer = next((p for p in reversed(self.ops) if any(t is xq for t in p.outputs)), None)
        foldable = (producer is not None and len(producer.outputs) == 1 and xq is x and not is_output
                    and not any(t is x for t in self.g.outputs)
                    and (producer.code in self.REQUANTIZING and producer.code not in self.SAME_OUTPUT_INPUTS
                         or producer.code == "QUANTIZE" and producer.inputs[0].dtype == "int8")
                    and [o for o in self.g.ops if any(t is x for t in o.inputs)] == [op])
        if q is xq.quant and not is_output:  # cuts nothing: the clamp is x itself
            self.g.replace_uses(out, xq)
        elif foldable:
            x.quant = q
            self.g.replace_uses(out, x)
        else:
            out.dtype, out.quant = "int8", q
            self.ops.append(Op("QUANTIZE", [xq], [out], node=op.node))
        return True

    def run(self) -> None:
        for op in self.g.ops:
            self.derive(op)
            if self._const_clamp(op):
                continue
            if not self._int8_possible(op):
                self._float(op)
                continue
            if op.code in WEIGHTED:
                self._weighted(op)
                outs = [self.qp(t) for t in op.outputs]
            elif op.code == "GATHER" and op.inputs[0].is_const:
                q = self.qp(op.outputs[0])
                op.inputs[0] = self.as_int8(op.inputs[0], q)
                outs = [q]
            elif op.code in TWO_SIDED and sum(1 for t in op.inputs if t is not None and not t.is_const) == 2:
                q = self.qp(op.outputs[0])  # both operands on the output's params (like CONCATENATION)
                op.inputs = [self.as_int8(t, q) for t in op.inputs]
                outs = [q]
            elif op.code in self.PASSTHROUGH:
                di = self.PASSTHROUGH[op.code]
                op.inputs[di] = self.as_int8(op.inputs[di])
                q = op.inputs[di].quant
                op.inputs = [self.as_int8(t, q) if (t is not None and t.is_const and t.dtype == "float32")
                             else t for t in op.inputs]
                outs = [q for _ in op.outputs]
            elif op.code in self.FIXED:
                op.inputs[0] = self.as_int8(op.inputs[0])
                outs = [QParams.per_tensor(*self.FIXED[op.code])]
            elif op.code in self.COMPARISONS:
                q = self._comparison_params(op)
                op.inputs = [self.as_int8(t, q) for t in op.inputs]
                outs = []  # the output stays bool
            elif op.code in self.SELECTS:
                q = self.qp(op.outputs[0])
                op.inputs = [op.inputs[0]] + [self.as_int8(t, q) for t in op.inputs[1:]]
                outs = [q]
            elif op.code in self.SAME_OUTPUT_INPUTS:
                q = self.qp(op.outputs[0])
                op.inputs = [self.as_int8(t, q) for t in op.inputs]
                outs = [q]
            else:
                op.inputs = [self.as_int8(t, min_scale=self._const_min_scale(op, t))
                             if (t is not None and t.dtype in ("float32", "int8")) else t for t in op.inputs]
                outs = [self.qp(t) for t in op.outputs]
            for t, q in zip(op.outputs, outs):
                t.dtype, t.quant = "int8", q
            self.ops.append(op)


def _backfill_sources(graph: TFLGraph) -> None:
    """Unnamed temporaries feeding RESHAPE/TRANSPOSE get the (equal) range of what they feed."""
    producers = graph.producers()
    for op in graph.ops:  # range-preserving ops: an unnamed output has its input's range
        if op.code in ("PAD", "PADV2", "RESHAPE", "TRANSPOSE", "DEPTH_TO_SPACE", "SPACE_TO_DEPTH") and op.inputs[0].source and not op.outputs[0].source:
            op.outputs[0].source = op.inputs[0].source
    for op in reversed(graph.ops):
        if op.code in ("RESHAPE", "TRANSPOSE") and op.outputs[0].source and not op.inputs[0].source:
            if id(op.inputs[0]) in producers:
                op.inputs[0].source = op.outputs[0].source


def quantize_graph(graph: TFLGraph, params: dict[str, Any], fallback: set[str], int8_io: bool = False,
                   rewriter: type[Int8Rewriter] | None = None) -> dict[str, Any]:
    """Rewrite ``graph`` in place to int8. Returns a report (``_io``: id(tensor) -> QParams of int8 I/O).

    ``rewriter`` picks the op sets (a subclass of :class:`Int8Rewriter`, e.g. the Edge TPU's)."""
    _backfill_sources(graph)
    rw = (rewriter or Int8Rewriter)(graph, params, fallback)
    io: dict[int, QParams] = {}
    if int8_io:
        for t in graph.inputs:
            q = rw.qp(t)
            if t.dtype == "float32" and q is not None:
                t.dtype, t.quant = "int8", q
                io[id(t)] = q
    rw.run()
    outputs = []
    for t in graph.outputs:
        if int8_io and t.dtype == "float32" and rw.qp(t) is not None:
            t = rw.as_int8(t)
        elif not int8_io:
            t = rw.as_float(t)
        if t.dtype == "int8":
            io[id(t)] = t.quant
        outputs.append(t)
    graph.outputs = outputs
    graph.ops = rw.ops
    graph.remove_dead()
    counts = graph.op_counts()
    int8_ops = sum(1 for op in graph.ops if op.outputs[0].dtype == "int8" and op.code != "QUANTIZE")
    return {"int8_ops": int8_ops, "float_ops": dict(sorted(rw.float_ops.items())),
            "quantize": counts.get("QUANTIZE", 0), "dequantize": counts.get("DEQUANTIZE", 0),
            "fallback_nodes": sorted(rw.fallback), "_io": io}


def minmax_params(model, samples, max_samples: int = 32) -> dict[str, Any]:
    """Per-tensor asymmetric int8 params from min/max of every float value over ``samples``
    (onnxruntime, one sample at a time). Used only when the core engine did not run."""
    import onnx
    import onnx_ir as ir
    import onnxruntime as ort

    from deploykit.quant.params import params_from_range

    proto = ir.to_proto(model)
    known = {o.name for o in proto.graph.output}
    names = []
    for node in model.graph:
        for v in node.outputs:
            if v.name and v.dtype in (ir.DataType.FLOAT,) and v.name not in known:
                names.append(v.name)
    for n in names:
        proto.graph.output.append(onnx.ValueInfoProto(name=n))
    inputs = [v.name for v in model.graph.inputs if v.name not in model.graph.initializers]
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    out_names = [o.name for o in sess.get_outputs()]
    lo: dict[str, float] = {}
    hi: dict[str, float] = {}
    for i, feed in enumerate(samples.feeds()):
        if i >= max_samples:
            break
        values = dict(zip(out_names, sess.run(None, {k: feed[k] for k in inputs})))
        values.update({k: feed[k] for k in inputs})
        for k, v in values.items():
            if not isinstance(v, np.ndarray) or v.dtype != np.float32 or v.size == 0:
                continue
            lo[k] = min(lo.get(k, np.inf), float(v.min()))
            hi[k] = max(hi.get(k, -np.inf), float(v.max()))
    return {k: params_from_range(lo[k], hi[k], "int8", symmetric=False) for k in lo}


def resolve_params(ctx, scheme) -> tuple[dict[str, Any], set[str], str]:
    """(params, fallback node names, where they came from) for an int8 build."""
    from deploykit.errors import DeployError

    quant = getattr(ctx, "quant", None)
    if quant is not None and getattr(quant, "params", None):
        return dict(quant.params), set(getattr(quant, "fallback", ()) or ()), "the quantization engine"
    if ctx.calibration is None:
        raise DeployError("int8 needs calibration data; pass --calibration samples.npy")
    del scheme
    return minmax_params(ctx.model, ctx.calibration), set(), \
        f"min/max over {min(len(ctx.calibration), 32)} calibration samples (plugin fallback: engine did not run)"
