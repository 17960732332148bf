"""The training executor reproduces ONNX Runtime on every op of its table (needs torch)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

torch = pytest.importorskip("torch")

from deploykit.errors import UnsupportedError  # noqa: E402
from deploykit.train.executor import TorchGraph, _to_torch, trainable_initializers  # noqa: E402
from deploykit.train.ops import OPS  # noqa: E402

pytestmark = pytest.mark.unit
RNG = np.random.default_rng(0)


def _w(*shape, scale=0.5):
    return RNG.normal(0, scale, shape).astype(np.float32)


def _model(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(
        nodes, "t", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in dict(inits).items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _check(model, seed=0):
    rng = np.random.default_rng(seed)
    feeds = {i.name: rng.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim]).astype(np.float32)
             for i in model.graph.input}
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    want = sess.run(None, feeds)
    net = TorchGraph(model)
    with torch.no_grad():
        got = net(_to_torch(feeds))
    for name, w in zip(net.output_names, want):
        g = got[name].numpy()
        assert g.shape == w.shape, (name, g.shape, w.shape)
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4, err_msg=name)
    return net


def _n(op, ins, outs, **kw):
    return helper.make_node(op, ins, outs, name=f"{op}_{outs[0]}", **kw)


X = ("x", [1, 4, 8, 8])
CASES = {
    "conv_groups_dilation_pads": ([_n("Conv", ["x", "w", "b"], ["y"], group=2, dilations=[2, 1], pads=[1, 0, 2, 1],
                                      strides=[1, 2])], [X], {"w": _w(6, 2, 3, 3), "b": _w(6)}),
    "conv_same_upper": ([_n("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER", strides=[2, 2])], [X], {"w": _w(3, 4, 3, 3)}),
    "conv1d": ([_n("Conv", ["x", "w"], ["y"], pads=[1, 1])], [("x", [1, 3, 10])], {"w": _w(5, 3, 3)}),
    "conv_transpose": ([_n("ConvTranspose", ["x", "w", "b"], ["y"], strides=[2, 2], pads=[1, 1, 0, 0],
                           output_padding=[1, 1])], [X], {"w": _w(4, 3, 3, 3), "b": _w(3)}),
    "gemm_matmul_add": ([_n("Flatten", ["x"], ["f"]), _n("Gemm", ["f", "w", "b"], ["g"], transB=1, alpha=0.5, beta=2.0),
                         _n("MatMul", ["g", "m"], ["h"]), _n("Add", ["h", "c"], ["y"])],
                        [X], {"w": _w(10, 256), "b": _w(10), "m": _w(10, 6), "c": _w(6)}),
    "elementwise": ([_n("Sub", ["x", "s"], ["a"]), _n("Mul", ["a", "x"], ["b"]), _n("Div", ["b", "d"], ["c"]),
                     _n("LeakyRelu", ["c"], ["e"], alpha=0.1), _n("Sigmoid", ["e"], ["f"]), _n("Tanh", ["a"], ["g"]),
                     _n("Add", ["f", "g"], ["y"])],
                    [X], {"s": _w(4, 1, 1), "d": np.float32(1.7) + np.abs(_w(1, 1, 8))}),
    "activations": ([_n("Relu", ["x"], ["a"]), _n("Clip", ["x", "lo", "hi"], ["b"]), _n("HardSigmoid", ["x"], ["c"], alpha=0.3),
                     _n("HardSwish", ["x"], ["d"]), _n("Identity", ["d"], ["e"])],
                    [X], {"lo": np.float32(-0.5), "hi": np.float32(0.7)}),
    "softmax": ([_n("Softmax", ["x"], ["y"], axis=1)], [X], {}),
    "batchnorm": ([_n("BatchNormalization", ["x", "g", "b", "m", "v"], ["y"], epsilon=1e-3)], [X],
                  {"g": _w(4), "b": _w(4), "m": _w(4), "v": np.abs(_w(4)) + 0.5}),
    "pools": ([_n("MaxPool", ["x"], ["a"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
               _n("MaxPool", ["x"], ["b"], kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 1, 1]),
               _n("AveragePool", ["x"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1),
               _n("AveragePool", ["x"], ["d"], kernel_shape=[2, 2], strides=[2, 2]),
               _n("GlobalAveragePool", ["x"], ["e"])], [X], {}),
    "shapes": ([_n("Reshape", ["x", "shape"], ["a"]), _n("Transpose", ["a"], ["b"], perm=[0, 2, 1]),
                _n("Unsqueeze", ["b", "ax"], ["c"]), _n("Squeeze", ["c", "ax"], ["d"]),
                _n("Split", ["d", "sp"], ["e", "f"], axis=2), _n("Concat", ["f", "e"], ["y"], axis=2)],
               [X], {"shape": np.array([0, 4, -1], np.int64), "ax": np.array([1], np.int64), "sp": np.array([1, 3], np.int64)}),
    "slice_pad": ([_n("Slice", ["x", "st", "en", "axs", "steps"], ["a"]),
                   _n("Slice", ["x", "st2", "en2", "axs2"], ["b"]),
                   _n("Pad", ["x", "pads"], ["c"], mode="reflect"), _n("Pad", ["x", "pads", "val"], ["d"]),
                   _n("Pad", ["x", "pads"], ["e"], mode="edge")],
                  [X], {"st": np.array([-1, 1], np.int64), "en": np.array([-100, 7], np.int64), "axs": np.array([2, 3], np.int64),
                        "steps": np.array([-2, 3], np.int64), "st2": np.array([1], np.int64), "en2": np.array([3], np.int64),
                        "axs2": np.array([1], np.int64), "pads": np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64),
                        "val": np.float32(0.25)}),
    "resize": ([_n("Resize", ["x", "", "sc"], ["a"], mode="nearest", coordinate_transformation_mode="asymmetric",
                   nearest_mode="floor"),
                _n("Resize", ["x", "", "sc"], ["b"], mode="linear"),
                _n("Resize", ["x", "", "", "sz"], ["c"], mode="linear", coordinate_transformation_mode="align_corners"),
                _n("Resize", ["x", "", "sc"], ["d"], mode="nearest")],
               [X], {"sc": np.array([1, 1, 2, 2], np.float32), "sz": np.array([1, 4, 11, 5], np.int64)}),
    "reduce_constant": ([_n("ReduceMean", ["x", "rax"], ["a"], keepdims=0),
                         helper.make_node("Constant", [], ["k"], name="k", value=numpy_helper.from_array(_w(8), "k")),
                         _n("Add", ["a", "k"], ["y"])], [X], {"rax": np.array([1, 2], np.int64)}, 18),
    "flatten_axis2": ([_n("Flatten", ["x"], ["y"], axis=2)], [X], {}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_onnxruntime(case):
    nodes, inputs, inits, *opset = CASES[case]
    outputs = [o for n in nodes for o in n.output if not any(o in m.input for m in nodes)]
    _check(_model(nodes, inputs, outputs, inits.items(), *opset))


def test_old_opset_forms():
    """Clip/Softmax/Squeeze/Unsqueeze/Split/Pad/ReduceMean with the attributes of opset 11/12."""
    nodes = [_n("Clip", ["x", "lo"], ["a"]),
             _n("Softmax", ["x"], ["b"], axis=1),
             _n("Unsqueeze", ["x"], ["c"], axes=[0]), _n("Squeeze", ["c"], ["d"], axes=[0]),
             _n("Split", ["d"], ["e", "f"], axis=1, split=[1, 3]), _n("ReduceMean", ["f"], ["g"], axes=[2, 3]),
             _n("Pad", ["e", "pads"], ["h"])]
    _check(_model(nodes, [X], ["a", "b", "g", "h"], {"lo": np.float32(-0.3), "pads": np.zeros(8, np.int64) + 1}.items(),
                  opset=11))


def test_every_op_of_the_table_is_covered():
    used = {n.op_type for nodes, *_ in CASES.values() for n in nodes}
    assert set(OPS) - used <= {"Dropout", "Shape", "Gather", "Cast", "GlobalMaxPool"}, set(OPS) - used


def test_weights_become_parameters_and_constants_do_not():
    nodes, inputs, inits, *_ = CASES["gemm_matmul_add"]
    m = _model(nodes, inputs, ["y"], inits.items())
    assert trainable_initializers(m) == ["w", "b", "m", "c"]
    nodes, inputs, inits, *_ = CASES["elementwise"]
    assert trainable_initializers(_model(nodes, inputs, ["y"], inits.items())) == []


def test_unsupported_op_is_a_clear_error():
    m = _model([_n("Erf", ["x"], ["a"]), _n("Relu", ["a"], ["b"]), _n("Selu", ["b"], ["y"])], [X], ["y"])
    with pytest.raises(UnsupportedError, match=r"cannot run op\(s\) Erf, Selu; it runs .*Conv"):
        TorchGraph(m)


def test_ppocr_cls_matches_onnxruntime():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None:
        pytest.skip("rapidocr_onnxruntime is not installed")
    path = Path(spec.submodule_search_locations[0]) / "models" / "ch_ppocr_mobile_v2.0_cls_infer.onnx"
    m = onnx.load(path)
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    for d, v in zip(m.graph.input[0].type.tensor_type.shape.dim[1:], (3, 48, 192)):
        d.dim_value = v
    net = _check(m)
    assert len(net.param_names) > 50
