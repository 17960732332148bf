import numpy as np
import onnx
import pytest
from compress_testlib import RNG, conv_bn_relu_conv, feeds, helper, init, make_model, param_count, run, weights

import modelzoo
from deploykit.compress import channel_pruning as cp

pytestmark = pytest.mark.unit


def test_zero_ratio_is_identity():
    model = conv_bn_relu_conv()
    groups, _ = cp.find_groups(model)
    out = cp.prune_channels(model, {k: 0.0 for k in groups})
    f = feeds(model)
    np.testing.assert_array_equal(run(out, f)[0], run(model, f)[0])
    assert param_count(out) == param_count(model)


def test_conv_bn_relu_dw_conv_chain_is_pruned_and_runs():
    model = conv_bn_relu_conv(16)
    groups, skipped = cp.find_groups(model)
    assert "conv1" in groups
    g = groups["conv1"]
    assert {n.name for n in g.passthrough} >= {"bn1", "relu1", "dw", "relu2"}
    assert [n.name for n, _ in g.consumers] == ["conv2"]
    out = cp.prune_channels(model, {"conv1": 0.5})
    onnx.checker.check_model(out)
    assert param_count(out) < param_count(model)
    dw = next(n for n in out.graph.node if n.name == "dw")
    assert next(a.i for a in dw.attribute if a.name == "group") == 8
    conv2 = next(n for n in out.graph.node if n.name == "conv2")
    assert weights(out)[conv2.input[1]].shape == (8, 8, 1, 1)
    assert run(out, feeds(model))[0].shape == (1, 4)


def test_dead_channels_are_removed_exactly():
    """Channels whose filters are zero carry nothing: pruning them keeps outputs identical."""
    w1 = RNG.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32)
    b1 = RNG.normal(0, 0.1, 8).astype(np.float32)
    w1[::2] = 0
    b1[::2] = 0
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "w2"], ["c2"], name="conv2"),
             helper.make_node("Flatten", ["c2"], ["flat"], name="flatten"),
             helper.make_node("MatMul", ["flat", "wfc"], ["y"], name="fc")]
    model = make_model(nodes, [("x", [1, 3, 4, 4])], [("y", [1, 5])],
                       [init("w1", w1), init("b1", b1), init("w2", RNG.normal(0, 0.3, (6, 8, 1, 1)).astype(np.float32)),
                        init("wfc", RNG.normal(0, 0.3, (96, 5)).astype(np.float32))])
    groups, _ = cp.find_groups(model)
    assert set(groups) == {"conv1", "conv2"}  # conv2 -> Flatten -> MatMul: rows expanded per channel
    out = cp.prune_channels(model, {"conv1": 0.5})
    f = feeds(model)
    np.testing.assert_allclose(run(out, f)[0], run(model, f)[0], atol=1e-5)
    out2 = cp.prune_channels(model, {"conv2": 0.5})
    assert weights(out2)[next(n for n in out2.graph.node if n.name == "fc").input[1]].shape == (48, 5)


def test_residual_branches_are_pruned_identically(tmp_path):
    model = onnx.load(str(modelzoo.small_cnn(tmp_path / "cnn.onnx")))
    groups, _ = cp.find_groups(model)
    (g,) = groups.values()  # conv1 -> BN -> HardSwish -> dwconv -> Relu -> Add(residual) -> ... -> Gemm
    assert any(n.op_type == "Add" and n.name == "residual" for n in g.passthrough)
    out = cp.prune_channels(model, {g.key: 0.5})
    assert run(out, feeds(model))[0].shape == (1, 10)
    assert param_count(out) < param_count(model)


@pytest.mark.parametrize("kind", ["input-residual", "concat", "output"])
def test_unsafe_groups_are_skipped_with_a_reason(kind):
    w = init("w", RNG.normal(0, 1, (4, 4, 1, 1)).astype(np.float32))
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv")]
    if kind == "input-residual":
        nodes.append(helper.make_node("Add", ["c", "x"], ["y"], name="add"))
        shape = [1, 4, 3, 3]
    elif kind == "concat":
        nodes.append(helper.make_node("Concat", ["c", "x"], ["y"], axis=1, name="cat"))
        shape = [1, 8, 3, 3]
    else:
        nodes[0].output[0] = "y"
        shape = [1, 4, 3, 3]
    model = make_model(nodes, [("x", [1, 4, 3, 3])], [("y", shape)], [w])
    groups, skipped = cp.find_groups(model)
    assert not groups
    reason = skipped[0]["reason"]
    assert {"input-residual": "graph input", "concat": "Concat", "output": "graph output"}[kind] in reason


def test_conv_inside_its_own_residual_is_both_consumer_and_source():
    """y = Conv2(Relu(Conv1(x))) + Relu(Conv1(x)): Conv2 reads and writes the same channel group."""
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "w2"], ["c2"], name="conv2"),
             helper.make_node("Add", ["c2", "r"], ["s"], name="add"),
             helper.make_node("Conv", ["s", "w3"], ["y"], name="head")]
    model = make_model(nodes, [("x", [1, 3, 4, 4])], [("y", [1, 2, 4, 4])],
                       [init("w1", RNG.normal(0, 1, (8, 3, 1, 1)).astype(np.float32)),
                        init("w2", RNG.normal(0, 1, (8, 8, 1, 1)).astype(np.float32)),
                        init("w3", RNG.normal(0, 1, (2, 8, 1, 1)).astype(np.float32))])
    groups, _ = cp.find_groups(model)
    (g,) = groups.values()
    assert {n.name for n in g.sources} == {"conv1", "conv2"}
    assert {n.name for n, _ in g.consumers} == {"conv2", "head"}
    out = cp.prune_channels(model, {g.key: 0.5})
    onnx.checker.check_model(out)
    assert weights(out)[next(n for n in out.graph.node if n.name == "conv2").input[1]].shape == (4, 4, 1, 1)
    assert run(out, feeds(model))[0].shape == (1, 2, 4, 4)
