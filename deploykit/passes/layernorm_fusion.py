"""Fuse the decomposed layer normalization into ``LayerNormalization`` (opset >= 17).

Matched: ``d = x - ReduceMean(x); y = d / Sqrt(ReduceMean(Pow(d, 2)) + eps)``, optionally
followed by ``* gamma`` and ``+ beta`` (constants). Both ReduceMeans must reduce the same
*trailing* axes with ``keepdims=1`` (axes as attribute or, from opset 18, as input); ``gamma`` /
``beta`` are broadcast to the normalized shape. Anything else (other exponent, axes in the
middle, non-constant gamma) is left alone.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import pattern

from deploykit.passes._common import apply_rules, attr, const_array, is_float, opset_version, scalar_is, static_shape

MIN_OPSET = 17


def _trailing_axis(node: ir.Node, rank: int) -> int | None:
    """First axis of ``node`` (a ReduceMean) when it reduces the trailing axes with keepdims."""
    if attr(node, "keepdims", 1) != 1:
        return None
    axes = attr(node, "axes")
    if axes is None and len(node.inputs) > 1 and node.inputs[1] is not None:
        axes = const_array(node.inputs[1])
    if axes is None or len(axes) == 0:
        return None
    axes = sorted(int(a) % rank for a in np.asarray(axes).reshape(-1))
    return axes[0] if axes == list(range(axes[0], rank)) else None


def _params(x, mean, var, eps, gamma=None, beta=None):
    """``(axis, epsilon, scale, bias)`` for the fused node, or ``None`` if it does not apply."""
    shape = static_shape(x)
    if shape is None or not is_float(x) or len(shape) == 0:
        return None
    axis = _trailing_axis(mean.producer(), len(shape))
    if axis is None or axis != _trailing_axis(var.producer(), len(shape)):
        return None
    e = const_array(eps)
    if e is None or e.size != 1 or not scalar_is(eps, float(e.reshape(-1)[0]), x):
        return None
    norm_shape = shape[axis:]
    dtype = x.dtype.numpy()
    out = []
    for v, default in ((gamma, 1.0), (beta, 0.0)):
        a = np.full(norm_shape, default, dtype) if v is None else const_array(v)
        if a is None or a.dtype != dtype or a.ndim > len(norm_shape):
            return None
        try:
            out.append(np.ascontiguousarray(np.broadcast_to(a, norm_shape)))
        except ValueError:
            return None
    return axis, float(e.reshape(-1)[0]), out[0], out[1]


class _Plain(pattern.RewriteRuleClassBase):
    def normalized(self, op, x, two, eps):
        mean = op.ReduceMean(x, _allow_other_inputs=True, _outputs=["mean"])
        d = op.Sub(x, mean)
        var = op.ReduceMean(op.Pow(d, two), _allow_other_inputs=True, _outputs=["var"])
        return op.Div(d, op.Sqrt(op.Add(var, eps)))

    def pattern(self, op, x, two, eps):
        return self.normalized(op, x, two, eps)

    def check(self, context, x, two, **kw):
        return scalar_is(two, 2.0, x) and _params(x, **_pick(kw)) is not None

    def rewrite(self, op, x, **kw):
        axis, eps, scale, bias = _params(x, **_pick(kw))
        s, b = op.Constant(value=ir.tensor(scale)), op.Constant(value=ir.tensor(bias))
        return op.LayerNormalization(x, s, b, axis=axis, epsilon=eps)


class _Scaled(_Plain):
    def pattern(self, op, x, two, eps, gamma):
        return op.Mul(self.normalized(op, x, two, eps), gamma)


class _Affine(_Plain):
    def pattern(self, op, x, two, eps, gamma, beta):
        return op.Add(op.Mul(self.normalized(op, x, two, eps), gamma), beta)


def _pick(kw: dict) -> dict:
    return {k: kw.get(k) for k in ("mean", "var", "eps", "gamma", "beta")}


def _affine_rules() -> list:
    return [_Affine.rule()]


def _scaled_rules() -> list:
    return [_Scaled.rule()]


def _plain_rules() -> list:
    return [_Plain.rule()]


class LayerNormFusionPass(ir.passes.InPlacePass):
    """Replace the ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div(/Mul/Add) chain with LayerNormalization."""

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        if opset_version(model) < MIN_OPSET:
            return ir.passes.PassResult(model, modified=False)
        # Longest form first: each rule set sweeps the whole graph before the shorter one runs.
        count = sum(apply_rules(model, f, needs=("ReduceMean",)) for f in (_affine_rules, _scaled_rules, _plain_rules))
        return ir.passes.PassResult(model, modified=count > 0)
