import numpy as np
import pytest
from passes_testlib import apply, assert_same_outputs, helper, init, make_model, op_types

from deploykit.passes import ConstantFoldingPass, DeadCodeEliminationPass

pytestmark = pytest.mark.unit


def _dce(model):
    DeadCodeEliminationPass()(model)
    return model


def test_shape_chain_folds_into_reshape_constant():
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "i0"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["y"]),
    ]
    inits = [init("i0", np.array(0, np.int64)), init("ax0", np.array([0], np.int64)), init("minus1", np.array([-1], np.int64))]
    proto = make_model(nodes, [("x", [2, 3, 4])], [("y", [2, 12])], inits)
    model, modified = apply(ConstantFoldingPass, proto)
    _dce(model)
    assert modified
    assert op_types(model) == ["Reshape"]
    np.testing.assert_array_equal(model.graph.node(0).inputs[1].const_value.numpy(), [2, -1])
    assert_same_outputs(proto, model)


def test_constant_of_shape_and_constant_nodes_become_initializers():
    nodes = [
        helper.make_node("Constant", [], ["shape"], value=helper.make_tensor("v", 7, [2], [3, 4])),
        helper.make_node("ConstantOfShape", ["shape"], ["w"], value=helper.make_tensor("f", 1, [1], [0.5])),
        helper.make_node("Add", ["x", "w"], ["y"]),
    ]
    proto = make_model(nodes, [("x", [3, 4])], [("y", [3, 4])])
    model, modified = apply(ConstantFoldingPass, proto)
    _dce(model)
    assert modified and op_types(model) == ["Add"]
    w = model.graph.node(0).inputs[1]
    assert w.is_initializer() and np.all(w.const_value.numpy() == 0.5)
    assert_same_outputs(proto, model)


def test_large_results_stay_nodes():
    nodes = [helper.make_node("Tile", ["c", "reps"], ["t"]), helper.make_node("Add", ["x", "t"], ["y"])]
    inits = [init("c", np.ones((1, 4), np.float32)), init("reps", np.array([64, 1], np.int64))]
    proto = make_model(nodes, [("x", [64, 4])], [("y", [64, 4])], inits)
    model, _ = apply(ConstantFoldingPass, proto, max_bytes=512)  # 64*4*4 = 1 KB > 512 B
    assert "Tile" in op_types(model)
    model, _ = apply(ConstantFoldingPass, proto)
    assert "Tile" not in op_types(_dce(model))
    assert_same_outputs(proto, model)


def test_quantize_linear_is_never_folded():
    nodes = [
        helper.make_node("QuantizeLinear", ["w", "s", "z"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"]),
        helper.make_node("Add", ["x", "dq"], ["y"]),
    ]
    inits = [init("w", np.arange(4, dtype=np.float32)), init("s", np.float32(0.1)), init("z", np.uint8(0))]
    proto = make_model(nodes, [("x", [4])], [("y", [4])], inits)
    model, _ = apply(ConstantFoldingPass, proto)
    assert op_types(model) == ["QuantizeLinear", "DequantizeLinear", "Add"]


def test_graph_input_dependent_nodes_are_kept():
    proto = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", [4])], [("y", [4])])
    model, modified = apply(ConstantFoldingPass, proto)
    assert not modified and op_types(model) == ["Relu"]
