"""The TFLite lowering's converter table (``deploykit_tflite.optable.CONVERTERS``) with the Edge TPU's
additions, used by :class:`~deploykit_edgetpu.backend.EdgeTpuBackend` for prediction and lowering.

* ``Pow(x, -0.5)`` -> RSQRT: ONNX has no Rsqrt op, the ``lrn`` rewrite rule writes ``Pow(y, -0.5)``,
  and RSQRT (unlike POW) has an int8 TFLite kernel and is an Edge TPU op (runtime 14, facts §2).
  Other exponents keep the TFLite lowering's conversion.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from deploykit_tflite.optable import CONVERTERS as TFLITE_CONVERTERS
from deploykit_tflite.optable import Converter


def _rsqrt_exponent(ctx, node: ir.Node) -> bool:
    e = ctx.const(node.inputs[1]) if len(node.inputs) > 1 else None
    x = node.inputs[0]
    return (e is not None and e.size == 1 and float(np.ravel(e)[0]) == -0.5 and ctx.const(x) is None
            and ctx.shape(x) == ctx.shape(node.outputs[0]))


def pow_op(ctx, node: ir.Node):
    """``x ** -0.5`` as RSQRT, any other power as the TFLite lowering does it."""
    if not _rsqrt_exponent(ctx, node):
        return TFLITE_CONVERTERS["Pow"].fn(ctx, node)
    perm = ctx.layout(node.inputs[0])
    ctx.unary("RSQRT", ctx.get(node.inputs[0], perm), out=ctx.out(node.outputs[0], perm))


CONVERTERS: dict[str, Converter] = {
    **TFLITE_CONVERTERS,
    "Pow": Converter(pow_op, TFLITE_CONVERTERS["Pow"].check, "x ** -0.5 -> RSQRT; other exponents POW (float)"),
}
