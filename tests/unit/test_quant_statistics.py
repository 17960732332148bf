"""Normalization statistics computed step by step (E[x^2] - E[x]^2, JAX/TF exports of LayerNorm)
stay in float on mixed-precision targets: in int8 the variance is the difference of two nearly
equal numbers, rows of small variance lose it all and 1/sqrt(var + eps) explodes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from deploykit.ir import graph_inputs
from deploykit.ir.opset import upgrade_opset
from deploykit.quant.calibration import SampleSet
from deploykit.quant.collect import GraphIndex
from deploykit.quant.engine import QuantConfig, quantize_model, simulation_session
from deploykit.quant.scheme import QuantScheme

pytestmark = pytest.mark.unit

C, N, K = 32, 16, 10


def _decomposed_layernorm_model() -> onnx.ModelProto:
    """x [1, N, C] -> LayerNorm as jax2tf writes it (mean and E[x^2] by ReduceSum x 1/C, variance
    = E[x^2] - mean^2, Max(0, .), + eps, Sqrt, Reciprocal) -> MatMul -> logits [1, N, K]."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(np.array([-1], np.int64), "axes"),
        numpy_helper.from_array(np.array(1.0 / C, np.float32), "inv_c"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        numpy_helper.from_array(np.array(1e-6, np.float32), "eps"),
        numpy_helper.from_array(np.array([1, N, 1], np.int64), "col"),
        numpy_helper.from_array((1 + 0.1 * rng.standard_normal(C)).astype(np.float32), "gamma"),
        numpy_helper.from_array((0.1 * rng.standard_normal(C)).astype(np.float32), "beta"),
        numpy_helper.from_array((rng.standard_normal((C, K)) / np.sqrt(C)).astype(np.float32), "w"),
    ]
    nodes = [
        helper.make_node("ReduceSum", ["x", "axes"], ["s1"], name="s1", keepdims=0),
        helper.make_node("Mul", ["x", "x"], ["sq"], name="sq"),
        helper.make_node("ReduceSum", ["sq", "axes"], ["s2"], name="s2", keepdims=0),
        helper.make_node("Mul", ["s1", "inv_c"], ["mean"], name="mean"),
        helper.make_node("Mul", ["s2", "inv_c"], ["ex2"], name="ex2"),
        helper.make_node("Mul", ["mean", "mean"], ["mean2"], name="mean2"),
        helper.make_node("Sub", ["ex2", "mean2"], ["var0"], name="var0"),
        helper.make_node("Max", ["zero", "var0"], ["var"], name="var"),
        helper.make_node("Reshape", ["var", "col"], ["var_c"], name="var_c"),
        helper.make_node("Add", ["var_c", "eps"], ["var_eps"], name="var_eps"),
        helper.make_node("Sqrt", ["var_eps"], ["std"], name="std"),
        helper.make_node("Reciprocal", ["std"], ["rstd"], name="rstd"),
        helper.make_node("Mul", ["rstd", "gamma"], ["scale"], name="scale"),
        helper.make_node("Reshape", ["mean", "col"], ["mean_c"], name="mean_c"),
        helper.make_node("Sub", ["x", "mean_c"], ["xc"], name="xc"),
        helper.make_node("Mul", ["xc", "scale"], ["xn"], name="xn"),
        helper.make_node("Add", ["xn", "beta"], ["y"], name="y"),
        helper.make_node("MatMul", ["y", "w"], ["logits"], name="logits"),
    ]
    graph = helper.make_graph(nodes, "ln", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, N, C])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, N, K])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return onnx.shape_inference.infer_shapes(model)


def _rows(rng, n: int) -> np.ndarray:
    """Rows around an offset of ~0.7 (E[x^2] close to mean^2); a random share of them nearly
    constant (padding, runs of one byte), whose variance is far below the others'."""
    x = 0.7 + rng.uniform(0.02, 0.3, (n, 1, N, 1)) * rng.standard_normal((n, 1, N, C))
    flat = rng.random((n, 1, N, 1)) < 0.3
    x = np.where(flat, 0.7 + 0.004 * rng.standard_normal((n, 1, N, C)), x)
    return x.astype(np.float32)


def _held_out_cosine(model: onnx.ModelProto, qdq: onnx.ModelProto) -> float:
    x = _rows(np.random.default_rng(2), 16)
    ref, sim = simulation_session(model), simulation_session(qdq)
    worst = 1.0
    for i in range(len(x)):
        r = ref.run(None, {"x": x[i]})[0].ravel().astype(np.float64)
        s = sim.run(None, {"x": x[i]})[0].ravel().astype(np.float64)
        worst = min(worst, float(r @ s / (np.linalg.norm(r) * np.linalg.norm(s) + 1e-30)) if np.isfinite(s).all() else 0.0)
    return worst


def _quantize(model: onnx.ModelProto, scheme: QuantScheme):
    import onnx_ir as ir

    m = upgrade_opset(ir.from_proto(model), 13)
    calib = SampleSet({"x": _rows(np.random.default_rng(1), 24)[:, 0]}, graph_inputs(m))
    return quantize_model(m, calib, scheme, QuantConfig(method="minmax"))


def test_every_node_of_a_stepwise_variance_stays_float_on_mixed_precision_targets():
    from deploykit.quant.statistics import statistics_nodes

    index = GraphIndex(_decomposed_layernorm_model())
    floats = statistics_nodes(index)
    assert {"sq", "s1", "s2", "mean", "ex2", "mean2", "var0", "var", "var_eps", "std", "rstd", "scale", "xc",
            "xn"} <= floats, floats
    assert not {"y", "logits"} & floats


def test_stepwise_layernorm_holds_on_held_out_rows():
    model = _decomposed_layernorm_model()
    result = _quantize(model, QuantScheme())
    assert _held_out_cosine(model, result.qdq_model) >= 0.98
