"""Unstructured magnitude pruning: zero the smallest weights of every Conv/Gemm/MatMul.

The model stays dense: shapes, ops and MACs are unchanged, so only a backend that exploits sparsity
runs it faster. Most edge runtimes do not; XNNPACK has sparse inference only for some fp32/fp16
1x1-convolution patterns (and TFLite must be told to use it), and int8 kernels ignore zeros. The
win that remains everywhere is storage: zeros compress well (see the Huffman/zip sizes).
"""

from __future__ import annotations

import numpy as np
import onnx

from deploykit.compress._graph import GraphIndex, copy_model, is_onnx
from deploykit.compress.weights import weight_layers

MIN_FAN_IN = 32  # weights per output channel below which a conv is left dense
NOTE = ("unstructured sparsity only speeds up backends that exploit it: XNNPACK sparse inference covers "
        "some fp32/fp16 1x1 conv patterns, most runtimes (and all int8 kernels here) run the zeros densely; "
        "the model is smaller only once compressed (zip/Huffman)")


def magnitude_prune(model: onnx.ModelProto, sparsity: float) -> tuple[onnx.ModelProto, dict]:
    """Zero the ``sparsity`` fraction of smallest-magnitude weights, per layer."""
    out = copy_model(model)
    index = GraphIndex(out)
    layers, skipped, total, zeros = {}, [], 0, 0
    for layer in weight_layers(index):
        w = index.const(layer.weight)
        if layer.op_type == "Conv" and w.size // max(w.shape[0], 1) < MIN_FAN_IN:
            skipped.append({"layer": layer.node, "reason": f"fan-in {w.size // max(w.shape[0], 1)} < {MIN_FAN_IN} "
                                                           "(depthwise-like: few weights per output, each one matters)"})
            continue
        k = int(np.floor(sparsity * w.size))
        if k > 0:
            threshold = np.partition(np.abs(w).ravel(), k - 1)[k - 1]
            pruned = np.where(np.abs(w) <= threshold, 0, w).astype(w.dtype)
            # ties at the threshold may zero a few more; that is fine and deterministic
            index.set_init(layer.weight, pruned)
            w = pruned
        nz = int(np.count_nonzero(w == 0))
        layers[layer.node] = {"weights": int(w.size), "sparsity": round(nz / max(w.size, 1), 4)}
        total += w.size
        zeros += nz
    listed = set(layers) | {s["layer"] for s in skipped}
    for node in out.graph.node:
        if is_onnx(node, "Conv", "Gemm", "MatMul") and (node.name or node.input[1]) not in listed:
            skipped.append({"layer": node.name, "reason": "weight is not a constant used by this layer only"})
    details = {"target_sparsity": sparsity, "sparsity": round(zeros / max(total, 1), 4), "zero_weights": zeros,
               "weights": total, "layers": layers, "skipped": skipped, "note": NOTE}
    return out, details
