import glob
import os

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from passes_testlib import assert_same_outputs, helper, init, make_model, op_types, random_feeds, run

from deploykit.ir import load_model, to_proto
from deploykit.passes import CANONICAL_PASSES, PASS_REGISTRY, canonicalize

pytestmark = pytest.mark.unit
RNG = np.random.default_rng(4)
LIGHT = sorted(glob.glob(os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light", "light_*.onnx")))


def test_registry_matches_pipeline():
    assert list(PASS_REGISTRY.values()) == CANONICAL_PASSES
    for cls in CANONICAL_PASSES:
        assert issubclass(cls, ir.passes.PassBase) and cls.__doc__


def _mobile_block(opset=17):
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["px"]),
        helper.make_node("Conv", ["px", "w"], ["c"]),
        helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["bn"]),
        helper.make_node("Add", ["bn", "three"], ["a"]),
        helper.make_node("Clip", ["a", "zero", "six"], ["r6"]),
        helper.make_node("Mul", ["bn", "r6"], ["hm"]),
        helper.make_node("Div", ["hm", "six"], ["hs"]),
        helper.make_node("Shape", ["hs"], ["shape"]),
        helper.make_node("Gather", ["shape", "i0"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["flat"], axis=0),
        helper.make_node("Reshape", ["hs", "flat"], ["r"]),
        helper.make_node("Identity", ["r"], ["y"]),
    ]
    inits = [
        init("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)),
        init("w", RNG.standard_normal((8, 3, 3, 3)).astype(np.float32)),
        init("s", RNG.uniform(0.5, 2, 8).astype(np.float32)),
        init("b", RNG.standard_normal(8).astype(np.float32)),
        init("m", RNG.standard_normal(8).astype(np.float32)),
        init("v", RNG.uniform(0.5, 2, 8).astype(np.float32)),
        init("three", np.float32(3)), init("zero", np.float32(0)), init("six", np.float32(6)),
        init("i0", np.array(0, np.int64)), init("ax0", np.array([0], np.int64)), init("minus1", np.array([-1], np.int64)),
    ]
    return make_model(nodes, [("x", [1, 3, 8, 8])], [("y", [1, 512])], inits, opset)


def test_mobile_block_canonicalizes():
    proto = _mobile_block()
    model = canonicalize(ir.from_proto(proto))
    assert op_types(model) == ["Conv", "HardSwish", "Reshape"]
    assert [(o.name, o.dtype, o.shape) for o in model.graph.outputs] == [("y", ir.DataType.FLOAT, ir.Shape([1, 512]))]
    assert [i.name for i in model.graph.inputs] == ["x"]
    assert_same_outputs(proto, model)


def test_canonicalize_reaches_a_fixed_point():
    model = canonicalize(ir.from_proto(_mobile_block()))
    for cls in CANONICAL_PASSES:
        assert not cls()(model).modified, cls.__name__


def test_custom_pass_list_and_opset_gate():
    proto = _mobile_block(opset=13)
    model = canonicalize(ir.from_proto(proto), passes=[PASS_REGISTRY["hardswish-fusion"]])
    assert "HardSwish" not in op_types(model)
    model = canonicalize(ir.from_proto(proto))
    assert "HardSwish" not in op_types(model) and "HardSigmoid" not in op_types(model)
    assert_same_outputs(proto, model)


def test_transformer_block_canonicalizes():
    from test_gelu_fusion import erf_gelu
    from test_layernorm_fusion import layernorm_model

    for proto, fused in ((erf_gelu(), "Gelu"), (layernorm_model(20, shape=(2, 8)), "LayerNormalization")):
        model = canonicalize(ir.from_proto(proto))
        assert fused in op_types(model)
        assert_same_outputs(proto, model)


def _compare_with_original(path: str, model: ir.Model) -> None:
    original = onnx.load(path)
    inits = {t.name for t in original.graph.initializer}
    feeds = {k: v for k, v in random_feeds(original).items() if k not in inits}
    proto = to_proto(model)
    assert [i.name for i in proto.graph.input] == list(feeds)
    assert [o.name for o in proto.graph.output] == [o.name for o in original.graph.output]
    for r, g in zip(run(original, feeds), run(proto, feeds)):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4 * max(float(np.abs(r).max()), 1e-6))


@pytest.mark.parametrize("path", LIGHT, ids=[os.path.basename(p)[:-5] for p in LIGHT])
def test_light_models(path):
    model = canonicalize(load_model(path))
    ops = set(op_types(model))
    assert not ops & {"BatchNormalization", "ConstantOfShape", "Dropout", "Identity", "Constant"}, ops
    _compare_with_original(path, model)


def test_ppocr_cls():
    rapidocr = pytest.importorskip("rapidocr_onnxruntime")
    path = os.path.join(os.path.dirname(rapidocr.__file__), "models", "ch_ppocr_mobile_v2.0_cls_infer.onnx")
    if not os.path.exists(path):
        pytest.skip("rapidocr wheel without the cls model")
    model = canonicalize(load_model(path, {"x": [1, 3, 48, 192]}))
    assert "BatchNormalization" not in op_types(model)
    assert "HardSigmoid" in op_types(model)  # opset 11: HardSwish is not available, HardSigmoid is
    original = onnx.load(path)
    x = RNG.standard_normal((1, 3, 48, 192)).astype(np.float32)
    for r, g in zip(run(original, {"x": x}), run(to_proto(model), {"x": x})):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5)
