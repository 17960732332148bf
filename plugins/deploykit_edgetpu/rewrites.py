"""Declarative (pattern, rewrite) rules that move more of a graph onto the Edge TPU.

Applied by :meth:`EdgeTpuBackend.prepare` on the canonical fp32 ONNX model, *before* calibration,
so the quantization engine calibrates the new intermediate tensors. Each rule is an onnxscript
``RewriteRuleClassBase`` (the style of ``deploykit/passes``) listed in :data:`RULES` with the
reason it helps (facts/edgetpu.md):

* ``hardswish``: HARD_SWISH is no Edge TPU op (§2, §6) and the canonicalizer fuses x*relu6(x+3)/6
  into HardSwish -> ``x * clip(x + 3, 0, 6) * 1/6`` = ADD(+RELU6 fused), MUL, MUL, all TPU ops.
  (§7: whether the compiler maps this decomposition is unconfirmed; every op is in the table.)
* ``leaky_relu``: LEAKY_RELU is no Edge TPU op -> ``max(x, alpha * x)`` for 0 <= alpha <= 1
  (§6 "LeakyReLU workaround: max(x, a*x) (Maximum supported)"). Exact.
* ``prelu_scalar``: PReLU with one slope in [0, 1] -> the same ``max(x, a * x)`` (PRELU needs
  runtime 13 and its mapping is unconfirmed, §2). Exact.
* ``maxpool_pad_after_relu``: a padded MaxPool lowers to PADV2 with -inf + MAX_POOL_2D; PADV2 is
  no Edge TPU op and ends the TPU segment right after the stem of ResNet-style models. When the
  input is >= 0 (after Relu/Clip(0, .)/Sigmoid), zero padding gives the same maxima -> PAD (TPU). Exact.
* ``grouped_conv_split``: a grouped (not depthwise) Conv lowers to CONV_2D version 6, which compiler
  16.0 rejects (§6) -> Split into the groups, one Conv each, Concat. Exact.
* ``resize_nearest_half_pixel``: nearest-neighbour upsampling by an integer factor gives the same
  pixels with half_pixel and asymmetric/floor coordinates; half_pixel_centers makes
  RESIZE_NEAREST_NEIGHBOR version 3, which compiler 16.0 rejects (§0.8, §6). Exact.
* ``lrn``: LOCAL_RESPONSE_NORMALIZATION has no int8 TFLite kernel (and is no Edge TPU op, §2) ->
  ``x * (bias + alpha/size * window_sum(x*x)) ** -beta`` as MUL, a 1x1 CONV_2D with a constant band
  matrix (the channel-window sum, alpha/size as its weights and bias as its bias) and, for beta a
  multiple of 1/16, a chain of RSQRT and MUL: y^-1/2 = rsqrt(y), y^-1/4 = rsqrt(y * rsqrt(y)), ...,
  so beta = 0.75 is ``rsqrt(y) * rsqrt(y * rsqrt(y))``. Other beta keep one POW (float: refused, with
  the reason). RSQRT is a runtime-14 Edge TPU op (§2, unconfirmed). Exact in fp32.
* ``gelu_sigmoid``: GELU is no Edge TPU op and no op of the device's tflite-runtime 2.5 (it came with
  TF 2.10), and the erf/tanh polynomials need float or an x^3 no int8 range holds -> ``x * sigmoid(1.702 x)``
  (MUL, LOGISTIC, MUL: TPU ops). An approximation (|err| <= 0.021, below an int8 step of a typical
  activation); the int8 verification against fp32 measures the result.
* ``rsqrt``: ``a / sqrt(v)`` and ``1 / sqrt(v)`` (LayerNorm spelled out by JAX/TF/older exporters) ->
  ``a * v ** -0.5`` = MUL, RSQRT: SQRT and DIV have no int8 kernel, RSQRT has. Exact in fp32.
* ``layernorm_rsqrt``: a LayerNormalization node lowers to MEAN, SUB, MUL, MEAN, ADD, RSQRT, MUL inside
  one ONNX node, whose intermediate tensors the calibration never sees (no int8 params) -> the same
  chain as ONNX ops (ReduceMean, Sub, Mul, ReduceMean, Add, Pow -0.5, Mul, Mul, Add), calibrated one by
  one. Exact in fp32.
* ``concat_constant``: ``Concat(c, x)`` with a constant ``c`` (a ViT's class token) -> ``Pad(x) + c'``
  where ``c'`` is ``c`` in its slot and zeros elsewhere: CONCATENATION takes a constant only as an
  all-zero second input (§2). Exact.
* ``channel_shuffle``: Reshape to 5-D -> Transpose -> Reshape back (ShuffleNet) has tensors of rank 5
  with 4 dims > 1, which the Edge TPU cannot map (§0.3) -> the same channel permutation on rank-4
  tensors held channels-last: RESHAPE [1, H*W, g, C/g] -> TRANSPOSE -> RESHAPE (runtime >= 14, where
  TRANSPOSE is an Edge TPU op, §2), else SPLIT + RESHAPE + CONCATENATION (ops of every runtime). Exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import pattern

from deploykit.passes._common import attr, const_array, non_negative
from deploykit_tflite.int8_rewrites import HardSwishDecompose  # noqa: F401 - listed in RULES
from deploykit_tflite.int8_rewrites import like as _like




class LeakyReluToMax(pattern.RewriteRuleClassBase):
    def pattern(self, op, x):
        return op.LeakyRelu(x, _allow_other_attributes=True, _outputs=["y"])

    def check(self, context, x, y, **_):
        alpha = float(attr(y.producer(), "alpha", 0.01))
        return 0.0 <= alpha <= 1.0

    def rewrite(self, op, x, y, **_):
        alpha = float(attr(y.producer(), "alpha", 0.01))
        scaled = op.Mul(x, op.Constant(value=ir.tensor(np.array(alpha, np.float32))))
        return _like(x, scaled, op.Max(x, scaled))


class ScalarPReluToMax(pattern.RewriteRuleClassBase):
    def pattern(self, op, x, slope):
        return op.PRelu(x, slope)

    def check(self, context, x, slope, **_):
        a = const_array(slope)
        return a is not None and a.size == 1 and 0.0 <= float(a.reshape(-1)[0]) <= 1.0

    def rewrite(self, op, x, slope, **_):
        a = float(const_array(slope).reshape(-1)[0])
        scaled = op.Mul(x, op.Constant(value=ir.tensor(np.array(a, np.float32))))
        return _like(x, scaled, op.Max(x, scaled))


class ConcatConstantToPadAdd(pattern.RewriteRuleClassBase):
    """``Concat(c, x)`` / ``Concat(x, c)`` with a constant ``c`` that is not zero padding (a ViT's
    class token before its patch tokens): the Edge TPU maps CONCATENATION with a constant only as
    an all-zero second input (§2), so the whole transformer after it ran on the CPU (TPU share 1 %).
    ``Pad(x)`` with zeros where ``c`` goes, plus a constant that holds ``c`` there and zeros
    elsewhere: PAD and ADD are TPU ops. Exact."""

    def pattern(self, op, a, b):
        return op.Concat(a, b, _allow_other_attributes=True, _outputs=["y"])

    @staticmethod
    def _parts(a, b, y):
        ca, cb = const_array(a), const_array(b)
        if (ca is None) == (cb is None) or y.shape is None or not y.shape.is_static():
            return None
        const, x, first = (ca, b, True) if ca is not None else (cb, a, False)
        if x.shape is None or not x.shape.is_static() or const.dtype.kind != "f":
            return None
        if not first and not np.any(const):
            return None  # zero padding after x: the TPU maps that CONCATENATION as it is
        axis = int(attr(y.producer(), "axis", 0)) % len(y.shape)
        return const, x, first, axis

    def check(self, context, a, b, y, **_):
        return self._parts(a, b, y) is not None

    def rewrite(self, op, a, b, y, **_):
        const, x, first, axis = self._parts(a, b, y)
        shape = [int(d) for d in y.shape]
        n = const.shape[axis]
        pads = np.zeros(2 * len(shape), np.int64)
        pads[axis if first else len(shape) + axis] = n
        full = np.zeros(shape, np.float32)
        slot = [slice(None)] * len(shape)
        slot[axis] = slice(0, n) if first else slice(shape[axis] - n, shape[axis])
        full[tuple(slot)] = np.broadcast_to(const, full[tuple(slot)].shape)
        padded = _typed(x, op.Pad(x, _const(op, pads)), shape)
        return _typed(x, op.Add(padded, _const(op, full)), shape)


HALF_PIXEL = ("half_pixel", "pytorch_half_pixel")


class ResizeNearestHalfPixel(pattern.RewriteRuleClassBase):
    def pattern(self, op, x):
        return op.Resize(x, _allow_other_inputs=True, _allow_other_attributes=True, _outputs=["y"])

    def check(self, context, x, y, **_):
        node = y.producer()
        # no attribute: half_pixel from Resize-11 on (inputs X, roi, scales[, sizes]); Resize-10 (X,
        # scales) is asymmetric already
        ctm = attr(node, "coordinate_transformation_mode", "half_pixel" if len(node.inputs) >= 3 else "asymmetric")
        if attr(node, "mode", "nearest") != "nearest" or ctm not in HALF_PIXEL:
            return False
        if attr(node, "nearest_mode", "round_prefer_floor") not in ("round_prefer_floor", "round_prefer_ceil"):
            return False
        xs, ys = x.shape, y.shape
        if xs is None or ys is None or not xs.is_static() or not ys.is_static() or len(xs) != len(ys):
            return False
        return all(int(o) % int(i) == 0 and int(o) >= int(i) for i, o in zip(xs, ys))

    def rewrite(self, op, x, y, **_):
        node = y.producer()
        attrs = {k: a.value for k, a in node.attributes.items()}
        attrs.update(coordinate_transformation_mode="asymmetric", nearest_mode="floor")
        return op.Resize(*node.inputs, **attrs)


class MaxPoolPadAfterRelu(pattern.RewriteRuleClassBase):
    def pattern(self, op, x):
        return op.MaxPool(x, _allow_other_attributes=True, _outputs=["y"])

    def check(self, context, x, y, **_):
        node = y.producer()
        pads = attr(node, "pads")
        return (bool(pads) and any(int(p) for p in pads) and attr(node, "auto_pad", "NOTSET") == "NOTSET"
                and len(node.outputs) == 1 and x.shape is not None and len(x.shape) == 4 and non_negative(x))

    def rewrite(self, op, x, y, **_):
        node = y.producer()
        pads = [int(p) for p in attr(node, "pads")]
        n = len(pads) // 2
        onnx_pads = [0, 0, *pads[:n], 0, 0, *pads[n:]]
        padded = op.Pad(x, op.Constant(value=ir.tensor(np.array(onnx_pads, np.int64))),
                        op.Constant(value=ir.tensor(np.array(0.0, np.float32))), mode="constant")
        padded.type = x.type
        padded.shape = ir.Shape([int(d) + onnx_pads[i] + onnx_pads[i + 4] for i, d in enumerate(x.shape)])
        attrs = {k: a.value for k, a in node.attributes.items() if k != "pads"}
        return op.MaxPool(padded, **attrs)


class GroupedConvSplit(pattern.RewriteRuleClassBase):
    """Conv(group=g, not depthwise) -> Split(x, g) -> g Convs -> Concat (grouped CONV_2D is version 6,
    rejected by compiler 16.0; Ultralytics disables grouped conv for Edge TPU exports, facts §1, §6)."""

    def pattern(self, op, x, w):
        return op.Conv(x, w, _allow_other_inputs=True, _allow_other_attributes=True, _outputs=["y"])

    def check(self, context, x, w, y, **_):
        node = y.producer()
        g = int(attr(node, "group", 1))
        wa = const_array(w)
        if g <= 1 or wa is None or x.shape is None or len(x.shape) != 4 or not isinstance(x.shape[1], int):
            return False
        bias = node.inputs[2] if len(node.inputs) > 2 else None
        return wa.shape[1] > 1 and int(x.shape[1]) != g and (bias is None or const_array(bias) is not None) \
            and y.shape is not None and y.shape.is_static()

    def rewrite(self, op, x, w, y, **_):
        node = y.producer()
        g = int(attr(node, "group", 1))
        wa = const_array(w)
        bias = node.inputs[2] if len(node.inputs) > 2 else None
        ba = const_array(bias) if bias is not None else None
        cin, cout = int(x.shape[1]) // g, wa.shape[0] // g
        attrs = {k: a.value for k, a in node.attributes.items() if k != "group"}
        split = op.Split(x, op.Constant(value=ir.tensor(np.full(g, cin, np.int64))), axis=1, _outputs=g)
        outs = []
        for i, part in enumerate(split):
            part.type = x.type
            part.shape = ir.Shape([x.shape[0], cin, *x.shape[2:]])
            wi = op.Constant(value=ir.tensor(np.ascontiguousarray(wa[i * cout:(i + 1) * cout])))
            ins = [part, wi]
            if ba is not None:
                ins.append(op.Constant(value=ir.tensor(np.ascontiguousarray(ba[i * cout:(i + 1) * cout]))))
            conv = op.Conv(*ins, **attrs)
            conv.type = y.type
            conv.shape = ir.Shape([y.shape[0], cout, *y.shape[2:]])
            outs.append(conv)
        return op.Concat(*outs, axis=1)


def _const(op, array) -> ir.Value:
    return op.Constant(value=ir.tensor(np.ascontiguousarray(array)))


def _typed(x: ir.Value, v: ir.Value, shape, name: str = "") -> ir.Value:
    """Give a new value ``x``'s element type and the static ``shape`` (and its node a readable name:
    the TPU/CPU report lists operators by node)."""
    v.type, v.shape = x.type, ir.Shape([int(d) for d in shape])
    if name and v.producer() is not None:
        v.producer().name = name
    return v


def lrn_band(channels: int, size: int, scale: float) -> np.ndarray:
    """[C, C, 1, 1] weights of the 1x1 conv summing ONNX LRN's channel window, times ``scale``:
    output channel c sums inputs c - floor((size-1)/2) .. c + ceil((size-1)/2) (clipped)."""
    c = np.arange(channels)
    d = c[None, :] - c[:, None]  # input - output channel
    band = (d >= -((size - 1) // 2)) & (d <= -(-(size - 1) // 2))
    return (band * np.float32(scale)).astype(np.float32)[:, :, None, None]


RSQRT_STEPS = 4  # beta in multiples of 1/2**RSQRT_STEPS (1/16) uses RSQRT; else POW
MAX_RSQRT_BETA = 2.0


def rsqrt_terms(beta: float) -> list[int] | None:
    """``y ** -beta`` as a product of ``y ** -(1 / 2 ** (d + 1))`` terms: the list of d (with repeats),
    or ``None`` when beta is not a positive multiple of 1/16 up to 2 (then POW)."""
    units = beta * 2 ** RSQRT_STEPS
    if not 0 < beta <= MAX_RSQRT_BETA or abs(units - round(units)) > 1e-6:
        return None
    whole, frac = divmod(int(round(units)), 2 ** RSQRT_STEPS)
    terms = [0, 0] * whole  # y ** -1 = rsqrt(y) * rsqrt(y)
    for d in range(RSQRT_STEPS):
        if frac & (1 << (RSQRT_STEPS - 1 - d)):
            terms.append(d)
    return terms


def negative_power(op, y: ir.Value, beta: float, prefix: str = "") -> ir.Value:
    """``y ** -beta`` for y > 0: RSQRT (ONNX ``Pow(., -0.5)``, lowered to RSQRT for the Edge TPU) and MUL
    for beta a multiple of 1/16: root d is rsqrt(s_d) with s_0 = y, s_{d+1} = s_d * rsqrt(s_d) = y ** 2**-(d+1)."""
    terms = rsqrt_terms(beta)
    if terms is None:
        return _typed(y, op.Pow(y, _const(op, np.array(-beta, np.float32))), y.shape, f"{prefix}pow")
    half = _const(op, np.array(-0.5, np.float32))
    roots, s = [], y
    for d in range(max(terms) + 1):
        roots.append(_typed(y, op.Pow(s, half), y.shape, f"{prefix}rsqrt{d}"))
        if d < max(terms):
            s = _typed(y, op.Mul(s, roots[-1]), y.shape, f"{prefix}root{d + 1}")
    out = roots[terms[0]]
    for i, d in enumerate(terms[1:]):
        out = _typed(y, op.Mul(out, roots[d]), y.shape, f"{prefix}power{i}")
    return out


class LrnDecompose(pattern.RewriteRuleClassBase):
    """LRN -> x * (bias + alpha/size * window_sum(x * x)) ** -beta with MUL, a 1x1 band CONV, RSQRT/MUL."""

    def pattern(self, op, x):
        return op.LRN(x, _allow_other_attributes=True, _outputs=["y"])

    def check(self, context, x, y, **_):
        return x.shape is not None and len(x.shape) == 4 and x.shape.is_static() and int(x.shape[1]) > 0

    def rewrite(self, op, x, y, **_):
        node = y.producer()
        size = int(attr(node, "size", 1))
        alpha, beta, bias = (float(attr(node, k, d)) for k, d in (("alpha", 1e-4), ("beta", 0.75), ("bias", 1.0)))
        c, name = int(x.shape[1]), f"{node.name or 'lrn'}/"
        squared = _typed(x, op.Mul(x, x), x.shape, name + "square")
        window = op.Conv(squared, _const(op, lrn_band(c, size, alpha / size)), _const(op, np.full(c, bias, np.float32)),
                         kernel_shape=[1, 1])
        _typed(x, window, x.shape, name + "window_sum")
        return _typed(x, op.Mul(x, negative_power(op, window, beta, name)), x.shape, name + "scale")


def shuffle_groups(channel_order: np.ndarray) -> int | None:
    """g when output channel b*g + a is input channel a*(C/g) + b (ShuffleNet's shuffle), else None."""
    c = channel_order.size
    for g in range(2, c):
        if c % g == 0 and np.array_equal(channel_order, np.arange(c).reshape(g, c // g).T.ravel()):
            return g
    return None


def _reshape_target(shape: list[int], target: np.ndarray) -> list[int]:
    return [shape[i] if int(d) == 0 else int(d) for i, d in enumerate(target)]  # ONNX 0 = copy (allowzero=0)


class ChannelShuffle(pattern.RewriteRuleClassBase):
    """Reshape -> Transpose -> Reshape that permutes the channels of a [1, C, H, W] tensor like ShuffleNet
    -> the permutation on rank-4 tensors, channels last: [1, H*W, g, C/g] -> [1, H*W, C/g, g]."""

    use_transpose = True  # False: SPLIT + RESHAPE + CONCATENATION (for runtimes without TRANSPOSE)

    def pattern(self, op, x, s1, s2):
        r = op.Reshape(x, s1, _allow_other_attributes=True)
        t = op.Transpose(r, _allow_other_attributes=True, _outputs=["t"])
        return op.Reshape(t, s2, _allow_other_attributes=True, _outputs=["y"])

    def _groups(self, x, s1, s2, t, y) -> int | None:
        a1, a2 = const_array(s1), const_array(s2)
        xs = x.shape
        if a1 is None or a2 is None or xs is None or len(xs) != 4 or not xs.is_static() or int(xs[0]) != 1:
            return None
        if any(attr(n, "allowzero", 0) for n in (t.producer().inputs[0].producer(), y.producer())):
            return None
        shape = [int(d) for d in xs]
        perm = attr(t.producer(), "perm")
        idx = np.arange(int(np.prod(shape))).reshape(shape)
        try:
            r = idx.reshape(_reshape_target(shape, a1))
            tr = np.transpose(r, perm) if perm is not None else r.T
            out = tr.reshape(_reshape_target(list(tr.shape), a2))
        except ValueError:
            return None
        if list(out.shape) != shape:
            return None
        hw = shape[2] * shape[3]
        order = out[0, :, 0, 0] // hw
        if not np.array_equal(out, idx[:, order]):  # spatial positions must stay put: a pure channel permutation
            return None
        return shuffle_groups(order)

    def check(self, context, x, s1, s2, t, y, **_):
        return self._groups(x, s1, s2, t, y) is not None

    def rewrite(self, op, x, s1, s2, t, y, **_):
        g = self._groups(x, s1, s2, t, y)
        _, c, h, w = (int(d) for d in x.shape)
        name = f"{y.producer().name or 'shuffle'}/shuffle_"
        nhwc = _typed(x, op.Transpose(x, perm=[0, 2, 3, 1]), [1, h, w, c], name + "nhwc")
        grouped = _typed(x, op.Reshape(nhwc, _const(op, np.array([1, h * w, g, c // g], np.int64))),
                         [1, h * w, g, c // g], name + "groups")
        if self.use_transpose:
            swapped = _typed(x, op.Transpose(grouped, perm=[0, 1, 3, 2]), [1, h * w, c // g, g], name + "transpose")
        else:
            parts = op.Split(grouped, _const(op, np.ones(g, np.int64)), axis=2, _outputs=g)
            parts[0].producer().name = name + "split"
            cols = []
            for i, p in enumerate(parts):
                _typed(x, p, [1, h * w, 1, c // g])
                cols.append(_typed(x, op.Reshape(p, _const(op, np.array([1, h * w, c // g, 1], np.int64))),
                                   [1, h * w, c // g, 1], f"{name}column{i}"))
            swapped = _typed(x, op.Concat(*cols, axis=3), [1, h * w, c // g, g], name + "interleave")
        merged = _typed(x, op.Reshape(swapped, _const(op, np.array([1, h, w, c], np.int64))), [1, h, w, c],
                        name + "merge")
        return _typed(x, op.Transpose(merged, perm=[0, 3, 1, 2]), [1, c, h, w], name + "nchw")


class ChannelShuffleSplit(ChannelShuffle):
    use_transpose = False


class GeluSigmoid(pattern.RewriteRuleClassBase):
    def pattern(self, op, x):
        return op.Gelu(x, _allow_other_attributes=True)

    def rewrite(self, op, x):
        k = op.Constant(value=ir.tensor(np.array(1.702, np.float32)))
        scaled = op.Mul(x, k)
        gate = op.Sigmoid(scaled)
        return _like(x, scaled, gate, op.Mul(x, gate))


class DivSqrtToRsqrt(pattern.RewriteRuleClassBase):
    def pattern(self, op, a, v):
        return op.Div(a, op.Sqrt(v))

    def rewrite(self, op, a, v):
        r = op.Pow(v, op.Constant(value=ir.tensor(np.array(-0.5, np.float32))))
        r.type, r.shape = v.type, v.shape
        out = op.Mul(a, r)
        out.type = a.type
        return out


class ReciprocalSqrtToRsqrt(pattern.RewriteRuleClassBase):
    def pattern(self, op, v):
        return op.Reciprocal(op.Sqrt(v))

    def rewrite(self, op, v):
        return _like(v, op.Pow(v, op.Constant(value=ir.tensor(np.array(-0.5, np.float32)))))


class LayerNormDecompose(pattern.RewriteRuleClassBase):
    def pattern(self, op, x, gamma):
        return op.LayerNormalization(x, gamma, _allow_other_inputs=True, _allow_other_attributes=True,
                                     _outputs=["y"])

    def check(self, context, x, gamma, y, **_):
        node = y.producer()
        self._opset = context.model.opset_imports.get("", 0) if context.model is not None else 0
        return len(node.outputs) == 1 and x.shape is not None and len(x.shape) >= 1

    def rewrite(self, op, x, gamma, y, **_):
        node = y.producer()
        rank = len(x.shape)
        axis = int(attr(node, "axis", -1)) % rank
        axes = list(range(axis, rank))
        eps = op.Constant(value=ir.tensor(np.array(float(attr(node, "epsilon", 1e-5)), np.float32)))
        if self._opset >= 18:
            ax = op.Constant(value=ir.tensor(np.array(axes, np.int64)))
            mean_of = lambda v: op.ReduceMean(v, ax, keepdims=1)  # noqa: E731
        else:
            mean_of = lambda v: op.ReduceMean(v, axes=axes, keepdims=1)  # noqa: E731
        mean = mean_of(x)
        d = op.Sub(x, mean)
        var = mean_of(op.Mul(d, d))
        r = op.Pow(op.Add(var, eps), op.Constant(value=ir.tensor(np.array(-0.5, np.float32))))
        stat_shape = ir.Shape([d if i < axis else 1 for i, d in enumerate(x.shape)])
        for v in (mean, var, r):
            v.type, v.shape = x.type, stat_shape
        out = _like(x, d, op.Mul(d, r))
        out = _like(x, op.Mul(out, gamma))
        beta = node.inputs[2] if len(node.inputs) > 2 else None
        return _like(x, op.Add(out, beta)) if beta is not None else out


@dataclass(frozen=True)
class Rule:
    """``runtimes``: the Edge TPU runtime versions (``min_runtime_version``) the rule applies to."""

    name: str
    rule_class: type
    why: str
    runtimes: range = range(0, 1000)


RULES: list[Rule] = [
    Rule("lrn", LrnDecompose,
         "LOCAL_RESPONSE_NORMALIZATION has no int8 kernel: MUL, 1x1 band CONV_2D, RSQRT/MUL (beta k/16), MUL"),
    Rule("channel_shuffle", ChannelShuffle,
         "rank-5 channel shuffle is not mappable: RESHAPE [1,HW,g,C/g], TRANSPOSE, RESHAPE (rank 4)",
         range(14, 1000)),
    Rule("channel_shuffle", ChannelShuffleSplit,
         "rank-5 channel shuffle is not mappable; no TRANSPOSE before runtime 14: SPLIT, RESHAPE, CONCATENATION",
         range(0, 14)),
    Rule("hardswish", HardSwishDecompose, "HARD_SWISH is not an Edge TPU op: ADD+RELU6, MUL, MUL are"),
    Rule("gelu_sigmoid", GeluSigmoid, "GELU is no Edge TPU op nor a tflite-runtime 2.5 op: x*sigmoid(1.702x)"),
    Rule("layernorm_rsqrt", LayerNormDecompose, "LayerNormalization's inner tensors need calibrated params: its chain"),
    Rule("rsqrt", DivSqrtToRsqrt, "SQRT and DIV have no int8 kernel: a * RSQRT(v)"),
    Rule("rsqrt", ReciprocalSqrtToRsqrt, "SQRT and 1/x have no int8 kernel: RSQRT(v)"),
    Rule("leaky_relu", LeakyReluToMax, "LEAKY_RELU is not an Edge TPU op: max(x, a*x) is exact"),
    Rule("prelu_scalar", ScalarPReluToMax, "PRELU (runtime 13, unconfirmed) -> max(x, a*x), exact"),
    Rule("maxpool_pad_after_relu", MaxPoolPadAfterRelu,
         "max pooling pads with -inf (PADV2, a CPU op); on an input >= 0 zero padding (PAD, a TPU op) is exact"),
    Rule("grouped_conv_split", GroupedConvSplit,
         "grouped CONV_2D (v6) is rejected by compiler 16.0: Split + one Conv per group + Concat"),
    Rule("concat_constant", ConcatConstantToPadAdd,
         "CONCATENATION takes a constant only as zero padding: PAD + ADD of the constant (a ViT's class token)"),
    Rule("resize_nearest_half_pixel", ResizeNearestHalfPixel,
         "integer nearest upsampling: half_pixel == asymmetric/floor; avoids RESIZE_NEAREST_NEIGHBOR v3"),
]


def apply(model: ir.Model, rules: list[Rule] | None = None, runtime: int = 14) -> dict[str, int]:
    """Apply ``rules`` (default: all for Edge TPU runtime ``runtime``) to ``model`` in place;
    {rule name: rewrites done}."""
    counts: dict[str, int] = {}
    for rule in rules if rules is not None else [r for r in RULES if runtime in r.runtimes]:
        n = pattern.RewriteRuleSet([rule.rule_class.rule()]).apply_to_model(model)
        if n:
            counts[rule.name] = counts.get(rule.name, 0) + n
    return counts
