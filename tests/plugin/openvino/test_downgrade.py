"""The opset <= 10 downgrade for OpenVINO 2022.3 (ncs2), rule by rule, on the current runtime: every
layer ends up at opset <= 10 and the downgraded model computes what ONNX Runtime computes."""

from __future__ import annotations

import numpy as np
import pytest

from ov_testlib import pad_conv_model

pytestmark = pytest.mark.plugin
ov = pytest.importorskip("openvino")


@pytest.mark.parametrize("pads", [(0, 0, 1, 2, 0, 0, 2, 1), (0, 0, 1, -1, 0, 0, -2, 1)], ids=["pad", "pad_and_crop"])
@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad12_to_pad1(tmp_path, pads, mode):
    import onnxruntime as ort

    from deploykit_openvino.downgrade import downgrade, opset_number

    src = pad_conv_model(tmp_path / "pad.onnx", pads, mode)
    model = ov.convert_model(str(src))
    assert any(n.get_type_name() == "Pad" and opset_number(n) == 12 for n in model.get_ordered_ops())
    assert downgrade(model, 10) == {"Pad-12": 1}
    assert max(opset_number(n) for n in model.get_ordered_ops()) <= 10
    x = np.random.default_rng(0).standard_normal((1, 3, 12, 12)).astype(np.float32)
    got = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})({0: x})[0]
    ref = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_infinite_clamp_bound_becomes_the_largest_float(tmp_path):
    """OpenVINO 2022.3 reads an IR Clamp bound of ``inf`` back as 0 (openWakeWord's mel front-end on
    ncs2: "Attribute 'min' must be less or equal than 'max'. Got: 1e-10 and 0")."""
    from deploykit_openvino.downgrade import FLOAT_MAX, downgrade

    x = ov.opset1.parameter([1, 4], np.float32, name="x")
    model = ov.Model([ov.opset1.clamp(x, 1e-10, float("inf"))], [x], "clip")
    assert downgrade(model, 10, myriad=True) == {"Clamp-1": 1}
    clamp = next(n for n in model.get_ordered_ops() if n.get_type_name() == "Clamp")
    assert clamp.get_attributes()["max"] == pytest.approx(FLOAT_MAX) and clamp.get_attributes()["min"] == pytest.approx(1e-10)
    xs = np.array([[-1.0, 0.0, 2.0, 1e30]], np.float32)
    got = ov.Core().compile_model(model, "CPU")({0: xs})[0]
    np.testing.assert_allclose(got, np.maximum(xs, 1e-10))
