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
# depthwise filters: few bytes (about 3 % of PP-OCR rec's weights) but only 9-25 inputs per output,
# so error feedback cannot average their rounding out; they stay fp32
KEEP_FLOAT32 = frozenset({"DEPTHWISE_CONV_2D"})
# The first weight matrices, up to this fraction of all weight bytes, stay fp32: their rounding
# error passes through every later layer, and early layers are small. PP-OCR rec on random inputs,
# max abs error / output range: 0.0111 -> 0.0059 for +4.6 % of the fp32 bytes (first 8 convs).
EARLY_FLOAT32_FRACTION = 0.05


def is_weight_matrix(data: np.ndarray) -> bool:
    """Filters and matrices (two or more axes longer than 1). Vectors -- biases, folded
    BatchNorm scales/shifts, LayerNorm gamma/beta -- stay fp32: they hold almost none of the
    bytes, and rounding them (a folded BN shift can be large) costs most of the fp16 error
    (PP-OCR rec: 0.0099 -> 0.0043 of the output range when vectors stay fp32)."""
    return data.size >= MIN_ELEMENTS and sum(d > 1 for d in data.shape) >= 2


def to_fp16_feedback(data: np.ndarray, axis: int) -> np.ndarray:
    """fp16 rounding with error feedback along each output channel's inputs (``axis`` = output
    channels): the rounding error of one weight is carried into the next, so every partial sum
    of an output's weight errors stays within one fp16 step. Nearest rounding lets those errors
    add up (an output bias for inputs with a non-zero mean, e.g. after ReLU). PP-OCR rec, max abs
    error of the 6625-way softmax / output range: random inputs 0.0136 -> 0.0092, text lines
    0.0163 -> 0.0039 (8 samples, weights in onnxruntime)."""
    w = np.moveaxis(np.asarray(data), axis, 0)
    rows = w.reshape(w.shape[0], -1)  # a view when the output axis leads (conv OHWI, FC)
    out = np.empty(rows.shape, np.float16)
    err = np.zeros(rows.shape[0], np.float32)
    for j0 in range(0, rows.shape[1], 256):  # blocks of columns, transposed: contiguous rows
        block = np.ascontiguousarray(rows[:, j0:j0 + 256].T, dtype=np.float32)
        half = np.empty(block.shape, np.float16)
        for j in range(block.shape[0]):  # float32 is exact enough: target - fp16(target) is exact
            target = block[j] + err
            half[j] = target
            err = target - half[j].astype(np.float32)
        out[:, j0:j0 + 256] = half.T
    return np.moveaxis(out.reshape(w.shape), 0, axis)


def _early_weights(graph: TFLGraph) -> set[int]:
    """ids of the first weight matrices (graph order) within EARLY_FLOAT32_FRACTION of all weight bytes."""
    weights = [t for op in graph.ops for t in op.inputs
               if t is not None and t.is_const and t.dtype == "float32" and is_weight_matrix(t.data)]
    unique = list({id(t): t for t in weights}.values())
    budget = EARLY_FLOAT32_FRACTION * sum(t.data.nbytes for t in unique)
    early, used = set(), 0
    for t in unique:
        if used + t.data.nbytes > budget:
            break
        early.add(id(t))
        used += t.data.nbytes
    return early


def to_fp16_weights(graph: TFLGraph, reduced_precision: bool = False) -> int:
    converted: dict[int, object] = {}
    new_ops = []
    count = 0
    early = _early_weights(graph)
    for op in graph.ops:
        for i, t in enumerate(op.inputs):
            if t is None or not t.is_const or t.dtype != "float32" or not is_weight_matrix(t.data):
                continue
            if np.abs(t.data).max(initial=0.0) > FP16_MAX or op.code in KEEP_FLOAT32 or id(t) in early:
                continue
            if id(t) not in converted:
                axis = op.attrs.get("weight_axis") if i == op.attrs.get("weight_input", 1) else None
                data = t.data.astype(np.float16) if axis is None else to_fp16_feedback(t.data, axis)
                half = graph.const(data, hint=t.name + "_fp16")
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
