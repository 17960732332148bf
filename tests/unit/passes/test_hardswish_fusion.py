import numpy as np
import pytest
from passes_testlib import apply, assert_same_outputs, helper, init, make_model, op_types

from deploykit.passes import HardSigmoidFusionPass, HardSwishFusionPass

pytestmark = pytest.mark.unit


def _relu6(nodes, inits):
    nodes += [helper.make_node("Add", ["x", "three"], ["a"]), helper.make_node("Clip", ["a", "zero", "six"], ["c"])]
    inits += [init("three", np.float32(3)), init("zero", np.float32(0)), init("six", np.float32(6))]


def hardswish_model(form: str, k: float | None = None, opset: int = 17):
    nodes, inits = [], []
    if form == "hardsigmoid":
        nodes = [helper.make_node("HardSigmoid", ["x"], ["h"], alpha=k or 1 / 6, beta=0.5), helper.make_node("Mul", ["h", "x"], ["y"])]
    else:
        _relu6(nodes, inits)
        if form == "div":  # x * relu6(x+3) / 6
            nodes += [helper.make_node("Mul", ["x", "c"], ["m"]), helper.make_node("Div", ["m", "k"], ["y"])]
            inits.append(init("k", np.float32(k or 6.0)))
        elif form == "mul":  # x * relu6(x+3) * 1/6
            nodes += [helper.make_node("Mul", ["c", "x"], ["m"]), helper.make_node("Mul", ["m", "k"], ["y"])]
            inits.append(init("k", np.float32(k or 1 / 6)))
        else:  # x * (relu6(x+3) / 6): HardSigmoid fusion first
            nodes += [helper.make_node("Div", ["c", "k"], ["h"]), helper.make_node("Mul", ["x", "h"], ["y"])]
            inits.append(init("k", np.float32(k or 6.0)))
    return make_model(nodes, [("x", [2, 3, 4, 4])], [("y", [2, 3, 4, 4])], inits, opset)


@pytest.mark.parametrize("form", ["hardsigmoid", "div", "mul", "nested"])
def test_forms_fuse(form):
    proto = hardswish_model(form)
    model = apply(HardSigmoidFusionPass, proto)[0]
    modified = HardSwishFusionPass()(model).modified
    assert modified and op_types(model) == ["HardSwish"]
    assert [o.name for o in model.graph.outputs] == ["y"]
    assert_same_outputs(proto, model)


@pytest.mark.parametrize("form,k", [("hardsigmoid", 0.2), ("div", 5.0), ("mul", 0.2)])
def test_wrong_constants_are_not_fused(form, k):
    _, modified = apply(HardSwishFusionPass, hardswish_model(form, k))
    assert not modified


def test_opset13_is_left_alone():
    _, modified = apply(HardSwishFusionPass, hardswish_model("div", opset=13))
    assert not modified
