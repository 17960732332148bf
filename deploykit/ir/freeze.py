"""Frozen inputs (``--freeze-input NAME=VALUE``): a graph input whose value is fixed at build time.

Configuration inputs such as silero-vad's sample rate (``sr``: 16000 or 8000) select a branch of an
``If``. With the value frozen, constant folding inlines the taken branch: the model has no control
flow left, so targets without ``If`` build it and ONNX Runtime no longer type-checks the branch that
cannot run at the pinned shapes. OpenVINO's Model Optimizer offers the same (``--input NAME->VALUE``).

The frozen input becomes an initializer of the imported model. The bundle's runner still accepts it
(same inputs as the source model) and refuses any other value than the frozen one; the manifest
records the value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np
import onnx

from deploykit.errors import DeployError

_SPEC_RE = re.compile(r"^(?P<name>[^=]+)=(?P<values>.+)$")
_TRUE, _FALSE = ("true", "1"), ("false", "0")


def parse_freeze_inputs(specs: Sequence[str] | None) -> dict[str, list[str]]:
    """Parse ``NAME=V0[,V1,...]`` strings into ``{name: [value text, ...]}`` (typed later, by the
    input's dtype)."""
    frozen: dict[str, list[str]] = {}
    for spec in specs or ():
        m = _SPEC_RE.match(spec.strip())
        values = [v.strip() for v in m.group("values").split(",")] if m else []
        if not m or not all(values):
            raise DeployError(f"malformed --freeze-input {spec!r}",
                              hint="write it as NAME=VALUE or NAME=V0,V1,... for example --freeze-input sr=16000")
        name = m.group("name").strip()
        if name in frozen:
            raise DeployError(f"--freeze-input is given twice for input {name!r}; pass it once")
        frozen[name] = values
    return frozen


def _typed(name: str, texts: list[str], dtype: np.dtype) -> np.ndarray:
    try:
        if dtype == np.bool_:
            bad = [t for t in texts if t.lower() not in _TRUE + _FALSE]
            if bad:
                raise ValueError(bad[0])
            return np.array([t.lower() in _TRUE for t in texts], np.bool_)
        if dtype.kind in "iu":
            numbers = [float(t) for t in texts]
            if any(not math.isfinite(x) or x != int(x) for x in numbers):
                raise ValueError(next(t for t, x in zip(texts, numbers) if not math.isfinite(x) or x != int(x)))
            info = np.iinfo(dtype)
            if any(not info.min <= int(x) <= info.max for x in numbers):
                raise ValueError(f"out of the {dtype.name} range")
            return np.array([int(x) for x in numbers], dtype)
        return np.array([float(t) for t in texts], dtype)
    except ValueError as e:
        raise DeployError(f"--freeze-input {name}={','.join(texts)}: {e} is not a valid {dtype.name} value "
                          f"for input {name!r}") from None


def _shape(name: str, dims: list[int | None], count: int) -> list[int]:
    """The frozen tensor's shape: the declared one, a single dynamic dim taken from the value count,
    or all 1s for a single value."""
    dynamic = [i for i, d in enumerate(dims) if d is None]
    known = math.prod(d for d in dims if d is not None)
    if not dynamic and known == count:
        return [int(d) for d in dims]  # type: ignore[arg-type]
    if len(dynamic) == 1 and known and count % known == 0:
        return [count // known if d is None else int(d) for d in dims]
    if count == 1 and known == 1:
        return [1] * len(dims)
    declared = [d if d is not None else "?" for d in dims]
    raise DeployError(f"--freeze-input {name}=...: {count} value(s) do not fill input {name!r} of shape {declared}",
                      hint=f"give {known if not dynamic else 'as many'} values, or pin its shape with --input-shape")


def freeze_inputs(proto: onnx.ModelProto, frozen: Mapping[str, list[str]]) -> dict[str, np.ndarray]:
    """Turn the named graph inputs of ``proto`` into initializers; return ``{name: array}``."""
    inputs = {i.name: i for i in proto.graph.input}
    arrays: dict[str, np.ndarray] = {}
    for name, texts in frozen.items():
        if name not in inputs:
            known = ", ".join(repr(n) for n in inputs) or "none"
            raise DeployError(f"--freeze-input names {name!r}, which is not a model input (inputs: {known})")
        tt = inputs[name].type.tensor_type
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type))
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tt.shape.dim]
        values = _typed(name, texts, dtype)
        arrays[name] = values.reshape(_shape(name, dims, values.size))
    if len(arrays) == len(proto.graph.input):
        raise DeployError("--freeze-input freezes every input of the model; leave at least one input to feed")
    keep = [i for i in proto.graph.input if i.name not in arrays]
    del proto.graph.input[:]
    proto.graph.input.extend(keep)
    proto.graph.initializer.extend(onnx.numpy_helper.from_array(a, name) for name, a in arrays.items())
    return arrays


def runner_spec(arrays: Mapping[str, np.ndarray]) -> list[dict]:
    """The runner's and the manifest's record of the frozen inputs."""
    return [{"name": name, "dtype": a.dtype.name, "shape": list(a.shape), "value": a.reshape(-1).tolist()}
            for name, a in arrays.items()]
