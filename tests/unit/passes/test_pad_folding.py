import numpy as np
import pytest
from passes_testlib import apply, assert_same_outputs, helper, init, make_model, op_types

from deploykit.passes import PadFoldingPass

pytestmark = pytest.mark.unit
RNG = np.random.default_rng(2)
W = init("w", RNG.standard_normal((4, 3, 3, 3)).astype(np.float32))


def _pad_conv(pads, value=None, consumer=None, opset=17):
    pad_inputs = ["x", "pads"] + (["v"] if value is not None else [])
    inits = [init("pads", np.array(pads, np.int64)), W] + ([init("v", np.float32(value))] if value is not None else [])
    consumer = consumer or helper.make_node("Conv", ["p", "w"], ["y"], pads=[1, 0, 1, 0])
    nodes = [helper.make_node("Pad", pad_inputs, ["p"]), consumer]
    return make_model(nodes, [("x", [1, 3, 6, 6])], [("y", _out_shape(consumer, pads))], inits, opset)


def _out_shape(consumer, pads):
    h = 6 + pads[2] + pads[6]
    w = 6 + pads[3] + pads[7]
    if consumer.op_type == "Conv":
        return [1, 4, h + 2 - 2, w - 2]
    return [1, pads[1] + pads[5] + 3, h - 1, w - 1]


def test_zero_pad_folds_into_conv():
    proto = _pad_conv([0, 0, 1, 2, 0, 0, 2, 1], value=0.0)
    model, modified = apply(PadFoldingPass, proto)
    assert modified and op_types(model) == ["Conv"]
    assert list(model.graph.node(0).attributes["pads"].value) == [2, 2, 3, 1]
    assert_same_outputs(proto, model)


def test_average_pool_needs_count_include_pad():
    pool = helper.make_node("AveragePool", ["p"], ["y"], kernel_shape=[2, 2], count_include_pad=1)
    proto = _pad_conv([0, 0, 1, 1, 0, 0, 1, 1], consumer=pool)
    model, modified = apply(PadFoldingPass, proto)
    assert modified and op_types(model) == ["AveragePool"]
    assert_same_outputs(proto, model)
    pool = helper.make_node("AveragePool", ["p"], ["y"], kernel_shape=[2, 2])
    _, modified = apply(PadFoldingPass, _pad_conv([0, 0, 1, 1, 0, 0, 1, 1], consumer=pool))
    assert not modified


@pytest.mark.parametrize("pads,value", [([0, 0, 1, 1, 0, 0, 1, 1], 1.0), ([0, 1, 0, 0, 0, 0, 0, 0], None)])
def test_nonzero_value_or_channel_padding_is_kept(pads, value):
    conv = helper.make_node("Conv", ["p", "w"], ["y"])
    if pads[1]:
        conv = helper.make_node("AveragePool", ["p"], ["y"], kernel_shape=[2, 2], count_include_pad=1)
    _, modified = apply(PadFoldingPass, _pad_conv(pads, value=value, consumer=conv))
    assert not modified


def test_opset10_pad_attributes_fold():
    nodes = [helper.make_node("Pad", ["x"], ["p"], pads=[0, 0, 1, 1, 0, 0, 1, 1]), helper.make_node("Conv", ["p", "w"], ["y"])]
    proto = make_model(nodes, [("x", [1, 3, 6, 6])], [("y", [1, 4, 6, 6])], [W], opset=10)
    model, modified = apply(PadFoldingPass, proto)
    assert modified and op_types(model) == ["Conv"]
    assert_same_outputs(proto, model)
