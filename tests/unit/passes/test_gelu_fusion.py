import math

import numpy as np
import pytest
from passes_testlib import apply, assert_same_outputs, helper, init, make_model, op_types

from deploykit.passes import GeluFusionPass

pytestmark = pytest.mark.unit


def _outer(nodes, one_plus: str, form: int):
    if form == 0:  # (x * (1 + ...)) * 0.5
        nodes += [helper.make_node("Mul", ["x", one_plus], ["p"]), helper.make_node("Mul", ["p", "half"], ["y"])]
    elif form == 1:  # (x * 0.5) * (1 + ...)
        nodes += [helper.make_node("Mul", ["half", "x"], ["p"]), helper.make_node("Mul", ["p", one_plus], ["y"])]
    else:  # x * ((1 + ...) * 0.5)
        nodes += [helper.make_node("Mul", [one_plus, "half"], ["p"]), helper.make_node("Mul", ["x", "p"], ["y"])]


def erf_gelu(form=0, div=True, sqrt2=math.sqrt(2), opset=20):
    nodes = [
        helper.make_node("Div" if div else "Mul", ["x", "s"], ["d"]),
        helper.make_node("Erf", ["d"], ["e"]),
        helper.make_node("Add", ["e", "one"], ["o"]),
    ]
    _outer(nodes, "o", form)
    inits = [init("s", np.float32(sqrt2 if div else 1 / sqrt2)), init("one", np.float32(1)), init("half", np.float32(0.5))]
    return make_model(nodes, [("x", [2, 8])], [("y", [2, 8])], inits, opset)


def tanh_gelu(form=0, pow_=True, c1=0.044715, opset=20):
    cube = [helper.make_node("Pow", ["x", "three"], ["x3"])] if pow_ else [
        helper.make_node("Mul", ["x", "x"], ["x2"]), helper.make_node("Mul", ["x2", "x"], ["x3"])]
    nodes = cube + [
        helper.make_node("Mul", ["c1", "x3"], ["a"]),
        helper.make_node("Add", ["x", "a"], ["b"]),
        helper.make_node("Mul", ["b", "c2"], ["c"]),
        helper.make_node("Tanh", ["c"], ["t"]),
        helper.make_node("Add", ["one", "t"], ["o"]),
    ]
    _outer(nodes, "o", form)
    inits = [init(n, np.float32(v)) for n, v in [("three", 3), ("c1", c1), ("c2", math.sqrt(2 / math.pi)), ("one", 1), ("half", 0.5)]]
    return make_model(nodes, [("x", [2, 8])], [("y", [2, 8])], inits, opset)


@pytest.mark.parametrize("form", [0, 1, 2])
@pytest.mark.parametrize("div", [True, False])
def test_erf_forms_fuse(form, div):
    proto = erf_gelu(form, div)
    model, modified = apply(GeluFusionPass, proto)
    assert modified and op_types(model) == ["Gelu"]
    assert [o.name for o in model.graph.outputs] == ["y"]
    assert_same_outputs(proto, model)


@pytest.mark.parametrize("form", [0, 1, 2])
@pytest.mark.parametrize("pow_", [True, False])
def test_tanh_forms_fuse(form, pow_):
    proto = tanh_gelu(form, pow_)
    model, modified = apply(GeluFusionPass, proto)
    assert modified and op_types(model) == ["Gelu"]
    assert model.graph.node(0).attributes["approximate"].value == "tanh"
    assert_same_outputs(proto, model)


def test_wrong_constants_are_not_fused():
    assert not apply(GeluFusionPass, erf_gelu(sqrt2=1.5))[1]
    assert not apply(GeluFusionPass, tanh_gelu(c1=0.05))[1]


def test_opset19_is_left_alone():
    assert not apply(GeluFusionPass, erf_gelu(opset=19))[1]


@pytest.mark.parametrize("form", [0, 1, 2])
def test_jax_tanh_spelling_fuses(form):
    """JAX (magika): ``x * (x * (0.044715 * x))``, constants first; unfused, its x^3 reaches ~1e5 and
    wrecked rpi4 int8 (cosine 0.04, issue 19)."""
    nodes = [
        helper.make_node("Mul", ["c1", "x"], ["k1"]),
        helper.make_node("Mul", ["x", "k1"], ["k2"]),
        helper.make_node("Mul", ["x", "k2"], ["kx3"]),
        helper.make_node("Add", ["x", "kx3"], ["b"]),
        helper.make_node("Mul", ["c2", "b"], ["c"]),
        helper.make_node("Tanh", ["c"], ["t"]),
        helper.make_node("Add", ["one", "t"], ["o"]),
    ]
    _outer(nodes, "o", form)
    inits = [init("c1", np.float32(0.044715)), init("c2", np.float32(math.sqrt(2 / math.pi))),
             init("one", np.float32(1)), init("half", np.float32(0.5))]
    proto = make_model(nodes, [("x", [2, 8])], [("y", [2, 8])], inits, 20)
    model, modified = apply(GeluFusionPass, proto)
    assert modified and op_types(model) == ["Gelu"]
    assert model.graph.node(0).attributes["approximate"].value == "tanh"
    assert_same_outputs(proto, model)
