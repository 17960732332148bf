"""Weight symbols and the Huffman-coded weight size (int8, clustered, pruned, float)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from deploykit.effect.sizes import huffman_weights_size, onnx_weight_tensors, weight_symbols, zip_size
from effect_testlib import tiny_classifier

pytestmark = pytest.mark.unit

RNG = np.random.default_rng(0)
DENSE = RNG.standard_normal((64, 32, 3, 3)).astype(np.float32)


def test_zip_size_is_zlib_level_9():
    blobs = [b"a" * 1000, bytes(range(256))]
    assert zip_size(blobs) == sum(len(zlib.compress(b, 9)) for b in blobs)


def test_int8_tensors_are_their_own_symbols():
    q = RNG.integers(-128, 128, size=(16, 8), dtype=np.int8)
    sym, side = weight_symbols(q)
    assert side == 0 and sym.size == q.size and np.array_equal(sym, q.astype(np.int16).ravel())


def test_float_tensors_are_quantized_per_channel():
    sym, side = weight_symbols(DENSE, axis=0)
    assert side == 4 * 64  # one float32 scale per output channel
    assert sym.min() >= -127 and sym.max() <= 127
    per_channel = sym.reshape(64, -1)
    assert np.all(np.abs(per_channel).max(axis=1) == 127)  # every channel uses its full range
    _, side_t = weight_symbols(DENSE, axis=None)
    assert side_t == 4


def test_clustered_tensors_use_the_codebook():
    centers = np.linspace(-1, 1, 16).astype(np.float32)
    clustered = centers[RNG.integers(0, 16, size=DENSE.shape)]
    sym, side = weight_symbols(clustered)
    assert side == 16 * 4 and sym.max() < 16
    assert np.array_equal(np.unique(clustered)[sym].reshape(clustered.shape), clustered)  # lossless


def test_not_weights():
    assert weight_symbols(np.ones(8, np.float32)) is None  # 1-D: bias / scale
    assert weight_symbols(np.ones((2, 2), np.int64)) is None  # shape-like integers
    assert huffman_weights_size([(np.ones(3, np.float32), 0)]) == (None, 0)


def test_huffman_rewards_clustering_and_pruning():
    dense, n = huffman_weights_size([(DENSE, 0)])
    assert n == DENSE.size and dense < DENSE.size  # int8 symbols, entropy-coded: under 1 byte/weight
    centers = np.linspace(-1, 1, 16).astype(np.float32)
    clustered, _ = huffman_weights_size([(centers[RNG.integers(0, 16, size=DENSE.shape)], 0)])
    pruned_w = DENSE * (np.abs(DENSE) > np.quantile(np.abs(DENSE), 0.8))
    pruned, _ = huffman_weights_size([(pruned_w, 0)])
    assert clustered < 0.6 * dense  # 4 bits + a little instead of ~6-7 bits
    assert pruned < 0.5 * dense  # 80 % zeros


def test_onnx_weight_tensors_and_axes():
    model = tiny_classifier()
    tensors = onnx_weight_tensors(model)
    assert [(a.shape, axis) for a, axis in tensors] == [((8, 3, 3, 3), 0), ((4, 8), 0)]  # Gemm transB=1
