"""OpenVINO plugin units for hostile input: XML-safe names, folded shape arithmetic (no ReduceProd
on MYRIAD for a Flatten), converter errors that name the op."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

pytestmark = pytest.mark.plugin
ov = pytest.importorskip("openvino")

from deploykit_openvino import lowering  # noqa: E402


def _flatten_axis2(path):
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    nodes = [helper.make_node("Conv", ["in\x1bput", "w"], ["c"], name="conv\x07"),
             helper.make_node("Flatten", ["c"], ["y"], axis=2)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("in\x1bput", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 36])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 7)]), str(path))
    return path


def test_xml_safe_names(tmp_path):
    path = _flatten_axis2(tmp_path / "m.onnx")
    assert lowering.xml_safe_names(path) == 2
    m = onnx.load(str(path))
    assert m.graph.input[0].name == "in_x1b_put" and m.graph.node[0].input[0] == "in_x1b_put"
    assert m.graph.node[0].name == "conv_x07_"
    assert lowering.xml_safe_names(path) == 0  # nothing left to rewrite: the file is untouched


def test_fold_static_shapes_removes_reduceprod(tmp_path):
    path = _flatten_axis2(tmp_path / "m.onnx")
    lowering.xml_safe_names(path)
    model = ov.convert_model(str(path))
    assert "ReduceProd" in {n.get_type_name() for n in model.get_ordered_ops()}
    assert lowering.fold_static_shapes(model) == 1
    assert not {"ReduceProd", "ShapeOf"} & {n.get_type_name() for n in model.get_ordered_ops()}


def test_converter_error_names_the_op(tmp_path):
    node = helper.make_node("Frob", ["x"], ["y"], domain="com.acme")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.acme", 1)]),
              str(path))
    from deploykit.errors import DeployError

    with pytest.raises(DeployError) as info:
        lowering.convert(path)
    assert "Frob" in str(info.value) and "Check 'false'" not in str(info.value)
