"""Weight sharing: per-layer k-means of the weights into ``k`` clusters (16..256).

Each weight becomes its cluster's centroid, so the model stays an ordinary dense float model that
every backend runs unchanged; what shrinks is the information in it. The codebook (``k`` floats)
and the per-weight indices (``log2 k`` bits, less after Huffman coding) are recorded: that is the
storage/transfer size of the layer. int8 quantization afterwards sees at most ``k`` distinct values
per layer.
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from deploykit.compress._graph import GraphIndex, copy_model
from deploykit.compress.huffman import huffman_size
from deploykit.compress.weights import weight_layers

ITERATIONS = 30


def kmeans_1d(values: np.ndarray, k: int, iterations: int = ITERATIONS) -> tuple[np.ndarray, np.ndarray]:
    """(codebook[k'], indices) of 1-D k-means (k' <= k distinct centroids), initialized linearly
    between min and max (keeps the rare large weights that matter most), Lloyd iterations on the
    sorted values."""
    flat = np.asarray(values, np.float64).ravel()
    uniq = np.unique(flat)
    if len(uniq) <= k:
        return uniq, np.searchsorted(uniq, flat)
    order = np.sort(flat)
    csum = np.concatenate([[0.0], np.cumsum(order)])
    centers = np.linspace(order[0], order[-1], k)
    for _ in range(iterations):
        bounds = (centers[1:] + centers[:-1]) / 2
        cuts = np.concatenate([[0], np.searchsorted(order, bounds), [len(order)]])
        counts = np.diff(cuts)
        sums = csum[cuts[1:]] - csum[cuts[:-1]]
        new = np.where(counts > 0, sums / np.maximum(counts, 1), centers)
        if np.allclose(new, centers, rtol=0, atol=1e-12):
            break
        centers = np.sort(new)
    centers = np.unique(centers)
    bounds = (centers[1:] + centers[:-1]) / 2
    return centers, np.searchsorted(bounds, flat)


def _cluster_keeping_zeros(w: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """k-means, but a sparse layer (after magnitude pruning) keeps exact zeros as one code."""
    flat = w.astype(np.float64).ravel()
    zero = flat == 0
    if zero.mean() < 0.01 or zero.all():
        return kmeans_1d(flat, k)
    book, idx_nz = kmeans_1d(flat[~zero], k - 1)
    book = np.concatenate([[0.0], book])
    idx = np.zeros(flat.size, dtype=np.int64)
    idx[~zero] = idx_nz + 1
    order = np.argsort(book, kind="stable")
    return book[order], np.argsort(order)[idx]


def clusterable(model: onnx.ModelProto) -> dict[str, int]:
    """Layers whose weights can be clustered: node name -> number of weights."""
    index = GraphIndex(model)
    return {layer.node: int(index.const(layer.weight).size) for layer in weight_layers(index)}


def cluster_weights(model: onnx.ModelProto, k: int | dict[str, int]) -> tuple[onnx.ModelProto, dict]:
    """Cluster every weight layer into ``k`` clusters (an int, or {layer: k} for some layers)."""
    out = copy_model(model)
    index = GraphIndex(out)
    layers = {}
    dense_bytes = coded_bytes = 0
    for layer in weight_layers(index):
        kk = k.get(layer.node) if isinstance(k, dict) else k
        if not kk:
            continue
        w = index.const(layer.weight)
        codebook, idx = _cluster_keeping_zeros(w, kk)
        index.set_init(layer.weight, codebook[idx].reshape(w.shape).astype(w.dtype))
        bits = max(1, math.ceil(math.log2(max(len(codebook), 2))))
        packed = (idx.size * bits + 7) // 8 + len(codebook) * 4
        huff = huffman_size(idx) + len(codebook) * 4
        layers[layer.node] = {"weight": layer.weight, "clusters": int(kk), "distinct": int(len(codebook)),
                              "weights": int(w.size), "dense_bytes": int(w.nbytes), "packed_bytes": int(packed),
                              "huffman_bytes": int(huff)}
        dense_bytes += w.nbytes
        coded_bytes += huff
    details = {"clusters": k if isinstance(k, int) else "per-layer", "layers": layers,
               "dense_bytes": int(dense_bytes), "huffman_bytes": int(coded_bytes),
               "note": "weights stay dense float (every backend runs them); sizes are codebook + Huffman-coded indices"}
    return out, details
