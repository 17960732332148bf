"""Fuse the decomposed GELU forms into ``Gelu`` (opset >= 20).

* erf form: ``0.5 * x * (1 + erf(x / sqrt(2)))`` (``x / 1.41421`` or ``x * 0.70711``);
* tanh form: ``0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))`` (``Pow(x, 3)``,
  ``x * x * x``, or JAX's ``x * (x * (0.044715 * x))``, which magika ships) -> ``Gelu(x,
  approximate="tanh")``. Unfused, its ``x^3`` reaches ~1e5 and wrecks an int8 tensor's range.

The ``0.5`` may multiply ``x`` first, the product last, or the ``(1 + ...)`` factor; Add/Mul
operands may come in either order. Every constant must match (rtol 1e-4), else the sub-graph stays.
"""

from __future__ import annotations

import math

import onnx_ir as ir
from onnxscript.rewriter import pattern

from deploykit.passes._common import apply_rules, is_float, opset_version, scalar_is

MIN_OPSET = 20
_SQRT2, _SQRT_2_PI = math.sqrt(2.0), math.sqrt(2.0 / math.pi)


def _outer(op, x, one_plus, half, form):
    """The three places exporters put the 0.5 factor."""
    if form == 0:
        return op.Mul(op.Mul(x, one_plus), half)
    if form == 1:
        return op.Mul(op.Mul(x, half), one_plus)
    return op.Mul(x, op.Mul(one_plus, half))


class _ErfGelu(pattern.RewriteRuleClassBase):
    def __init__(self, scaled_by_div: bool, form: int) -> None:
        super().__init__(name=f"ErfGelu_{'div' if scaled_by_div else 'mul'}_{form}")
        self.div, self.form = scaled_by_div, form

    def pattern(self, op, x, s, one, half):
        scaled = op.Div(x, s) if self.div else op.Mul(x, s)
        return _outer(op, x, op.Add(op.Erf(scaled), one), half, self.form)

    def check(self, context, x, s, one, half, **_):
        s_ok = scalar_is(s, _SQRT2 if self.div else 1 / _SQRT2, x)
        return is_float(x) and s_ok and scalar_is(one, 1.0, x) and scalar_is(half, 0.5, x)

    def rewrite(self, op, x, **_):
        return op.Gelu(x)


class _TanhGelu(pattern.RewriteRuleClassBase):
    def __init__(self, cube: str, form: int) -> None:
        super().__init__(name=f"TanhGelu_{cube}_{form}")
        self.cube, self.form = cube, form

    def pattern(self, op, x, three, c1, c2, one, half):
        if self.cube == "scaled":  # c1 * x first, then times x twice (no separate x^3)
            kx3 = op.Mul(x, op.Mul(x, op.Mul(c1, x)))
        else:
            kx3 = op.Mul(op.Pow(x, three) if self.cube == "pow" else op.Mul(op.Mul(x, x), x), c1)
        inner = op.Mul(op.Add(x, kx3), c2)
        return _outer(op, x, op.Add(op.Tanh(inner), one), half, self.form)

    def check(self, context, x, c1, c2, one, half, three=None, **_):
        ok = is_float(x) and scalar_is(c1, 0.044715, x) and scalar_is(c2, _SQRT_2_PI, x)
        ok = ok and scalar_is(one, 1.0, x) and scalar_is(half, 0.5, x)
        return ok and (three is None or scalar_is(three, 3.0, x))

    def rewrite(self, op, x, **_):
        return op.Gelu(x, approximate="tanh")


def _rules() -> list:
    rules = [_ErfGelu.rule(div, form) for div in (True, False) for form in range(3)]
    rules += [_TanhGelu.rule(cube, form) for cube in ("pow", "mul", "scaled") for form in range(3)]
    return rules


class GeluFusionPass(ir.passes.InPlacePass):
    """Replace decomposed GELU (erf or tanh approximation) with one Gelu node."""

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        if opset_version(model) < MIN_OPSET:
            return ir.passes.PassResult(model, modified=False)
        return ir.passes.PassResult(model, modified=apply_rules(model, _rules, needs=("Erf", "Tanh")) > 0)
