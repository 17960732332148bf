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
    if code in ("ADD", "SUB", "CONCATENATION", "MAX_POOL_2D", "AVERAGE_POOL_2D", "PAD", "SOFTMAX",
                "LOGISTIC", "TANH", "MEAN", "RELU6", "RELU", "TRANSPOSE", "SLICE", "STRIDED_SLICE",
                "SPLIT", "SPLIT_V", "SPACE_TO_DEPTH", "DEPTH_TO_SPACE", "SUM", "GELU", "REDUCE_MAX",
                "GATHER", "MAXIMUM", "MINIMUM", "BATCH_MATMUL", "LOG_SOFTMAX", "SQUEEZE", "PADV2"):
        return 2 if int8 else 1
    return 1


def _options_type(s, options) -> int:
    if options is None:
        return 0
    name = type(options).__name__
    return getattr(s.BuiltinOptions, name[:-1] if name.endswith("T") else name)


def _buffer_data(array: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(array)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return np.frombuffer(a.tobytes(), np.uint8)


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
    import flatbuffers

    s = schema()
    buffers = [s.BufferT()]  # buffer 0: the empty sentinel
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
            data = _buffer_data(np.asarray(t.data, dtype=np.dtype(t.dtype)))
            key = (hashlib.sha256(data.tobytes()).hexdigest(), data.size)
            if key not in by_digest:
                b = s.BufferT()
                b.data = data
                buffers.append(b)
                by_digest[key] = len(buffers) - 1
            tt.buffer = by_digest[key]
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
        b = s.BufferT()
        b.data = np.frombuffer(payload, np.uint8)
        buffers.append(b)
        m = s.MetadataT()
        m.name = name
        m.buffer = len(buffers) - 1
        metadata.append(m)
    model.metadata = metadata or None
    model.buffers = buffers
    size = sum(b.data.size for b in buffers if b.data is not None)
    builder = flatbuffers.Builder(size + 1024 * 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _tensor_map(s, name: str, idx: int):
    m = s.TensorMapT()
    m.name = name
    m.tensorIndex = idx
    return m
