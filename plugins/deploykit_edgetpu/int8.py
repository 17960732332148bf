"""Full-integer TFLite for the Edge TPU: every operator int8, int8 graph I/O, nothing float.

Reuses the TFLite backend's :class:`~deploykit_tflite.int8.Int8Rewriter` (weights symmetric
per-channel int8, int32 bias at in_scale * w_scale, shared-scale ops, fixed LOGISTIC/TANH params)
and widens its op sets: the XNNPACK backend keeps SOFTMAX, AVERAGE_POOL_2D, HARD_SWISH, lone RELUs
... in float because XNNPACK does not delegate them in int8, but the Edge TPU compiler rejects any
float compute op ("Model not quantized", facts/edgetpu.md §0.1), and TFLite has int8 kernels for them.
Fixed output params (facts/edgetpu.md §0.7): SOFTMAX/LOGISTIC (1/256, -128), TANH/L2_NORM (1/128, 0).
"""

from __future__ import annotations

from typing import Any

from deploykit_tflite import int8 as base
from deploykit_tflite.graph import TFLGraph

PASSTHROUGH = {**base.PASSTHROUGH, "AVERAGE_POOL_2D": 0, "RESIZE_NEAREST_NEIGHBOR": 0, "SQUEEZE": 0,
               "EXPAND_DIMS": 0, "REDUCE_MIN": 0, "MIRROR_PAD": 0}
FIXED = {**base.FIXED, "SOFTMAX": (1.0 / 256, -128), "L2_NORMALIZATION": (1.0 / 128, 0),
         "LOG_SOFTMAX": (16.0 / 256, 127)}
REQUANTIZING = base.REQUANTIZING | {"RELU", "RELU6", "RELU_N1_TO_1", "HARD_SWISH", "PRELU", "SQUARED_DIFFERENCE",
                                    "BATCH_MATMUL", "PACK", "RSQRT"}
SAME_OUTPUT_INPUTS = frozenset({"CONCATENATION", "PACK"})  # inputs requantized to the output's params
INT8_OPS = frozenset(PASSTHROUGH) | frozenset(FIXED) | REQUANTIZING | base.COMPARISONS | base.SELECTS


class FullInt8Rewriter(base.Int8Rewriter):
    """Int8Rewriter with the Edge TPU's (wider) op sets."""

    PASSTHROUGH = PASSTHROUGH
    FIXED = FIXED
    REQUANTIZING = REQUANTIZING
    SAME_OUTPUT_INPUTS = SAME_OUTPUT_INPUTS
    CLAMP_AS_REQUANTIZE = False  # MAXIMUM/MINIMUM are TPU ops; a lone QUANTIZE would not be


def float_operators(graph: TFLGraph) -> list[tuple[str, str]]:
    """(op code, ONNX node) of every operator computing in float (or on float I/O)."""
    bad = []
    for op in graph.ops:
        tensors = [t for t in list(op.inputs) + list(op.outputs) if t is not None and not t.is_const]
        if any(t.dtype in ("float32", "float16") for t in tensors):
            bad.append((op.code, op.node))
    return bad


def quantize_full_int8(graph: TFLGraph, params: dict[str, Any]) -> dict[str, Any]:
    """Rewrite ``graph`` in place: int8 I/O and int8 operators only. Returns the report
    (``_io``: id(tensor) -> QParams of the graph's I/O; ``float_ops``: what could not be int8)."""
    return base.quantize_graph(graph, params, set(), int8_io=True, rewriter=FullInt8Rewriter)
