"""Helpers for the edgetpu plugin tests: registry, tiny ONNX models, reading .tflite files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PLUGINS = "profiles,onnxruntime,tflite,edgetpu"
ENV = {"DEPLOYKIT_PLUGINS": PLUGINS}


def registry():
    import deploykit_edgetpu
    import deploykit_onnxruntime
    import deploykit_profiles
    import deploykit_tflite

    from deploykit.plugins import Registry

    return Registry.from_plugins([deploykit_profiles, deploykit_onnxruntime, deploykit_tflite, deploykit_edgetpu])


def backend(target: str = "coral-usb"):
    reg = registry()
    profile = reg.target(target)
    return reg.backend_for(profile)(profile)


def model(path: Path, nodes, inputs: dict, outputs: dict, inits: dict | None = None, opset: int = 17) -> Path:
    graph = helper.make_graph(
        nodes, "edgetpu_test", [helper.make_tensor_value_info(k, TensorProto.FLOAT, v) for k, v in inputs.items()],
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, v) for k, v in outputs.items()],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()])
    m = onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]))
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return path


def real_input(path: Path) -> tuple[str, list[int]]:
    m = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    i = [i for i in m.graph.input if i.name not in inits][0]
    return i.name, [d.dim_value for d in i.type.tensor_type.shape.dim]


def calibration(path: Path, out: Path, n: int = 8, low: float = 0.0, high: float = 1.0) -> Path:
    _, shape = real_input(path)
    np.save(out, np.random.default_rng(0).uniform(low, high, [n] + shape[1:]).astype(np.float32))
    return out


def tflite_contents(path: Path) -> tuple[list[str], list[list[str]], list[str]]:
    """(op names, per op the type names of all its tensors, graph I/O type names) of a .tflite."""
    from ai_edge_litert import schema_py_generated as s
    from ai_edge_litert.tools import flatbuffer_utils

    m = flatbuffer_utils.read_model(str(path))
    names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    types = {v: k for k, v in vars(s.TensorType).items() if not k.startswith("_")}
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in m.operatorCodes]
    sub = m.subgraphs[0]
    ops = [names[codes[op.opcodeIndex]] for op in sub.operators]
    op_types = [[types[sub.tensors[i].type] for i in list(op.inputs) + list(op.outputs) if i >= 0] for op in sub.operators]
    io = [types[sub.tensors[i].type] for i in list(sub.inputs) + list(sub.outputs)]
    return ops, op_types, io


def assert_all_integer(path: Path) -> list[str]:
    """Every operator works on int8 (int32 only for biases/shapes); no float tensor, no (DE)QUANTIZE to float."""
    ops, op_types, io = tflite_contents(path)
    assert io and all(t == "INT8" for t in io), io
    for op, types in zip(ops, op_types):
        assert op != "DEQUANTIZE", ops
        assert all(t in ("INT8", "INT32") for t in types), (op, types)
    return ops


def report(bundle: Path) -> dict:
    return json.loads((bundle / "report.json").read_text())
