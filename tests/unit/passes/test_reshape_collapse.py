import numpy as np
import pytest
from passes_testlib import apply, assert_same_outputs, helper, init, make_model, op_types

from deploykit.passes import ReshapeCollapsePass

pytestmark = pytest.mark.unit


def test_reshape_chain_collapses():
    nodes = [
        helper.make_node("Reshape", ["x", "s1"], ["a"]),
        helper.make_node("Reshape", ["a", "s2"], ["y"]),
    ]
    inits = [init("s1", np.array([6, 4], np.int64)), init("s2", np.array([3, -1], np.int64))]
    proto = make_model(nodes, [("x", [2, 3, 4])], [("y", [3, 8])], inits)
    model, modified = apply(ReshapeCollapsePass, proto)
    assert modified and op_types(model) == ["Reshape"]
    assert model.graph.node(0).inputs[0].name == "x"
    assert_same_outputs(proto, model)


def test_flatten_then_reshape_collapses():
    nodes = [helper.make_node("Flatten", ["x"], ["a"], axis=1), helper.make_node("Reshape", ["a", "s"], ["y"])]
    proto = make_model(nodes, [("x", [2, 3, 4])], [("y", [4, 6])], [init("s", np.array([4, 6], np.int64))])
    model, modified = apply(ReshapeCollapsePass, proto)
    assert modified and op_types(model) == ["Reshape"]
    assert_same_outputs(proto, model)


def test_zero_in_shape_blocks_collapse():
    nodes = [
        helper.make_node("Reshape", ["x", "s1"], ["a"]),
        helper.make_node("Reshape", ["a", "s2"], ["y"]),
    ]
    inits = [init("s1", np.array([6, 4], np.int64)), init("s2", np.array([0, 2, 2], np.int64))]
    proto = make_model(nodes, [("x", [2, 3, 4])], [("y", [6, 2, 2])], inits)
    _, modified = apply(ReshapeCollapsePass, proto)
    assert not modified
