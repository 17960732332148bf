"""Input/output descriptions shared by the manifest, the runner and verification."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import onnx_ir as ir


@dataclass
class TensorSpec:
    """One model input or output as the *user* sees it (the source model's view).

    ``layout`` is the layout the runner accepts/returns (always the source model's);
    ``quantization`` describes integer I/O of the artifact when the runner (de)quantizes it;
    ``artifact`` tells the runner how the artifact differs: ``{"name": tensor name in the artifact,
    "perm": transpose from the source layout, "dtype": artifact dtype, "scale", "zero_point"}``.
    """

    name: str
    shape: list[int]
    dtype: str = "float32"
    layout: str = "ND"
    quantization: dict[str, Any] | None = None
    artifact: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        if not d["extra"]:
            d.pop("extra")
        if d["artifact"] is None:
            d.pop("artifact")
        return d


def _layout_for(shape: list[int]) -> str:
    return "NCHW" if len(shape) == 4 else "ND"


def _spec(value: ir.Value) -> TensorSpec:
    shape = [d if isinstance(d, int) else -1 for d in (value.shape or [])]
    dtype = "float32"
    if value.dtype is not None:
        try:
            dtype = np.dtype(value.dtype.numpy()).name
        except Exception:  # noqa: BLE001 - exotic dtypes keep their ONNX name
            dtype = value.dtype.name.lower()
    return TensorSpec(name=value.name or "", shape=shape, dtype=dtype, layout=_layout_for(shape))


def graph_inputs(model: ir.Model) -> list[TensorSpec]:
    """Specs of the real (non-initializer) graph inputs."""
    inits = set(model.graph.initializers)
    return [_spec(v) for v in model.graph.inputs if v.name not in inits]


def graph_outputs(model: ir.Model) -> list[TensorSpec]:
    """Specs of the graph outputs."""
    return [_spec(v) for v in model.graph.outputs]
