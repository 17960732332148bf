import numpy as np
import pytest
from compress_testlib import conv_bn_relu_conv, feeds, mlp, run, weights

from deploykit.compress.clustering import cluster_weights, kmeans_1d

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("k", [16, 64])
def test_at_most_k_values_per_layer(k):
    model = mlp(64, 48)
    out, details = cluster_weights(model, k)
    w = weights(out)
    assert len(np.unique(w["w1"])) <= k
    assert len(np.unique(w["w2"])) <= k
    for layer in details["layers"].values():
        assert layer["distinct"] <= k
        assert layer["huffman_bytes"] < layer["dense_bytes"]
    f = feeds(model)
    ref, got = run(model, f)[0], run(out, f)[0]
    cos = float((ref * got).sum() / np.linalg.norm(ref) / np.linalg.norm(got))
    assert cos > (0.99 if k == 64 else 0.95)


def test_kmeans_exact_when_few_values():
    values = np.array([0.5, -1.0, 0.5, 2.0])
    book, idx = kmeans_1d(values, 16)
    np.testing.assert_array_equal(book[idx], values)


def test_sparse_layers_keep_their_zeros():
    model = conv_bn_relu_conv(16)
    from deploykit.compress.magnitude_pruning import magnitude_prune

    sparse, _ = magnitude_prune(model, 0.6)
    out, _ = cluster_weights(sparse, 16)
    assert np.array_equal(weights(sparse)["w1"] == 0, weights(out)["w1"] == 0)


def test_per_layer_k():
    model = mlp()
    out, details = cluster_weights(model, {"mm": 16})
    assert list(details["layers"]) == ["mm"]
    np.testing.assert_array_equal(weights(out)["w2"], weights(model)["w2"])
