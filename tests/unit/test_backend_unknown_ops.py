"""Support analysis names op and domain of custom ops on every backend (Backend.unknown_op_reason)."""

from __future__ import annotations

import onnx_ir as ir
import pytest
from onnx import TensorProto, helper

from deploykit.backend import Backend, OpRule, Support

pytestmark = pytest.mark.unit


def _model(op, domain):
    node = helper.make_node(op, ["x"], ["y"], domain=domain, name="n")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(domain, 1)])
    return ir.from_proto(m)


class AnyOp(Backend):
    name = "anyop"
    op_support = None


class Table(Backend):
    name = "table"
    op_support = {"Relu": OpRule(), "acme::Fancy": OpRule()}


@pytest.mark.parametrize("cls", [AnyOp, Table])
def test_custom_domain_op_is_unsupported_and_named(registry, cls):
    backend = cls(registry.target("host"))
    support = backend.analyze(_model("Frob", "com.acme"))
    assert support[0].status is Support.UNSUPPORTED
    assert "'Frob' from domain 'com.acme'" in support[0].reason and cls.name in support[0].reason
    assert [s.op_type for s in backend.custom_ops(_model("Frob", "com.acme"))] == ["com.acme::Frob"]


def test_schema_domains_and_listed_custom_ops_are_known(registry):
    assert AnyOp(registry.target("host")).analyze(_model("LabelEncoder", "ai.onnx.ml"))[0].status is Support.SUPPORTED
    table = Table(registry.target("host"))
    assert table.custom_ops(_model("Fancy", "acme")) == []  # a vendor lists its own domain's op


def test_onnxruntime_knows_its_contrib_ops(registry):
    pytest.importorskip("onnxruntime")
    import deploykit_onnxruntime.backend as ort_backend

    backend = ort_backend.OnnxRuntimeBackend(registry.target("host"))
    assert backend.knows_op("com.microsoft", "FusedConv")
    assert not backend.knows_op("com.microsoft", "NoSuchContribOp")
