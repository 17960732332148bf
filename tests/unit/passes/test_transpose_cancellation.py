import pytest
from passes_testlib import apply, assert_same_outputs, helper, make_model, op_types

from deploykit.passes import TransposeCancellationPass

pytestmark = pytest.mark.unit


def test_inverse_pair_cancels():
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Transpose", ["r"], ["t1"], perm=[0, 2, 3, 1]),
        helper.make_node("Transpose", ["t1"], ["y"], perm=[0, 3, 1, 2]),
    ]
    proto = make_model(nodes, [("x", [1, 2, 3, 4])], [("y", [1, 2, 3, 4])])
    model, modified = apply(TransposeCancellationPass, proto)
    assert modified and op_types(model) == ["Relu"]
    assert [o.name for o in model.graph.outputs] == ["y"]
    assert_same_outputs(proto, model)


def test_pair_merges_into_one():
    nodes = [
        helper.make_node("Transpose", ["x"], ["t1"], perm=[1, 0, 2]),
        helper.make_node("Transpose", ["t1"], ["y"], perm=[0, 2, 1]),
    ]
    proto = make_model(nodes, [("x", [2, 3, 4])], [("y", [3, 4, 2])])
    model, modified = apply(TransposeCancellationPass, proto)
    assert modified and op_types(model) == ["Transpose"]
    assert list(model.graph.node(0).attributes["perm"].value) == [1, 2, 0]
    assert_same_outputs(proto, model)


def test_inner_transpose_with_other_users_stays():
    nodes = [
        helper.make_node("Transpose", ["x"], ["t1"], perm=[1, 0]),
        helper.make_node("Transpose", ["t1"], ["y"], perm=[1, 0]),
        helper.make_node("Relu", ["t1"], ["z"]),
    ]
    proto = make_model(nodes, [("x", [2, 3])], [("y", [2, 3]), ("z", [3, 2])])
    model, modified = apply(TransposeCancellationPass, proto)
    assert modified and op_types(model) == ["Transpose", "Transpose", "Relu"]
    assert_same_outputs(proto, model)


def test_single_non_identity_transpose_untouched():
    proto = make_model([helper.make_node("Transpose", ["x"], ["y"], perm=[1, 0])], [("x", [2, 3])], [("y", [3, 2])])
    _, modified = apply(TransposeCancellationPass, proto)
    assert not modified
