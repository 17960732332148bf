"""Import an ONNX file into onnx_ir, safely.

Steps: check the path is a regular file (not a device, FIFO or folder), read the protobuf (clear
error for non-ONNX / truncated files), refuse external data that points outside the model's
folder, check the opset is one this onnx knows, run ``onnx.checker``, check every name is UTF-8
without NUL, that the model has inputs and outputs of numeric tensor types, make node names
unique, drop initializers that are also listed as graph inputs (old exporters), pin dynamic dims
from ``--input-shape``, refuse dims left dynamic (and 0 or negative ones) and inputs too large for
one sample to fit in memory, infer shapes, and convert to :class:`onnx_ir.Model`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import onnx
import onnx.external_data_helper as ext
import onnx_ir as ir
from google.protobuf.message import DecodeError

from deploykit.errors import DeployError, ModelError
from deploykit.userfiles import regular_file

_SHAPE_RE = re.compile(r"^(?P<name>.+):(?P<dims>-?\d+(?:,-?\d+)*)$")
MAX_DIM = 2**31 - 1
MAX_SAMPLE_BYTES = 2 << 30  # one sample of one input; edge models stay far below
IO_DTYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BOOL,
             onnx.TensorProto.INT8, onnx.TensorProto.INT16, onnx.TensorProto.INT32, onnx.TensorProto.INT64,
             onnx.TensorProto.UINT8, onnx.TensorProto.UINT16, onnx.TensorProto.UINT32, onnx.TensorProto.UINT64}


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
        if any(d > MAX_DIM for d in dims):
            raise DeployError(f"--input-shape {spec!r} has a dimension larger than {MAX_DIM}; pass the real input size")
        if shapes.get(m.group("name"), dims) != dims:
            raise DeployError(f"--input-shape is given twice for input {m.group('name')!r} with different shapes; "
                              "pass it once")
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


def load_proto(path: str | os.PathLike, *, buildable: bool = True) -> onnx.ModelProto:
    """Read and check an ONNX file. Raises :class:`ModelError` with a one-line reason.

    :param buildable: also refuse what no build can feed or compare: no inputs, string / sequence /
        map / complex / float8 inputs or outputs (``False`` for IR round trips of any valid model).
    """
    p = regular_file(path, "model file", "pass the path of an .onnx file", error=ModelError)
    try:
        proto = onnx.load(str(p), load_external_data=False)
    except MemoryError:
        raise
    except (DecodeError, RuntimeError, ValueError, OSError, Exception) as e:  # noqa: BLE001 - the user's file
        raise ModelError(
            f"{str(p)!r} is not a readable ONNX model (truncated or not ONNX: {type(e).__name__}); "
            "re-export it from your framework"
        ) from e
    if not proto.HasField("graph") or (not proto.graph.node and not proto.graph.output):
        raise ModelError(f"{str(p)!r} is not an ONNX model (no graph found); re-export it from your framework")
    _check_names(proto)
    _check_opsets(proto, p)
    _check_external_data(proto, p.parent)
    try:
        onnx.load_external_data_for_model(proto, str(p.parent))
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - any read failure is the user's file
        raise ModelError(f"cannot read the external data of {str(p)!r}: {_first_line(e)}") from e
    try:
        if proto.ByteSize() < 2**31 - 1:
            onnx.checker.check_model(proto)
        else:
            onnx.checker.check_model(str(p))
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - ValidationError, and the checker's other failures on odd files
        raise ModelError(f"{str(p)!r} fails the ONNX checker: {_first_line(e) or 'invalid model'}") from e
    _check_initializer_sizes(proto, p)
    if buildable:
        _check_io(proto, p)
    _unique_node_names(proto.graph)
    _densify_sparse_initializers(proto, p)
    return proto


def _first_line(e: BaseException) -> str:
    return next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)


def _graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """``graph`` and every subgraph (If/Loop/Scan bodies), depth first."""
    stack = [graph]
    while stack:
        g = stack.pop()
        yield g
        for node in g.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    stack.append(attr.g)
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    stack.extend(attr.graphs)


def _name_problem(name: object) -> str | None:
    if isinstance(name, bytes):  # protobuf hands back bytes for strings that are not UTF-8
        return "is not valid UTF-8"
    if "\x00" in name:
        return "contains a NUL character"
    return None


_PACKED_TYPES = frozenset(
    getattr(onnx.TensorProto, n) for n in ("INT4", "UINT4", "INT2", "UINT2", "FLOAT4E2M1", "STRING")
    if hasattr(onnx.TensorProto, n))


def _check_initializer_sizes(proto: onnx.ModelProto, p: Path) -> None:
    """Raw tensor bytes must match their declared type and dims (the checker does not look): a
    weight retyped or truncated in the file is refused here, not in whichever tool reads it first."""
    for g in _graphs(proto.graph):
        for t in g.initializer:
            if not t.HasField("raw_data") or t.data_location == onnx.TensorProto.EXTERNAL:
                continue
            try:
                itemsize = onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
            except (KeyError, ValueError, TypeError):
                continue  # unknown or packed (4-bit, string) types: their readers check them
            if t.data_type in _PACKED_TYPES:
                continue
            need = itemsize * math.prod(t.dims)
            if len(t.raw_data) != need:
                kind = _type_name(onnx.helper.make_tensor_type_proto(t.data_type, None))
                raise ModelError(f"{str(p)!r}: initializer {t.name!r} holds {len(t.raw_data)} bytes, but {kind} "
                                 f"{list(t.dims)} needs {need}; the file is damaged or was edited: re-export the model")


def _check_names(proto: onnx.ModelProto) -> None:
    """Every tensor, node and graph name must be UTF-8 text without NUL: tools downstream (shape
    inference, TFLite and OpenVINO files, the runner's JSON) cannot carry anything else."""
    for g in _graphs(proto.graph):
        named = [("graph", g.name)]
        named += [("tensor", v.name) for v in (*g.input, *g.output, *g.value_info)]
        named += [("initializer", t.name) for t in g.initializer]
        for n in g.node:
            named += [("node", n.name)] + [("tensor", t) for t in (*n.input, *n.output)]
            named += [("op type", n.op_type), ("domain", n.domain)]
        for kind, name in named:
            problem = _name_problem(name)
            if problem:
                shown = name.decode("utf-8", "backslashreplace") if isinstance(name, bytes) else repr(name)[1:-1]
                raise ModelError(f"{kind} name '{shown}' {problem}; rename it in the model (e.g. with onnx.helper) "
                                 "and export again")


def _check_opsets(proto: onnx.ModelProto, p: Path) -> None:
    latest = onnx.defs.onnx_opset_version()
    for o in proto.opset_import:
        problem = _name_problem(o.domain)
        if problem:
            raise ModelError(f"{str(p)!r} imports an opset domain that {problem}")
        if o.domain in ("", "ai.onnx") and not 1 <= o.version <= latest:
            raise ModelError(f"{str(p)!r} uses ONNX opset {o.version}, but opsets 1..{latest} exist (onnx "
                             f"{onnx.__version__}); export it with a released opset, e.g. 17")


def _type_name(tp: onnx.TypeProto) -> str:
    kind = tp.WhichOneof("value")
    if kind == "tensor_type":
        try:
            return onnx.helper.tensor_dtype_to_string(tp.tensor_type.elem_type).replace("TensorProto.", "").lower()
        except (KeyError, ValueError):
            return f"unknown element type {tp.tensor_type.elem_type}"
    return (kind or "no type").replace("_type", "")


def _check_io(proto: onnx.ModelProto, p: Path) -> None:
    """Inputs and outputs deploykit can feed, compare and hand to a device runtime."""
    inits = {t.name for t in proto.graph.initializer}
    inputs = [v for v in proto.graph.input if v.name not in inits]
    if not inputs:
        raise ModelError(f"{str(p)!r} has no inputs (its outputs are constants); deploykit builds models that "
                         "take an input tensor")
    if not proto.graph.output:
        raise ModelError(f"{str(p)!r} has no outputs; export the model with its output tensors")
    for kind, values in (("input", inputs), ("output", proto.graph.output)):
        seen = set()
        for v in values:
            if v.name in seen:
                raise ModelError(f"{kind} {v.name!r} is listed twice in the graph's {kind}s; export it once")
            seen.add(v.name)
            if not v.type.HasField("tensor_type") or v.type.tensor_type.elem_type not in IO_DTYPES:
                raise ModelError(f"{kind} {v.name!r} has type {_type_name(v.type)}; deploykit builds models whose "
                                 "inputs and outputs are numeric tensors (float, int, bool): keep string, complex, "
                                 "sequence and map processing outside the model")


def _densify_sparse_initializers(proto: onnx.ModelProto, p: Path) -> None:
    """Sparse initializers become dense ones: onnx_ir and every backend read dense tensors only."""
    import numpy as np
    from onnx import numpy_helper

    for g in _graphs(proto.graph):
        for sp in g.sparse_initializer:
            name = sp.values.name
            try:
                values = numpy_helper.to_array(sp.values)
                indices = numpy_helper.to_array(sp.indices).astype(np.int64)
                dims = [int(d) for d in sp.dims]
                if values.itemsize * math.prod(dims) > MAX_SAMPLE_BYTES:
                    raise ValueError(f"dense shape {dims} is too large")
                dense = np.zeros(dims, values.dtype)
                if indices.ndim == 1:  # linearized positions
                    dense.reshape(-1)[indices] = values
                else:  # [NNZ, rank] coordinates
                    dense[tuple(indices.T)] = values
            except MemoryError:
                raise
            except Exception as e:  # noqa: BLE001 - indices out of range, mismatched sizes: the user's file
                raise ModelError(f"{str(p)!r}: sparse initializer {name!r} cannot be expanded ({_first_line(e)}); "
                                 "store it dense when exporting") from e
            g.initializer.append(numpy_helper.from_array(dense, name))
        del g.sparse_initializer[:]


def _unique_node_names(graph: onnx.GraphProto) -> None:
    """Give duplicate (or clashing) node names a suffix: names are labels, ONNX Runtime and
    onnx_ir require them unique."""
    used: set[str] = set()
    for g in _graphs(graph):
        for n in g.node:
            if n.name and n.name in used:
                k = 1
                while f"{n.name}_{k}" in used:
                    k += 1
                n.name = f"{n.name}_{k}"
            if n.name:
                used.add(n.name)


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


def _check_dims(proto: onnx.ModelProto, allow_empty: bool = False) -> None:
    """0 and negative dims other than -1 are not dynamic: they are wrong (or an empty input nothing
    can run on); -1 is how some exporters (Paddle) write a dynamic dim, and is treated as one. A
    sample too large for memory is refused before anything allocates it."""
    for vi in proto.graph.input:
        if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
            continue
        dims = vi.type.tensor_type.shape.dim
        fixed = [d.dim_value for d in dims if d.HasField("dim_value")]
        bad = [v for v in fixed if (v < 0 if allow_empty else v <= 0) and v != -1]
        fixed = [v for v in fixed if v != -1]
        if bad:
            shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
            raise ModelError(f"input {vi.name!r} has shape {shape} with a dimension of {bad[0]}; an input needs "
                             "positive dimensions (re-export the model, or pin them with --input-shape)")
        if len(fixed) == len(dims) and all(v > 0 for v in fixed):
            itemsize = onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type).itemsize
            size = itemsize * math.prod(fixed)
            if size > MAX_SAMPLE_BYTES:
                raise ModelError(f"input {vi.name!r} of shape {fixed} needs {size / 2**30:.3g} GiB per sample, more "
                                 f"than the {MAX_SAMPLE_BYTES >> 30} GiB deploykit allows; pin a smaller shape with "
                                 "--input-shape")


_SHAPE_CONFLICT = re.compile(r"(Inferred shape and existing shape differ[^\n]*|Inferred elem type differs[^\n]*)")


def _check_declared_shapes(proto: onnx.ModelProto, path) -> None:
    """A declared output (or value_info) shape or type that contradicts what the ops compute: the
    model's metadata is wrong, and every backend would trust one or the other. Other failures of
    strict inference (ops it cannot infer, custom domains) are not the user's problem here."""
    try:
        onnx.shape_inference.infer_shapes(proto, check_type=False, strict_mode=True, data_prop=False)
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - InferenceError and friends
        m = _SHAPE_CONFLICT.search(str(e))
        if m:
            where = re.search(r"\(op_type:(\w+), node name: ([^)]*)\)", str(e))
            node = f" at node {where.group(2)!r} ({where.group(1)})" if where else ""
            raise ModelError(f"{str(path)!r}: a declared shape or type contradicts what the model computes{node}: "
                             f"{m.group(1).strip()}; re-export the model (or fix its value_info / output shapes)") from e


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
    buildable: bool = True,
    frozen: Mapping[str, list[str]] | None = None,
) -> ir.Model:
    """Load, check, pin shapes, infer shapes, and return an :class:`onnx_ir.Model`.

    :param path: the .onnx file; external data must live inside its folder.
    :param input_shapes: ``{input name: dims}`` pinning dynamic dims (``--input-shape``).
    :param require_static: raise if any input dim is still dynamic after pinning.
    :param buildable: refuse inputs/outputs no build can use and inputs with a 0 dim (see
        :func:`load_proto`); ``False`` for IR round trips of any valid model.
    :param frozen: ``{input name: [value text, ...]}`` (``--freeze-input``): these inputs become
        initializers (:mod:`deploykit.ir.freeze`); read their arrays back from the initializers.
    """
    proto = load_proto(path, buildable=buildable)
    _drop_initializer_inputs(proto)
    if frozen:
        from deploykit.ir.freeze import freeze_inputs

        pinned_frozen = [n for n in (input_shapes or {}) if n in frozen]
        if pinned_frozen:
            raise DeployError(f"input {pinned_frozen[0]!r} is given both --input-shape and --freeze-input; "
                              "pass only --freeze-input (its values give the shape)")
        freeze_inputs(proto, frozen)
    _pin_shapes(proto, input_shapes or {})
    if input_shapes:
        _forget_dynamic_shapes(proto)
    _check_dims(proto, allow_empty=not buildable)
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
    _check_declared_shapes(proto, path)
    try:
        proto = onnx.shape_inference.infer_shapes(proto, check_type=False, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 - shape inference is best effort; passes re-run it
        pass
    try:
        return ir.from_proto(proto)
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - a file the checker let through but no tool can read
        raise ModelError(f"{str(path)!r} cannot be imported ({type(e).__name__}: {_first_line(e)[:200]}); "
                         "re-export the model from your framework") from e


def nonfinite_weights(model: ir.Model) -> list[str]:
    """``"name (N NaN, M Inf)"`` for every float initializer or Constant holding NaN/Inf: outputs
    depending on them are not finite whatever the input (the build warns in every precision).
    Infinite Clip bounds and Max/Min operands (``Clip(x, 1e-10, +inf)``, JAX's ``Max(-inf, x)``)
    are no-ops, not broken weights, and are not listed."""
    import numpy as np

    def bound_only(value) -> bool:
        """±inf as a Clip bound or a Max/Min operand means "no bound": the output stays finite."""
        uses = value.uses()
        return bool(uses) and all(u.node.domain in ("", "ai.onnx") and
                                  (u.node.op_type == "Clip" and u.idx in (1, 2) or u.node.op_type in ("Max", "Min"))
                                  for u in uses)

    tensors = [(v.name or "", v.const_value) for v in model.graph.initializers.values() if not bound_only(v)]
    for node in ir.traversal.RecursiveGraphIterator(model.graph):
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and "value" in node.attributes \
                and not bound_only(node.outputs[0]):
            tensors.append((node.outputs[0].name or node.name or "", node.attributes["value"].value))
    found = []
    for name, tensor in tensors:
        if tensor is None:
            continue
        try:
            arr = tensor.numpy()
        except Exception:  # noqa: BLE001 - exotic storage: nothing to check
            continue
        if arr.dtype.kind != "f" or arr.size == 0:
            continue
        flat = arr.reshape(-1)
        nan = inf = 0
        for i in range(0, flat.size, 1 << 22):  # bounded temporaries on large tensors
            chunk = flat[i:i + (1 << 22)]
            nan += int(np.count_nonzero(np.isnan(chunk)))
            inf += int(np.count_nonzero(np.isinf(chunk)))
        if nan or inf:
            found.append(f"{name!r} ({nan} NaN, {inf} Inf)")
    return found
