"""Hostile models, generated with onnx.helper at test time (no stored binaries).

Each builder writes one file into a folder and returns its path. Most are small variations of a
tiny valid model (:func:`relu_model`, :func:`conv_model`) with one thing wrong; a few are valid but
awkward (names with markup, control characters, path separators; opset 7 / IR 3).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

OPSET = 17


def _model(nodes, inputs, outputs, inits=(), opset=OPSET, domains=(), ir_version=None) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), *[helper.make_opsetid(d, 1) for d in domains]])
    if ir_version is not None:
        m.ir_version = ir_version
    return m


def _vi(name, shape, dtype=TP.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def save(m: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(m.SerializeToString())
    return path


def relu_model(x="x", y="y", shape=(1, 4), dtype=TP.FLOAT, opset=OPSET) -> onnx.ModelProto:
    return _model([helper.make_node("Relu", [x], [y], name="relu")], [_vi(x, list(shape), dtype)],
                  [_vi(y, list(shape), dtype)], opset=opset)


def conv_model(x="image", y="scores", *, w_name="w", nan_weights=False, opset=OPSET) -> onnx.ModelProto:
    """Conv -> Relu -> GlobalAveragePool -> Flatten -> Gemm -> Softmax on [1, 3, 8, 8]."""
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32)
    fc = rng.normal(0, 0.5, (5, 4)).astype(np.float32)
    bias = rng.normal(0, 0.1, 5).astype(np.float32)
    if nan_weights:
        fc[0, 0], fc[1, 1] = np.nan, np.inf
    nodes = [helper.make_node("Conv", [x, w_name], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["p"], name="gap"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "fc", "fc_b"], ["g"], transB=1, name="fc"),
             helper.make_node("Softmax", ["g"], [y], axis=1 if opset < 13 else -1, name="softmax")]
    inits = [numpy_helper.from_array(w, w_name), numpy_helper.from_array(fc, "fc"), numpy_helper.from_array(bias, "fc_b")]
    return _model(nodes, [_vi(x, [1, 3, 8, 8])], [_vi(y, [1, 5])], inits, opset=opset)


def opset7_ir3_model() -> onnx.ModelProto:
    """A valid old-exporter model: opset 7, IR 3, every initializer also listed as a graph input."""
    m = conv_model(w_name="conv_w", opset=7)
    m.ir_version = 3
    for t in m.graph.initializer:
        m.graph.input.append(_vi(t.name, list(t.dims)))
    return m


# -- broken files ------------------------------------------------------------------------------
def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def truncated(path: Path) -> Path:
    data = conv_model().SerializeToString()
    return write_bytes(path, data[: len(data) // 2])


def random_bytes(path: Path) -> Path:
    return write_bytes(path, np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


# -- models that break one rule ----------------------------------------------------------------
def no_inputs() -> onnx.ModelProto:
    const = helper.make_node("Constant", [], ["y"], value=numpy_helper.from_array(np.ones((1, 4), np.float32)))
    return _model([const], [], [_vi("y", [1, 4])])


def string_input() -> onnx.ModelProto:
    return _model([helper.make_node("Identity", ["x"], ["y"])], [_vi("x", [1, 2], TP.STRING)], [_vi("y", [1, 2], TP.STRING)])


def string_output() -> onnx.ModelProto:
    cast = helper.make_node("Cast", ["x"], ["y"], to=TP.STRING)
    return _model([cast], [_vi("x", [1, 2])], [_vi("y", [1, 2], TP.STRING)])


def complex_input() -> onnx.ModelProto:
    return _model([helper.make_node("Identity", ["x"], ["y"])], [_vi("x", [1, 2], TP.COMPLEX64)], [_vi("y", [1, 2], TP.COMPLEX64)])


def sequence_input() -> onnx.ModelProto:
    seq = helper.make_tensor_sequence_value_info("s", TP.FLOAT, [1, 2])
    at = helper.make_node("SequenceAt", ["s", "i"], ["y"])
    m = _model([at], [seq], [_vi("y", [1, 2])], [numpy_helper.from_array(np.array(0, np.int64), "i")])
    return m


def duplicate_node_names() -> onnx.ModelProto:
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="same"), helper.make_node("Relu", ["a"], ["y"], name="same")]
    return _model(nodes, [_vi("x", [1, 4])], [_vi("y", [1, 4])])


def dims(shape) -> onnx.ModelProto:
    return relu_model(shape=shape)


def custom_domain_op() -> onnx.ModelProto:
    node = helper.make_node("Frobnicate", ["x"], ["y"], domain="com.acme.secret", name="frob")
    return _model([node], [_vi("x", [1, 4])], [_vi("y", [1, 4])], domains=["com.acme.secret"])


def checker_ok_ort_refuses() -> onnx.ModelProto:
    """Add(float, int64): the checker does not type-check; ONNX Runtime refuses the model."""
    add = helper.make_node("Add", ["x", "k"], ["y"])
    return _model([add], [_vi("x", [1, 4])], [_vi("y", [1, 4])], [numpy_helper.from_array(np.ones(4, np.int64), "k")])


def runtime_reshape_failure() -> onnx.ModelProto:
    """Loads everywhere, fails when run: Reshape of 4 values to [3]."""
    r = helper.make_node("Reshape", ["x", "s"], ["y"])
    return _model([r], [_vi("x", [1, 4])], [_vi("y", [3])], [numpy_helper.from_array(np.array([3], np.int64), "s")])


def bad_raw_data() -> onnx.ModelProto:
    """An initializer whose raw bytes do not match its dims."""
    m = conv_model()
    m.graph.initializer[0].raw_data = m.graph.initializer[0].raw_data[:10]
    return m


def external_data(folder: Path, location: str, length: int = 64) -> onnx.ModelProto:
    t = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    t.ClearField("raw_data")
    t.data_location = TP.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", str(length))):
        e = t.external_data.add()
        e.key, e.value = k, v
    return _model([helper.make_node("MatMul", ["x", "w"], ["y"])], [_vi("x", [1, 4])], [_vi("y", [1, 4])], [t])


def renamed(m: onnx.ModelProto, old: str, new: str) -> onnx.ModelProto:
    """Every occurrence of tensor name ``old`` renamed (in-place on a copy)."""
    out = onnx.ModelProto()
    out.CopyFrom(m)
    g = out.graph
    for v in (*g.input, *g.output, *g.value_info, *g.initializer):
        if v.name == old:
            v.name = new
    for n in g.node:
        n.input[:] = [new if t == old else t for t in n.input]
        n.output[:] = [new if t == old else t for t in n.output]
    return out


def raw_name(m: onnx.ModelProto, old: str, new: bytes) -> bytes:
    """Serialized ``m`` with a name replaced by arbitrary bytes (e.g. not UTF-8)."""
    data = m.SerializeToString()
    assert data.count(old.encode()) >= 1
    return data.replace(old.encode(), new)


def if_subgraph_names() -> onnx.ModelProto:
    """An If whose branches carry hostile node and tensor names."""
    then_g = helper.make_graph([helper.make_node("Relu", ["x"], ["t[/]out"], name="[red]then\x1b[2J")], "then", [],
                               [_vi("t[/]out", [1, 4])])
    else_g = helper.make_graph([helper.make_node("Neg", ["x"], ["e\"out'"], name="else';import os")], "else", [],
                               [_vi("e\"out'", [1, 4])])
    nodes = [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0, name="sum"),
             helper.make_node("Greater", ["s", "zero"], ["c"], name="gt"),
             helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g, name="if")]
    return _model(nodes, [_vi("x", [1, 4])], [_vi("y", [1, 4])], [numpy_helper.from_array(np.array(0, np.float32), "zero")])


HOSTILE_NAMES = {
    "markup": "[/]in[bold red]put[/]",
    "escape": "in\x1b[31mput\x1b]0;pwned\x07",
    "newline": "in\nput\r\n",
    "path": "../../../etc/x_out",
    "quotes": "in\"put'; import os; os.system('touch PWNED') #",
    "long": "n" * 5000,
    "unicode": "входные данные 入力 \u202e",
}


# -- valid but awkward -------------------------------------------------------------------------------
def sparse_initializer() -> onnx.ModelProto:
    values = numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "W")
    indices = numpy_helper.from_array(np.array([0, 5], np.int64), "idx")
    m = _model([helper.make_node("MatMul", ["x", "W"], ["y"])], [_vi("x", [1, 4])], [_vi("y", [1, 3])])
    m.graph.sparse_initializer.append(helper.make_sparse_tensor(values, indices, [4, 3]))
    return m


def local_function() -> onnx.ModelProto:
    f = helper.make_function("local", "MyRelu", ["a"], ["b"], [helper.make_node("Relu", ["a"], ["b"])],
                             [helper.make_opsetid("", OPSET)])
    m = _model([helper.make_node("MyRelu", ["x"], ["y"], domain="local")], [_vi("x", [1, 4])], [_vi("y", [1, 4])],
               domains=["local"])
    m.functions.append(f)
    return m


def hostile_metadata() -> onnx.ModelProto:
    m = relu_model()
    m.producer_name, m.producer_version, m.doc_string = "[/]evil\x1b[31m", "\n\n", "[bold]" * 100
    m.graph.name, m.graph.doc_string = "g[/]", "\x1b[2J"
    helper.set_model_props(m, {"a[/]": "\x00b", "\x1b": "x"})
    return m


def passthrough() -> onnx.ModelProto:
    return _model([], [_vi("x", [1, 4])], [_vi("x", [1, 4])])


def scalar_io() -> onnx.ModelProto:
    return relu_model(shape=())


def bool_io() -> onnx.ModelProto:
    return _model([helper.make_node("Not", ["x"], ["y"])], [_vi("x", [1, 4], TP.BOOL)], [_vi("y", [1, 4], TP.BOOL)])


def float16_io() -> onnx.ModelProto:
    return relu_model(dtype=TP.FLOAT16)


def huge_intermediate() -> onnx.ModelProto:
    """Inputs are small, but ConstantOfShape asks for 400 GB in the middle."""
    value = numpy_helper.from_array(np.array([1.0], np.float32))
    nodes = [helper.make_node("ConstantOfShape", ["s"], ["c"], value=value),
             helper.make_node("ReduceSum", ["c"], ["r"], keepdims=0), helper.make_node("Add", ["x", "r"], ["y"])]
    return _model(nodes, [_vi("x", [1, 4])], [_vi("y", [1, 4])],
                  [numpy_helper.from_array(np.array([100000, 100000, 10], np.int64), "s")])


# -- found by the fuzz pass (benchmarks/fuzz) ----------------------------------------------------------
def gather_axis_out_of_range() -> onnx.ModelProto:
    """Loads in ONNX Runtime, fails when run (the checker does not range-check attributes)."""
    node = helper.make_node("Gather", ["x", "i"], ["y"], axis=-(2**40), name="embed")
    return _model([node], [_vi("x", [1, 4])], [_vi("y", ["a", "b"])], [numpy_helper.from_array(np.array([0, 1], np.int64), "i")])


def declared_output_rank_wrong() -> onnx.ModelProto:
    m = conv_model()
    del m.graph.output[0].type.tensor_type.shape.dim[0]
    return m


def output_dtype_enum_99() -> onnx.ModelProto:
    m = conv_model()
    m.graph.output[0].type.tensor_type.elem_type = 99
    return m


def input_listed_as_output() -> onnx.ModelProto:
    m = conv_model()
    m.graph.output.append(m.graph.input[0])
    return m
