"""If-conversion (deploykit.passes.if_to_select): a run-time If becomes both branches + Where when
both branches can run at the pinned shapes; otherwise it stays, with the reason and the input to freeze."""

import numpy as np
import pytest
from passes_testlib import assert_same_outputs, helper, init, make_model, op_types, to_ir

from deploykit.errors import UnsupportedError
from deploykit.passes import canonicalize
from deploykit.passes.if_to_select import condition_inputs, convert, convert_for_target, freeze_hint

pytestmark = pytest.mark.unit


def _wake_word(else_shape=(1, 1)):
    """openWakeWord's shape: score = sigmoid(x W); if score >= 0.5 run a verifier (with its own
    constant and an outer-scope read of x), else return the score."""
    then_b = helper.make_graph(
        [helper.make_node("Constant", [], ["wv"], value=init("wv", np.full((4, 1), -0.7, np.float32))),
         helper.make_node("MatMul", ["x", "wv"], ["v"]), helper.make_node("Sigmoid", ["v"], ["p2"])], "then", [],
        [helper.make_tensor_value_info("p2", 1, [1, 1])])
    else_nodes = [helper.make_node("Identity", ["score"], ["p1"])]
    if else_shape != (1, 1):
        else_nodes = [helper.make_node("Expand", ["score", "eshape"], ["p1"])]
    else_b = helper.make_graph(else_nodes, "else", [], [helper.make_tensor_value_info("p1", 1, list(else_shape))],
                               [init("eshape", np.array(else_shape, np.int64))] if else_shape != (1, 1) else [])
    nodes = [helper.make_node("MatMul", ["x", "w"], ["s"]), helper.make_node("Sigmoid", ["s"], ["score"]),
             helper.make_node("GreaterOrEqual", ["score", "half"], ["c"]),
             helper.make_node("If", ["c"], ["y"], then_branch=then_b, else_branch=else_b, name="wake_if")]
    return make_model(nodes, [("x", [1, 4])], [("y", [1, 1])],
                      [init("w", np.ones((4, 1), np.float32)), init("half", np.array(0.5, np.float32))])


def test_a_run_time_if_becomes_both_branches_and_a_where():
    proto = _wake_word()
    model = canonicalize(to_ir(proto))
    result = convert(model)
    assert result.converted == ["wake_if"] and not result.refused
    model = canonicalize(model, passes=[])
    assert "If" not in op_types(model) and "Where" in op_types(model)
    assert [o.name for o in model.graph.outputs] == ["y"]
    for x in (-1.0, 0.0, 0.3, 2.0):  # both sides of the threshold: the selected branch is the one If takes
        assert_same_outputs(proto, model, {"x": np.full((1, 4), x, np.float32)})


def test_branches_of_different_shapes_stay_with_the_reason_and_the_input_to_freeze():
    model = canonicalize(to_ir(_wake_word(else_shape=(1, 3))))
    result = convert(model)
    assert not result.converted and "different or unknown shapes" in result.refused["wake_if"]
    assert "If" in op_types(model)  # untouched
    assert condition_inputs(next(n for n in model.graph if n.op_type == "If")) == ["x"]
    _, converted, refusals = convert_for_target(model, "tflite", "rpi4")
    assert converted == [] and "--freeze-input x=VALUE" in refusals["wake_if"]


def test_a_conversion_onnx_runtime_cannot_run_is_refused_in_one_line():
    """Equal static shapes are not enough when a branch cannot compute at these shapes: the converted
    model is run once, and a failure names the If and the inputs to freeze."""
    then_b = helper.make_graph([helper.make_node("Neg", ["x"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", 1, [4])])
    # reshape a length-4 vector to [3, -1]: fails at run time only
    else_b = helper.make_graph([helper.make_node("Reshape", ["x", "bad"], ["r"]),
                                helper.make_node("Reshape", ["r", "back"], ["e"])], "else", [],
                               [helper.make_tensor_value_info("e", 1, [4])],
                               [init("bad", np.array([3, -1], np.int64)), init("back", np.array([4], np.int64))])
    nodes = [helper.make_node("If", ["c"], ["y"], then_branch=then_b, else_branch=else_b, name="cfg_if")]
    proto = make_model(nodes, [("x", [4]), ("c", [])], [("y", [4])])
    proto.graph.input[1].type.tensor_type.elem_type = 9  # bool
    model = to_ir(proto)
    with pytest.raises(UnsupportedError, match="cfg_if") as e:
        convert_for_target(model, "tflite", "rpi4")
    assert "--freeze-input c=VALUE" in str(e.value) and "\n" not in str(e.value)


def test_freeze_hint_is_none_without_graph_inputs():
    assert freeze_hint({"a": []}) is None
    assert freeze_hint({"a": ["sr"], "b": ["sr"]}).count("--freeze-input sr=VALUE") == 1
