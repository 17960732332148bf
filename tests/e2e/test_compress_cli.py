"""End-to-end compression through the CLI: ``deploykit optimize`` and ``deploykit build --compress``."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest


pytestmark = pytest.mark.e2e

HAS_LITERT = importlib.util.find_spec("ai_edge_litert") is not None


@pytest.fixture
def calib(tmp_path):
    path = tmp_path / "calib.npy"
    np.save(path, np.random.default_rng(3).standard_normal((24, 3, 16, 16)).astype(np.float32))
    return path


def _assert_one_error_line(res):
    assert res.returncode != 0
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.stderr


def test_optimize_auto_writes_a_runnable_model(cli, cnn, calib, tmp_path):
    out = tmp_path / "small.onnx"
    res = cli("optimize", cnn, "--compress", "auto", "--calibration", calib, "-o", out, "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    c = report["compression"]
    assert [s["name"] for s in c["steps"]] == ["prune", "lowrank", "cluster"]
    assert c["params_after"] <= c["params_before"] and c["budget_met"]  # a tiny random CNN has little to spare
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    ref = ort.InferenceSession(str(cnn), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    assert got.shape == ref.shape
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib.npy", "cnn.onnx", "small.onnx"]  # no temp files


def test_optimize_fixed_spec_table(cli, cnn, tmp_path):
    out = tmp_path / "c.onnx"
    res = cli("optimize", cnn, "--compress", "prune=0.5,sparsity=0.5,cluster=16", "-o", out)
    assert res.returncode == 0, res.stderr
    for word in ("prune", "sparsity", "cluster", "params"):
        assert word in res.stdout
    assert out.is_file()
    res = cli("optimize", cnn, "--compress", "cluster=16", "-o", out)  # exists, no --force
    _assert_one_error_line(res)


@pytest.mark.parametrize("spec", ["prune=1.5", "nope=1", "prune", "cluster=auto,foo=2", "missing.toml"])
def test_bad_spec_optimize(cli, cnn, tmp_path, spec):
    out = tmp_path / "x.onnx"
    res = cli("optimize", cnn, "--compress", spec, "-o", out)
    _assert_one_error_line(res)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cnn.onnx"]


def test_bad_spec_build_leaves_nothing(cli, cnn, tmp_path):
    out = tmp_path / "bundle"
    res = cli("build", cnn, "--target", "host", "--compress", "lowrank=7", "-o", out)
    _assert_one_error_line(res)
    assert not out.exists()


def _check_bundle(cli, out, spec):
    manifest = json.loads((out / "manifest.json").read_text())
    report = json.loads((out / "report.json").read_text())
    assert manifest["build_options"]["compress"] == spec
    assert report["compression"]["steps"] and report["compression"]["budget_met"]
    assert manifest["verification"]["status"] == "passed"
    if "effect" in report:  # written by deploykit.effect
        assert (out / "report.html").is_file() and "report.html" in manifest["files"]
        names = [row["name"] for row in report["effect"]]
        assert names[0] == "fp32" and "prune" in names
    res = cli("verify", out)
    assert res.returncode == 0, res.stderr  # every file (report.html included) hashed in the manifest


def test_build_host_with_compress(cli, cnn, calib, tmp_path):
    out = tmp_path / "host"
    res = cli("build", cnn, "--target", "host", "--compress", "auto", "--calibration", calib, "-o", out)
    assert res.returncode == 0, res.stderr
    assert "compression" in res.stderr
    _check_bundle(cli, out, "prune=auto,lowrank=auto,cluster=auto")


@pytest.mark.skipif(not HAS_LITERT, reason="ai-edge-litert not installed")
def test_build_rpi4_int8_with_compress(cli, cnn, calib, tmp_path):
    out = tmp_path / "rpi4"
    res = cli("build", cnn, "--target", "rpi4", "--precision", "int8", "--compress", "prune=auto,cluster=64",
              "--calibration", calib, "-o", out, env={"DEPLOYKIT_PLUGINS": "profiles,onnxruntime,tflite"})
    assert res.returncode == 0, res.stderr
    _check_bundle(cli, out, "prune=auto,cluster=64")
    assert (out / "model.tflite").is_file()


@pytest.mark.slow
def test_ppocr_cls_auto_keeps_the_budget_on_unseen_lines(cli, ppocr_cls, tmp_path):
    """The default spec on a real model: tuned on 64 rendered lines, checked on 200 others."""
    import importlib.util
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[2] / "benchmarks" / "datasets" / "textlines.py"
    spec = importlib.util.spec_from_file_location("deploykit_bench_textlines_compress", bench)
    T = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = T
    spec.loader.exec_module(T)
    try:
        fonts = T.find_fonts()
    except T.FontsNotFound as e:
        pytest.skip(str(e))
    calib, _ = T.cls_dataset(64, seed=11, fonts=fonts)
    x, _ = T.cls_dataset(200, seed=31, fonts=fonts)
    np.save(tmp_path / "calib.npy", calib.astype(np.float32))
    out = tmp_path / "cls.auto.onnx"
    res = cli("optimize", ppocr_cls, "--compress", "auto", "--calibration", tmp_path / "calib.npy",
              "--input-shape", "x:1,3,48,192", "-o", out, "--json")
    assert res.returncode == 0, res.stderr
    c = json.loads(res.stdout)["compression"]
    assert c["macs_after"] < c["macs_before"]
    ref_sess = ort.InferenceSession(str(ppocr_cls), providers=["CPUExecutionProvider"])
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    ref = np.concatenate([ref_sess.run(None, {"x": x[i:i + 1]})[0] for i in range(len(x))]).ravel()
    got = np.concatenate([sess.run(None, {"x": x[i:i + 1]})[0] for i in range(len(x))]).ravel()
    cosine = float(ref @ got / np.linalg.norm(ref) / np.linalg.norm(got))
    assert cosine >= 0.99, f"held-out cosine {cosine:.5f} below the 0.99 budget"
