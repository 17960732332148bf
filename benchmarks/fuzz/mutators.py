"""Mutations of valid ONNX models for the hostile-input fuzz pass (benchmarks/fuzz/run.py).

Every mutator takes a ``random.Random`` and a model (a copy it may change) and returns either a
mutated ``onnx.ModelProto`` or raw bytes, plus a one-line description. Kinds: protobuf byte
flips and truncation, field flips (op types, domains, attributes, opsets, IR version), shape and
dtype changes of inputs/outputs/initializers/value_info, dangling edges (removed nodes, inputs
renamed to nothing), hostile names, broken initializer data, subgraph damage.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPS = ["Relu", "Conv", "Add", "MatMul", "Gemm", "Reshape", "Transpose", "Concat", "Softmax", "Sigmoid", "Identity",
       "Flatten", "MaxPool", "GlobalAveragePool", "BatchNormalization", "Resize", "Gather", "Slice", "Split",
       "Pad", "Cast", "Shape", "Expand", "Tile", "Where", "Loop", "If", "Scan", "TopK", "NonZero", "Einsum",
       "LSTM", "Dropout", "Unsqueeze", "Squeeze", "ReduceMean", "ConstantOfShape", "Range", "NoSuchOp", ""]
DTYPES = [TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.INT8, TensorProto.UINT8,
          TensorProto.INT32, TensorProto.INT64, TensorProto.BOOL, TensorProto.STRING, TensorProto.COMPLEX64,
          TensorProto.BFLOAT16, TensorProto.FLOAT8E4M3FN, TensorProto.UNDEFINED, 99]
NAMES = ["", "x", "a\x00b", "[/]", "[bold red]n[/]", "in\x1b[2Jput", "../../../x", "/etc/passwd", "n" * 3000,
         "名前", "'; import os; os.system('touch PWNED') #", "\n\r\t", " "]
DIMS = [0, -1, -7, 1, 2, 3, 8, 2**31, 2**62, 100000]


def _nodes(m):
    return list(m.graph.node)


def _pick(rng, seq):
    return seq[rng.randrange(len(seq))] if seq else None


# -- protobuf bytes ---------------------------------------------------------------------------------
def byte_flips(rng, m):
    data = bytearray(m.SerializeToString())
    n = rng.choice([1, 2, 4, 16])
    for _ in range(n):
        i = rng.randrange(len(data))
        data[i] = rng.randrange(256)
    return bytes(data), f"{n} random byte(s) changed"


def truncate(rng, m):
    data = m.SerializeToString()
    cut = rng.randrange(1, len(data))
    return data[:cut], f"truncated at byte {cut} of {len(data)}"


def splice_garbage(rng, m):
    data = m.SerializeToString()
    i = rng.randrange(len(data))
    junk = bytes(rng.randrange(256) for _ in range(rng.choice([3, 17, 64])))
    return data[:i] + junk + data[i:], f"{len(junk)} garbage bytes inserted at {i}"


# -- field flips ----------------------------------------------------------------------------------
def op_type(rng, m):
    n = _pick(rng, _nodes(m))
    old, n.op_type = n.op_type, _pick(rng, OPS)
    return m, f"node {n.name!r} op {old} -> {n.op_type!r}"


def domain(rng, m):
    n = _pick(rng, _nodes(m))
    n.domain = _pick(rng, ["com.microsoft", "ai.onnx.ml", "com.acme", "ai.onnx.preview.training", "\x00", "x" * 300])
    if rng.random() < 0.5:
        m.opset_import.append(helper.make_opsetid(n.domain, rng.choice([1, 2, 99])))
    return m, f"node {n.name!r} domain -> {n.domain[:20]!r}"


def attribute(rng, m):
    nodes = [n for n in _nodes(m) if n.attribute]
    n = _pick(rng, nodes) or _pick(rng, _nodes(m))
    if not n.attribute or rng.random() < 0.2:
        n.attribute.append(helper.make_attribute(_pick(rng, ["axis", "perm", "pads", "kernel_shape", "to", "mode"]),
                                                 _pick(rng, [7, -100, [1, 2, 3], "nearest", 2.5])))
        return m, f"node {n.name!r}: attribute added"
    a = _pick(rng, list(n.attribute))
    choice = rng.randrange(5)
    if choice == 0:
        n.attribute.remove(a)
        return m, f"node {n.name!r}: attribute {a.name} removed"
    if a.type == onnx.AttributeProto.INT:
        a.i = _pick(rng, [-1, 0, 1, 2**40, -(2**40), 99])
    elif a.type == onnx.AttributeProto.INTS:
        a.ints[:] = [_pick(rng, DIMS) for _ in range(rng.randrange(0, 6))]
    elif a.type == onnx.AttributeProto.FLOAT:
        a.f = _pick(rng, [float("nan"), float("inf"), -1.0, 0.0, 1e38])
    elif a.type == onnx.AttributeProto.STRING:
        a.s = _pick(rng, [b"", b"\xff\xfe", b"nearest", b"x" * 1000])
    elif a.type == onnx.AttributeProto.TENSOR:
        a.t.dims[:] = [rng.choice([0, 3, 7])]
    else:
        a.type = _pick(rng, [onnx.AttributeProto.INT, onnx.AttributeProto.STRING, onnx.AttributeProto.GRAPH])
    return m, f"node {n.name!r}: attribute {a.name} changed"


def opset(rng, m):
    v = _pick(rng, [0, 1, 6, 7, 9, 11, 13, 18, 21, 23, 24, 30, 99, -1])
    for o in m.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = v
    return m, f"default opset -> {v}"


def ir_version(rng, m):
    m.ir_version = _pick(rng, [0, 1, 2, 3, 4, 7, 11, 99, -5])
    return m, f"ir_version -> {m.ir_version}"


# -- shapes and dtypes ------------------------------------------------------------------------------
def _values(m):
    return [*m.graph.input, *m.graph.output, *m.graph.value_info]


def value_dtype(rng, m):
    v = _pick(rng, _values(m))
    v.type.tensor_type.elem_type = _pick(rng, DTYPES)
    return m, f"value {v.name!r} dtype -> {v.type.tensor_type.elem_type}"


def value_shape(rng, m):
    v = _pick(rng, _values(m))
    dims = v.type.tensor_type.shape.dim
    action = rng.randrange(4)
    if action == 0 and len(dims):
        d = _pick(rng, list(dims))
        d.Clear()
        if rng.random() < 0.7:
            d.dim_value = _pick(rng, DIMS)
        else:
            d.dim_param = _pick(rng, ["N", "", "batch", "[/]"])
        return m, f"value {v.name!r}: a dim changed"
    if action == 1:
        dims.add().dim_value = _pick(rng, DIMS)
        return m, f"value {v.name!r}: a dim added"
    if action == 2 and len(dims):
        del dims[rng.randrange(len(dims))]
        return m, f"value {v.name!r}: a dim removed"
    v.type.ClearField("tensor_type")
    if rng.random() < 0.5:
        v.type.sequence_type.elem_type.tensor_type.elem_type = TensorProto.FLOAT
    return m, f"value {v.name!r}: type removed or made a sequence"


def initializer(rng, m):
    if not m.graph.initializer:
        return op_type(rng, m)
    t = _pick(rng, list(m.graph.initializer))
    action = rng.randrange(5)
    if action == 0:
        t.dims[:] = [_pick(rng, [0, 1, 3, 5, 2**40]) for _ in range(rng.randrange(0, 4))]
        return m, f"initializer {t.name!r}: dims changed"
    if action == 1:
        t.raw_data = t.raw_data[: len(t.raw_data) // 2]
        return m, f"initializer {t.name!r}: data halved"
    if action == 2:
        t.data_type = _pick(rng, DTYPES)
        return m, f"initializer {t.name!r}: data_type -> {t.data_type}"
    if action == 3 and t.data_type == TensorProto.FLOAT:
        a = numpy_helper.to_array(t).copy()
        a.reshape(-1)[rng.randrange(max(a.size, 1))] = _pick(rng, [np.nan, np.inf, -np.inf, 3e38])
        t.CopyFrom(numpy_helper.from_array(a, t.name))
        return m, f"initializer {t.name!r}: a NaN/Inf/huge value"
    m.graph.initializer.remove(t)
    return m, f"initializer {t.name!r} removed (dangling)"


# -- edges and names ---------------------------------------------------------------------------------
def remove_node(rng, m):
    n = _pick(rng, _nodes(m))
    m.graph.node.remove(n)
    return m, f"node {n.name!r} ({n.op_type}) removed: dangling edges"


def dangling_input(rng, m):
    n = _pick(rng, _nodes(m))
    if not n.input:
        n.input.append("nowhere")
    else:
        n.input[rng.randrange(len(n.input))] = _pick(rng, ["nowhere", "", n.output[0] if n.output else "x"])
    return m, f"node {n.name!r}: an input points nowhere (or to itself)"


def swap_nodes(rng, m):
    nodes = _nodes(m)
    if len(nodes) < 2:
        return remove_node(rng, m)
    i, j = rng.sample(range(len(nodes)), 2)
    a, b = onnx.NodeProto(), onnx.NodeProto()
    a.CopyFrom(nodes[i])
    b.CopyFrom(nodes[j])
    m.graph.node[i].CopyFrom(b)
    m.graph.node[j].CopyFrom(a)
    return m, "two nodes swapped (topological order broken)"


def duplicate_node(rng, m):
    n = _pick(rng, _nodes(m))
    m.graph.node.append(n)
    return m, f"node {n.name!r} duplicated (outputs defined twice)"


def outputs(rng, m):
    action = rng.randrange(4)
    g = m.graph
    if action == 0 and len(g.output) > 0:
        del g.output[:]
        return m, "graph outputs removed"
    if action == 1:
        g.output.append(g.input[0] if g.input else g.output[0])
        return m, "a graph input (or output) listed as an output again"
    if action == 2:
        n = _pick(rng, _nodes(m))
        if n.output:
            g.output.append(helper.make_tensor_value_info(n.output[0], TensorProto.FLOAT, None))
        return m, "an intermediate tensor made a graph output"
    del g.input[:]
    return m, "graph inputs removed"


def rename(rng, m):
    name = _pick(rng, NAMES)
    values = _values(m)
    v = _pick(rng, values)
    old = v.name
    for x in values:
        if x.name == old:
            x.name = name
    for n in m.graph.node:
        n.input[:] = [name if t == old else t for t in n.input]
        n.output[:] = [name if t == old else t for t in n.output]
    if rng.random() < 0.5:
        n = _pick(rng, _nodes(m))
        n.name = _pick(rng, NAMES)
    return m, f"tensor {old!r} renamed to {name[:20]!r}"


def collide(rng, m):
    nodes = _nodes(m)
    a, b = _pick(rng, nodes), _pick(rng, nodes)
    if a.output and b.output:
        b.output[0] = a.output[0]
    return m, "two nodes write the same tensor"


def raw_name_bytes(rng, m):
    """A name replaced by bytes that are not UTF-8, at the protobuf level."""
    v = _pick(rng, _values(m))
    data = m.SerializeToString()
    old = v.name.encode()
    if not old or data.count(old) == 0:
        return byte_flips(rng, m)
    return data.replace(old, _pick(rng, [b"\xff", b"\xc3\x28", b"a\x00"]) + old[:1]), f"name {v.name!r} made non-UTF-8"


MUTATORS: dict[str, Callable] = {
    "byte_flips": byte_flips, "truncate": truncate, "splice_garbage": splice_garbage,
    "op_type": op_type, "domain": domain, "attribute": attribute, "opset": opset, "ir_version": ir_version,
    "value_dtype": value_dtype, "value_shape": value_shape, "initializer": initializer,
    "remove_node": remove_node, "dangling_input": dangling_input, "swap_nodes": swap_nodes,
    "duplicate_node": duplicate_node, "outputs": outputs, "rename": rename, "collide": collide,
    "raw_name_bytes": raw_name_bytes,
}


# protobuf-level damage mostly ends at the parser or the checker; graph-level changes reach the
# passes, backends and runtimes, so they are drawn more often
WEIGHTS = {"byte_flips": 3, "truncate": 1, "splice_garbage": 1, "raw_name_bytes": 2, "op_type": 6, "domain": 4,
           "attribute": 12, "opset": 5, "ir_version": 2, "value_dtype": 6, "value_shape": 10, "initializer": 10,
           "remove_node": 4, "dangling_input": 4, "swap_nodes": 2, "duplicate_node": 2, "outputs": 5, "rename": 8,
           "collide": 2}


def mutate(rng: random.Random, model: onnx.ModelProto, steps: int = 1) -> tuple[bytes, list[str]]:
    """Apply ``steps`` random mutations to a copy of ``model``; returns (file bytes, [kind: what])."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    done = []
    data = None
    for _ in range(steps):
        kinds = sorted(MUTATORS)
        kind = rng.choices(kinds, weights=[WEIGHTS.get(k, 1) for k in kinds])[0]
        result, what = MUTATORS[kind](rng, m)
        done.append(f"{kind}: {what}")
        if isinstance(result, bytes):
            data = result
            break
        m = result
    return (data if data is not None else m.SerializeToString()), done
