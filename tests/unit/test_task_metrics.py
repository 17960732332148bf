"""Task metrics (--eval-data / --metric): the built-in metrics, eval files, budgets, user functions,
and the engine and build driven by them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import modelzoo
from deploykit.errors import DeployError
from deploykit.ir import graph_inputs, load_model
from deploykit.ir.info import TensorSpec
from deploykit.passes import canonicalize
from deploykit.quant.calibration import SampleSet
from deploykit.quant.engine import QuantConfig, quantize_model
from deploykit.quant.scheme import COMPUTE_OPS, QuantScheme
from deploykit.quant.task_metrics import TaskBudget, ctc_greedy, load_eval_data, parse_metric, yolo_detections

pytestmark = pytest.mark.unit


def _outs(arrays, name="y"):
    return [{name: np.asarray(a)[None]} for a in arrays]


def test_classification_metrics():
    scores = [[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]]
    labels = {"labels": np.array([1, 1, 1])}
    assert parse_metric("top1")(_outs(scores), labels) == pytest.approx(1 / 3)
    assert parse_metric("topk:2")(_outs(scores), labels) == pytest.approx(1.0)


def test_argmax_metric_ignores_minus_one():
    out = np.zeros((1, 3, 2, 2), np.float32)  # NCHW segmentation logits
    out[0, 2] = 1  # every pixel class 2
    labels = {"labels": np.array([[[2, 2], [0, -1]]])}
    assert parse_metric("argmax")([{"y": out}], labels) == pytest.approx(2 / 3)


def test_ctc_metric():
    blank, a, b = 0, 1, 2
    path = [a, a, blank, b, b, blank, a]
    out = np.eye(3, dtype=np.float32)[path][None]  # [1, T, C]
    assert ctc_greedy(out) == [a, b, a]
    labels = {"labels": np.array([[a, b, a, -1], [a, b, b, a]])}
    # second sample predicts a,b,a for a,b,b,a: one deletion in 4
    assert parse_metric("ctc")([{"y": out}, {"y": out}], labels) == pytest.approx(1 - 1 / 7)


def test_detection_metric_map50():
    # two anchors, one class: [1, 4 + 1, 2] with cx, cy, w, h in pixels
    out = np.array([[[50, 150], [50, 150], [20, 20], [20, 20], [0.9, 0.8]]], np.float32)
    assert len(yolo_detections(out)) == 2
    truth = np.array([[[0, 40, 40, 60, 60], [0, 140, 140, 160, 160]]], np.float32)
    metric = parse_metric("detection")
    assert metric([{"y": out}], {"labels": truth}) == pytest.approx(1.0)
    missing = out.copy()
    missing[0, 4] = 0.0  # scores gone: nothing detected
    assert metric([{"y": missing}], {"labels": truth}) == 0.0


def test_sqnr_metric_needs_no_labels():
    ref = _outs([[1.0, 2.0], [3.0, 4.0]])
    noisy = _outs([[1.0, 2.1], [3.0, 4.0]])
    m = parse_metric("sqnr")
    assert not m.needs_labels
    assert m(ref, {}, ref) == math.inf and 20 < m(noisy, {}, ref) < 40


def test_user_metric_loaded_only_when_named(tmp_path):
    f = tmp_path / "my_metric.py"
    f.write_text("import numpy as np\ndef score(outputs, labels):\n    return float(np.mean(outputs['y']))\n")
    m = parse_metric(f"{f}:score")
    assert m(_outs([[1.0, 3.0]]), {}) == 2.0
    with pytest.raises(DeployError, match="has no function 'nope'"):
        parse_metric(f"{f}:nope")
    with pytest.raises(DeployError, match="no such file"):
        parse_metric(f"{tmp_path / 'missing.py'}:score")
    bad = tmp_path / "broken.py"
    bad.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(DeployError, match="importing .* failed: RuntimeError: boom"):
        parse_metric(f"{bad}:score")
    with pytest.raises(DeployError, match="unknown --metric"):
        parse_metric("accuracy")


def test_task_budget_parsing():
    top1 = parse_metric("top1")
    assert TaskBudget.parse(top1, None).drop == 0.5
    b = TaskBudget.parse(top1, "top1=-0.2")
    assert b.drop == 0.2 and b.met(0.981, 0.983) and not b.met(0.979, 0.983)
    with pytest.raises(DeployError, match="top1=-0.5"):
        TaskBudget.parse(top1, "cosine=0.99")
    sq = TaskBudget.parse(parse_metric("sqnr"), None)
    assert str(sq) == "sqnr >= 25 dB" and sq.met(26, math.inf) and not sq.met(24, math.inf)


def test_eval_file_errors(tmp_path):
    inputs = [TensorSpec("x", [1, 3], "float32")]
    np.savez(tmp_path / "ok.npz", x=np.zeros((5, 3), np.float32), labels=np.arange(5))
    ev = load_eval_data(tmp_path / "ok.npz", inputs)
    assert len(ev) == 5 and ev.feeds[0]["x"].shape == (1, 3) and list(ev.labels) == ["labels"]
    np.savez(tmp_path / "wrong.npz", image=np.zeros((5, 3), np.float32))
    with pytest.raises(DeployError, match="no array for input\\(s\\) 'x'; it holds 'image'"):
        load_eval_data(tmp_path / "wrong.npz", inputs)
    np.savez(tmp_path / "count.npz", x=np.zeros((5, 3), np.float32), labels=np.arange(4))
    with pytest.raises(DeployError, match="same number of samples"):
        load_eval_data(tmp_path / "count.npz", inputs)
    x = np.zeros((2, 3), np.float32)
    x[1, 1] = np.nan
    np.savez(tmp_path / "nan.npz", x=x, labels=np.arange(2))
    with pytest.raises(DeployError, match="NaN"):
        load_eval_data(tmp_path / "nan.npz", inputs)
    with pytest.raises(DeployError, match="use a .npz"):
        load_eval_data(tmp_path / "ok.npy", inputs)


def _classifier_data(tmp_path, n):
    model = canonicalize(load_model(modelzoo.small_cnn(tmp_path / "m.onnx")))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3, 16, 16)).astype(np.float32)
    return model, x


def test_engine_driven_by_the_task_metric(tmp_path):
    import onnxruntime as ort

    model, x = _classifier_data(tmp_path, 60)
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    labels = np.array([int(np.argmax(sess.run(None, {"image": x[i:i + 1]})[0])) for i in range(40, 60)])
    np.savez(tmp_path / "eval.npz", image=x[40:], labels=labels)  # fp32 is right on every sample
    ev = load_eval_data(tmp_path / "eval.npz", graph_inputs(model))
    task = TaskBudget.parse(parse_metric("top1"), "top1=-0.5")
    logs: list[str] = []
    calib = SampleSet({"image": x[:40]}, graph_inputs(model))
    r = quantize_model(model, calib, QuantScheme(quantize_ops=COMPUTE_OPS), QuantConfig(task=task, eval_set=ev),
                       log=logs.append)
    tm = r.report["task_metric"]
    assert tm["metric"] == "top1" and tm["fp32"] == 1.0 and tm["samples"] == 20
    assert r.report["budget"] == "top1 >= fp32 - 0.5 pt"
    assert r.budget_met == (tm["int8_simulated"] >= 0.995)
    assert any("task metric top1 on 20 evaluation samples" in m for m in logs)
    assert all("score" in t for t in r.report["methods_tried"])


def test_build_reports_and_enforces_the_task_metric(tmp_path, cli):
    modelzoo.small_cnn(tmp_path / "m.onnx")
    rng = np.random.default_rng(1)
    np.save(tmp_path / "calib.npy", rng.normal(size=(32, 3, 16, 16)).astype(np.float32))
    np.savez(tmp_path / "eval.npz", image=rng.normal(size=(40, 3, 16, 16)).astype(np.float32), labels=np.zeros(40))
    r = cli("build", tmp_path / "m.onnx", "--target", "host", "-p", "int8", "-c", tmp_path / "calib.npy",
            "--eval-data", tmp_path / "eval.npz", "--metric", "top1", "--accuracy-budget", "top1=-100",
            "-o", tmp_path / "ok")
    assert r.returncode == 0, r.stderr
    assert "task metric top1 on 40 evaluation samples: fp32" in r.stderr
    m = json.loads((tmp_path / "ok" / "manifest.json").read_text())
    assert m["verification"]["task"]["met"] and m["build_options"]["metric"] == "top1"
    # a user metric only fp32 itself meets (minus the distance to fp32's outputs), with no drop allowed
    import onnxruntime as ort

    ev = np.load(tmp_path / "eval.npz")["image"]
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    np.save(tmp_path / "fp32.npy", np.concatenate([sess.run(None, {"image": ev[i:i + 1]})[0] for i in range(len(ev))]))
    (tmp_path / "exact.py").write_text(
        f"import numpy as np\nREF = np.load({str(tmp_path / 'fp32.npy')!r})\n"
        "def exact(outputs, labels):  # any subset of the samples: each row against its nearest fp32 row\n"
        "    o = outputs['scores']\n"
        "    return -float(np.abs(o[:, None, :] - REF[None]).max(axis=2).min(axis=1).max())\n")
    r = cli("build", tmp_path / "m.onnx", "--target", "host", "-p", "int8", "-c", tmp_path / "calib.npy",
            "--eval-data", tmp_path / "eval.npz", "--metric", f"{tmp_path / 'exact.py'}:exact",
            "--accuracy-budget", "exact=-0", "--strict", "-o", tmp_path / "bad")
    assert r.returncode == 4, r.stderr
    assert "task metric exact" in r.stderr and "verification FAILED" in r.stderr
    for args, msg in ((["--metric", "top1"], "needs --eval-data"), (["--eval-data", tmp_path / "eval.npz"], "needs --metric")):
        r = cli("build", tmp_path / "m.onnx", "--target", "host", "-p", "fp32", *args, "-o", tmp_path / "x")
        assert r.returncode != 0 and msg in r.stderr and not (tmp_path / "x").exists()
