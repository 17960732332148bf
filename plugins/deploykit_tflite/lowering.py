"""ONNX (onnx_ir, NCHW) -> :class:`TFLGraph` (NHWC), with layout tracking.

Layout pass, done while lowering: every ONNX value lives in the TFLite graph as one tensor
``t = transpose(onnx_value, perm)``; ``perm`` is recorded per value. Converters ask for their
inputs in the layout their kernel wants (``ctx.get(value, NHWC)``); a TRANSPOSE is emitted only
when the value is held in another layout, once per (value, layout) pair. Layout-agnostic ops
(elementwise, activations, concat/split/slice/reduce with remapped axes) keep whatever layout
their input has, and an ONNX ``Transpose`` costs nothing: it only changes the recorded perm, so
transpose pairs cancel by construction. 4-D graph inputs feeding NHWC kernels are fed NHWC and
graph outputs keep their layout: the runner transposes at the edges (``artifact.perm``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx_ir as ir

from deploykit.errors import DeployError
from deploykit_tflite.graph import Tensor, TFLGraph

NHWC = (0, 2, 3, 1)
# ONNX ops whose kernels want channels last: 4-D graph inputs feeding them are fed NHWC
NHWC_CONSUMERS = frozenset({"Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool",
                            "GlobalMaxPool", "LRN", "Resize", "Upsample", "DepthToSpace", "SpaceToDepth",
                            "BatchNormalization", "InstanceNormalization"})

DTYPES = {"float32": "float32", "float16": "float32", "float64": "float32", "int64": "int32",
          "int32": "int32", "int8": "int8", "uint8": "uint8", "bool": "bool", "int16": "int16"}


def ident(rank: int) -> tuple[int, ...]:
    return tuple(range(rank))


def norm_perm(perm, rank: int) -> tuple[int, ...]:
    return ident(rank) if perm is None else tuple(int(p) for p in perm)


def np_dtype(value: ir.Value) -> str:
    if value.dtype is None:
        return "float32"
    return np.dtype(value.dtype.numpy()).name


def reshape_is_transpose(shape: Sequence[int], perm: Sequence[int]) -> bool:
    """True when transposing ``shape`` by ``perm`` keeps the order of all non-1 axes (= a reshape)."""
    moved = [p for p in perm if shape[p] != 1]
    return moved == sorted(moved)


class UnsupportedNode(DeployError):
    pass


def _light_proto(model: ir.Model, max_elements: int = 4096):
    """The model as a ModelProto without the data of large initializers (typed inputs instead)."""
    import onnx

    graph = model.graph
    big = {name for name, v in graph.initializers.items()
           if v.const_value is not None and v.const_value.size > max_elements}
    saved = {name: graph.initializers[name] for name in big}
    for name in big:
        graph.initializers.pop(name)
    try:
        proto = ir.to_proto(model)
    finally:
        for name, v in saved.items():
            graph.initializers[name] = v
    for name, v in saved.items():
        proto.graph.input.append(onnx.helper.make_tensor_value_info(
            name, int(v.const_value.dtype), list(v.const_value.shape)))
    return proto


class Lowering:
    """State of one ONNX -> TFLite lowering. Converters (``ops_*.py``) call its helpers."""

    # x2/x4/x8 nearest upsampling as CONCATENATION + DEPTH_TO_SPACE (XNNPACK delegates no
    # RESIZE_NEAREST_NEIGHBOR); a target whose accelerator maps RESIZE_NEAREST_NEIGHBOR but not
    # DEPTH_TO_SPACE (Edge TPU) turns it off
    nearest_as_depth_to_space = True
    # a matrix product with several rows as RESHAPE [1, rows, 1, K] -> 1x1 CONV_2D -> RESHAPE (the Edge
    # TPU maps FULLY_CONNECTED only with one output row; a transformer's linear layers have one per token)
    rows_as_conv = False

    def __init__(self, model: ir.Model, overrides: dict[str, np.ndarray] | None = None):
        self.model = model
        self.g = TFLGraph()
        self.env: dict[str, tuple[Tensor, tuple[int, ...]]] = {}
        self.consts: dict[str, np.ndarray] = {}
        self._cache: dict[tuple[str, tuple[int, ...]], Tensor] = {}
        self.node: ir.Node | None = None
        self.output_perms: list[tuple[int, ...]] = []
        self._shapes: dict[str, list[int]] | None = None
        for name, v in model.graph.initializers.items():
            if v.const_value is not None:
                self.consts[name] = v.const_value.numpy()
        for name, arr in (overrides or {}).items():  # e.g. bias-corrected values from the quant engine
            if name in self.consts and np.shape(arr) == self.consts[name].shape:
                self.consts[name] = np.asarray(arr, self.consts[name].dtype)

    # -- values --------------------------------------------------------------------------
    def const(self, v: ir.Value | None) -> np.ndarray | None:
        if v is None or not v.name:
            return None
        return self.consts.get(v.name)

    def shape(self, v: ir.Value) -> list[int]:
        if v.name in self.consts:
            return list(self.consts[v.name].shape)
        if v.name in self.env:
            t, perm = self.env[v.name]
            inv = np.argsort(perm)
            return [t.shape[i] for i in inv]
        if v.shape is None or not v.shape.is_static() or any(int(d) < 0 for d in v.shape):
            inferred = self._inferred().get(v.name)
            if inferred is not None:
                return list(inferred)
            raise DeployError(f"tflite: value {v.name!r} has no static shape; pin input shapes with --input-shape")
        return [int(d) for d in v.shape]

    def _inferred(self) -> dict[str, list[int]]:
        """Static shapes from ONNX shape inference, for values whose IR shape is dynamic (e.g.
        graph outputs declared ``[-1, 2]``). Large initializers become typed inputs (no data)."""
        if self._shapes is None:
            import onnx

            proto = _light_proto(self.model)
            for o in proto.graph.output:
                o.type.tensor_type.ClearField("shape")
            inferred = onnx.shape_inference.infer_shapes(proto, data_prop=True)
            self._shapes = {}
            for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
                dims = vi.type.tensor_type.shape.dim
                if vi.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
                    self._shapes[vi.name] = [d.dim_value for d in dims]
        return self._shapes

    def rank(self, v: ir.Value) -> int:
        return len(self.shape(v))

    def layout(self, v: ir.Value) -> tuple[int, ...] | None:
        """The perm the value is currently held in (``None`` for constants: any layout is free)."""
        if v.name in self.consts:
            return None
        return self.env[v.name][1]

    def get(self, v: ir.Value, perm=None) -> Tensor:
        """The tensor holding ``v`` transposed by ``perm`` (``None`` = ONNX layout)."""
        rank = self.rank(v)
        perm = norm_perm(perm, rank)
        key = (v.name, perm)
        if key in self._cache:
            return self._cache[key]
        if v.name in self.consts:
            arr = np.transpose(self.consts[v.name], perm) if rank else self.consts[v.name]
            t = self.g.const(arr, hint=v.name)
            t.source = v.name
        else:
            if v.name not in self.env:
                raise DeployError(f"tflite: value {v.name!r} used before it is produced")
            src, cur = self.env[v.name]
            if cur == perm:
                return src
            p = [cur.index(i) for i in perm]
            shape = [src.shape[i] for i in p]
            t = self.g.tensor(shape, src.dtype, hint=v.name, source=v.name)
            if reshape_is_transpose(src.shape, p):
                self.emit("RESHAPE", [src, self.i32(shape)], [t], self._reshape_opts(shape))
            else:
                self.emit("TRANSPOSE", [src, self.i32(p)], [t], self.opts("TransposeOptions"))
        self._cache[key] = t
        return t

    def get_bcast(self, v: ir.Value, rank: int, perm=None) -> Tensor:
        """``v`` broadcast-aligned to ``rank`` dims (leading 1s), then transposed by ``perm``."""
        r = self.rank(v)
        perm = norm_perm(perm, rank)
        if r == rank:
            return self.get(v, perm)
        shape = [1] * (rank - r) + self.shape(v)
        c = self.const(v)
        if c is not None:
            t = self.g.const(np.transpose(c.reshape(shape), perm), hint=v.name)
            t.source = v.name
            return t
        src = self.get(v)
        expanded = [shape[p] for p in perm] if reshape_is_transpose(shape, perm) else shape
        t = self.g.tensor(expanded, src.dtype, hint=v.name, source=v.name)
        self.emit("RESHAPE", [src, self.i32(expanded)], [t], self._reshape_opts(expanded))
        if expanded is shape and perm != ident(rank):
            out = self.g.tensor([shape[p] for p in perm], src.dtype, hint=v.name, source=v.name)
            self.emit("TRANSPOSE", [t, self.i32(perm)], [out], self.opts("TransposeOptions"))
            t = out
        return t

    def set(self, v: ir.Value, t: Tensor, perm=None) -> None:
        self.env[v.name] = (t, norm_perm(perm, len(t.shape)))
        t.source = v.name

    def out(self, v: ir.Value, perm=None, dtype: str | None = None) -> Tensor:
        """A new tensor for ONNX output ``v`` held in layout ``perm``; registered in the env."""
        shape = self.shape(v)
        perm = norm_perm(perm, len(shape))
        t = self.g.tensor([shape[p] for p in perm], dtype or DTYPES.get(np_dtype(v), "float32"), hint=v.name)
        self.set(v, t, perm)
        return t

    def temp(self, shape, dtype="float32", like: Tensor | None = None) -> Tensor:
        return self.g.tensor(shape, dtype if like is None else like.dtype, hint="tmp")

    def i32(self, values) -> Tensor:
        return self.g.const(np.asarray(values, np.int32).reshape(-1), hint="shape")

    def f32(self, value) -> Tensor:
        return self.g.const(np.asarray(value, np.float32), hint="const")

    # -- operators -----------------------------------------------------------------------
    def emit(self, code: str, inputs, outputs, options=None, **attrs):
        return self.g.add(code, inputs, outputs, options, node=self.node.name if self.node else "", **attrs)

    @staticmethod
    def opts(kind: str, **fields):
        from ai_edge_litert import schema_py_generated as s

        o = getattr(s, kind + "T")()
        for k, val in fields.items():
            if not hasattr(o, k):
                raise AttributeError(f"{kind} has no field {k}")
            setattr(o, k, val)
        return o

    def _reshape_opts(self, shape):
        return self.opts("ReshapeOptions", newShape=[int(d) for d in shape])

    def unary(self, code: str, x: Tensor, out_shape=None, options=None, out: Tensor | None = None) -> Tensor:
        out = out or self.temp(out_shape or x.shape, like=x)
        self.emit(code, [x], [out], options)
        return out

    def binary(self, code: str, a: Tensor, b: Tensor, out: Tensor | None = None, dtype=None) -> Tensor:
        if out is None:
            shape = list(np.broadcast_shapes(tuple(a.shape), tuple(b.shape)))
            out = self.temp(shape, dtype or a.dtype)
        opts = {"ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions", "DIV": "DivOptions",
                "MAXIMUM": "MaximumMinimumOptions", "MINIMUM": "MaximumMinimumOptions", "POW": "PowOptions",
                "SQUARED_DIFFERENCE": "SquaredDifferenceOptions"}.get(code)
        self.emit(code, [a, b], [out], self.opts(opts) if opts else None)
        return out

    def reshape(self, x: Tensor, shape, out: Tensor | None = None) -> Tensor:
        shape = [int(d) for d in shape]
        out = out or self.temp(shape, like=x)
        self.emit("RESHAPE", [x, self.i32(shape)], [out], self._reshape_opts(shape))
        return out

    # -- driver --------------------------------------------------------------------------
    def input_layout(self, v: ir.Value) -> tuple[int, ...]:
        shape = self.shape(v)
        if len(shape) == 4 and np_dtype(v).startswith("float"):
            if any(u.node.op_type in NHWC_CONSUMERS for u in v.uses()):
                return NHWC
        if len(shape) == 3 and np_dtype(v).startswith("float"):  # [N, C, L] into a Conv1d: fed [N, L, C]
            if any(u.node.op_type in ("Conv", "ConvTranspose", "MaxPool", "AveragePool") and u.idx == 0 for u in v.uses()):
                return (0, 2, 1)
        return ident(len(shape))

    def run(self, converters) -> TFLGraph:
        from deploykit_tflite.fold import fold_node

        graph = self.model.graph
        inits = set(graph.initializers)
        for v in graph.inputs:
            if v.name in inits:
                continue
            shape = self.shape(v)
            perm = self.input_layout(v)
            t = self.g.tensor([shape[p] for p in perm], DTYPES.get(np_dtype(v), "float32"), hint=v.name)
            self.set(v, t, perm)
            self.g.inputs.append(t)
            self.g.signature_inputs.append(v.name)
        for node in graph:
            self.node = node
            if fold_node(self, node):
                continue
            conv = converters.get(node.op_type)
            if conv is None or node.domain not in ("", "ai.onnx"):
                raise UnsupportedNode(f"tflite: no lowering for {node.op_type} (node {node.name!r})")
            conv.fn(self, node)
        self.node = None
        for v in graph.outputs:
            if v.name in self.consts:
                t = self.g.tensor(list(self.consts[v.name].shape), DTYPES.get(self.consts[v.name].dtype.name, "float32"))
                if t.dtype in ("float32", "int32"):
                    zero = self.g.const(np.zeros((), dtype=t.dtype))
                    self.emit("ADD", [self.g.const(self.consts[v.name].astype(t.dtype)), zero], [t], self.opts("AddOptions"))
                else:  # ADD has no bool / int8 kernel
                    self.reshape(self.g.const(self.consts[v.name].astype(t.dtype)), t.shape, out=t)
                perm = ident(len(t.shape))
            else:
                t, perm = self.env[v.name]
            if t in self.g.inputs or t in self.g.outputs:  # TFLite needs a distinct tensor per output
                copy = self.temp(t.shape, like=t)
                self.reshape(t, t.shape, out=copy)
                t = copy
            self.g.outputs.append(t)
            self.g.signature_outputs.append(v.name)
            self.output_perms.append(perm)
        self.g.remove_dead()
        return self.g
