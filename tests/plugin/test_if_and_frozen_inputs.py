"""Control flow on targets without it (issue 19): a run-time If (openWakeWord: ``score >= 0.5`` then a
verifier MLP) is built as both branches + a select on rpi4, Coral (CPU-only ops scheduled after the
TPU segment) and the NCS2; an If on a configuration input (silero-vad's sample rate) is refused with
the input to freeze, and ``--freeze-input`` builds it with a runner that still accepts only that value."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import modelzoo

pytestmark = pytest.mark.plugin


def _init(name, a):
    return numpy_helper.from_array(np.asarray(a), name)


def _wake_word(path):
    """x [1, 16] -> score = sigmoid(x W); if score >= 0.5: a 2-layer verifier on x, else the score."""
    rng = np.random.default_rng(0)
    then_b = helper.make_graph(
        [helper.make_node("Gemm", ["x", "v1", "b1"], ["h"]), helper.make_node("Relu", ["h"], ["hr"]),
         helper.make_node("Gemm", ["hr", "v2"], ["z"]), helper.make_node("Sigmoid", ["z"], ["p2"])],
        "then", [], [helper.make_tensor_value_info("p2", TensorProto.FLOAT, [1, 1])])
    else_b = helper.make_graph([helper.make_node("Identity", ["score"], ["p1"])], "else", [],
                               [helper.make_tensor_value_info("p1", TensorProto.FLOAT, [1, 1])])
    nodes = [helper.make_node("Gemm", ["x", "w"], ["s"]), helper.make_node("Sigmoid", ["s"], ["score"]),
             helper.make_node("GreaterOrEqual", ["score", "half"], ["c"]),
             helper.make_node("If", ["c"], ["y"], then_branch=then_b, else_branch=else_b, name="wake_if")]
    inits = [_init("w", rng.normal(0, 0.3, (16, 1)).astype(np.float32)), _init("half", np.array(0.5, np.float32)),
             _init("v1", rng.normal(0, 0.3, (16, 32)).astype(np.float32)), _init("b1", np.zeros(32, np.float32)),
             _init("v2", rng.normal(0, 0.3, (32, 1)).astype(np.float32))]
    graph = helper.make_graph(nodes, "wake", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def _calib(path, n=48):
    # half the samples above the threshold, half below: both branches are calibrated
    x = np.random.default_rng(1).normal(0, 2.0, (n, 1, 16)).astype(np.float32)
    np.save(path, x)
    return path


@pytest.mark.parametrize("target,precision,plugins,runtime", [
    ("rpi4", "fp32", "profiles,tflite", "ai_edge_litert"),
    ("rpi4", "int8", "profiles,tflite", "ai_edge_litert"),
    ("coral-usb", "int8", "profiles,tflite,edgetpu", "ai_edge_litert"),
    ("ncs2", "fp16", "profiles,openvino", "openvino"),
])
def test_run_time_if_runs_both_branches_and_selects(cli, tmp_path, target, precision, plugins, runtime):
    pytest.importorskip(runtime)
    model, out = _wake_word(tmp_path / "wake.onnx"), tmp_path / "b"
    r = cli("build", model, "--target", target, "-p", precision, "--calibration", _calib(tmp_path / "c.npy"),
            "-o", out, env={"DEPLOYKIT_PLUGINS": plugins})
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert json.loads((out / "manifest.json").read_text())["verification"]["status"] == "passed"
    br = report["backend_report"]
    if target == "ncs2":
        assert br["if_to_select"] == ["wake_if"]
        return
    assert br["rewrites"]["if_to_select"] == ["wake_if"]
    if target == "coral-usb":  # the test and the select run on the CPU after the TPU segment, not before the verifier
        tpu = br["edgetpu"]
        assert tpu["tpu_mac_share"] == 1.0, tpu
        assert tpu["first_cpu_op"]["op"] == "GREATER_EQUAL", tpu  # unscheduled, the verifier MLP followed it
    # both branches are really taken by the held-out inputs and the bundle matches ONNX Runtime on each
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model))
    fresh = np.random.default_rng(7).normal(0, 2.0, (64, 1, 16)).astype(np.float32)  # never calibrated on
    taken = {}
    w = numpy_helper.to_array(next(t for t in onnx.load(str(model)).graph.initializer if t.name == "w"))
    for x in fresh:
        taken.setdefault(bool(1 / (1 + np.exp(-(x @ w).item())) >= 0.5), x)
    assert set(taken) == {True, False}
    np.save(out / "probe.npy", np.stack([taken[False], taken[True]]))
    code = ("import json, numpy as np, runner\nr = runner.Runner()\n"
            "print(json.dumps([float(r.run({'x': x})['y'].ravel()[0]) for x in np.load('probe.npy')]))\n")
    got = json.loads(subprocess.run([sys.executable, "-c", code], cwd=out, capture_output=True, text=True,
                                    check=True).stdout.strip().splitlines()[-1])
    want = [float(sess.run(None, {"x": taken[k]})[0].ravel()[0]) for k in (False, True)]
    assert np.allclose(got, want, atol=0.05 if precision == "int8" else 1e-4), (got, want)


def test_if_on_a_configuration_input_is_refused_with_the_input_to_freeze(cli, tmp_path):
    pytest.importorskip("ai_edge_litert")
    model = modelzoo.config_if_model(tmp_path / "cfg.onnx")
    for target, plugins in (("host", "profiles,onnxruntime"), ("rpi4", "profiles,tflite")):
        out = tmp_path / f"no-{target}"
        r = cli("build", model, "--target", target, "-p", "fp32", "--input-shape", "x:4", "-o", out,
                env={"DEPLOYKIT_PLUGINS": plugins})
        assert r.returncode != 0 and not out.exists()
        errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and "--freeze-input c=VALUE" in errors[0], r.stderr[-2000:]
        assert "Traceback" not in r.stderr


@pytest.mark.parametrize("target,plugins", [("host", "profiles,onnxruntime"), ("rpi4", "profiles,tflite")])
def test_freeze_input_builds_and_the_runner_accepts_only_the_frozen_value(cli, tmp_path, target, plugins):
    if target == "rpi4":
        pytest.importorskip("ai_edge_litert")
    model, out = modelzoo.config_if_model(tmp_path / "cfg.onnx"), tmp_path / "b"
    r = cli("build", model, "--target", target, "-p", "fp32", "--input-shape", "x:4", "--freeze-input", "c=true", "-o", out,
            env={"DEPLOYKIT_PLUGINS": plugins})
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out / "manifest.json").read_text())
    assert m["verification"]["status"] == "passed"
    assert [i["name"] for i in m["inputs"]] == ["x"]
    assert m["build_options"]["frozen_inputs"] == [{"name": "c", "dtype": "bool", "shape": [], "value": [True]}]
    code = ("import numpy as np, runner\nr = runner.Runner()\nx = np.arange(4, dtype=np.float32)\n"
            "print(r.run({'x': x})['y'].tolist(), r.run({'x': x, 'c': np.array(True)})['y'].tolist())\n"
            "try:\n    r.run({'x': x, 'c': np.array(False)})\nexcept ValueError as e:\n    print('refused:', e)\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=out, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert lines[0].replace("-0.0", "0.0") == "[0.0, -1.0, -2.0, -3.0] [0.0, -1.0, -2.0, -3.0]"
    assert lines[1].startswith("refused: input 'c' was frozen to [True]")


@pytest.mark.parametrize("args,message", [
    (["--freeze-input", "c"], "malformed --freeze-input 'c'"),
    (["--freeze-input", "rate=1"], "--freeze-input names 'rate', which is not a model input"),
    (["--freeze-input", "c=maybe"], "is not a valid bool value"),
    (["--freeze-input", "c=1", "--freeze-input", "c=0"], "given twice"),
    (["--freeze-input", "c=1", "--freeze-input", "x=1,2,3,4"], "given both --input-shape and --freeze-input"),
    (["--freeze-input", "c=1,0"], "2 value(s) do not fill input 'c'"),
])
def test_bad_freeze_input_is_one_line(cli, tmp_path, args, message):
    model, out = modelzoo.config_if_model(tmp_path / "cfg.onnx"), tmp_path / "b"
    r = cli("build", model, "--target", "host", "--input-shape", "x:4", *args, "-o", out)
    assert r.returncode == 2 and not out.exists(), r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], r.stderr
