"""Export an :class:`onnx_ir.Model` back to ONNX bytes/files, deterministically."""

from __future__ import annotations

import os
from pathlib import Path

import onnx
import onnx_ir as ir

_TWO_GB = 2**31 - 1024


def to_proto(model: ir.Model) -> onnx.ModelProto:
    """Serialize to an :class:`onnx.ModelProto` (all tensor data inline)."""
    return ir.to_proto(model)


def model_bytes(model: ir.Model | onnx.ModelProto) -> bytes:
    """Deterministic serialized bytes of a model (< 2 GB)."""
    proto = model if isinstance(model, onnx.ModelProto) else to_proto(model)
    return proto.SerializeToString(deterministic=True)


def save_model(model: ir.Model | onnx.ModelProto, path: str | os.PathLike) -> list[Path]:
    """Write ``model`` to ``path``; models over 2 GB get one ``<name>.data`` file beside it.

    Returns the files written.
    """
    path = Path(path)
    proto = model if isinstance(model, onnx.ModelProto) else to_proto(model)
    if proto.ByteSize() < _TWO_GB:
        path.write_bytes(proto.SerializeToString(deterministic=True))
        return [path]
    data_name = path.name + ".data"
    onnx.save_model(proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=data_name)
    return [path, path.with_name(data_name)]
