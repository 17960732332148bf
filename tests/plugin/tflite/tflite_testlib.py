"""Helpers for the tflite plugin tests: one-node ONNX models and in-process builds for rpi4."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PLUGINS = "profiles,onnxruntime,tflite"


def registry():
    import deploykit_onnxruntime
    import deploykit_profiles
    import deploykit_tflite

    from deploykit.plugins import Registry

    return Registry.from_plugins([deploykit_profiles, deploykit_onnxruntime, deploykit_tflite])


def model(path: Path, nodes, inputs: dict, outputs: dict, inits: dict | None = None, opset: int = 17) -> Path:
    """inputs/outputs: name -> shape (float32 unless the shape is a (shape, TensorProto type) pair)."""
    def vi(name, spec):
        shape, dtype = spec if isinstance(spec, tuple) and isinstance(spec[0], (list, tuple)) else (spec, TensorProto.FLOAT)
        return helper.make_tensor_value_info(name, dtype, shape)

    graph = helper.make_graph(
        nodes, "op_test", [vi(k, v) for k, v in inputs.items()], [vi(k, v) for k, v in outputs.items()],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m = onnx.shape_inference.infer_shapes(m)
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return path


def build(path: Path, out: Path, precision: str = "fp32", **kw):
    from deploykit.pipeline import BuildRequest, build as run_build

    return run_build(BuildRequest(model=path, target="rpi4", output=out, precision=precision, force=True, **kw),
                     registry=registry())


def tflite_ops(bundle: Path) -> list[str]:
    """Builtin op names of every operator in the bundle's model.tflite, in order."""
    from ai_edge_litert import schema_py_generated as s
    from ai_edge_litert.tools import flatbuffer_utils

    m = flatbuffer_utils.read_model(str(bundle / "model.tflite"))
    names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in m.operatorCodes]
    return [names[codes[op.opcodeIndex]] for op in m.subgraphs[0].operators]


def report(bundle: Path) -> dict:
    return json.loads((bundle / "report.json").read_text())
