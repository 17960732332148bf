import numpy as np
import pytest
from compress_testlib import conv_bn_relu_conv, feeds, mlp, run, weights

from deploykit.compress.magnitude_pruning import magnitude_prune

pytestmark = pytest.mark.unit


def test_sparsity_reached_shapes_kept():
    model = mlp(64, 48)
    out, details = magnitude_prune(model, 0.5)
    before, after = weights(model), weights(out)
    assert {k: v.shape for k, v in before.items()} == {k: v.shape for k, v in after.items()}
    assert set(details["layers"]) == {"mm", "fc"}
    for layer in details["layers"].values():
        assert layer["sparsity"] >= 0.5
    assert np.mean(after["w1"] == 0) >= 0.5
    assert details["sparsity"] >= 0.5
    assert "XNNPACK" in details["note"]
    assert run(out, feeds(model))[0].shape == (2, 10)
    assert np.count_nonzero(before["w1"] == 0) == 0  # the input model is not modified


def test_depthwise_and_small_fan_in_convs_stay_dense():
    model = conv_bn_relu_conv(16)
    out, details = magnitude_prune(model, 0.5)
    reasons = {s["layer"]: s["reason"] for s in details["skipped"]}
    assert "fan-in" in reasons["dw"]
    np.testing.assert_array_equal(weights(out)["wdw"], weights(model)["wdw"])


def test_zero_sparsity_is_identity():
    model = mlp()
    out, _ = magnitude_prune(model, 0.0)
    f = feeds(model)
    np.testing.assert_array_equal(run(model, f)[0], run(out, f)[0])
