"""Distillation after pruning recovers the original's outputs (needs torch)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch")

from deploykit.compress import compress, parse_spec  # noqa: E402
from deploykit.train import distill  # noqa: E402

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    out = tmp_path_factory.mktemp("quickstart")
    subprocess.run([sys.executable, str(REPO / "examples" / "quickstart" / "make_model.py"), "--out", str(out)],
                   check=True, capture_output=True, timeout=600)
    model = onnx.load(out / "model.onnx")
    calib = np.load(out / "calib.npy")
    name = model.graph.input[0].name
    return model, [{name: calib[i:i + 1]} for i in range(len(calib))]


def _outputs(model, feeds):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, f)[0] for f in feeds])


def _cosine(a, b):
    return float((a.ravel() @ b.ravel()) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_distillation_recovers_a_pruned_model(quickstart):
    teacher, samples = quickstart
    pruned = compress(teacher, parse_spec("prune=0.25"), samples=samples, budget=0.99).model
    assert sum(t.ByteSize() for t in pruned.graph.initializer) < sum(t.ByteSize() for t in teacher.graph.initializer)
    logs = []
    trained, d = distill(pruned, teacher, samples, steps=150, lr=3e-3, log=logs.append)
    assert d["applied"] and d["heldout_samples"] == min(4, len(samples) // 5)
    assert d["loss_after"] < 0.5 * d["loss_before"]
    assert d["heldout_loss_after"] < d["heldout_loss_before"]
    assert d["heldout_cosine_after"] > d["heldout_cosine_before"]
    assert any("step 150/150" in m for m in logs)
    # same graph, same initializer names, shapes and dtypes; only values changed
    onnx.checker.check_model(trained, full_check=True)
    assert [n.SerializeToString() for n in trained.graph.node] == [n.SerializeToString() for n in pruned.graph.node]
    before = {t.name: (t.data_type, list(t.dims)) for t in pruned.graph.initializer}
    assert {t.name: (t.data_type, list(t.dims)) for t in trained.graph.initializer} == before
    # held-out agreement with the teacher (samples the training never saw) is better than the pruned model's
    check = samples[-d["heldout_samples"]:]
    ref = _outputs(teacher, check)
    assert _cosine(_outputs(trained, check), ref) > _cosine(_outputs(pruned, check), ref)


def test_distillation_is_deterministic_and_keeps_dtypes(quickstart):
    from onnx import numpy_helper

    teacher, samples = quickstart
    a, d1 = distill(teacher, teacher, samples[:20], steps=5, lr=1e-3, seed=3)
    b, _ = distill(teacher, teacher, samples[:20], steps=5, lr=1e-3, seed=3)
    assert d1["loss_before"] < 1e-10  # the teacher distilled from itself starts at zero loss
    ga = {t.name: numpy_helper.to_array(t) for t in a.graph.initializer}
    gb = {t.name: numpy_helper.to_array(t) for t in b.graph.initializer}
    ref = {t.name: numpy_helper.to_array(t) for t in teacher.graph.initializer}
    assert all(np.array_equal(ga[k], gb[k]) and ga[k].dtype == ref[k].dtype for k in ga)


def test_softmax_outputs_are_compared_on_logits(quickstart):
    from onnx import helper

    teacher, samples = quickstart
    out = teacher.graph.output[0].name
    sm = onnx.ModelProto()
    sm.CopyFrom(teacher)
    sm.graph.node.append(helper.make_node("Softmax", [out], ["prob"], axis=1, name="softmax"))
    sm.graph.output[0].name = "prob"
    pruned = compress(sm, parse_spec("prune=0.25"), samples=samples, budget=0.99).model
    _, d = distill(pruned, sm, samples, steps=3, lr=1e-3)
    assert d["compared"] == [f"logits of {out}"]


def test_optimize_finetune_cli(tmp_path):
    """``deploykit optimize --finetune`` writes the distilled model and reports it in --json."""
    import json

    subprocess.run([sys.executable, str(REPO / "examples" / "quickstart" / "make_model.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True, timeout=600)
    p = subprocess.run([sys.executable, "-m", "deploykit.cli.app", "optimize", "model.onnx", "--compress", "prune=0.25",
                        "--calibration", "calib.npy", "--finetune", "60", "--finetune-lr", "3e-3", "-o", "out.onnx", "--json"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=600, check=False)
    assert p.returncode == 0, p.stderr
    ft = json.loads(p.stdout)["compression"]["finetune"]
    assert ft["steps"] == 60 and ft["lr"] == 3e-3 and ft["loss_after"] < ft["loss_before"]
    onnx.checker.check_model(onnx.load(tmp_path / "out.onnx"), full_check=True)
