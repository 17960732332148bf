"""Memory behaviour of the lowering + emitter (large weights must not be copied over and over):
strided (transposed) constants stay views of the source model and are written in C order straight
into the flatbuffer, ``write_model`` writes the same bytes as ``build_model`` and can hand constant
data over (``release=True``), and lowering + writing allocates no full copy of the weights."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from onnx import helper as h

from tflite_testlib import model

pytestmark = pytest.mark.plugin
pytest.importorskip("ai_edge_litert")


def big_model(path, n_in=1024, n_out=2048, c=64):
    r = np.random.default_rng(0)
    inits = {
        "w": r.normal(0, 0.1, (c, 3, 3, 3)).astype(np.float32),
        "b": r.normal(0, 0.1, c).astype(np.float32),
        "w2": r.normal(0, 0.05, (c, c, 3, 3)).astype(np.float32),  # 147 KB: lowered as a strided OHWI view
        "shape": np.asarray([1, -1], np.int64),
        "fc": r.normal(0, 0.02, (c * 4 * 4, n_out)).astype(np.float32),  # transB=0: [in, out] -> [out, in] view
        "fcb": r.normal(0, 0.1, n_out).astype(np.float32),
    }
    nodes = [h.make_node("Conv", ["x", "w", "b"], ["c1"], pads=[1, 1, 1, 1]),
             h.make_node("Relu", ["c1"], ["r1"]),
             h.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
             h.make_node("Reshape", ["c2", "shape"], ["f"]),
             h.make_node("Gemm", ["f", "fc", "fcb"], ["y"])]
    return model(path, nodes, {"x": [1, 3, 4, 4]}, {"y": None}, inits), inits


def lower(path):
    """Lower like the pipeline does after canonicalize (initializers held as numpy-backed tensors)."""
    import onnx_ir as ir

    from deploykit_tflite.fuse import optimize
    from deploykit_tflite.lowering import Lowering
    from deploykit_tflite.optable import CONVERTERS

    m = ir.load(str(path))
    for v in m.graph.initializers.values():
        v.const_value = ir.Tensor(v.const_value.numpy().copy(), name=v.name)
    lowering = Lowering(m)
    graph = lowering.run(CONVERTERS)
    optimize(graph)
    return m, graph


def run_tflite(data: bytes | str, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=data) if isinstance(data, bytes) else Interpreter(model_path=data)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    if list(inp["shape"]) != list(x.shape):
        x = x.transpose(0, 2, 3, 1)
    it.set_tensor(inp["index"], np.ascontiguousarray(x))
    it.invoke()
    return it.get_tensor(out["index"])


def reference(path, x):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_strided_constants_are_views_and_written_in_c_order(tmp_path):
    from deploykit_tflite.emitter import build_model

    path, inits = big_model(tmp_path / "m.onnx")
    m, graph = lower(path)
    consts = [t for op in graph.ops for t in op.inputs if t is not None and t.is_const and t.data.nbytes > 100_000]
    assert consts and any(not t.data.flags.c_contiguous for t in consts)  # transposed views, no copies
    sources = [m.graph.initializers[n].const_value.numpy() for n in ("fc", "w2")]
    assert all(any(np.shares_memory(t.data, s) for s in sources) for t in consts)
    x = np.random.default_rng(1).normal(size=(1, 3, 4, 4)).astype(np.float32)
    y = run_tflite(build_model(graph), x)
    np.testing.assert_allclose(y, reference(path, x), rtol=1e-4, atol=1e-4)


def test_write_model_same_bytes_and_release(tmp_path):
    from deploykit_tflite.emitter import build_model, write_model

    path, _ = big_model(tmp_path / "m.onnx", n_out=64)
    _, graph = lower(path)
    data = build_model(graph)
    n = write_model(graph, tmp_path / "a.tflite")
    assert (tmp_path / "a.tflite").read_bytes() == data and n == len(data)
    shapes = {id(t): (list(t.shape), t.dtype) for op in graph.ops for t in op.inputs if t is not None and t.is_const}
    write_model(graph, tmp_path / "b.tflite", release=True)
    assert (tmp_path / "b.tflite").read_bytes() == data
    for op in graph.ops:
        for t in op.inputs:
            if t is not None and t.is_const:  # still constants of the same shape and dtype, no memory behind them
                assert (list(t.data.shape), t.data.dtype.name) == shapes[id(t)] and not any(t.data.strides)
    # 16-byte aligned constant data (schema: force_align 16), readable by LiteRT
    from ai_edge_litert.tools import flatbuffer_utils

    mdl = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    assert len(mdl.buffers[0].data if mdl.buffers[0].data is not None else []) == 0
    x = np.random.default_rng(2).normal(size=(1, 3, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(run_tflite(str(tmp_path / "b.tflite"), x), reference(path, x), rtol=1e-4, atol=1e-4)


def test_lowering_and_writing_make_no_heap_copy_of_the_weights(tmp_path):
    from deploykit_tflite.emitter import write_model

    path, inits = big_model(tmp_path / "m.onnx", n_out=4096)  # fc: 4 MB
    weights = sum(a.nbytes for a in inits.values())
    import onnx_ir as ir  # noqa: F401 - warm imports outside the measurement
    import deploykit_tflite.optable  # noqa: F401

    tracemalloc.start()
    try:
        _, graph = lower(path)
        base = tracemalloc.get_traced_memory()[0]  # the model's own numpy copies of the initializers
        tracemalloc.reset_peak()
        write_model(graph, tmp_path / "m.tflite", release=True)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    # before: lowering copied every transposed weight, the emitter held uint8 copies, tobytes()
    # temporaries, the builder's bytearray, Output() and bytes(): >= 3x the weights on the heap
    assert peak < 0.25 * weights, (peak, weights)
    assert (tmp_path / "m.tflite").stat().st_size > weights
