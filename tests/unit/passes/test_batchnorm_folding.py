import numpy as np
import pytest
from passes_testlib import apply, assert_same_outputs, helper, init, make_model, op_types

from deploykit.passes import BatchNormFoldingPass

pytestmark = pytest.mark.unit
RNG = np.random.default_rng(0)


def _bn_inits(c: int, prefix: str = "bn"):
    return [
        init(f"{prefix}_s", RNG.uniform(0.5, 2, c).astype(np.float32)),
        init(f"{prefix}_b", RNG.standard_normal(c).astype(np.float32)),
        init(f"{prefix}_m", RNG.standard_normal(c).astype(np.float32)),
        init(f"{prefix}_v", RNG.uniform(0.5, 2, c).astype(np.float32)),
    ]


def _bn(x, y, prefix="bn"):
    return helper.make_node("BatchNormalization", [x, f"{prefix}_s", f"{prefix}_b", f"{prefix}_m", f"{prefix}_v"], [y], epsilon=1e-3)


@pytest.mark.parametrize("with_bias", [True, False])
def test_conv_bn_folds(with_bias):
    conv_in = ["x", "w", "b"] if with_bias else ["x", "w"]
    nodes = [helper.make_node("Conv", conv_in, ["c"], pads=[1, 1, 1, 1]), _bn("c", "y")]
    inits = [init("w", RNG.standard_normal((8, 3, 3, 3)).astype(np.float32)), init("b", RNG.standard_normal(8).astype(np.float32))]
    proto = make_model(nodes, [("x", [1, 3, 8, 8])], [("y", [1, 8, 8, 8])], inits[: 1 + with_bias] + _bn_inits(8))
    model, modified = apply(BatchNormFoldingPass, proto)
    assert modified and op_types(model) == ["Conv"]
    assert [o.name for o in model.graph.outputs] == ["y"]
    assert_same_outputs(proto, model)


def test_grouped_conv_transpose_bn_folds():
    nodes = [helper.make_node("ConvTranspose", ["x", "w"], ["c"], group=2, strides=[2, 2]), _bn("c", "y")]
    w = init("w", RNG.standard_normal((4, 3, 2, 2)).astype(np.float32))  # C=4, M/g=3 -> M=6
    proto = make_model(nodes, [("x", [1, 4, 5, 5])], [("y", [1, 6, 10, 10])], [w] + _bn_inits(6))
    model, modified = apply(BatchNormFoldingPass, proto)
    assert modified and op_types(model) == ["ConvTranspose"]
    assert_same_outputs(proto, model)


@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm_bn_folds(trans_b):
    w = RNG.standard_normal((5, 4) if trans_b else (4, 5)).astype(np.float32)
    nodes = [helper.make_node("Gemm", ["x", "w", "c"], ["g"], transB=trans_b, alpha=0.5, beta=2.0), _bn("g", "y")]
    inits = [init("w", w), init("c", RNG.standard_normal(5).astype(np.float32))] + _bn_inits(5)
    proto = make_model(nodes, [("x", [3, 4])], [("y", [3, 5])], inits)
    model, modified = apply(BatchNormFoldingPass, proto)
    assert modified and op_types(model) == ["Gemm"]
    assert_same_outputs(proto, model)


def test_standalone_bn_becomes_mul_add():
    nodes = [helper.make_node("Relu", ["x"], ["r"]), _bn("r", "y")]
    proto = make_model(nodes, [("x", [2, 4, 3, 3])], [("y", [2, 4, 3, 3])], _bn_inits(4))
    model, modified = apply(BatchNormFoldingPass, proto)
    assert modified and op_types(model) == ["Relu", "Mul", "Add"]
    assert_same_outputs(proto, model)


def test_conv_with_two_users_is_not_folded_into():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), _bn("c", "y"), helper.make_node("Relu", ["c"], ["z"])]
    inits = [init("w", RNG.standard_normal((4, 3, 1, 1)).astype(np.float32))] + _bn_inits(4)
    proto = make_model(nodes, [("x", [1, 3, 4, 4])], [("y", [1, 4, 4, 4]), ("z", [1, 4, 4, 4])], inits)
    model, _ = apply(BatchNormFoldingPass, proto)
    assert "Conv" in op_types(model) and "BatchNormalization" not in op_types(model)
    assert model.graph.node(0).inputs[1].name == "w"  # weights untouched
    assert_same_outputs(proto, model)


def test_bn_with_runtime_parameters_stays():
    nodes = [_bn("x", "y")]
    proto = make_model(nodes, [("x", [1, 4, 2, 2]), ("bn_s", [4])], [("y", [1, 4, 2, 2])], _bn_inits(4)[1:])
    model, modified = apply(BatchNormFoldingPass, proto)
    assert not modified and op_types(model) == ["BatchNormalization"]
