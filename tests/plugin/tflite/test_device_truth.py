"""What only an arm64 run can tell, prepared here: rpi5 fp16 bundles carry LiteRT's
reduced_precision_support metadata (fp16 arithmetic on the A76; the Pi 4 gets fp16 storage only),
the runner says XNNPACK only when a delegate took ops, and its fallback warning names the cost that
emulated verification measured."""

from __future__ import annotations

import json

import pytest

import modelzoo
from tflite_testlib import registry

pytestmark = pytest.mark.plugin
pytest.importorskip("ai_edge_litert")


def _build(tmp_path, target, precision="fp16"):
    from deploykit.pipeline import BuildRequest, build

    out = tmp_path / f"{target}-{precision}"
    build(BuildRequest(model=modelzoo.small_cnn(tmp_path / "cnn.onnx"), target=target, output=out,
                       precision=precision, force=True), registry=registry())
    return out


def _metadata(bundle) -> dict[str, bytes]:
    from ai_edge_litert.tools import flatbuffer_utils

    m = flatbuffer_utils.read_model(str(bundle / "model.tflite"))
    return {md.name.decode(): bytes(m.buffers[md.buffer].data) for md in (m.metadata or [])}


def test_rpi5_fp16_asks_for_fp16_arithmetic_rpi4_does_not(tmp_path):
    rpi5 = _metadata(_build(tmp_path, "rpi5"))
    assert rpi5.get("reduced_precision_support") == b"fp16accfp16"
    assert "reduced_precision_support" not in _metadata(_build(tmp_path, "rpi4"))
    report = json.loads((tmp_path / "rpi5-fp16" / "report.json").read_text())
    assert report["backend_report"]["fp16_arithmetic"] is True


def _runner(bundle):
    from deploykit.verification import load_runner_module

    return load_runner_module(bundle)


def test_runner_reports_xnnpack_only_when_a_delegate_took_ops(tmp_path):
    bundle = _build(tmp_path, "rpi4", "fp32")
    module = _runner(bundle)

    class Interp:
        def __init__(self, ops):
            self.ops = ops

        def _get_ops_details(self):
            if self.ops is None:
                raise AttributeError("no node list")
            return self.ops

    assert module._delegated(Interp([{"op_name": "DELEGATE"}, {"op_name": "ADD"}])) is True
    assert module._delegated(Interp([{"op_name": "CONV_2D"}, {"op_name": "ADD"}])) is False
    assert module._delegated(Interp(None)) is None
    r = module.Runner(str(bundle))
    assert r.xnnpack is True and r.runtime.endswith("(XNNPACK)")  # on this host LiteRT does delegate


def test_fallback_warning_names_the_emulated_cost(tmp_path):
    bundle = _build(tmp_path, "rpi4", "fp32")
    module = _runner(bundle)
    assert module._fallback_cost(str(bundle)) == ""  # not verified emulated: nothing to add
    from deploykit.emulate.verify import record

    def run(runtime, err, top1):
        return {"cpu": "cortex-a72", "runtime": f"{runtime} on emulated cortex-a72",
                "outputs": {"y": {"max_abs_error": err, "top1_agreement": top1}}}

    record(bundle, {"status": "passed", "runs": {"bundle": run("ai-edge-litert 2.3.0 (XNNPACK)", 0.01, 1.0),
                                                  "fallback": run("tflite-runtime 2.14.0 (no XNNPACK: built-in kernels)", 0.25, 0.9)}})
    text = module._fallback_cost(str(bundle))
    assert text == ("; on the emulated cortex-a72, tflite-runtime 2.14.0 (no XNNPACK: built-in kernels) gave max abs error "
                    "0.25 vs fp32 (ai-edge-litert 2.3.0 (XNNPACK): 0.01), top-1 agreement 0.900")
    # the manifest stays valid: files still match, the emulated result is stored under verification
    from deploykit.bundle.manifest import open_bundle

    assert open_bundle(bundle)["verification"]["emulated"]["runs"]["fallback"]["cpu"] == "cortex-a72"


def test_rpi5_fp16_arithmetic_only_when_values_fit_fp16(tmp_path):
    """The metadata is model-wide: a model whose values leave fp16's range (an x^2 of a power spectrum,
    a -3.4e38 attention mask) would give inf/NaN on the Pi 5, so its bundle keeps fp32 compute."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from deploykit.pipeline import BuildRequest, build

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((16, 16)).astype(np.float32), "w")
    k = numpy_helper.from_array(np.asarray(3e4, np.float32), "k")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Mul", ["h", "k"], ["big"]),
                           helper.make_node("Mul", ["big", "big"], ["power"]), helper.make_node("Sqrt", ["power"], ["y"])],
                          "power", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])], [w, k])
    path = tmp_path / "power.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    out = tmp_path / "rpi5-power"
    res = build(BuildRequest(model=path, target="rpi5", output=out, precision="fp16", force=True), registry=registry())
    assert "reduced_precision_support" not in _metadata(out)
    report = json.loads((out / "report.json").read_text())
    assert report["backend_report"]["fp16_arithmetic"] is False and report["backend_report"]["fp16_overflow"]
    assert any("exceed 65504" in n and "fp32 compute" in n for n in report["notes"])
    assert res.manifest["verification"]["status"] == "passed"
