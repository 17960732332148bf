"""Annotations that passes and plugins attach to values and nodes.

Annotations live in onnx_ir's in-memory ``meta`` store of every :class:`onnx_ir.Value` and
:class:`onnx_ir.Node` (and the graph). They are never serialized into the ONNX file; anything a
backend needs to keep must be written into its artifact or the manifest.

Keys are namespaced strings. The documented ones are:

``deploykit.layout`` (Value)
    The memory layout of a tensor as a string: ``"NCHW"``, ``"NHWC"``, or ``"ND"`` (as-is).
``deploykit.quant`` (Value)
    A :class:`deploykit.quant.params.QuantParams` (scale, zero point, dtype, axis) chosen for the
    tensor by the quantization engine.
``deploykit.support`` (Node)
    A :class:`deploykit.backend.NodeSupport` set by support analysis for the chosen target.
``deploykit.float_fallback`` (Node)
    ``True`` when the quantization engine decided this node stays in float.

Plugins may add their own keys; prefix them with the plugin name (``"deploykit_tflite.xyz"``).

Example::

    from deploykit.ir import annotate, annotation
    annotate(node, "deploykit.support", support)
    support = annotation(node, "deploykit.support")
"""

from __future__ import annotations

from typing import Any

LAYOUT = "deploykit.layout"
QUANT = "deploykit.quant"
SUPPORT = "deploykit.support"
FLOAT_FALLBACK = "deploykit.float_fallback"

ANNOTATION_KEYS = (LAYOUT, QUANT, SUPPORT, FLOAT_FALLBACK)


def annotate(obj: Any, key: str, value: Any) -> None:
    """Attach ``value`` under ``key`` to an onnx_ir Value, Node or Graph."""
    if "." not in key:
        raise ValueError(f"annotation key {key!r} must be namespaced, e.g. 'myplugin.{key}'")
    obj.meta[key] = value


def annotation(obj: Any, key: str, default: Any = None) -> Any:
    """Read the annotation ``key`` of an onnx_ir Value, Node or Graph (``default`` if unset)."""
    return obj.meta.get(key, default)
