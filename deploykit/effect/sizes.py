"""Sizes of a variant: raw bytes, zlib level 9, and the Huffman-coded size of its weights.

Weights are the constant tensors with two or more dimensions (convolution kernels, matrices,
embeddings); biases, scales, zero points and shape constants are left out. Each weight tensor
becomes a stream of at most 256 symbols, Huffman-coded on its own (one code per layer, as in
Deep Compression), plus what a decoder needs besides the code:

* int8 / uint8 tensors (quantized artifacts): the stored values; nothing else (their scales are
  separate 1-D tensors);
* float tensors with at most 256 distinct values, each used 4 times or more on average
  (clustered weights): the index of each value in the tensor's codebook, plus the codebook
  (distinct values x item size);
* other float tensors: int8 per-channel symmetric quantization (``round(w / s)``,
  ``s = max|w| / 127`` per output channel), plus one float32 scale per channel.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import numpy as np
import onnx
from onnx import numpy_helper

_INT8 = (np.int8, np.uint8)


def zip_size(blobs: Iterable[bytes]) -> int:
    """Total bytes of each blob compressed with zlib at level 9."""
    return sum(len(zlib.compress(bytes(b), 9)) for b in blobs)


def _huffman():
    from deploykit.compress import huffman_size  # the compression passes' coder: one definition of the size

    return huffman_size


def weight_symbols(array: np.ndarray, axis: int | None = 0) -> tuple[np.ndarray, int] | None:
    """(symbols, side bytes) of one weight tensor as described in the module docstring; None if no weight."""
    a = np.asarray(array)
    if a.ndim < 2 or a.size < 2:
        return None
    if a.dtype in _INT8:
        return a.astype(np.int16).ravel(), 0
    if not np.issubdtype(a.dtype, np.floating):
        return None
    values, inverse = np.unique(a, return_inverse=True)
    if len(values) <= 256 and 4 * len(values) <= a.size:  # clearly shared values (clustered), not just a small tensor
        return inverse.astype(np.int16).ravel(), int(values.size * a.dtype.itemsize)
    w = a.astype(np.float64)
    if axis is None:
        scale = np.array(np.max(np.abs(w)) / 127.0)
        channels = 1
    else:
        axis = axis % w.ndim
        others = tuple(i for i in range(w.ndim) if i != axis)
        scale = np.max(np.abs(w), axis=others, keepdims=True) / 127.0
        channels = w.shape[axis]
    scale = np.where(scale > 0, scale, 1.0)
    q = np.clip(np.round(w / scale), -127, 127).astype(np.int16)
    return q.ravel(), 4 * channels


def huffman_weights_size(tensors: Iterable[tuple[np.ndarray, int | None]]) -> tuple[int | None, int]:
    """(Huffman-coded bytes, number of weight values) over ``(array, channel axis)`` pairs."""
    huffman_size = _huffman()
    total, count, any_weight = 0, 0, False
    for array, axis in tensors:
        sym = weight_symbols(array, axis)
        if sym is None:
            continue
        any_weight = True
        total += int(huffman_size(sym[0])) + sym[1]
        count += int(sym[0].size)
    return (total if any_weight else None), count


def onnx_weight_tensors(model: onnx.ModelProto) -> list[tuple[np.ndarray, int | None]]:
    """Constant tensors of ``model`` (initializers and Constant nodes, main graph) with their channel axis."""
    from deploykit.quant.roles import input_role, weight_axis

    graph = model.graph
    consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in graph.node:
        for i, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node, i))
    named = [(t.name, t) for t in graph.initializer]
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            for a in node.attribute:
                if a.name == "value" and a.type == onnx.AttributeProto.TENSOR:
                    named.append((node.output[0], a.t))
    result = []
    for name, tensor in named:
        if len(tensor.dims) < 2:
            continue
        array = numpy_helper.to_array(tensor)
        axis: int | None = 0
        for node, i in consumers.get(name, []):
            if node.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul") and input_role(node.op_type, i) == "weight":
                axis = weight_axis(node, tuple(array.shape))
                break
            if node.op_type == "DequantizeLinear" and i == 0:
                break
        result.append((array, axis))
    return result
