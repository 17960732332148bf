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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import pattern

from deploykit.passes._common import attr, const_array


def _like(x: ir.Value, *values: ir.Value) -> ir.Value:
    """Give new elementwise results ``x``'s type and shape (the lowering needs static shapes)."""
    for v in values:
        v.type, v.shape = x.type, x.shape
    return values[-1]


class HardSwishDecompose(pattern.RewriteRuleClassBase):
    def pattern(self, op, x):
        return op.HardSwish(x)

    def rewrite(self, op, x):
        three = op.Constant(value=ir.tensor(np.array(3.0, np.float32)))
        zero = op.Constant(value=ir.tensor(np.array(0.0, np.float32)))
        six = op.Constant(value=ir.tensor(np.array(6.0, np.float32)))
        sixth = op.Constant(value=ir.tensor(np.array(1.0 / 6.0, np.float32)))
        added = op.Add(x, three)
        clipped = op.Clip(added, zero, six)
        prod = op.Mul(x, clipped)
        return _like(x, added, clipped, prod, op.Mul(prod, sixth))


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


HALF_PIXEL = ("half_pixel", "pytorch_half_pixel")


class ResizeNearestHalfPixel(pattern.RewriteRuleClassBase):
    def pattern(self, op, x):
        return op.Resize(x, _allow_other_inputs=True, _allow_other_attributes=True, _outputs=["y"])

    def check(self, context, x, y, **_):
        node = y.producer()
        if attr(node, "mode", "nearest") != "nearest" or attr(node, "coordinate_transformation_mode") not in HALF_PIXEL:
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


def _non_negative(v: ir.Value, depth: int = 0) -> bool:
    """``v`` is >= 0 by construction (output of Relu, Sigmoid, or a Clip with min >= 0)."""
    from deploykit.passes._common import clip_bounds

    node = v.producer()
    if node is None or depth > 8:
        return False
    if node.op_type in ("Relu", "Sigmoid"):
        return True
    if node.op_type in ("Concat", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Reshape",
                        "Transpose", "Flatten"):
        data = node.inputs if node.op_type == "Concat" else node.inputs[:1]
        return all(x is not None and _non_negative(x, depth + 1) for x in data)
    bounds = clip_bounds(node) if node.op_type == "Clip" else None
    return bounds is not None and bounds[0] >= 0.0


class MaxPoolPadAfterRelu(pattern.RewriteRuleClassBase):
    def pattern(self, op, x):
        return op.MaxPool(x, _allow_other_attributes=True, _outputs=["y"])

    def check(self, context, x, y, **_):
        node = y.producer()
        pads = attr(node, "pads")
        return (bool(pads) and any(int(p) for p in pads) and attr(node, "auto_pad", "NOTSET") == "NOTSET"
                and len(node.outputs) == 1 and x.shape is not None and len(x.shape) == 4 and _non_negative(x))

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


@dataclass(frozen=True)
class Rule:
    name: str
    rule_class: type
    why: str


RULES: list[Rule] = [
    Rule("hardswish", HardSwishDecompose, "HARD_SWISH is not an Edge TPU op: ADD+RELU6, MUL, MUL are"),
    Rule("leaky_relu", LeakyReluToMax, "LEAKY_RELU is not an Edge TPU op: max(x, a*x) is exact"),
    Rule("prelu_scalar", ScalarPReluToMax, "PRELU (runtime 13, unconfirmed) -> max(x, a*x), exact"),
    Rule("maxpool_pad_after_relu", MaxPoolPadAfterRelu,
         "max pooling pads with -inf (PADV2, a CPU op); on an input >= 0 zero padding (PAD, a TPU op) is exact"),
    Rule("grouped_conv_split", GroupedConvSplit,
         "grouped CONV_2D (v6) is rejected by compiler 16.0: Split + one Conv per group + Concat"),
    Rule("resize_nearest_half_pixel", ResizeNearestHalfPixel,
         "integer nearest upsampling: half_pixel == asymmetric/floor; avoids RESIZE_NEAREST_NEIGHBOR v3"),
]


def apply(model: ir.Model, rules: list[Rule] | None = None) -> dict[str, int]:
    """Apply ``rules`` (default: all) to ``model`` in place; {rule name: rewrites done}."""
    counts: dict[str, int] = {}
    for rule in rules if rules is not None else RULES:
        n = pattern.RewriteRuleSet([rule.rule_class.rule()]).apply_to_model(model)
        if n:
            counts[rule.name] = n
    return counts
