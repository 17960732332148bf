import numpy as np
import pytest
from passes_testlib import apply, assert_same_outputs, helper, init, make_model

from deploykit.passes import IfConditionScalarPass

pytestmark = pytest.mark.unit


def _model(cond_shape):
    then_b = helper.make_graph([helper.make_node("Sigmoid", ["x"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", 1, [1, 1])])
    else_b = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [],
                               [helper.make_tensor_value_info("e", 1, [1, 1])])
    nodes = [helper.make_node("GreaterOrEqual", ["x", "half"], ["c"]),
             helper.make_node("If", ["c"], ["y"], then_branch=then_b, else_branch=else_b)]
    return make_model(nodes, [("x", cond_shape)], [("y", [1, 1])], [init("half", np.array(0.5, np.float32))])


def test_a_one_element_rank_2_condition_becomes_a_scalar():
    """openWakeWord: If on a [1, 1] comparison, which OpenVINO refuses (rank must be 0 or 1)."""
    proto = _model([1, 1])
    model, modified = apply(IfConditionScalarPass, proto)
    assert modified
    if_node = next(n for n in model.graph if n.op_type == "If")
    assert if_node.inputs[0].shape is not None and len(if_node.inputs[0].shape) == 0
    for x in (0.2, 0.9):
        assert_same_outputs(proto, model, {"x": np.full((1, 1), x, np.float32)})


def test_rank_1_conditions_stay():
    model, modified = apply(IfConditionScalarPass, _model([1]))
    assert not modified
