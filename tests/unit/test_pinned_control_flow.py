"""A model with control flow that ONNX Runtime cannot load once its inputs are pinned is refused in
one line before any calibration (issue 19: silero-vad's 8 kHz branch with --input-shape input:1,512)."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from deploykit.errors import ModelError
from deploykit.ir import load_model
from deploykit.reference import check_pinned_model_loads

pytestmark = pytest.mark.unit


def _model(path):
    # the else branch reshapes x to [-1, 3]: fine for a dynamic length, impossible for length 4
    shape = numpy_helper.from_array(np.array([-1, 3], np.int64), "shape")
    then_b = helper.make_graph([helper.make_node("Neg", ["x"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", TensorProto.FLOAT, ["m"])])
    else_b = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["e0"]),
                                helper.make_node("ReduceSum", ["e0"], ["e"], keepdims=0)], "else", [],
                               [helper.make_tensor_value_info("e", TensorProto.FLOAT, ["m"])])
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], then_branch=then_b, else_branch=else_b)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"]), helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["m"])], [shape])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(proto, str(path))
    return path


def test_unloadable_pinned_control_flow_is_a_model_error(tmp_path):
    path = _model(tmp_path / "m.onnx")
    check_pinned_model_loads(load_model(path, {"x": [6]}))  # 6 = 2 x 3: loads
    with pytest.raises(ModelError, match="cannot load the model with these input shapes") as e:
        check_pinned_model_loads(load_model(path, {"x": [4]}))
    assert "\n" not in str(e.value) and "deploykit-ort" not in str(e.value)
