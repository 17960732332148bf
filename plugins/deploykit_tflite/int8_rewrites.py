"""ONNX-level rewrites applied before calibration of int8 TFLite builds (rpi4/rpi5; the Edge TPU
backend reuses them), so the quantization engine calibrates the tensors they introduce.

* HardSwish -> ``x * clip(x + 3, 0, 6) * 1/6``: int8 HARD_SWISH has no XNNPACK kernel (facts
  tflite-xnnpack §2, §4), so every h-swish of a PP-LCNet split the int8 graph into DEQUANTIZE ->
  float HARD_SWISH -> QUANTIZE islands (rpi4 int8 was 1.28x the fp32 latency). ADD with a fused
  RELU6, MUL and MUL are all int8 XNNPACK ops. Exact in fp32.
* Decomposed LayerNorm / GELU in models below opset 17 / 20 (the canonical fusions need those
  opsets, so a ViT at opset 14 or magika at 15 kept ``Sqrt``, ``Div``, ``Erf``, ``x^3``): the model
  is upgraded to opset 20 and fused when that fuses anything. Fused, LayerNormalization lowers to
  MEAN/SUB/MUL/RSQRT and Gelu to GELU, which have int8 kernels (SQRT, DIV and the erf polynomial
  have none: the Edge TPU refused 62 nodes of a ViT-S), and a tanh-GELU's ``x^3`` (~1e5) no longer
  sets an int8 range (magika rpi4 int8 cosine 0.04).
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import pattern


def like(x: ir.Value, *values: ir.Value) -> ir.Value:
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
        return like(x, added, clipped, prod, op.Mul(prod, sixth))


def decompose_hardswish(model: ir.Model) -> int:
    """Rewrite every HardSwish of ``model`` in place; the number rewritten."""
    return pattern.RewriteRuleSet([HardSwishDecompose.rule()]).apply_to_model(model)


FUSION_OPSET = 20
_FUSION_HINTS = frozenset({"Erf", "Tanh", "Sqrt", "ReduceMean"})


def fuse_at_newer_opset(model: ir.Model) -> tuple[ir.Model, bool]:
    """(model, fused): the model upgraded to opset 20 with LayerNorm/GELU fused, when that fuses
    anything; else the model unchanged (also when the upgrade is impossible)."""
    from deploykit.errors import DeployError
    from deploykit.ir.opset import upgrade_opset
    from deploykit.passes import GeluFusionPass, LayerNormFusionPass, canonicalize
    from deploykit.passes._common import opset_version

    if opset_version(model) >= FUSION_OPSET or not _FUSION_HINTS & {n.op_type for n in model.graph}:
        return model, False
    try:
        upgraded = upgrade_opset(model, FUSION_OPSET)  # a new model: the original stays as it was
    except DeployError:
        return model, False
    fused = LayerNormFusionPass()(upgraded).modified
    fused = GeluFusionPass()(upgraded).modified or fused
    if not fused:
        return model, False
    return canonicalize(upgraded, passes=[]), True
