"""Hostile models on every backend: TFLite (rpi4), Edge TPU (coral-usb), OpenVINO (intel-cpu, ncs2),
TensorRT (jetson-nano, jetson-orin-nano). Each case ends in a verified bundle or one clean line."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import hostile_models as hm

TARGETS = {
    "rpi4": ["-p", "fp32"],
    "coral-usb": ["-p", "int8"],
    "intel-cpu": ["-p", "fp32"],
    "ncs2": ["-p", "fp16"],
    "jetson-nano": ["-p", "fp16"],
    "jetson-orin-nano": ["-p", "int8"],
}
NEEDS = {"rpi4": "ai_edge_litert", "coral-usb": "ai_edge_litert", "intel-cpu": "openvino", "ncs2": "openvino"}


def _skip_without_backend(target):
    module = NEEDS.get(target)
    if module and importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} not installed")


def _build(sb, target, model, input_shape=(3, 8, 8)):
    out = sb.work / "out"
    args = ["build", model, "--target", target, *TARGETS[target], "-o", out]
    if "int8" in TARGETS[target]:
        calib = sb.work / "c.npy"
        np.save(calib, np.random.default_rng(0).standard_normal((16, *input_shape)).astype(np.float32))
        args += ["-c", calib]
    return out, sb.run(*args)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_custom_domain_op_named_on_every_target(sb, target):
    _skip_without_backend(target)
    model = hm.save(hm.custom_domain_op(), sb.work / "m.onnx")
    out, res = _build(sb, target, model, input_shape=(4,))
    sb.expect_error(res, ("frobnicate", "com.acme.secret"), code=2, out=out)
    ins = sb.run("inspect", model, "--target", target)
    assert ins.returncode == 0 and "com.acme.secret" in ins.stdout and "unsupported" in ins.stdout, ins


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_opset7_ir3_model(sb, target):
    """A valid old model (opset 7, IR 3, initializers listed as inputs) builds on every target."""
    _skip_without_backend(target)
    model = hm.save(hm.opset7_ir3_model(), sb.work / "m.onnx")
    out, res = _build(sb, target, model)
    manifest = sb.expect_ok(res, out)
    assert manifest["verification"]["status"] in ("passed", "skipped"), manifest["verification"]


@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("kind", ["markup", "escape", "quotes"])
def test_hostile_names_on_every_target(sb, target, kind):
    _skip_without_backend(target)
    name = hm.HOSTILE_NAMES[kind]
    model = hm.save(hm.conv_model(x=name, y=name + "_out"), sb.work / "m.onnx")
    out, res = _build(sb, target, model)
    manifest = sb.expect_ok(res, out)
    assert manifest["inputs"][0]["name"] == name
    assert not (sb.work / "PWNED").exists()


@pytest.mark.parametrize("target", ["rpi4", "intel-cpu", "jetson-nano"])
def test_nan_weights_warned_on_every_backend(sb, target):
    _skip_without_backend(target)
    model = hm.save(hm.conv_model(nan_weights=True), sb.work / "m.onnx")
    out, res = _build(sb, target, model)
    assert "hold NaN/Inf" in res.stderr, res
    if res.returncode == 0:
        assert sb.expect_ok(res, out)["verification"]["status"] in ("failed", "skipped")
    else:
        sb.expect_error(res, out=out)


@pytest.mark.parametrize("target", ["rpi4", "intel-cpu", "ncs2", "jetson-nano"])
def test_subgraph_model_on_other_targets(sb, target):
    _skip_without_backend(target)
    model = hm.save(hm.if_subgraph_names(), sb.work / "m.onnx")
    out, res = _build(sb, target, model, input_shape=(4,))
    if res.returncode == 0:
        sb.expect_ok(res, out)
    else:
        sb.expect_error(res, out=out)


@pytest.mark.parametrize("target", ["coral-usb", "host"])
def test_huge_finite_weight_refused_for_int8_not_a_runtime_abort(sb, target):
    """A weight of 3e38 (finite, fuzz m0010): the logits reach 2e38 and full-int8 scales leave float32
    -- LiteRT aborted (SIGABRT) while the build verified the Coral bundle. A full-integer target
    refuses int8 after calibration in one line, nothing left behind; host int8 (the logits stay
    float, the Softmax output is finite) builds a bundle that verifies."""
    _skip_without_backend(target)
    m = hm.conv_model()
    fc = next(t for t in m.graph.initializer if t.name == "fc")
    values = np.frombuffer(fc.raw_data, np.float32).copy() if fc.raw_data else np.asarray(fc.float_data, np.float32)
    values[0] = 3e38
    fc.ClearField("float_data")
    fc.raw_data = values.astype(np.float32).tobytes()
    model = hm.save(m, sb.work / "m.onnx")
    out = sb.work / "out"
    calib = sb.work / "c.npy"
    np.save(calib, np.random.default_rng(0).standard_normal((16, 3, 8, 8)).astype(np.float32))
    res = sb.run("build", model, "--target", target, "-p", "int8", "-c", calib, "-o", out)
    if target == "host":
        assert sb.expect_ok(res, out)["verification"]["status"] == "passed"
    else:
        sb.expect_error(res, "int8 cannot be calibrated", code=2, out=out)
