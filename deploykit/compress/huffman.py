"""Huffman-coded size of an integer symbol stream (cluster indices, int8 weights).

Storage/transfer size only: runtimes load dense tensors, so this is what a compressed download or
flash image of the weights would take, not what the device holds in memory. Pure numpy + heapq.
"""

from __future__ import annotations

import heapq

import numpy as np


def code_lengths(counts: np.ndarray) -> np.ndarray:
    """Huffman code length (bits) of each symbol with a non-zero count (0 for absent symbols)."""
    counts = np.asarray(counts, dtype=np.int64)
    lengths = np.zeros(len(counts), dtype=np.int64)
    present = [int(i) for i in np.nonzero(counts)[0]]
    if len(present) == 1:
        lengths[present[0]] = 1  # one symbol still needs one bit per occurrence
        return lengths
    # heap of (weight, tiebreak, [symbols]); merging deepens every symbol of both subtrees by one
    heap = [(int(counts[i]), i, [i]) for i in present]
    heapq.heapify(heap)
    tiebreak = len(counts)
    while len(heap) > 1:
        w1, _, s1 = heapq.heappop(heap)
        w2, _, s2 = heapq.heappop(heap)
        for s in s1:
            lengths[s] += 1
        for s in s2:
            lengths[s] += 1
        heapq.heappush(heap, (w1 + w2, tiebreak, s1 + s2))
        tiebreak += 1
    return lengths


def huffman_size(symbols: np.ndarray) -> int:
    """Bytes of the Huffman-coded stream plus a code-table estimate.

    The table is canonical-Huffman style: one byte of code length per symbol of the alphabet
    (``max - min + 1`` symbols) and 8 bytes for the alphabet's offset/size. An empty stream is 0.
    """
    flat = np.asarray(symbols).ravel()
    if flat.size == 0:
        return 0
    if flat.dtype.kind not in "iub":
        raise TypeError(f"huffman_size needs integer symbols, got {flat.dtype}")
    flat = flat.astype(np.int64)
    lo = int(flat.min())
    counts = np.bincount(flat - lo)
    bits = int(np.dot(counts, code_lengths(counts)))
    return (bits + 7) // 8 + len(counts) + 8
