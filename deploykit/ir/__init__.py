"""Thin layer over :mod:`onnx_ir`: import, shape pinning, opset upgrade, export, annotations.

deploykit never defines its own graph classes: a model in flight is an :class:`onnx_ir.Model`.
"""

from deploykit.ir.annotations import annotate, annotation, ANNOTATION_KEYS
from deploykit.ir.loader import load_model, load_proto, parse_input_shapes
from deploykit.ir.export import to_proto, save_model, model_bytes
from deploykit.ir.info import TensorSpec, graph_inputs, graph_outputs
from deploykit.ir.opset import opset_version, upgrade_opset

__all__ = [
    "ANNOTATION_KEYS",
    "TensorSpec",
    "annotate",
    "annotation",
    "graph_inputs",
    "graph_outputs",
    "load_model",
    "load_proto",
    "model_bytes",
    "opset_version",
    "parse_input_shapes",
    "save_model",
    "to_proto",
    "upgrade_opset",
]
