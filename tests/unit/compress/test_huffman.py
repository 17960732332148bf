import numpy as np
import pytest

from deploykit.compress import huffman_size
from deploykit.compress.huffman import code_lengths

pytestmark = pytest.mark.unit


def test_skewed_stream_is_smaller_than_raw():
    rng = np.random.default_rng(0)
    symbols = np.clip(np.round(rng.normal(0, 6, 100_000)), -128, 127).astype(np.int8)
    assert huffman_size(symbols) < 0.7 * symbols.nbytes


def test_uniform_bytes_do_not_shrink():
    symbols = np.random.default_rng(1).integers(0, 256, 50_000).astype(np.uint8)
    size = huffman_size(symbols)
    assert symbols.nbytes <= size <= symbols.nbytes + 256 + 8 + 200


def test_single_symbol_and_empty():
    assert huffman_size(np.zeros(800, np.int64)) == 100 + 1 + 8
    assert huffman_size(np.array([], np.int64)) == 0
    with pytest.raises(TypeError):
        huffman_size(np.ones(3, np.float32))


def test_code_lengths_are_a_complete_prefix_code():
    counts = np.array([50, 20, 0, 15, 10, 5])
    lengths = code_lengths(counts)
    assert lengths[2] == 0
    assert sum(2.0 ** -int(l) for l in lengths if l) == pytest.approx(1.0)
    assert lengths[0] <= lengths[1] <= lengths[5]
