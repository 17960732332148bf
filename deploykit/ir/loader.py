"""Import an ONNX file into onnx_ir, safely.

Steps: read the protobuf (clear error for missing / non-ONNX / truncated files), refuse external
data that points outside the model's folder, run ``onnx.checker``, drop initializers that are
also listed as graph inputs (old exporters), pin dynamic dims from ``--input-shape``, refuse
dims left dynamic, infer shapes, and convert to :class:`onnx_ir.Model`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import onnx
import onnx.external_data_helper as ext
import onnx_ir as ir
from google.protobuf.message import DecodeError

from deploykit.errors import DeployError, ModelError

_SHAPE_RE = re.compile(r"^(?P<name>.+):(?P<dims>-?\d+(?:,-?\d+)*)$")


def parse_input_shapes(specs: Sequence[str] | None) -> dict[str, list[int]]:
    """Parse ``name:d0,d1,...`` strings (the ``--input-shape`` option) into a dict."""
    shapes: dict[str, list[int]] = {}
    for spec in specs or ():
        m = _SHAPE_RE.match(spec.strip())
        if not m:
            raise DeployError(
                f"malformed --input-shape {spec!r}",
                hint="write it as NAME:D0,D1,... for example --input-shape input:1,3,224,224",
            )
        dims = [int(d) for d in m.group("dims").split(",")]
        if any(d <= 0 for d in dims):
            raise DeployError(f"--input-shape {spec!r} has a dimension <= 0; every dimension must be a positive integer")
        shapes[m.group("name")] = dims
    return shapes


def _check_external_data(proto: onnx.ModelProto, base_dir: Path) -> None:
    base = base_dir.resolve()
    for tensor in ext._get_all_tensors(proto):
        if not ext.uses_external_data(tensor):
            continue
        info = ext.ExternalDataInfo(tensor)
        location = info.location
        target = (base / location).resolve()
        if os.path.isabs(location) or (target != base and base not in target.parents):
            raise ModelError(
                f"tensor {tensor.name!r} stores its data at {location!r}, outside the model's folder; "
                "refusing to read it — move the data file next to the model and re-export"
            )
        if not target.is_file():
            raise ModelError(
                f"external data file {location!r} of tensor {tensor.name!r} is missing; "
                "put it next to the model file"
            )


def load_proto(path: str | os.PathLike) -> onnx.ModelProto:
    """Read and check an ONNX file. Raises :class:`ModelError` with a one-line reason."""
    p = Path(path)
    if not p.exists():
        raise ModelError(f"model file {str(p)!r} does not exist")
    if p.is_dir():
        raise ModelError(f"{str(p)!r} is a folder; pass the path of an .onnx file")
    try:
        proto = onnx.load(str(p), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError, OSError) as e:
        raise ModelError(
            f"{str(p)!r} is not a readable ONNX model (truncated or not ONNX: {type(e).__name__}); "
            "re-export it from your framework"
        ) from e
    if not proto.HasField("graph") or (not proto.graph.node and not proto.graph.output):
        raise ModelError(f"{str(p)!r} is not an ONNX model (no graph found); re-export it from your framework")
    _check_external_data(proto, p.parent)
    try:
        onnx.load_external_data_for_model(proto, str(p.parent))
    except Exception as e:  # noqa: BLE001 - any read failure is the user's file
        raise ModelError(f"cannot read the external data of {str(p)!r}: {e}") from e
    try:
        if proto.ByteSize() < 2**31 - 1:
            onnx.checker.check_model(proto)
        else:
            onnx.checker.check_model(str(p))
    except onnx.checker.ValidationError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "invalid model"
        raise ModelError(f"{str(p)!r} fails the ONNX checker: {first}") from e
    return proto


def _drop_initializer_inputs(proto: onnx.ModelProto) -> None:
    inits = {t.name for t in proto.graph.initializer}
    keep = [i for i in proto.graph.input if i.name not in inits]
    if len(keep) != len(proto.graph.input):
        del proto.graph.input[:]
        proto.graph.input.extend(keep)
    # IR < 4 requires every initializer to be a graph input; without them the model is IR >= 4.
    proto.ir_version = max(proto.ir_version, 4)


def _pin_shapes(proto: onnx.ModelProto, shapes: Mapping[str, Sequence[int]]) -> None:
    inputs = {i.name: i for i in proto.graph.input}
    for name, dims in shapes.items():
        if name not in inputs:
            known = ", ".join(repr(n) for n in inputs) or "none"
            raise DeployError(f"--input-shape names {name!r}, which is not a model input (inputs: {known})")
        vi = inputs[name]
        shape = vi.type.tensor_type.shape
        if len(shape.dim) != len(dims):
            raise DeployError(
                f"--input-shape {name}:{','.join(map(str, dims))} has rank {len(dims)} "
                f"but input {name!r} has rank {len(shape.dim)}"
            )
        for d, value in zip(shape.dim, dims):
            if d.HasField("dim_value") and d.dim_value > 0 and d.dim_value != value:
                raise DeployError(
                    f"--input-shape {name}:{','.join(map(str, dims))} conflicts with the model's fixed "
                    f"shape {[x.dim_value or x.dim_param for x in shape.dim]}"
                )
            d.Clear()
            d.dim_value = value


def _forget_dynamic_shapes(proto: onnx.ModelProto) -> None:
    """After pinning inputs, drop stale intermediate shapes and dynamic output dims so shape
    inference recomputes them from the pinned inputs."""
    del proto.graph.value_info[:]
    for vi in proto.graph.output:
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
            for d in vi.type.tensor_type.shape.dim:
                if not (d.HasField("dim_value") and d.dim_value > 0):
                    d.Clear()


def _dynamic_dims(proto: onnx.ModelProto) -> list[str]:
    problems = []
    for vi in proto.graph.input:
        if not vi.type.HasField("tensor_type"):
            problems.append(f"input {vi.name!r} is not a tensor")
            continue
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            problems.append(f"input {vi.name!r} has no shape")
            continue
        for axis, d in enumerate(tt.shape.dim):
            if not (d.HasField("dim_value") and d.dim_value > 0):
                label = f" ({d.dim_param!r})" if d.dim_param else ""
                problems.append(f"{vi.name!r} dim {axis}{label}")
    return problems


def _suggest_shape(vi: onnx.ValueInfoProto) -> str:
    dims = []
    for axis, d in enumerate(vi.type.tensor_type.shape.dim):
        dims.append(str(d.dim_value) if d.dim_value > 0 else ("1" if axis == 0 else "N"))
    return f"--input-shape {vi.name}:{','.join(dims)}"


def load_model(
    path: str | os.PathLike,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    *,
    require_static: bool = True,
) -> ir.Model:
    """Load, check, pin shapes, infer shapes, and return an :class:`onnx_ir.Model`.

    :param path: the .onnx file; external data must live inside its folder.
    :param input_shapes: ``{input name: dims}`` pinning dynamic dims (``--input-shape``).
    :param require_static: raise if any input dim is still dynamic after pinning.
    """
    proto = load_proto(path)
    _drop_initializer_inputs(proto)
    _pin_shapes(proto, input_shapes or {})
    if input_shapes:
        _forget_dynamic_shapes(proto)
    if require_static:
        dyn = _dynamic_dims(proto)
        if dyn:
            flags = " ".join(
                _suggest_shape(vi) for vi in proto.graph.input if any(f"{vi.name!r} dim" in p for p in dyn)
            )
            raise DeployError(
                "the model has dynamic dimensions: " + ", ".join(dyn),
                hint=f"pin them, e.g. {flags}",
            )
    try:
        proto = onnx.shape_inference.infer_shapes(proto, check_type=False, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 - shape inference is best effort; passes re-run it
        pass
    return ir.from_proto(proto)
