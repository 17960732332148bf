import numpy as np
import pytest
from passes_testlib import apply, assert_same_outputs, helper, init, make_model, op_types

from deploykit.passes import ConvAffineFoldingPass

pytestmark = pytest.mark.unit
RNG = np.random.default_rng(1)


def _model(const_shape, op="Mul", second=None):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node(op, ["k", "c"], ["m"])]
    inits = [init("w", RNG.standard_normal((6, 3, 3, 3)).astype(np.float32)), init("k", RNG.standard_normal(const_shape).astype(np.float32))]
    out = "m"
    if second:
        nodes.append(helper.make_node("Add", ["m", "k2"], ["y"]))
        inits.append(init("k2", RNG.standard_normal(second).astype(np.float32)))
        out = "y"
    return make_model(nodes, [("x", [1, 3, 6, 6])], [(out, [1, 6, 4, 4])], inits)


@pytest.mark.parametrize("shape", [(6, 1, 1), (1, 6, 1, 1), (1,), ()])
def test_per_channel_mul_then_add_fold(shape):
    proto = _model(shape, second=(6, 1, 1))
    model, modified = apply(ConvAffineFoldingPass, proto)
    assert modified and op_types(model) == ["Conv"]
    assert_same_outputs(proto, model)


def test_spatially_varying_constant_is_not_folded():
    proto = _model((1, 6, 4, 4), op="Add")
    model, modified = apply(ConvAffineFoldingPass, proto)
    assert not modified and op_types(model) == ["Conv", "Add"]
