"""Read the constant tensors and MAC-bearing operators of a ``.tflite`` file, with no runtime.

A TFLite model is a flatbuffer (schema: ``tensorflow/compiler/mlir/lite/schema/schema.fbs``).
This reader walks only what the effect report needs, with ``struct``:

    Model     2: subgraphs [SubGraph]   1: operator_codes [OperatorCode]   4: buffers [Buffer]
    SubGraph  0: tensors [Tensor]       3: operators [Operator]
    Tensor    0: shape [int32]   1: type (byte)   2: buffer (uint32)
    Buffer    0: data [ubyte]    1: offset (uint64)   2: size (uint64)   (offset/size: data after the flatbuffer)
    Operator  0: opcode_index (uint32)   1: inputs [int32]   2: outputs [int32]
    OperatorCode  0: deprecated_builtin_code (int8)   3: builtin_code (int32)
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

import numpy as np

# TensorType -> numpy dtype (only the types weights come in)
_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 7: np.int16, 9: np.int8, 10: np.float64}
# builtin operator codes that carry MACs
CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV, BATCH_MATMUL = 3, 4, 9, 67, 126


@dataclass
class TFLiteSummary:
    constants: list[np.ndarray] = field(default_factory=list)  # constant tensors, decoded and shaped
    params: int = 0
    macs: int = 0


class _Table:
    def __init__(self, buf: bytes, pos: int):
        self.buf, self.pos = buf, pos
        self.vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vsize = struct.unpack_from("<H", buf, self.vtable)[0]

    def _field(self, index: int) -> int | None:
        off = 4 + 2 * index
        if off >= self.vsize:
            return None
        rel = struct.unpack_from("<H", self.buf, self.vtable + off)[0]
        return self.pos + rel if rel else None

    def scalar(self, index: int, fmt: str, default=0):
        p = self._field(index)
        return struct.unpack_from("<" + fmt, self.buf, p)[0] if p is not None else default

    def _vector(self, index: int) -> tuple[int, int] | None:
        p = self._field(index)
        if p is None:
            return None
        start = p + struct.unpack_from("<I", self.buf, p)[0]
        return start + 4, struct.unpack_from("<I", self.buf, start)[0]

    def ints(self, index: int, fmt: str = "i") -> list[int]:
        v = self._vector(index)
        return list(struct.unpack_from(f"<{v[1]}{fmt}", self.buf, v[0])) if v else []

    def bytes_view(self, index: int) -> memoryview:
        v = self._vector(index)
        return memoryview(self.buf)[v[0]:v[0] + v[1]] if v else memoryview(b"")

    def tables(self, index: int) -> list[_Table]:
        v = self._vector(index)
        if not v:
            return []
        out = []
        for i in range(v[1]):
            p = v[0] + 4 * i
            out.append(_Table(self.buf, p + struct.unpack_from("<I", self.buf, p)[0]))
        return out


def read_tflite(data: bytes) -> TFLiteSummary:
    """Constant tensors, parameter count and MACs (Conv, depthwise, fully connected, batch matmul)."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError("not a TFLite flatbuffer (file identifier TFL3 missing)")
    model = _Table(data, struct.unpack_from("<I", data, 0)[0])
    buffers = model.tables(4)
    codes = [max(c.scalar(3, "i"), c.scalar(0, "b")) for c in model.tables(1)]
    summary = TFLiteSummary()
    seen: set[int] = set()
    for sub in model.tables(2):
        tensors = sub.tables(0)
        shapes = [t.ints(0) for t in tensors]
        for t, shape in zip(tensors, shapes):
            b = t.scalar(2, "I")
            dtype = _DTYPES.get(t.scalar(1, "b"))
            if b == 0 or b >= len(buffers) or dtype is None or b in seen:
                continue
            raw = buffers[b].bytes_view(0)
            if not len(raw):
                offset, size = buffers[b].scalar(1, "Q"), buffers[b].scalar(2, "Q")
                raw = memoryview(data)[offset:offset + size] if offset > 1 else raw
            n = math.prod(shape) if shape else 1
            if not len(raw) or len(raw) != n * np.dtype(dtype).itemsize:
                continue
            seen.add(b)
            summary.constants.append(np.frombuffer(raw, dtype=dtype).reshape(shape))
            summary.params += n
        for op in sub.tables(3):
            idx = op.scalar(0, "I")
            code = codes[idx] if idx < len(codes) else -1
            ins, outs = op.ints(1), op.ints(2)
            if not ins or not outs or outs[0] < 0:
                continue
            out_n = math.prod(shapes[outs[0]])
            w = shapes[ins[1]] if len(ins) > 1 and ins[1] >= 0 else []
            if code == CONV_2D and len(w) == 4:
                summary.macs += out_n * math.prod(w[1:])
            elif code == DEPTHWISE_CONV_2D and len(w) == 4:
                summary.macs += out_n * w[1] * w[2]
            elif code == FULLY_CONNECTED and len(w) == 2:
                summary.macs += out_n * w[1]
            elif code == TRANSPOSE_CONV and len(ins) > 2 and len(shapes[ins[2]]) == 4:
                x = shapes[ins[2]]
                summary.macs += math.prod(x) * math.prod(shapes[ins[1]][:3])
            elif code == BATCH_MATMUL and shapes[ins[0]]:
                summary.macs += out_n * shapes[ins[0]][-1]
    return summary
