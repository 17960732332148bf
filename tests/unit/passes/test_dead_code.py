import numpy as np
import pytest
from passes_testlib import apply, assert_same_outputs, helper, init, make_model, op_types

from deploykit.passes import DeadCodeEliminationPass

pytestmark = pytest.mark.unit


def test_unused_nodes_and_initializers_are_removed_inputs_kept():
    nodes = [
        helper.make_node("Relu", ["x"], ["y"]),
        helper.make_node("Add", ["x", "w"], ["unused"]),
        helper.make_node("Sigmoid", ["unused"], ["unused2"]),
    ]
    proto = make_model(nodes, [("x", [3]), ("z", [3])], [("y", [3])], [init("w", np.ones(3, np.float32)), init("dead", np.ones(2, np.float32))])
    model, modified = apply(DeadCodeEliminationPass, proto)
    assert modified
    assert op_types(model) == ["Relu"]
    assert not model.graph.initializers
    assert [i.name for i in model.graph.inputs] == ["x", "z"]
    assert_same_outputs(proto, model)


def test_nothing_to_remove():
    proto = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", [3])], [("y", [3])])
    _, modified = apply(DeadCodeEliminationPass, proto)
    assert not modified
