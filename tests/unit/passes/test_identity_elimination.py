import numpy as np
import pytest
from passes_testlib import apply, assert_same_outputs, helper, init, make_model, op_types

from deploykit.passes import IdentityEliminationPass

pytestmark = pytest.mark.unit


def test_identity_dropout_and_noop_cast_reshape_are_removed():
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Identity", ["a"], ["b"]),
        helper.make_node("Dropout", ["b"], ["c"]),
        helper.make_node("Cast", ["c"], ["d"], to=1),
        helper.make_node("Reshape", ["d", "shape"], ["e"]),
        helper.make_node("Sigmoid", ["e"], ["f"]),
        helper.make_node("Identity", ["f"], ["y"]),
    ]
    proto = make_model(nodes, [("x", [2, 3])], [("y", [2, 3])], [init("shape", np.array([2, 3], np.int64))])
    model, modified = apply(IdentityEliminationPass, proto)
    assert modified
    assert op_types(model) == ["Relu", "Sigmoid"]
    assert [o.name for o in model.graph.outputs] == ["y"]  # output name kept
    assert_same_outputs(proto, model)


def test_real_cast_and_reshape_stay():
    nodes = [
        helper.make_node("Cast", ["x"], ["a"], to=10),
        helper.make_node("Cast", ["a"], ["b"], to=1),
        helper.make_node("Reshape", ["b", "shape"], ["y"]),
    ]
    proto = make_model(nodes, [("x", [2, 3])], [("y", [3, 2])], [init("shape", np.array([3, 2], np.int64))])
    model, modified = apply(IdentityEliminationPass, proto)
    assert not modified and op_types(model) == ["Cast", "Cast", "Reshape"]


def test_identity_from_graph_input_to_output_stays():
    proto = make_model([helper.make_node("Identity", ["x"], ["y"])], [("x", [2])], [("y", [2])])
    model, modified = apply(IdentityEliminationPass, proto)
    assert not modified and op_types(model) == ["Identity"]
    assert [o.name for o in model.graph.outputs] == ["y"]


def test_training_dropout_stays():
    nodes = [helper.make_node("Dropout", ["x", "ratio", "train"], ["y"])]
    inits = [init("ratio", np.float32(0.5)), init("train", np.array(True))]
    proto = make_model(nodes, [("x", [2])], [("y", [2])], inits)
    model, modified = apply(IdentityEliminationPass, proto)
    assert not modified and op_types(model) == ["Dropout"]


def test_expand_read_only_by_broadcasting_ops_is_removed():
    """F.normalize: x / max(||x||, eps).expand_as(x) -- the Div broadcasts by itself."""
    nodes = [
        helper.make_node("ReduceL2", ["x"], ["n"], axes=[1], keepdims=1),
        helper.make_node("Expand", ["n", "shape"], ["e"]),
        helper.make_node("Div", ["x", "e"], ["y"]),
    ]
    proto = make_model(nodes, [("x", [2, 8])], [("y", [2, 8])], [init("shape", np.array([2, 8], np.int64))],
                       opset=13)
    model, modified = apply(IdentityEliminationPass, proto)
    assert modified and op_types(model) == ["ReduceL2", "Div"]
    assert_same_outputs(proto, model)


@pytest.mark.parametrize("consumer, target", [("Relu", [3, 2, 8]), ("Add", [3, 2, 8])])
def test_expand_that_shapes_its_readers_output_stays(consumer, target):
    ins = ["e"] if consumer == "Relu" else ["x", "e"]
    nodes = [helper.make_node("Expand", ["x", "shape"], ["e"]), helper.make_node(consumer, ins, ["y"])]
    proto = make_model(nodes, [("x", [2, 8])], [("y", target)], [init("shape", np.array(target, np.int64))])
    model, modified = apply(IdentityEliminationPass, proto)
    assert "Expand" in op_types(model)


def test_identity_returning_an_outer_scope_value_from_an_if_branch_stays():
    """An If branch whose output is an Identity of an outer value (torch's
    ``return x if c else y``): removing it would make the branch return the outer value directly,
    which ONNX Runtime refuses to load (issue 19, openWakeWord models)."""
    then_b = helper.make_graph([helper.make_node("Sigmoid", ["p"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", 1, [1, 2])])
    else_b = helper.make_graph([helper.make_node("Identity", ["p"], ["e"])], "else", [],
                               [helper.make_tensor_value_info("e", 1, [1, 2])])
    nodes = [
        helper.make_node("Relu", ["x"], ["p"]),
        helper.make_node("ReduceSum", ["p"], ["s"], keepdims=0),
        helper.make_node("Greater", ["s", "zero"], ["c"]),
        helper.make_node("If", ["c"], ["y"], then_branch=then_b, else_branch=else_b),
    ]
    proto = make_model(nodes, [("x", [1, 2])], [("y", [1, 2])], [init("zero", np.array(0.0, np.float32))])
    model, _ = apply(IdentityEliminationPass, proto)
    if_node = next(n for n in model.graph if n.op_type == "If")
    assert [n.op_type for n in if_node.attributes["else_branch"].value] == ["Identity"]
    for x in (np.array([[1.0, 2.0]], np.float32), np.array([[-1.0, -2.0]], np.float32)):
        assert_same_outputs(proto, model, {"x": x})


def test_max_with_minus_inf_and_min_with_plus_inf_are_removed():
    """JAX's softmax ``Max(-inf, ReduceMax(x))`` (magika): the infinite constant is folded away."""
    nodes = [
        helper.make_node("ReduceMax", ["x"], ["m"], axes=[1], keepdims=1),
        helper.make_node("Max", ["ninf", "m"], ["a"]),
        helper.make_node("Min", ["a", "pinf"], ["b"]),
        helper.make_node("Sub", ["x", "b"], ["y"]),
    ]
    proto = make_model(nodes, [("x", [2, 5])], [("y", [2, 5])],
                       [init("ninf", np.array([-np.inf], np.float32)), init("pinf", np.array(np.inf, np.float32))])
    model, modified = apply(IdentityEliminationPass, proto)
    assert modified and op_types(model) == ["ReduceMax", "Sub"]
    assert_same_outputs(proto, model)


def test_max_with_a_finite_or_broadcasting_constant_stays():
    nodes = [helper.make_node("Max", ["x", "c"], ["a"]), helper.make_node("Max", ["a", "big"], ["y"])]
    proto = make_model(nodes, [("x", [1, 3])], [("y", [2, 3])],
                       [init("c", np.array([0.0], np.float32)), init("big", np.full((2, 3), -np.inf, np.float32))])
    model, modified = apply(IdentityEliminationPass, proto)
    assert not modified and op_types(model) == ["Max", "Max"]
