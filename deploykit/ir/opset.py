"""Opset queries and upgrades (through :mod:`onnx.version_converter`)."""

from __future__ import annotations

import onnx
import onnx_ir as ir

from deploykit.errors import ModelError


def opset_version(model: ir.Model) -> int:
    """The default-domain opset the model imports."""
    return model.opset_imports.get("", model.opset_imports.get("ai.onnx", 1))


def upgrade_opset(model: ir.Model, minimum: int) -> ir.Model:
    """Return a model at opset ``>= minimum`` (the same object when no upgrade is needed)."""
    current = opset_version(model)
    if current >= minimum:
        return model
    proto = ir.to_proto(model)
    try:
        converted = onnx.version_converter.convert_version(proto, minimum)
    except Exception as e:  # noqa: BLE001 - converter raises plain RuntimeError
        raise ModelError(
            f"cannot upgrade the model from opset {current} to {minimum}: {str(e).splitlines()[0]}; "
            f"re-export it with opset >= {minimum}"
        ) from e
    return ir.from_proto(converted)
