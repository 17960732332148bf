import json

import numpy as np
import onnx
import pytest
from compress_testlib import conv_bn_relu_conv, feeds, helper, make_model, mlp, run

from deploykit.compress import CompressionResult, compress, parse_spec
from deploykit.compress._graph import Evaluator
from deploykit.errors import DeployError

pytestmark = pytest.mark.unit


def _samples(model, n=8):
    return [feeds(model, seed=i) for i in range(n)]


def test_fixed_spec_runs_every_step_in_order():
    model = conv_bn_relu_conv(16)
    before = model.SerializeToString()
    result = compress(model, parse_spec("cluster=32,lowrank=0.9,sparsity=0.3,prune=0.25"), samples=_samples(model))
    assert isinstance(result, CompressionResult)
    assert [s.name for s in result.steps] == ["prune", "sparsity", "lowrank", "cluster"]
    assert model.SerializeToString() == before  # the input is not modified
    for step in result.steps:
        onnx.checker.check_model(step.model)
        assert run(step.model, feeds(model))[0].shape == (1, 4)
        json.dumps(step.details)
        assert {"params_before", "params_after", "macs_before", "macs_after", "cosine_vs_fp32", "skipped"} <= set(step.details)
    assert result.steps[0].details["params_after"] < result.steps[0].details["params_before"]
    assert result.steps[-1].model is result.model
    json.dumps(result.to_json())


def test_auto_keeps_the_budget_on_its_samples():
    model = conv_bn_relu_conv(32)
    samples = _samples(model)
    result = compress(model, parse_spec("auto"), samples=samples, budget=0.99)
    assert result.details["budget_met"]
    assert Evaluator(model, samples).output_cosine(result.model) >= 0.99
    assert result.details["samples_kind"] == "calibration"


def test_random_inputs_without_samples_warn():
    messages = []
    result = compress(mlp(), parse_spec("prune=auto,lowrank=auto"), log=messages.append)
    assert result.details["samples_kind"] == "random"
    assert any(m.startswith("warning: no calibration samples") for m in messages)


def test_a_step_that_breaks_the_model_is_dropped(monkeypatch):
    from deploykit.compress import lowrank

    def broken(model, ranks, *args):
        out = onnx.ModelProto()
        out.CopyFrom(model)
        out.graph.node[0].input[1] = "missing"
        return out

    monkeypatch.setattr(lowrank, "factorize", broken)
    model = mlp()
    result = compress(model, parse_spec("lowrank=0.9"), samples=_samples(model))
    (step,) = result.steps
    assert step.details["applied"] is False and step.details["error"]
    np.testing.assert_array_equal(run(result.model, feeds(model))[0], run(model, feeds(model))[0])


def test_dynamic_inputs_need_samples():
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    model = make_model(nodes, [("x", ["N", 4])], [("y", ["N", 4])])
    with pytest.raises(DeployError, match="dynamic"):
        compress(model, parse_spec("cluster=16"))
