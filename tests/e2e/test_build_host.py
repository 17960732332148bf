"""End-to-end: ``deploykit build --target host`` through the CLI, then the bundle's Runner."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest

import modelzoo
from deploykit.verification import load_runner_module

pytestmark = pytest.mark.e2e


def _ort_outputs(model_path, feeds):
    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def _random_feeds(runner, seed=1):
    rng = np.random.default_rng(seed)
    feeds = {}
    for s in runner.inputs:
        if np.dtype(s["dtype"]).kind == "f":
            feeds[s["name"]] = rng.standard_normal(s["shape"]).astype(s["dtype"])
        else:
            feeds[s["name"]] = rng.integers(0, 8, size=s["shape"]).astype(s["dtype"])
    return feeds


def _assert_close(refs, outs, rel):
    """Max abs error relative to the output's range over all samples."""
    for name in refs[0]:
        r = np.stack([x[name] for x in refs]).astype(np.float64)
        o = np.stack([x[name] for x in outs])
        assert o.shape == r.shape and o.dtype == np.float32
        scale = max(float(np.ptp(r)), 1e-6)
        err = float(np.max(np.abs(o.astype(np.float64) - r))) / scale
        assert err <= rel, f"{name}: error {err:.3g} of range > {rel}"


def _build_and_compare(cli, model, out, *extra, rel=1e-4, shapes=None):
    args = ["build", model, "--target", "host", "-o", out, *extra]
    for s in shapes or []:
        args += ["--input-shape", s]
    res = cli(*args)
    assert res.returncode == 0, res.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["verification"]["status"] == "passed", manifest["verification"]
    runner = load_runner_module(out).Runner(str(out))
    feeds = [_random_feeds(runner, seed) for seed in range(4)]
    _assert_close([_ort_outputs(model, f) for f in feeds], [runner.run(f) for f in feeds], rel)
    return manifest


@pytest.mark.parametrize("model", modelzoo.LIGHT_MODELS, ids=lambda p: p.stem)
def test_light_models_fp32(cli, tmp_path, model):
    _build_and_compare(cli, model, tmp_path / "b")


def test_ppocr_cls_all_precisions(cli, tmp_path, ppocr_cls):
    shape = ["x:1,3,48,192"]
    m = _build_and_compare(cli, ppocr_cls, tmp_path / "fp32", shapes=shape)
    assert m["inputs"][0]["shape"] == [1, 3, 48, 192]
    _build_and_compare(cli, ppocr_cls, tmp_path / "fp16", "--precision", "fp16", rel=1e-2, shapes=shape)
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(0).uniform(-1, 1, (24, 3, 48, 192)).astype(np.float32))
    res = cli("build", ppocr_cls, "--target", "host", "-o", tmp_path / "int8", "-p", "int8", "-c", calib, "--input-shape", shape[0])
    assert res.returncode == 0, res.stderr
    m = json.loads((tmp_path / "int8" / "manifest.json").read_text())
    assert m["precision"] == "int8" and m["verification"]["status"] == "passed"
    out = next(iter(m["verification"]["outputs"].values()))
    assert out["cosine"] > 0.98


@pytest.mark.parametrize("builder", [modelzoo.small_cnn, modelzoo.small_transformer], ids=["cnn", "transformer"])
def test_own_models_fp32_fp16(cli, tmp_path, builder):
    model = builder(tmp_path / "m.onnx")
    _build_and_compare(cli, model, tmp_path / "fp32")
    _build_and_compare(cli, model, tmp_path / "fp16", "--precision", "fp16", rel=1e-2)


def test_int8_multi_input_npz(cli, tmp_path):
    model = modelzoo.small_transformer(tmp_path / "m.onnx")
    rng = np.random.default_rng(3)
    calib = tmp_path / "calib.npz"
    np.savez(calib, tokens=rng.integers(0, 32, (16, 8)), features=rng.standard_normal((16, 8, 16)).astype(np.float32))
    res = cli("build", model, "--target", "host", "-o", tmp_path / "q", "-p", "int8", "-c", calib, "--json")
    assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout)
    assert result["manifest"]["precision"] == "int8"
    assert set(result["manifest"]["verification"]["outputs"]) == {"logits", "attention"}


def test_bundle_is_deterministic_and_verifiable(cli, tmp_path, cnn):
    for name in ("a", "b"):
        assert cli("build", cnn, "--target", "host", "-o", tmp_path / name).returncode == 0
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert set(manifest["files"]) == {str(p) for p in files_a if str(p) != "manifest.json"}
    for key in ("schema_version", "deploykit_version", "target", "backend", "precision", "inputs", "outputs",
                "source_model", "build_options", "verification", "plugins"):
        assert key in manifest
    res = cli("verify", tmp_path / "a")
    assert res.returncode == 0, res.stderr
    (tmp_path / "a" / "model.onnx").write_bytes((tmp_path / "a" / "model.onnx").read_bytes() + b"\0")
    res = cli("verify", tmp_path / "a")
    assert res.returncode != 0 and "sha256 mismatch" in res.stderr


def test_run_command_and_runner_cli(cli, tmp_path, cnn):
    out = tmp_path / "b"
    assert cli("build", cnn, "--target", "host", "-o", out).returncode == 0
    x = np.random.default_rng(5).standard_normal((1, 3, 16, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    res = cli("run", out, "--input", f"image={tmp_path / 'x.npy'}", "--output", tmp_path / "y.npz")
    assert res.returncode == 0, res.stderr
    y = np.load(tmp_path / "y.npz")["scores"]
    ref = _ort_outputs(cnn, {"image": x})["scores"]
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)
    res = subprocess.run([sys.executable, "runner.py", "--input", f"image={tmp_path / 'x.npy'}", "--output",
                          str(tmp_path / "z.npz"), "--benchmark", "3"], cwd=out, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "latency over 3 runs" in res.stdout
    np.testing.assert_allclose(np.load(tmp_path / "z.npz")["scores"], ref, rtol=1e-4, atol=1e-5)


def test_nasty_names_build_and_run_safely(cli, tmp_path):
    model = modelzoo.nasty_names_model(tmp_path / "nasty.onnx")
    out = tmp_path / "b"
    res = cli("build", model, "--target", "host", "-o", out)
    assert res.returncode == 0, res.stderr
    source = (out / "runner.py").read_text()
    compile(source, "runner.py", "exec")
    assert "pwned" not in source.replace("\\", "").split("SPEC = ")[0]
    runner = load_runner_module(out).Runner(str(out))
    assert [s["name"] for s in runner.inputs] == [modelzoo.NASTY_NAMES["input"]]
    x = np.zeros((1, 3, 16, 16), np.float32)
    out_name = modelzoo.NASTY_NAMES["output"]
    y = runner.run({modelzoo.NASTY_NAMES["input"]: x})[out_name]
    np.testing.assert_allclose(y, _ort_outputs(model, {modelzoo.NASTY_NAMES["input"]: x})[out_name], rtol=1e-4, atol=1e-6)
    res = subprocess.run([sys.executable, "runner.py"], cwd=out, capture_output=True, text=True)
    assert res.returncode == 0 and "pwned" not in res.stdout + res.stderr
    assert cli("verify", out).returncode == 0


def test_dynamic_batch_pinned(cli, tmp_path):
    model = modelzoo.dynamic_batch_model(tmp_path / "dyn.onnx")
    res = cli("build", model, "--target", "host", "-o", tmp_path / "b", "--input-shape", "image:2,3,16,16")
    assert res.returncode == 0, res.stderr
    m = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert m["inputs"][0]["shape"] == [2, 3, 16, 16]


def test_int8_from_image_folder(cli, tmp_path, cnn):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (20 + i, 24, 3), dtype=np.uint8)).save(folder / f"img{i:02d}.png")
    res = cli("build", cnn, "--target", "host", "-o", tmp_path / "q", "-p", "int8", "-c", folder,
              "--calib-mean", "0.5,0.5,0.5", "--calib-std", "0.25", "--json")
    assert res.returncode == 0, res.stderr
    m = json.loads(res.stdout)["manifest"]
    assert m["quantization"]["calibration_samples"] == 10  # 12 images, 2 held out for verification
    assert m["verification"]["status"] == "passed"
    empty = tmp_path / "empty"
    empty.mkdir()
    res = cli("build", cnn, "--target", "host", "-o", tmp_path / "q2", "-p", "int8", "-c", empty)
    assert res.returncode != 0 and "has no images" in res.stderr and not (tmp_path / "q2").exists()
