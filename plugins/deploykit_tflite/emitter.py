"""Serialize a :class:`~deploykit_tflite.graph.TFLGraph` to a ``.tflite`` flatbuffer.

Uses the schema object API shipped in ``ai_edge_litert`` (``schema_py_generated``); no
TensorFlow. Facts followed (facts/tflite-xnnpack.md §0, §3): ``ModelT.version = 3``, file
identifier ``TFL3``, buffer 0 empty, constants in buffers >= 1 as uint8 views (deduplicated by
content), both opcode fields set, op versions from the converter's rules, one SignatureDef.
"""

from __future__ import annotations

import hashlib

import numpy as np

from deploykit_tflite.graph import TENSOR_TYPES, Op, Tensor, TFLGraph

SIGNATURE_KEY = "serving_default"


def schema():
    from ai_edge_litert import schema_py_generated as s

    return s


def _is_int8(t: Tensor | None) -> bool:
    return t is not None and t.dtype == "int8"


def op_version(op: Op) -> int:
    """Lowest builtin version that covers this use of the op (facts §3 table, from op_version.cc)."""
    code, ins = op.code, op.inputs
    int8 = _is_int8(ins[0] if ins else None) or any(_is_int8(t) for t in op.outputs)
    if code == "CONV_2D":
        w, x = ins[1], ins[0]
        if w.shape[3] != x.shape[3]:
            return 6  # grouped
        return 3 if int8 else 1
    if code == "DEPTHWISE_CONV_2D":
        if int8:
            return 3
        o = op.options
        return 2 if (o.dilationWFactor != 1 or o.dilationHFactor != 1) else 1
    if code == "FULLY_CONNECTED":
        if len(ins) < 3 or ins[2] is None:
            return 6
        if op.options is not None and op.options.keepNumDims:
            return 5
        return 4 if int8 else 1
    if code == "TRANSPOSE_CONV":
        if op.options is not None and op.options.fusedActivationFunction:
            return 4
        if len(ins) > 3 and ins[3] is not None:
            return 3
        return 2 if int8 else 1
    if code == "MUL" and int8:
        a, b, o = ins[0].quant, ins[1].quant, op.outputs[0].quant
        if a and b and o and float(a.scale[0] * b.scale[0] / o.scale[0]) >= 1.0:
            return 3
        return 2
    if code == "DEQUANTIZE":
        src = ins[0]
        if src.dtype == "float16":
            return 3
        if src.quant is not None and src.quant.scale.size > 1:
            return 5
        return 2
    if code == "QUANTIZE":
        return 3 if op.outputs[0].quant is not None and op.outputs[0].quant.scale.size > 1 else 1
    if code == "RESIZE_BILINEAR":
        if op.options is not None and op.options.halfPixelCenters:
            return 3
        return 2 if int8 else 1
    if code == "RESIZE_NEAREST_NEIGHBOR":
        if op.options is not None and op.options.halfPixelCenters:
            return 3
        return 2 if int8 else 1
    if code == "BROADCAST_TO":  # registered from version 2 on (version 1 does not exist)
        return 2
    if code in ("ADD", "SUB", "CONCATENATION", "MAX_POOL_2D", "AVERAGE_POOL_2D", "PAD", "SOFTMAX",
                "LOGISTIC", "TANH", "MEAN", "RELU6", "RELU", "TRANSPOSE", "SLICE", "STRIDED_SLICE",
                "SPLIT", "SPLIT_V", "SPACE_TO_DEPTH", "DEPTH_TO_SPACE", "SUM", "GELU", "REDUCE_MAX",
                "GATHER", "MAXIMUM", "MINIMUM", "BATCH_MATMUL", "LOG_SOFTMAX", "SQUEEZE", "PADV2",
                "RSQRT"):
        return 2 if int8 else 1
    return 1


def _options_type(s, options) -> int:
    if options is None:
        return 0
    name = type(options).__name__
    return getattr(s.BuiltinOptions, name[:-1] if name.endswith("T") else name)


def _buffer_data(array: np.ndarray) -> np.ndarray:
    """The bytes of ``array`` as a 1-D little-endian uint8 array (a view when possible)."""
    return _le(array, contiguous=True).reshape(-1).view(np.uint8)


def _le(array: np.ndarray, contiguous: bool = False) -> np.ndarray:
    """``array`` in little-endian byte order; strided views stay views unless ``contiguous``."""
    a = np.asarray(array)
    if a.dtype.byteorder == ">" or (a.dtype.byteorder == "=" and np.little_endian is False):
        return np.ascontiguousarray(a.astype(a.dtype.newbyteorder("<")))
    return np.ascontiguousarray(a) if contiguous else a


def _row_chunks(a: np.ndarray, chunk_bytes: int = 1 << 20):
    """C-order pieces of ``a`` (contiguous copies of a few rows at a time: bounded extra memory)."""
    if a.flags.c_contiguous or a.ndim == 0:
        yield a.reshape(-1)
        return
    row = max(a.nbytes // max(a.shape[0], 1), 1)
    step = max(1, chunk_bytes // row)
    for i in range(0, a.shape[0], step):
        yield np.ascontiguousarray(a[i:i + step]).reshape(-1)


def _digest(a: np.ndarray) -> tuple:
    h = hashlib.sha256()
    for piece in _row_chunks(a):
        h.update(memoryview(piece.view(np.uint8)))
        del piece  # at most one chunk alive at a time
    return (h.hexdigest(), a.nbytes)


def _placeholder(t: Tensor) -> np.ndarray:
    """A zero-stride stand-in for released constant data: same shape and dtype, no memory."""
    return np.broadcast_to(np.zeros((), np.dtype(t.dtype)), tuple(t.shape))


class _Builder:
    """Factory of flatbuffers builders whose byte buffer is an anonymous ``mmap`` of the exact
    final size: pages are only committed when written (a ``bytearray`` is zero-filled up front),
    and there is no grow-and-copy (the generic builder doubles its buffer and copies it)."""

    @staticmethod
    def create(size: int):
        import mmap

        import flatbuffers

        class MmapBuilder(flatbuffers.Builder):
            def __init__(self, n: int):
                super().__init__(0)
                self.Bytes = mmap.mmap(-1, max(n, 1))
                self.head = len(self.Bytes)

            def GrowByteBuffer(self):  # size estimate was short: grow (copies, but stays correct)
                old = self.Bytes
                new = mmap.mmap(-1, min(max(len(old) * 2, 1), flatbuffers.Builder.MAX_BUFFER_SIZE))
                new[len(new) - len(old):] = old
                old.close()
                self.Bytes = new

            def view(self) -> memoryview:
                if not self.finished:
                    raise flatbuffers.builder.BuilderNotFinishedError()
                return memoryview(self.Bytes)[self.head:]

        return MmapBuilder(size)


def _data_vector(builder, data: np.ndarray, alignment: int = 16) -> int:
    """Write ``data`` (little-endian, any strides) as a ``[ubyte]`` vector straight into the
    builder's buffer: one copy in C order, no temporary ``tobytes()``; 16-byte aligned as the
    schema asks (force_align: 16)."""
    n = int(data.nbytes)
    builder.StartVector(1, n, alignment)
    builder.head -= n
    if n:
        if data.flags.c_contiguous:
            builder.Bytes[builder.head:builder.head + n] = memoryview(data.reshape(-1).view(np.uint8))
        else:
            dest = np.frombuffer(builder.Bytes, dtype=data.dtype, count=data.size, offset=builder.head)
            np.copyto(dest.reshape(data.shape), data)
            del dest  # release the export of the mmap before it is closed
    builder.vectorNumElems = n
    return builder.EndVector()


def _quant(s, t: Tensor):
    if t.quant is None:
        return None
    q = s.QuantizationParametersT()
    q.scale = [float(v) for v in np.ravel(t.quant.scale)]
    q.zeroPoint = [int(v) for v in np.ravel(t.quant.zero_point)]
    q.quantizedDimension = int(t.quant.axis) if t.quant.scale.size > 1 else 0
    return q


def build_model(graph: TFLGraph, description: str = "deploykit") -> bytes:
    """Serialize ``graph`` (topologically ordered) into .tflite bytes."""
    builder = _pack(graph, description, release=False)
    try:
        with builder.view() as out:
            return bytes(out)
    finally:
        builder.Bytes.close()


def write_model(graph: TFLGraph, path, description: str = "deploykit", release: bool = False) -> int:
    """Serialize ``graph`` straight to the file ``path``; returns the size in bytes.

    Peak memory is about the constants once more (the flatbuffer being written), not three to
    four times (object-API buffers, ``tobytes`` copies, ``Output()`` slice and ``bytes()``).
    ``release=True`` hands each constant's data over to the flatbuffer as it is written (the
    tensor keeps a zero-stride placeholder of the same shape and dtype, so ``graph`` stays usable
    for reports but its constant values are gone): arrays the graph owned alone are freed as the
    file fills, which keeps peak RSS near ``constants + one tensor``.
    """
    builder = _pack(graph, description, release=release)
    try:
        with builder.view() as out, open(path, "wb") as f:
            f.write(out)
            return len(out)
    finally:
        builder.Bytes.close()


def _pack(graph: TFLGraph, description: str, release: bool):
    """Build the model objects with constant data kept out of them, size the flatbuffer, write the
    data vectors first (one memcpy each, deduplicated by content), then pack the rest."""
    import flatbuffers

    s = schema()
    blobs: list[np.ndarray | None] = [None]  # buffer 0: the empty sentinel
    owners: list[list[Tensor]] = [[]]
    by_digest: dict[tuple, int] = {}
    tensors = []
    index: dict[int, int] = {}

    def tensor_index(t: Tensor) -> int:
        if id(t) in index:
            return index[id(t)]
        tt = s.TensorT()
        tt.shape = [int(d) for d in t.shape]
        tt.type = TENSOR_TYPES[t.dtype]
        tt.name = t.name
        tt.hasRank = True
        tt.quantization = _quant(s, t)
        tt.buffer = 0
        if t.data is not None:
            data = _le(np.asarray(t.data, dtype=np.dtype(t.dtype)))
            key = _digest(data)
            if key not in by_digest:
                blobs.append(data)
                owners.append([])
                by_digest[key] = len(blobs) - 1
            tt.buffer = by_digest[key]
            owners[tt.buffer].append(t)
        tensors.append(tt)
        index[id(t)] = len(tensors) - 1
        return index[id(t)]

    codes: dict[tuple[int, int], int] = {}
    operator_codes = []
    operators = []
    for t in graph.inputs:
        tensor_index(t)
    for op in graph.ops:
        code = getattr(s.BuiltinOperator, op.code)
        version = op_version(op)
        if (code, version) not in codes:
            oc = s.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, 127)
            oc.version = version
            operator_codes.append(oc)
            codes[(code, version)] = len(operator_codes) - 1
        o = s.OperatorT()
        o.opcodeIndex = codes[(code, version)]
        o.inputs = [-1 if t is None else tensor_index(t) for t in op.inputs]
        o.outputs = [tensor_index(t) for t in op.outputs]
        o.builtinOptionsType = _options_type(s, op.options)
        o.builtinOptions = op.options
        operators.append(o)
    for t in graph.outputs:
        tensor_index(t)

    sub = s.SubGraphT()
    sub.tensors = tensors
    sub.inputs = [index[id(t)] for t in graph.inputs]
    sub.outputs = [index[id(t)] for t in graph.outputs]
    sub.operators = operators
    sub.name = "main"

    sig = s.SignatureDefT()
    sig.signatureKey = SIGNATURE_KEY
    sig.subgraphIndex = 0
    sig.inputs = [_tensor_map(s, n, index[id(t)]) for n, t in zip(graph.signature_inputs, graph.inputs)]
    sig.outputs = [_tensor_map(s, n, index[id(t)]) for n, t in zip(graph.signature_outputs, graph.outputs)]

    model = s.ModelT()
    model.version = 3
    model.operatorCodes = operator_codes
    model.subgraphs = [sub]
    model.description = description
    model.signatureDefs = [sig]
    metadata = []
    for name, payload in sorted(graph.metadata.items()):
        blobs.append(np.frombuffer(payload, np.uint8))
        owners.append([])
        m = s.MetadataT()
        m.name = name
        m.buffer = len(blobs) - 1
        metadata.append(m)
    model.metadata = metadata or None

    # Size: the model without constant data, packed once into a small throwaway builder, plus
    # every data vector with its length word and worst-case alignment padding.
    model.buffers = [s.BufferT() for _ in blobs]
    dry = flatbuffers.Builder(1024)
    dry.Finish(model.Pack(dry), file_identifier=b"TFL3")
    size = len(dry.Bytes) - dry.Head() + sum(16 + 4 + 16 + (b.nbytes if b is not None else 0) for b in blobs) + 4096
    dry = None

    builder = _Builder.create(size)
    packed: list[int | None] = [None]
    for i in range(1, len(blobs)):
        packed.append(_data_vector(builder, blobs[i]))
        blobs[i] = None
        if release:
            for t in owners[i]:
                t.data = _placeholder(t)
    model.buffers = [_PackedBuffer(s, vec) for vec in packed]
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return builder


_PACKED_BUFFER_CLASS = None


def _PackedBuffer(s, vector: int | None):
    """A ``BufferT`` whose data vector is already in the builder (``ModelT.Pack`` calls ``Pack``)."""
    global _PACKED_BUFFER_CLASS
    if _PACKED_BUFFER_CLASS is None:

        class PackedBuffer(s.BufferT):
            vector: int | None = None

            def Pack(self, builder):
                s.BufferStart(builder)
                if self.vector is not None:
                    s.BufferAddData(builder, self.vector)
                return s.BufferEnd(builder)

        _PACKED_BUFFER_CLASS = PackedBuffer
    b = _PACKED_BUFFER_CLASS()
    b.vector = vector
    return b


def _tensor_map(s, name: str, idx: int):
    m = s.TensorMapT()
    m.name = name
    m.tensorIndex = idx
    return m
