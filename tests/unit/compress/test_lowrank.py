import numpy as np
import onnx
import pytest
from compress_testlib import RNG, feeds, helper, init, make_model, mlp, run

from deploykit.compress import lowrank

pytestmark = pytest.mark.unit


def _conv_model(k: int, cin: int = 16, cout: int = 24, stride: int = 1) -> onnx.ModelProto:
    pads = [k // 2] * 4
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[k, k], pads=pads, strides=[stride, stride], name="conv")]
    inits = [init("w", RNG.normal(0, 0.2, (cout, cin, k, k)).astype(np.float32)), init("b", RNG.normal(0, 0.1, cout).astype(np.float32))]
    size = (10 + 2 * (k // 2) - k) // stride + 1
    return make_model(nodes, [("x", [1, cin, 10, 10])], [("y", [1, cout, size, size])], inits)


@pytest.mark.parametrize("model", [mlp(out=16), _conv_model(1), _conv_model(3), _conv_model(3, stride=2)],
                         ids=["matmul+gemm", "conv1x1", "conv3x3", "conv3x3-stride2"])
def test_full_rank_reproduces_outputs(model):
    layers, skipped = lowrank.find_layers(model)
    assert layers and not skipped
    out = lowrank.factorize(model, {k: min(f.matrix.shape) for k, f in layers.items()})
    onnx.checker.check_model(out)
    assert len(out.graph.node) == len(model.graph.node) + len(layers)
    f = feeds(model)
    np.testing.assert_allclose(run(out, f)[0], run(model, f)[0], atol=1e-4, rtol=1e-4)


def test_low_rank_weight_is_found_and_shrinks():
    a, b = RNG.normal(0, 1, (64, 4)), RNG.normal(0, 1, (4, 48))
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")]
    model = make_model(nodes, [("x", [3, 64])], [("y", [3, 48])], [init("w", (a @ b).astype(np.float32))])
    layers, _ = lowrank.find_layers(model)
    ranks, skipped = lowrank.energy_ranks(layers, 0.999)
    assert ranks == {"mm": 4} and not skipped
    out = lowrank.factorize(model, ranks)
    params = sum(int(np.prod(t.dims)) for t in out.graph.initializer)
    assert params == 4 * (64 + 48)
    f = feeds(model)
    np.testing.assert_allclose(run(out, f)[0], run(model, f)[0], atol=1e-4, rtol=1e-4)


def test_full_rank_weights_are_skipped_not_factorized():
    model = _conv_model(1)
    layers, _ = lowrank.find_layers(model)
    ranks, skipped = lowrank.energy_ranks(layers, 0.999)
    assert ranks == {}
    assert "saves" in skipped[0]["reason"]


def test_grouped_conv_is_skipped():
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], group=4, name="gconv")]
    model = make_model(nodes, [("x", [1, 16, 6, 6])], [("y", [1, 64, 6, 6])], [init("w", RNG.normal(0, 1, (64, 4, 1, 1)).astype(np.float32))])
    layers, skipped = lowrank.find_layers(model)
    assert not layers and "grouped" in skipped[0]["reason"]


def test_tiny_matrices_are_skipped():
    layers, skipped = lowrank.find_layers(mlp(64, 48, out=10))
    assert set(layers) == {"mm"}
    assert "too small" in skipped[0]["reason"]
