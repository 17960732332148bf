import numpy as np
import pytest
from passes_testlib import apply, assert_same_outputs, helper, init, make_model, op_types

from deploykit.passes import LayerNormFusionPass

pytestmark = pytest.mark.unit
RNG = np.random.default_rng(3)


def layernorm_model(opset=17, axes=(-1,), affine=2, exponent=2.0, shape=(2, 5, 16)):
    def reduce(inp, out):
        if opset >= 18:
            return helper.make_node("ReduceMean", [inp, "axes"], [out])
        return helper.make_node("ReduceMean", [inp], [out], axes=list(axes))

    nodes = [
        reduce("x", "m"),
        helper.make_node("Sub", ["x", "m"], ["d"]),
        helper.make_node("Pow", ["d", "two"], ["p"]),
        reduce("p", "v"),
        helper.make_node("Add", ["v", "eps"], ["ve"]),
        helper.make_node("Sqrt", ["ve"], ["s"]),
        helper.make_node("Div", ["d", "s"], ["n" if affine else "y"]),
    ]
    norm = shape[min(a % len(shape) for a in axes):]
    inits = [init("axes", np.array(axes, np.int64)), init("two", np.float32(exponent)), init("eps", np.float32(1e-5))]
    if affine >= 1:
        nodes.append(helper.make_node("Mul", ["g", "n"], ["nm" if affine == 2 else "y"]))
        inits.append(init("g", RNG.uniform(0.5, 2, norm[-1:]).astype(np.float32)))
    if affine == 2:
        nodes.append(helper.make_node("Add", ["nm", "b"], ["y"]))
        inits.append(init("b", RNG.standard_normal(norm).astype(np.float32)))
    return make_model(nodes, [("x", list(shape))], [("y", list(shape))], inits, opset)


@pytest.mark.parametrize("opset", [17, 18])
@pytest.mark.parametrize("affine", [0, 1, 2])
def test_layernorm_fuses(opset, affine):
    proto = layernorm_model(opset, affine=affine)
    model, modified = apply(LayerNormFusionPass, proto)
    assert modified
    assert [t for t in op_types(model) if t != "Constant"] == ["LayerNormalization"]
    assert [o.name for o in model.graph.outputs] == ["y"]
    assert_same_outputs(proto, model)


def test_two_trailing_axes_fuse():
    proto = layernorm_model(18, axes=(-2, -1))
    model, modified = apply(LayerNormFusionPass, proto)
    assert modified
    ln = [n for n in model.graph if n.op_type == "LayerNormalization"][0]
    assert ln.attributes["axis"].value == 1
    assert_same_outputs(proto, model)


@pytest.mark.parametrize("kwargs", [{"axes": (1,)}, {"exponent": 3.0}, {"opset": 16}])
def test_non_layernorm_is_left_alone(kwargs):
    proto = layernorm_model(**kwargs)
    _, modified = apply(LayerNormFusionPass, proto)
    assert not modified
