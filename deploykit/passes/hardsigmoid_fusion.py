"""Fuse ``relu6(x + 3) / 6`` into ``HardSigmoid(x, alpha=1/6, beta=0.5)`` (opset >= 6).

Matched forms (Add/Mul operands in either order; ``relu6`` is ``Clip(., 0, 6)`` with bounds as
attributes (opset < 11) or constant inputs):

* ``Div(Clip(Add(x, 3), 0, 6), 6)``
* ``Mul(Clip(Add(x, 3), 0, 6), 1/6)``

Constants must match (rtol 1e-4); a pattern with other constants is left alone. Models whose
default opset has no HardSigmoid are left alone.
"""

from __future__ import annotations

import onnx_ir as ir
from onnxscript.rewriter import pattern

from deploykit.passes._common import apply_rules, clip_bounds, is_float, opset_version, scalar_is

MIN_OPSET = 6


def relu6_of_x_plus_3(x: ir.Value, three: ir.Value, clipped: ir.Value) -> bool:
    """``clipped`` is ``Clip(Add(x, three), 0, 6)`` with the right constants."""
    return is_float(x) and scalar_is(three, 3.0, x) and clip_bounds(clipped.producer()) == (0.0, 6.0)


class _DivForm(pattern.RewriteRuleClassBase):
    def pattern(self, op, x, three, six):
        clipped = op.Clip(op.Add(x, three), _allow_other_inputs=True, _outputs=["clipped"])
        return op.Div(clipped, six)

    def check(self, context, x, three, six, clipped, **_):
        return relu6_of_x_plus_3(x, three, clipped) and scalar_is(six, 6.0, x)

    def rewrite(self, op, x, **_):
        return op.HardSigmoid(x, alpha=1.0 / 6.0, beta=0.5)


class _MulForm(_DivForm):
    def pattern(self, op, x, three, six):
        clipped = op.Clip(op.Add(x, three), _allow_other_inputs=True, _outputs=["clipped"])
        return op.Mul(clipped, six)

    def check(self, context, x, three, six, clipped, **_):
        return relu6_of_x_plus_3(x, three, clipped) and scalar_is(six, 1.0 / 6.0, x)


def _rules() -> list:
    return [_DivForm.rule(), _MulForm.rule()]


class HardSigmoidFusionPass(ir.passes.InPlacePass):
    """Replace the relu6(x+3)/6 sub-graph with one HardSigmoid node."""

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        if opset_version(model) < MIN_OPSET:
            return ir.passes.PassResult(model, modified=False)
        count = apply_rules(model, _rules, needs=("Clip",))
        return ir.passes.PassResult(model, modified=count > 0)
