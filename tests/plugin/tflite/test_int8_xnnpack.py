"""int8 graphs stay in one XNNPACK partition; the build reports how XNNPACK splits a model."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from tflite_testlib import build, model, report

pytestmark = pytest.mark.plugin


def _tiny_values_model(path):
    """Conv with one channel of denormal weights, then ADD / MUL by tiny scalars (the learnable
    affine after PP-LCNet's activations: biases of ~1e-7 next to outputs of ~1)."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    w[3] = 1e-40  # a pruned channel: denormal float32
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c", "tiny"], ["a"]),
        helper.make_node("Mul", ["a", "half"], ["m"]),
        helper.make_node("Relu", ["m"], ["y"]),
    ]
    return model(path, nodes, {"x": [1, 3, 8, 8]}, {"y": [1, 4, 8, 8]},
                 {"w": w, "tiny": np.float32(1.3e-7), "half": np.float32(0.5)})


def test_tiny_constants_and_denormal_channels_stay_in_xnnpack(tmp_path):
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(1).standard_normal((16, 3, 8, 8)).astype(np.float32))
    res = build(_tiny_values_model(tmp_path / "m.onnx"), tmp_path / "out", precision="int8", calibration=str(calib))
    assert res.manifest["verification"]["status"] == "passed", res.manifest["verification"]
    x = report(tmp_path / "out")["backend_report"]["xnnpack"]
    assert x["partitions"] == 1 and x["undelegated"] == {}, x


def test_delegation_names_ops_left_on_builtin_kernels(tmp_path):
    """fp32 GATHER with runtime indices has no XNNPACK kernel: the build says so."""
    src = model(tmp_path / "g.onnx", [helper.make_node("Gather", ["x", "i"], ["g"], axis=1),
                                      helper.make_node("Relu", ["g"], ["y"])],
                {"x": [2, 6], "i": ([3], TensorProto.INT64)}, {"y": [2, 3]})
    res = build(src, tmp_path / "out", precision="fp32")
    x = report(tmp_path / "out")["backend_report"]["xnnpack"]
    assert x["undelegated"].get("GATHER") == 1 and any(e.startswith("GATHER") for e in x["examples"])
    assert any("XNNPACK leaves 1 op(s)" in n for n in res.manifest.get("notes", []) + report(tmp_path / "out").get("notes", []))


def _spelled_out_hardswish(path):
    """Conv -> x * clip(x + 3, 0, 6) / 6 at opset 13 (no ONNX HardSwish yet), as PP-LCNet exports."""
    w = np.random.default_rng(2).standard_normal((8, 3, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c", "three"], ["a"]),
        helper.make_node("Clip", ["a", "zero", "six"], ["r"]),
        helper.make_node("Mul", ["c", "r"], ["m"]),
        helper.make_node("Div", ["m", "six"], ["y"], name="last"),
    ]
    return model(path, nodes, {"x": [1, 3, 8, 8]}, {"y": [1, 8, 8, 8]},
                 {"w": w, "three": np.float32(3), "zero": np.float32(0), "six": np.float32(6)}, opset=13)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_spelled_out_hardswish_becomes_one_op(tmp_path, precision):
    from tflite_testlib import tflite_ops

    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(1).standard_normal((16, 3, 8, 8)).astype(np.float32))
    kw = {"calibration": str(calib)} if precision == "int8" else {}
    res = build(_spelled_out_hardswish(tmp_path / "m.onnx"), tmp_path / "out", precision=precision, **kw)
    assert res.manifest["verification"]["status"] == "passed", res.manifest["verification"]
    ops = tflite_ops(tmp_path / "out")
    rep = report(tmp_path / "out")
    fused = precision == "fp32" or "last" in rep["quantization"]["fallback_layers"]
    if fused:  # fp32 always; int8 where the engine found float h-swish clearly more accurate
        assert ops.count("HARD_SWISH") == 1 and "MUL" not in ops and "ADD" not in ops, ops
    else:  # all-int8 chain: ADD (+RELU6), MUL, MUL, every op in XNNPACK
        assert "HARD_SWISH" not in ops and ops.count("MUL") == 2, ops
    assert rep["backend_report"]["xnnpack"]["partitions"] == 1


@pytest.mark.parametrize("relu", [True, False])
def test_padded_max_pool_after_relu_pads_with_zeros(tmp_path, relu):
    """ResNet stem: Relu -> MaxPool(3, stride 2, pads 1). -inf padding needs PADV2 (no XNNPACK kernel);
    after a Relu, zero padding (PAD, delegated) gives the same maxima."""
    from tflite_testlib import tflite_ops

    nodes = ([helper.make_node("Relu", ["x"], ["r"])] if relu else [helper.make_node("Identity", ["x"], ["r"])]) + [
        helper.make_node("MaxPool", ["r"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])]
    src = model(tmp_path / "m.onnx", nodes, {"x": [1, 4, 8, 8]}, {"y": [1, 4, 4, 4]})
    res = build(src, tmp_path / "out", precision="fp32")
    assert res.manifest["verification"]["status"] == "passed", res.manifest["verification"]
    ops = tflite_ops(tmp_path / "out")
    assert ("PAD" in ops and "PADV2" not in ops) if relu else "PADV2" in ops, ops
    assert (report(tmp_path / "out")["backend_report"]["xnnpack"]["undelegated"] == {}) is relu


def test_delegation_report_handles_undelegated_ops_with_several_outputs(tmp_path):
    """A SPLIT into 5 outputs is not delegated; its outputs list is a numpy array, which made the
    check fail ("truth value of an array") and the report say "not checked" (issue 19)."""
    nodes = [helper.make_node("Split", ["x"], [f"s{i}" for i in range(5)], axis=1, num_outputs=5)]
    nodes += [helper.make_node("Mul", [f"s{i}", f"s{(i + 1) % 5}"], [f"y{i}"]) for i in range(5)]
    path = model(tmp_path / "m.onnx", nodes, {"x": [1, 10, 4]}, {f"y{i}": [1, 2, 4] for i in range(5)}, opset=18)
    build(path, tmp_path / "out")
    rep = report(tmp_path / "out")
    x = rep["backend_report"].get("xnnpack")
    assert x is not None, rep["notes"]
    assert x["undelegated"].get("SPLIT") == 1 and any(e.startswith("SPLIT -> ") for e in x["examples"]), x


def test_int8_hardswish_runs_as_xnnpack_int8_ops(tmp_path):
    """int8 HARD_SWISH has no XNNPACK kernel: each one became DEQUANTIZE -> float HARD_SWISH ->
    QUANTIZE (PP-LCNet int8 slower than fp32 on a Pi, issue 19). It is ADD(+RELU6), MUL, MUL now."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("HardSwish", ["c1"], ["h1"]),
             helper.make_node("Conv", ["h1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("HardSwish", ["c2"], ["y"])]
    path = model(tmp_path / "m.onnx", nodes, {"x": [1, 3, 8, 8]}, {"y": [1, 8, 8, 8]},
                 {"w1": rng.standard_normal((8, 3, 3, 3)).astype(np.float32),
                  "w2": rng.standard_normal((8, 8, 3, 3)).astype(np.float32)})
    calib = tmp_path / "calib.npy"
    np.save(calib, rng.standard_normal((16, 3, 8, 8)).astype(np.float32))
    # Whether a chain runs in float is the engine's accuracy call (tests/unit/test_quant_engine.py):
    # on this random-weight net percentile and minmax ranges make float clearly better, mse does not.
    res = build(path, tmp_path / "out", precision="int8", calibration=str(calib), calibration_method="mse")
    assert res.manifest["verification"]["status"] == "passed", res.manifest["verification"]
    assert res.manifest["quantization"]["fallback_layers"] == [], res.manifest["quantization"]
    rep = report(tmp_path / "out")["backend_report"]
    assert "HARD_SWISH" not in rep["operators"] and rep["int8"]["float_ops"] == {}, rep
    assert rep["int8"]["dequantize"] == 1 and rep["xnnpack"]["partitions"] == 1, rep


def test_hardswish_is_decomposed_for_int8_builds_only():
    import onnx_ir as ir

    from deploykit.backend import BuildOptions
    from tflite_testlib import registry

    g = helper.make_graph([helper.make_node("HardSwish", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    proto = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    reg = registry()
    backend = reg.backends["tflite"](reg.target("rpi4"))
    for precision, expected in (("fp32", ["HardSwish"]), ("int8", ["Add", "Clip", "Mul", "Mul"])):
        m = backend.prepare(ir.from_proto(proto), BuildOptions(precision=precision))
        assert sorted(n.op_type for n in m.graph if n.op_type != "Constant") == expected


def test_int8_fuses_gelu_of_models_below_opset_20(tmp_path):
    """magika (opset 15) spells a tanh-GELU whose x^3 reaches ~1e5: quantized op by op, rpi4 int8 had
    cosine 0.04 (issue 19). int8 builds upgrade such models to opset 20 and fuse it into GELU."""
    import math

    rng = np.random.default_rng(0)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["a"]),
             helper.make_node("Mul", ["c1", "a"], ["k1"]), helper.make_node("Mul", ["a", "k1"], ["k2"]),
             helper.make_node("Mul", ["a", "k2"], ["k3"]), helper.make_node("Add", ["a", "k3"], ["b"]),
             helper.make_node("Mul", ["c2", "b"], ["c"]), helper.make_node("Tanh", ["c"], ["t"]),
             helper.make_node("Add", ["one", "t"], ["o"]), helper.make_node("Mul", ["half", "o"], ["p"]),
             helper.make_node("Mul", ["a", "p"], ["y"])]
    path = model(tmp_path / "m.onnx", nodes, {"x": [1, 16]}, {"y": [1, 32]},
                 {"w": rng.normal(0, 3, (16, 32)).astype(np.float32), "c1": np.float32(0.044715),
                  "c2": np.float32(math.sqrt(2 / math.pi)), "one": np.float32(1), "half": np.float32(0.5)}, opset=15)
    calib = tmp_path / "calib.npy"
    np.save(calib, rng.standard_normal((32, 16)).astype(np.float32))
    res = build(path, tmp_path / "out", precision="int8", calibration=str(calib))
    ops = report(tmp_path / "out")["backend_report"]["operators"]
    assert "GELU" in ops and "TANH" not in ops, ops
    assert res.manifest["verification"]["status"] == "passed", res.manifest["verification"]


def test_attention_mask_bias_of_float_min_stays_float_instead_of_aborting_litert(tmp_path):
    """``scores + (1 - mask) * finfo(float32).min`` (MiniLM): as an int8 ADD the rescale factor is
    ~1e-37 and TFLite aborted (SIGABRT) at allocate_tensors, killing the build (issue 19)."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["s"]),
             helper.make_node("Sub", ["one", "mask"], ["inv"]),
             helper.make_node("Mul", ["inv", "fmin"], ["bias"]),
             helper.make_node("Add", ["s", "bias"], ["masked"]),
             helper.make_node("Softmax", ["masked"], ["y"], axis=-1)]
    path = model(tmp_path / "m.onnx", nodes, {"x": [1, 8, 8], "mask": [1, 1, 8]}, {"y": [1, 8, 8]},
                 {"w": rng.standard_normal((8, 8)).astype(np.float32), "one": np.float32(1),
                  "fmin": np.float32(np.finfo(np.float32).min)})
    mask = np.ones((16, 1, 8), np.float32)
    mask[:, :, 6:] = 0
    np.savez(tmp_path / "calib.npz", x=rng.standard_normal((16, 8, 8)).astype(np.float32), mask=mask)
    res = build(path, tmp_path / "out", precision="int8", calibration=str(tmp_path / "calib.npz"))
    assert res.manifest["verification"]["status"] == "passed", res.manifest["verification"]
    assert "ADD" in report(tmp_path / "out")["backend_report"]["int8"]["float_ops"]


def test_litert_abort_in_the_delegation_probe_is_one_clean_error(tmp_path, monkeypatch):
    import subprocess

    from deploykit.errors import DeployError
    from deploykit_tflite import delegation

    from deploykit import childproc

    monkeypatch.setattr(childproc.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, -6, "", "INFO: x\n"))
    with pytest.raises(DeployError, match=r"LiteRT .* crashed \(SIGABRT\)"):
        delegation.checked_delegation(tmp_path / "m.tflite")


def _clamped_convs(path, rng):
    """tf2onnx's openWakeWord embedding: Conv -> LeakyRelu -> Max(-0.4) (a lower clamp after every conv),
    a Clip(-0.5, 1.5) whose bounds have no TFLite activation, and a graph output clamped by Min(x, 0.8)."""
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("LeakyRelu", ["c1"], ["l1"], alpha=0.2),
             helper.make_node("Max", ["l1", "floor"], ["m1"]),
             helper.make_node("Conv", ["m1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Clip", ["c2", "lo", "hi"], ["k2"]),
             helper.make_node("Conv", ["k2", "w3"], ["c3"], pads=[1, 1, 1, 1]),
             helper.make_node("Min", ["c3", "ceil"], ["y"])]
    return model(path, nodes, {"x": [1, 3, 8, 8]}, {"y": [1, 8, 8, 8]},
                 {"w1": rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.5,
                  "w2": rng.standard_normal((8, 8, 3, 3)).astype(np.float32) * 0.3,
                  "w3": rng.standard_normal((8, 8, 3, 3)).astype(np.float32) * 0.3,
                  "floor": np.float32(-0.4), "lo": np.float32(-0.5), "hi": np.float32(1.5), "ceil": np.float32(0.8)})


def test_int8_clamps_by_constants_are_requantizations_inside_xnnpack(tmp_path):
    """int8 MAXIMUM/MINIMUM have no XNNPACK kernel: openWakeWord's Max(leaky_relu, -0.4) after every conv
    split the rpi4 int8 graph into 20 partitions (issue 19). A clamp by a constant is the saturation of a
    requantization to params whose end code is the bound: folded into the producer or one QUANTIZE."""
    import onnxruntime as ort
    from tflite_testlib import tflite_ops

    from deploykit.verification import load_runner_module

    rng = np.random.default_rng(0)
    path = _clamped_convs(tmp_path / "m.onnx", rng)
    calib = tmp_path / "calib.npy"
    np.save(calib, rng.standard_normal((32, 3, 8, 8)).astype(np.float32))
    res = build(path, tmp_path / "out", precision="int8", calibration=str(calib))
    assert res.manifest["verification"]["status"] == "passed", res.manifest["verification"]
    rep = report(tmp_path / "out")["backend_report"]
    ops = tflite_ops(tmp_path / "out")
    assert "MAXIMUM" not in ops and "MINIMUM" not in ops, ops
    assert rep["xnnpack"]["partitions"] == 1 and rep["xnnpack"]["undelegated"] == {}, rep["xnnpack"]
    # the clamps are exact: no int8 output below -0.4 after the first conv is possible, and the bundle's
    # graph output never exceeds its bound
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    got = load_runner_module(tmp_path / "out").Runner(tmp_path / "out").run({"x": x})["y"]
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert float(got.max()) <= 0.8 + 1e-6
    assert np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.98


def _scaled_blocks(path):
    """Conv -> h-swish spelled out with / 6 -> learnable * a -> Conv, as PP-LCNetV3 blocks end; the
    h-swish output is also concatenated with a wider branch, so its grid is the Concat's."""
    rng = np.random.default_rng(5)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c", "three"], ["a"]),
        helper.make_node("Clip", ["a", "zero", "six"], ["r"]),
        helper.make_node("Mul", ["c", "r"], ["m"]),
        helper.make_node("Div", ["m", "six"], ["h"]),
        helper.make_node("Mul", ["scale", "h"], ["s"]),
        helper.make_node("Conv", ["s", "w2"], ["y"]),
        helper.make_node("Conv", ["x", "w3"], ["wide"], pads=[1, 1, 1, 1]),
        helper.make_node("Concat", ["h", "wide"], ["cat"], axis=1),
    ]
    return model(path, nodes, {"x": [1, 3, 8, 8]}, {"y": [1, 4, 8, 8], "cat": [1, 16, 8, 8]},
                 {"w1": rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "three": np.float32(3),
                  "zero": np.float32(0), "six": np.float32(6), "scale": np.float32(0.37),
                  "w2": rng.standard_normal((4, 8, 1, 1)).astype(np.float32),
                  "w3": 8 * rng.standard_normal((8, 3, 3, 3)).astype(np.float32)}, opset=13)


@pytest.mark.parametrize("target", ["rpi4", "coral-usb"])
def test_int8_mul_by_a_constant_keeps_its_input_grid(tmp_path, target):
    """MUL by a positive scalar writes its input's grid scaled by the constant (zero point kept):
    the int8 requantization is exact instead of rounding every activation again. Here the input's
    grid is the Concat's (wider than the input's own range), so a range of its own would differ."""
    from ai_edge_litert import schema_py_generated as s
    from ai_edge_litert.tools import flatbuffer_utils

    import deploykit_edgetpu
    import deploykit_onnxruntime
    import deploykit_profiles
    import deploykit_tflite
    from deploykit.pipeline import BuildRequest, build as run_build
    from deploykit.plugins import Registry

    registry = Registry.from_plugins([deploykit_profiles, deploykit_onnxruntime, deploykit_tflite, deploykit_edgetpu])
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(6).standard_normal((24, 3, 8, 8)).astype(np.float32))
    run_build(BuildRequest(model=_scaled_blocks(tmp_path / "m.onnx"), target=target, output=tmp_path / "out",
                           precision="int8", calibration=str(calib), force=True, calibration_method="percentile"),
              registry=registry)
    m = flatbuffer_utils.read_model(str(tmp_path / "out" / "model.tflite"))
    g = m.subgraphs[0]
    names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    factors = {}
    for op in g.operators:
        code = m.operatorCodes[op.opcodeIndex]
        if names[max(code.builtinCode, code.deprecatedBuiltinCode)] != "MUL":
            continue
        ins = [g.tensors[i] for i in op.inputs]
        const = [t for t in ins if m.buffers[t.buffer].data is not None and len(m.buffers[t.buffer].data) == 1]
        if len(const) != 1:
            continue
        c, x = const[0], next(t for t in ins if t is not const[0])
        cq = c.quantization
        value = (int(np.asarray(m.buffers[c.buffer].data).view(np.int8)[0]) - cq.zeroPoint[0]) * cq.scale[0]
        factors[round(float(value), 3)] = (x.quantization, g.tensors[op.outputs[0]].quantization)
    xq, yq = factors[0.37]
    assert yq.zeroPoint[0] == xq.zeroPoint[0]
    assert yq.scale[0] == pytest.approx(xq.scale[0] * 0.37, rel=1e-5)
    xq6, yq6 = factors[round(1 / 6, 3)]  # its output is joined to the Concat: the Concat's grid
    assert yq6.scale[0] > xq6.scale[0] / 6 * 1.5
