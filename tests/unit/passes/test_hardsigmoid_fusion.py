import numpy as np
import pytest
from passes_testlib import apply, assert_same_outputs, helper, init, make_model, op_types

from deploykit.passes import HardSigmoidFusionPass

pytestmark = pytest.mark.unit


def hardsigmoid_model(last="Div", k=6.0, opset=17, three=3.0, scalar_shape=()):
    f = lambda v: np.full(scalar_shape, v, np.float32)  # noqa: E731
    inits = [init("three", f(three)), init("k", f(k))]
    if opset >= 11:
        clip = helper.make_node("Clip", ["a", "zero", "six"], ["c"])
        inits += [init("zero", np.float32(0)), init("six", np.float32(6))]
    else:
        clip = helper.make_node("Clip", ["a"], ["c"], min=0.0, max=6.0)
    nodes = [helper.make_node("Add", ["three", "x"], ["a"]), clip, helper.make_node(last, ["c", "k"], ["y"])]
    return make_model(nodes, [("x", [2, 16])], [("y", [2, 16])], inits, opset)


@pytest.mark.parametrize(
    "last,k,opset,shape", [("Div", 6.0, 17, ()), ("Mul", 1 / 6, 17, ()), ("Div", 6.0, 10, ()), ("Mul", 1 / 6, 13, (1,))]
)
def test_relu6_forms_fuse(last, k, opset, shape):
    proto = hardsigmoid_model(last, k, opset, scalar_shape=shape)
    model, modified = apply(HardSigmoidFusionPass, proto)
    assert modified and op_types(model) == ["HardSigmoid"]
    assert [o.name for o in model.graph.outputs] == ["y"]
    assert_same_outputs(proto, model)


@pytest.mark.parametrize("last,k,three", [("Div", 5.0, 3.0), ("Mul", 0.2, 3.0), ("Div", 6.0, 2.0)])
def test_wrong_constants_are_not_fused(last, k, three):
    _, modified = apply(HardSigmoidFusionPass, hardsigmoid_model(last, k, three=three))
    assert not modified


def test_old_opset_is_left_alone():
    proto = hardsigmoid_model(opset=10)
    proto.opset_import[0].version = 5
    _, modified = apply(HardSigmoidFusionPass, proto)
    assert not modified
