"""fp16 precision: float constants stored as FLOAT16 and fed through DEQUANTIZE (v3).

XNNPACK folds these static DEQUANTIZE nodes into its packed weights at prepare; compute stays
fp32 unless the CPU has FP16 arithmetic and the model carries ``reduced_precision_support``
metadata (facts §2 fp16). That metadata is only written for profiles with
``fp16_arithmetic = true`` (Pi 5); the Pi 4 gets fp16 *storage* only.
"""

from __future__ import annotations

import numpy as np

from deploykit_tflite.graph import TFLGraph

MIN_ELEMENTS = 16  # small constants (scalars, shapes) stay fp32: no size to win
FP16_MAX = 65504.0


def to_fp16_weights(graph: TFLGraph, reduced_precision: bool = False) -> int:
    converted: dict[int, object] = {}
    new_ops = []
    count = 0
    for op in graph.ops:
        for i, t in enumerate(op.inputs):
            if t is None or not t.is_const or t.dtype != "float32" or t.data.size < MIN_ELEMENTS:
                continue
            if np.abs(t.data).max(initial=0.0) > FP16_MAX:
                continue
            if id(t) not in converted:
                half = graph.const(t.data.astype(np.float16), hint=t.name + "_fp16")
                deq = graph.tensor(t.shape, "float32", hint=t.name + "_dequant")
                from deploykit_tflite.graph import Op

                new_ops.append(Op("DEQUANTIZE", [half], [deq]))
                converted[id(t)] = deq
                count += 1
            op.inputs[i] = converted[id(t)]
    graph.ops = new_ops + graph.ops
    if reduced_precision:
        graph.metadata["reduced_precision_support"] = b"fp16accfp16"
    return count
