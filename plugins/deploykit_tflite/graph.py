"""A small in-memory TFLite graph: tensors, operators and their options, before serialization.

The lowering (``lowering.py``) builds a :class:`TFLGraph` from the ONNX model, the precision
passes (``fp16.py``, ``int8.py``) rewrite it, and ``emitter.py`` writes it as a flatbuffer.
Layouts here are TFLite's (NHWC); shapes are always static.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# constants at least this large are not made contiguous when lowered (see TFLGraph.const)
LAZY_LAYOUT_BYTES = 1 << 16

# numpy dtype name -> TFLite TensorType value (schema.fbs)
TENSOR_TYPES = {"float32": 0, "float16": 1, "int32": 2, "uint8": 3, "int64": 4, "bool": 6, "int16": 7, "int8": 9}


@dataclass
class QParams:
    """int8/int32 quantization of one tensor: real = (q - zero_point) * scale."""

    scale: np.ndarray  # shape (1,) per-tensor or (C,) per-axis
    zero_point: np.ndarray
    axis: int = 0

    @classmethod
    def per_tensor(cls, scale: float, zero_point: int) -> "QParams":
        return cls(np.asarray([scale], np.float32), np.asarray([zero_point], np.int64))

    def same(self, other: "QParams | None") -> bool:
        return (other is not None and self.scale.shape == other.scale.shape
                and np.array_equal(self.scale, other.scale) and np.array_equal(self.zero_point, other.zero_point))


@dataclass(eq=False)
class Tensor:
    """One TFLite tensor. ``data`` set = constant. ``source`` = the ONNX value it holds (maybe permuted)."""

    name: str
    shape: list[int]
    dtype: str = "float32"
    data: np.ndarray | None = None
    quant: QParams | None = None
    source: str | None = None

    @property
    def is_const(self) -> bool:
        return self.data is not None


@dataclass(eq=False)
class Op:
    """One TFLite operator: builtin code name (``"CONV_2D"``), tensors and builtin options object."""

    code: str
    inputs: list[Tensor | None]
    outputs: list[Tensor]
    options: Any = None
    node: str = ""  # name of the ONNX node it came from (fallback decisions, reports)
    attrs: dict[str, Any] = field(default_factory=dict)  # lowering-private facts (e.g. "fused")


class TFLGraph:
    """Tensors and operators of one subgraph, plus the signature (input/output names)."""

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.inputs: list[Tensor] = []
        self.outputs: list[Tensor] = []
        self.signature_inputs: list[str] = []
        self.signature_outputs: list[str] = []
        self.metadata: dict[str, bytes] = {}
        self._ids = itertools.count()

    def fresh(self, hint: str) -> str:
        return f"{hint}#{next(self._ids)}"

    def tensor(self, shape, dtype: str = "float32", hint: str = "t", source: str | None = None,
               quant: QParams | None = None) -> Tensor:
        return Tensor(self.fresh(hint), [int(d) for d in shape], dtype, None, quant, source)

    def const(self, array, dtype: str | None = None, hint: str = "const") -> Tensor:
        a = np.asarray(array)
        if dtype is not None:
            a = a.astype(dtype)
        elif a.dtype == np.int64:
            a = a.astype(np.int32)
        elif a.dtype == np.float64:
            a = a.astype(np.float32)
        if not (a.flags.c_contiguous or (a.nbytes >= LAZY_LAYOUT_BYTES and a.dtype.isnative)):
            a = np.ascontiguousarray(a)
        # Large constants may stay strided views (e.g. a weight transposed to OHWI that still
        # shares the source model's memory): the emitter copies them straight into the flatbuffer
        # in the right order, so the lowered graph never holds a second full copy of the weights.
        return Tensor(self.fresh(hint), list(a.shape), a.dtype.name, a)

    def add(self, code: str, inputs, outputs, options=None, node: str = "", **attrs) -> Op:
        op = Op(code, list(inputs), list(outputs), options, node, dict(attrs))
        self.ops.append(op)
        return op

    def consumers(self) -> dict[int, list[Op]]:
        """id(tensor) -> ops reading it."""
        users: dict[int, list[Op]] = {}
        for op in self.ops:
            for t in op.inputs:
                if t is not None:
                    users.setdefault(id(t), []).append(op)
        return users

    def producers(self) -> dict[int, Op]:
        return {id(t): op for op in self.ops for t in op.outputs}

    def replace_uses(self, old: Tensor, new: Tensor) -> None:
        for op in self.ops:
            op.inputs = [new if t is old else t for t in op.inputs]
        self.outputs = [new if t is old else t for t in self.outputs]

    def remove_dead(self) -> None:
        """Drop operators none of whose outputs is used (graph outputs count as used)."""
        while True:
            users = self.consumers()
            live = {id(t) for t in self.outputs}
            keep = [op for op in self.ops if any(id(t) in users or id(t) in live for t in op.outputs)]
            if len(keep) == len(self.ops):
                return
            self.ops = keep

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for op in self.ops:
            counts[op.code] = counts.get(op.code, 0) + 1
        return dict(sorted(counts.items()))
