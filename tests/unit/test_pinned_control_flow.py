"""A model with control flow that ONNX Runtime cannot load once its inputs are pinned is refused in
one line before any calibration (issue 19: silero-vad's 8 kHz branch with --input-shape input:1,512)."""

import pytest

import modelzoo
from deploykit.errors import ModelError
from deploykit.ir import load_model
from deploykit.reference import check_pinned_model_loads

pytestmark = pytest.mark.unit


def test_unloadable_pinned_control_flow_is_a_model_error(tmp_path):
    path = modelzoo.config_if_model(tmp_path / "m.onnx")
    check_pinned_model_loads(load_model(path, {"x": [6]}))  # 6 = 2 x 3: loads
    with pytest.raises(ModelError, match="cannot load the model with these input shapes") as e:
        check_pinned_model_loads(load_model(path, {"x": [4]}))
    assert "\n" not in str(e.value) and "deploykit-ort" not in str(e.value)
    assert "--freeze-input c=VALUE" in str(e.value)  # the condition is an input: freezing it keeps one branch
