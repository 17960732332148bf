"""Small models built with onnx.helper for tests (no downloads), and paths of packaged models."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

LIGHT_DIR = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
LIGHT_MODELS = sorted(LIGHT_DIR.glob("light_*.onnx"))


def ppocr_cls_path() -> Path | None:
    try:
        import importlib.util

        spec = importlib.util.find_spec("rapidocr_onnxruntime")
    except ImportError:
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / "models" / "ch_ppocr_mobile_v2.0_cls_infer.onnx"
    return p if p.exists() else None


def _init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def _save(model: onnx.ModelProto, path: str | os.PathLike) -> Path:
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return Path(path)


def small_cnn(path, *, input_name="image", output_name="scores", batch: int | str = 1, opset=17) -> Path:
    """Conv-BN-HardSwish, depthwise conv, residual add, GAP, Gemm, Softmax: a mobile-style classifier."""
    rng = np.random.default_rng(42)
    c = 8
    nodes = [
        helper.make_node("Conv", [input_name, "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("BatchNormalization", ["c1", "g", "beta", "mean", "var"], ["bn1"], name="bn1"),
        # HardSwish as exported by PyTorch: x * clip(x + 3, 0, 6) / 6
        helper.make_node("Add", ["bn1", "three"], ["hs_a"], name="hs_add"),
        helper.make_node("Clip", ["hs_a", "zero", "six"], ["hs_c"], name="hs_clip"),
        helper.make_node("Mul", ["bn1", "hs_c"], ["hs_m"], name="hs_mul"),
        helper.make_node("Div", ["hs_m", "six"], ["act1"], name="hs_div"),
        helper.make_node("Conv", ["act1", "wdw", "bdw"], ["dw"], group=c, pads=[1, 1, 1, 1], name="dwconv"),
        helper.make_node("Relu", ["dw"], ["dwr"], name="dw_relu"),
        helper.make_node("Add", ["dwr", "act1"], ["res"], name="residual"),
        helper.make_node("MaxPool", ["res"], ["mp"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
        helper.make_node("GlobalAveragePool", ["mp"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "wfc", "bfc"], ["logits"], transB=1, name="fc"),
        helper.make_node("Softmax", ["logits"], [output_name], axis=-1, name="softmax"),
    ]
    inits = [
        _init("w1", rng.normal(0, 0.3, (c, 3, 3, 3)).astype(np.float32)),
        _init("b1", rng.normal(0, 0.1, c).astype(np.float32)),
        _init("g", rng.uniform(0.5, 1.5, c).astype(np.float32)),
        _init("beta", rng.normal(0, 0.1, c).astype(np.float32)),
        _init("mean", rng.normal(0, 0.1, c).astype(np.float32)),
        _init("var", rng.uniform(0.5, 1.5, c).astype(np.float32)),
        _init("three", np.array(3.0, np.float32)),
        _init("zero", np.array(0.0, np.float32)),
        _init("six", np.array(6.0, np.float32)),
        _init("wdw", rng.normal(0, 0.3, (c, 1, 3, 3)).astype(np.float32)),
        _init("bdw", rng.normal(0, 0.1, c).astype(np.float32)),
        _init("wfc", rng.normal(0, 0.5, (10, c)).astype(np.float32)),
        _init("bfc", rng.normal(0, 0.1, 10).astype(np.float32)),
    ]
    graph = helper.make_graph(
        nodes, "small_cnn",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [batch, 3, 16, 16])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [batch, 10])],
        inits,
    )
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), path)


def small_transformer(path, *, seq=8, dim=16, opset=17) -> Path:
    """Token embedding (Gather), LayerNorm (decomposed), attention-like MatMuls, GELU (erf), two inputs."""
    rng = np.random.default_rng(7)
    nodes = [
        helper.make_node("Gather", ["emb", "tokens"], ["x0"], axis=0, name="embed"),
        helper.make_node("Add", ["x0", "features"], ["x"], name="add_features"),
        # LayerNorm, decomposed
        helper.make_node("ReduceMean", ["x"], ["mu"], axes=[-1], keepdims=1, name="ln_mean"),
        helper.make_node("Sub", ["x", "mu"], ["xc"], name="ln_sub"),
        helper.make_node("Pow", ["xc", "two"], ["sq"], name="ln_pow"),
        helper.make_node("ReduceMean", ["sq"], ["var"], axes=[-1], keepdims=1, name="ln_var"),
        helper.make_node("Add", ["var", "eps"], ["ve"], name="ln_eps"),
        helper.make_node("Sqrt", ["ve"], ["sd"], name="ln_sqrt"),
        helper.make_node("Div", ["xc", "sd"], ["xn"], name="ln_div"),
        helper.make_node("Mul", ["xn", "gamma"], ["xg"], name="ln_scale"),
        helper.make_node("Add", ["xg", "betaln"], ["ln"], name="ln_shift"),
        helper.make_node("MatMul", ["ln", "wq"], ["q"], name="q_proj"),
        helper.make_node("MatMul", ["ln", "wk"], ["k"], name="k_proj"),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1], name="k_t"),
        helper.make_node("MatMul", ["q", "kt"], ["att"], name="qk"),
        helper.make_node("Softmax", ["att"], ["p"], axis=-1, name="att_softmax"),
        helper.make_node("MatMul", ["p", "ln"], ["ctx"], name="pv"),
        # GELU, erf form
        helper.make_node("Div", ["ctx", "sqrt2"], ["g0"], name="gelu_div"),
        helper.make_node("Erf", ["g0"], ["g1"], name="gelu_erf"),
        helper.make_node("Add", ["g1", "one"], ["g2"], name="gelu_add"),
        helper.make_node("Mul", ["ctx", "g2"], ["g3"], name="gelu_mul"),
        helper.make_node("Mul", ["g3", "half"], ["gelu"], name="gelu_half"),
        helper.make_node("ReduceMean", ["gelu"], ["pooled"], axes=[1], keepdims=0, name="pool"),
        helper.make_node("Gemm", ["pooled", "wout", "bout"], ["logits"], name="head"),
        helper.make_node("Identity", ["p"], ["attention"], name="att_out"),
    ]
    inits = [
        _init("emb", rng.normal(0, 1, (32, dim)).astype(np.float32)),
        _init("two", np.array(2.0, np.float32)),
        _init("eps", np.array(1e-5, np.float32)),
        _init("gamma", rng.uniform(0.5, 1.5, dim).astype(np.float32)),
        _init("betaln", rng.normal(0, 0.1, dim).astype(np.float32)),
        _init("wq", rng.normal(0, 0.3, (dim, dim)).astype(np.float32)),
        _init("wk", rng.normal(0, 0.3, (dim, dim)).astype(np.float32)),
        _init("sqrt2", np.array(np.sqrt(2.0), np.float32)),
        _init("one", np.array(1.0, np.float32)),
        _init("half", np.array(0.5, np.float32)),
        _init("wout", rng.normal(0, 0.5, (dim, 4)).astype(np.float32)),
        _init("bout", rng.normal(0, 0.1, 4).astype(np.float32)),
    ]
    graph = helper.make_graph(
        nodes, "small_transformer",
        [helper.make_tensor_value_info("tokens", TensorProto.INT64, [1, seq]),
         helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, seq, dim])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4]),
         helper.make_tensor_value_info("attention", TensorProto.FLOAT, [1, seq, seq])],
        inits,
    )
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), path)


NASTY_NAMES = {
    "input": 'in"put\'\n"""; import os; os.system("echo pwned") #',
    "output": "out\\put\r\n`rm -rf /`|<b>**x**</b>'''",
}


def nasty_names_model(path) -> Path:
    """A model whose tensor and graph names contain quotes, newlines, triple quotes and code."""
    return small_cnn(path, input_name=NASTY_NAMES["input"], output_name=NASTY_NAMES["output"])


def dynamic_batch_model(path) -> Path:
    return small_cnn(path, batch="N")


DETECTOR_ANCHORS = 64


def yolo_like_detector(path, *, transpose: bool = False) -> Path:
    """A YOLOv8-like head: boxes (x 320 px) and Sigmoid class scores concatenated on axis 1."""
    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32), "w0"),
             numpy_helper.from_array(rng.normal(0, 0.3, (4, 8, 1, 1)).astype(np.float32), "wb"),
             numpy_helper.from_array(rng.normal(0, 0.3, (3, 8, 1, 1)).astype(np.float32), "wc"),
             numpy_helper.from_array(np.full((3, 1, 1), -2.0, np.float32), "bias_c"),
             numpy_helper.from_array(np.array(320.0, np.float32), "px"),
             numpy_helper.from_array(np.array([1, 4, DETECTOR_ANCHORS], np.int64), "sb"),
             numpy_helper.from_array(np.array([1, 3, DETECTOR_ANCHORS], np.int64), "sc")]
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["f0"], pads=[1, 1, 1, 1], name="stem"),
        helper.make_node("Relu", ["f0"], ["f"], name="relu"),
        helper.make_node("Conv", ["f", "wb"], ["b0"], name="box_conv"),
        helper.make_node("Sigmoid", ["b0"], ["b1"], name="box_sig"),
        helper.make_node("Mul", ["b1", "px"], ["b2"], name="box_px"),
        helper.make_node("Reshape", ["b2", "sb"], ["boxes"], name="box_flat"),
        helper.make_node("Conv", ["f", "wc"], ["c0"], name="cls_conv"),
        helper.make_node("Add", ["c0", "bias_c"], ["c1"], name="cls_bias"),
        helper.make_node("Reshape", ["c1", "sc"], ["logits"], name="cls_flat"),
        helper.make_node("Sigmoid", ["logits"], ["scores"], name="cls_sig"),
        helper.make_node("Concat", ["boxes", "scores"], ["cat"], axis=1, name="head"),
    ]
    out_shape = [1, 7, DETECTOR_ANCHORS]
    if transpose:
        nodes.append(helper.make_node("Transpose", ["cat"], ["y"], perm=[0, 2, 1], name="to_rows"))
        out_shape = [1, DETECTOR_ANCHORS, 7]
    else:
        nodes[-1].output[0] = "y"
    graph = helper.make_graph(nodes, "det", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], inits)
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


FOCUS_YOLO = ((0, 0), (1, 0), (0, 1), (1, 1))  # YOLOv5/YOLOX: x[..,::2,::2], x[..,1::2,::2], x[..,::2,1::2], x[..,1::2,1::2]


def focus_cnn(path, *, order=FOCUS_YOLO, chained: bool = True, consumer: str = "conv", c: int = 3, hw=(16, 12),
              opset: int = 13) -> Path:
    """YOLO "Focus" stem: the 4 stride-2 views ``x[:, :, dy::2, dx::2]`` (``order`` of (dy, dx)), Concat on
    channels, then ``consumer``: "conv" (Conv 3x3 -> SiLU -> Conv 1x1 head, random weights), "conv2" (two
    Convs read the Concat), "relu" (a Relu, then the Conv head) or "output" (the Concat is the output).
    ``chained``: one Slice per spatial axis (as PyTorch exports ``x[..., ::2, 1::2]``), else one Slice on both."""
    rng = np.random.default_rng(7)
    h, w = hw
    nodes, inits = [], ([_init("steps", np.array([2], np.int64)), _init("end", np.array([2**62], np.int64)),
                         _init("ax_h", np.array([2], np.int64)), _init("ax_w", np.array([3], np.int64)),
                         _init("s0", np.array([0], np.int64)), _init("s1", np.array([1], np.int64))] if chained else
                        [_init("steps2", np.array([2, 2], np.int64)), _init("end2", np.array([2**62, 2**62], np.int64)),
                         _init("ax_hw", np.array([2, 3], np.int64))])
    views = []
    for k, (dy, dx) in enumerate(order):
        if chained:
            nodes += [helper.make_node("Slice", ["x", f"s{dy}", "end", "ax_h", "steps"], [f"v{k}h"], name=f"slice{k}_h"),
                      helper.make_node("Slice", [f"v{k}h", f"s{dx}", "end", "ax_w", "steps"], [f"v{k}"],
                                       name=f"slice{k}_w")]
        else:
            inits.append(_init(f"st{k}", np.array([dy, dx], np.int64)))
            nodes.append(helper.make_node("Slice", ["x", f"st{k}", "end2", "ax_hw", "steps2"], [f"v{k}"], name=f"slice{k}"))
        views.append(f"v{k}")
    nodes.append(helper.make_node("Concat", views, ["focus"], axis=1, name="focus_concat"))
    cout, shape = 8, [1, 4 * c, h // 2, w // 2]
    out_name, out_shape = "y", [1, 4, h // 2, w // 2]
    if consumer == "output":
        nodes.append(helper.make_node("Identity", ["focus"], ["y"], name="out"))
        out_shape = shape
    else:
        inits += [_init("w1", rng.normal(0, 0.3, (cout, 4 * c, 3, 3)).astype(np.float32)),
                  _init("b1", rng.normal(0, 0.1, cout).astype(np.float32)),
                  _init("w2", rng.normal(0, 0.3, (4, cout, 1, 1)).astype(np.float32)),
                  _init("b2", rng.normal(0, 0.1, 4).astype(np.float32))]
        src = "focus"
        if consumer == "relu":
            nodes.append(helper.make_node("Relu", ["focus"], ["focus_r"], name="relu"))
            src = "focus_r"
        nodes += [helper.make_node("Conv", [src, "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="stem_conv"),
                  helper.make_node("Sigmoid", ["c1"], ["g1"], name="stem_sigmoid"),
                  helper.make_node("Mul", ["c1", "g1"], ["a1"], name="stem_silu"),
                  helper.make_node("Conv", ["a1", "w2", "b2"], ["y0" if consumer == "conv2" else "y"], name="head")]
        if consumer == "conv2":  # a second Conv reads the Concat: both get permuted weights
            inits.append(_init("w3", rng.normal(0, 0.3, (4, 4 * c, 1, 1)).astype(np.float32)))
            nodes += [helper.make_node("Conv", ["focus", "w3"], ["c3"], strides=[1, 1], name="side_conv"),
                      helper.make_node("Add", ["y0", "c3"], ["y"], name="join")]
    graph = helper.make_graph(nodes, "focus_cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, h, w])],
                              [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, out_shape)], inits)
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), path)


def config_if_model(path) -> Path:
    """An If on a bool input ``c`` (a configuration input, like silero-vad's sample rate): then
    ``y = -x``, else ``x`` reshaped to ``[-1, 3]`` and summed -- fine for a dynamic length, impossible
    for length 4, so ONNX Runtime cannot load the model pinned to ``x:4`` unless ``c`` is frozen."""
    then_b = helper.make_graph([helper.make_node("Neg", ["x"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", TensorProto.FLOAT, ["m"])])
    else_b = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["e0"]),
                                helper.make_node("ReduceSum", ["e0"], ["e"], keepdims=0)], "else", [],
                               [helper.make_tensor_value_info("e", TensorProto.FLOAT, ["m"])])
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], then_branch=then_b, else_branch=else_b, name="rate_if")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"]), helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["m"])], [_init("shape", np.array([-1, 3], np.int64))])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
