"""Layout (no TRANSPOSE inside conv chains), fp16 (fp16 weights + DEQUANTIZE) and int8
(full-integer, float or int8 I/O, mixed-precision fallback) of the tflite backend."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper as h

import modelzoo
from tflite_testlib import build, model, report, tflite_ops

pytestmark = pytest.mark.plugin
pytest.importorskip("ai_edge_litert")


def conv_chain(path):
    r = np.random.default_rng(0)
    nodes, inits, x = [], {}, "x"
    for i in range(3):
        nodes += [h.make_node("Conv", [x, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1]),
                  h.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        inits[f"w{i}"] = r.normal(0, 0.3, (4, 4, 3, 3)).astype(np.float32)
        inits[f"b{i}"] = r.normal(0, 0.1, 4).astype(np.float32)
        x = f"r{i}"
    nodes += [h.make_node("MaxPool", [x], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
              h.make_node("Add", ["p", "k"], ["y"])]
    inits["k"] = r.normal(0, 0.1, (4, 1, 1)).astype(np.float32)
    return model(path, nodes, {"x": [1, 4, 8, 8]}, {"y": None}, inits)


def test_conv_chain_has_no_transpose_and_fused_relu(tmp_path):
    res = build(conv_chain(tmp_path / "m.onnx"), tmp_path / "out")
    ops = tflite_ops(tmp_path / "out")
    assert "TRANSPOSE" not in ops and "RELU" not in ops, ops
    assert ops.count("CONV_2D") == 3
    inp = res.manifest["inputs"][0]
    assert inp["artifact"]["perm"] == [0, 2, 3, 1] and inp["shape"] == [1, 4, 8, 8]
    assert res.manifest["outputs"][0]["artifact"]["perm"] == [0, 2, 3, 1]  # layout change at the edge
    assert res.manifest["verification"]["status"] == "passed"


def test_small_cnn_and_transformer_layout(tmp_path):
    build(modelzoo.small_cnn(tmp_path / "cnn.onnx"), tmp_path / "cnn")
    assert "TRANSPOSE" not in tflite_ops(tmp_path / "cnn")
    res = build(modelzoo.small_transformer(tmp_path / "tr.onnx"), tmp_path / "tr")
    assert res.manifest["verification"]["status"] == "passed"


def test_fp16_weights_dequantized(tmp_path):
    res = build(modelzoo.small_cnn(tmp_path / "cnn.onnx"), tmp_path / "out", precision="fp16")
    assert res.manifest["verification"]["status"] == "passed"
    assert "DEQUANTIZE" in tflite_ops(tmp_path / "out")
    assert report(tmp_path / "out")["backend_report"]["fp16_constants"] >= 2  # conv + FC filters (depthwise stays fp32)


@pytest.fixture
def cnn_calibration(tmp_path):
    path = tmp_path / "calib.npy"
    np.save(path, np.random.default_rng(1).standard_normal((16, 3, 16, 16)).astype(np.float32))
    return path


@pytest.mark.parametrize("io", ["float", "int8"])
def test_int8_full_integer(tmp_path, cnn_calibration, io):
    src = modelzoo.small_cnn(tmp_path / "cnn.onnx")
    res = build(src, tmp_path / "out", precision="int8", calibration=str(cnn_calibration), io=io)
    assert res.manifest["verification"]["status"] == "passed", res.manifest["verification"]
    ops = tflite_ops(tmp_path / "out")
    assert "TRANSPOSE" not in ops
    q = report(tmp_path / "out")["backend_report"]["int8"]
    assert q["int8_ops"] >= 6
    art = res.manifest["inputs"][0]["artifact"]
    if io == "int8":
        assert art["dtype"] == "int8" and "scale" in art and res.manifest["inputs"][0]["quantization"]
    else:
        assert art["dtype"] == "float32"


def test_int8_mixed_precision_fallback(tmp_path):
    """A node the engine falls back stays float between DEQUANTIZE / QUANTIZE."""
    from deploykit import passes
    from deploykit.ir import load_model
    from deploykit.quant.calibration import random_samples
    from deploykit.ir import graph_inputs
    from deploykit_tflite.fuse import optimize
    from deploykit_tflite.int8 import minmax_params, quantize_graph
    from deploykit_tflite.lowering import Lowering
    from deploykit_tflite.optable import CONVERTERS

    m = passes.canonicalize(load_model(modelzoo.small_cnn(tmp_path / "cnn.onnx"), {}))
    params = minmax_params(m, random_samples(graph_inputs(m), 8, seed=0))
    g = Lowering(m).run(CONVERTERS)
    optimize(g)
    dw = next(op for op in g.ops if op.code == "DEPTHWISE_CONV_2D")
    rep = quantize_graph(g, params, {dw.node})
    assert dw.outputs[0].dtype == "float32" and dw.inputs[1].dtype == "float32"
    assert rep["float_ops"].get("DEPTHWISE_CONV_2D") == 1 and rep["dequantize"] >= 2


def test_fp16_keeps_the_first_weights_fp32():
    """Early layers' rounding passes through every later layer: the first ~5 % of weight bytes stay fp32."""
    from deploykit_tflite.fp16 import to_fp16_weights
    from deploykit_tflite.graph import TFLGraph

    g = TFLGraph()
    x = g.tensor([1, 64], hint="x")
    g.inputs = [x]
    weights = []
    for k, out in enumerate([8, 64, 1024]):  # 2 KB, 16 KB, 256 KB of fp32 weights: 5 % of 274 KB = 13.7 KB
        w = g.const(np.random.default_rng(k).standard_normal((out, 64)).astype(np.float32), hint=f"w{k}")
        g.add("FULLY_CONNECTED", [x, w, None], [g.tensor([1, out], hint=f"y{k}")], weight_axis=0)
        weights.append(w)
    g.outputs = [op.outputs[0] for op in g.ops]
    assert to_fp16_weights(g) == 2
    halves = [op.inputs[0].name for op in g.ops if op.code == "DEQUANTIZE"]
    assert len(halves) == 2 and not any(h.startswith(weights[0].name) for h in halves)
    assert next(op for op in g.ops if op.code == "FULLY_CONNECTED").inputs[1] is weights[0]  # stays fp32
