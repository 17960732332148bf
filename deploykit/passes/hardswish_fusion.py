"""Fuse ``x * relu6(x + 3) / 6`` into ``HardSwish(x)`` (opset >= 14).

Matched forms (Add/Mul operands in either order):

* ``Mul(x, HardSigmoid(x, alpha=1/6, beta=0.5))`` -- also what :mod:`hardsigmoid_fusion`
  leaves of ``x * (relu6(x + 3) / 6)`` and ``x * (relu6(x + 3) * 1/6)``;
* ``Div(Mul(x, Clip(Add(x, 3), 0, 6)), 6)`` (PyTorch < 1.6 / opset < 14 exports);
* ``Mul(Mul(x, Clip(Add(x, 3), 0, 6)), 1/6)`` (Keras / TF exports).

A HardSigmoid with other alpha/beta (e.g. Keras' 0.2/0.5) or wrong constants is left alone.
"""

from __future__ import annotations

import onnx_ir as ir
from onnxscript.rewriter import pattern

from deploykit.passes._common import apply_rules, attr, opset_version, scalar_is
from deploykit.passes.hardsigmoid_fusion import relu6_of_x_plus_3

MIN_OPSET = 14


class _FromHardSigmoid(pattern.RewriteRuleClassBase):
    def pattern(self, op, x):
        return op.Mul(x, op.HardSigmoid(x, _allow_other_attributes=True, _outputs=["hsig"]))

    def check(self, context, x, hsig, **_):
        node = hsig.producer()
        alpha, beta = float(attr(node, "alpha", 0.2)), float(attr(node, "beta", 0.5))
        return abs(alpha - 1 / 6) < 1e-5 and abs(beta - 0.5) < 1e-6

    def rewrite(self, op, x, **_):
        return op.HardSwish(x)


class _DivForm(_FromHardSigmoid):
    def pattern(self, op, x, three, six):
        clipped = op.Clip(op.Add(x, three), _allow_other_inputs=True, _outputs=["clipped"])
        return op.Div(op.Mul(x, clipped), six)

    def check(self, context, x, three, six, clipped, **_):
        return relu6_of_x_plus_3(x, three, clipped) and scalar_is(six, 6.0, x)


class _MulForm(_FromHardSigmoid):
    def pattern(self, op, x, three, six):
        clipped = op.Clip(op.Add(x, three), _allow_other_inputs=True, _outputs=["clipped"])
        return op.Mul(op.Mul(x, clipped), six)

    def check(self, context, x, three, six, clipped, **_):
        return relu6_of_x_plus_3(x, three, clipped) and scalar_is(six, 1.0 / 6.0, x)


def _rules() -> list:
    return [_FromHardSigmoid.rule(), _DivForm.rule(), _MulForm.rule()]


class HardSwishFusionPass(ir.passes.InPlacePass):
    """Replace x * hardsigmoid(x) sub-graphs with one HardSwish node."""

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        if opset_version(model) < MIN_OPSET:
            return ir.passes.PassResult(model, modified=False)
        count = apply_rules(model, _rules, needs=("Clip", "HardSigmoid"))
        return ir.passes.PassResult(model, modified=count > 0)
