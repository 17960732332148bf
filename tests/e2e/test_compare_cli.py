"""``deploykit compare`` end to end: bundles built through the CLI, measured or read from their reports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest

import modelzoo

pytestmark = pytest.mark.e2e


def cli(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    """``deploykit ARGS`` in a fresh process with the in-repo host plugins only (unless ``env`` says otherwise)."""
    full_env = {**os.environ, "DEPLOYKIT_PLUGINS": "profiles,onnxruntime", **(env or {})}
    return subprocess.run([sys.executable, "-m", "deploykit.cli.app", *map(str, args)],
                          capture_output=True, text=True, env=full_env, timeout=600)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """host fp32 and host int8 (calibrated) bundles of the small CNN, built once for the module."""
    tmp = tmp_path_factory.mktemp("compare")
    model = modelzoo.small_cnn(tmp / "cnn.onnx")
    shape = [d.dim_value for d in onnx.load(str(model)).graph.input[0].type.tensor_type.shape.dim]
    calib = tmp / "calib.npy"
    np.save(calib, np.random.default_rng(0).standard_normal((20, *shape[1:])).astype(np.float32))
    out = {}
    for precision, extra in (("fp32", []), ("int8", ["--calibration", calib])):
        out[precision] = tmp / f"cnn-host-{precision}"
        res = cli("build", model, "--target", "host", "--precision", precision, *extra, "-o", out[precision])
        assert res.returncode == 0, res.stderr
    out["model"] = model
    return out


def test_compare_measures_bundles_without_an_effect_report(bundles):
    res = cli("compare", bundles["fp32"], bundles["int8"], "--runs", "5", "--json")
    assert res.returncode == 0, res.stderr
    entries = json.loads(res.stdout)["bundles"]
    fp32, int8 = entries
    assert [e["precision"] for e in entries] == ["fp32", "int8"]
    assert {e["target"] for e in entries} == {"host"} and {e["source"] for e in entries} == {"measured"}
    for e in entries:
        assert e["size_raw"] > 0 and e["size_zip"] > 0 and e["size_huffman"] > 0 and e["macs"] > 0
        assert 0 < e["latency_ms_p50"] <= e["latency_ms_p90"] and e["latency_runs"] == 5
        assert e["verification"] == "passed" and e["error"] is None
    assert fp32["cosine"] > 0.99999 and fp32["max_abs_error"] < 1e-4  # vs the stored fp32 outputs
    assert 0.9 < int8["cosine"] <= 1.0
    assert int8["size_zip"] < fp32["size_zip"]  # int8 weights compress better than float ones
    assert int8["macs"] == fp32["macs"]


def test_compare_table(bundles):
    res = cli("compare", bundles["fp32"], bundles["int8"], "--runs", "3")
    assert res.returncode == 0, res.stderr
    for text in ("cnn-host-fp32", "cnn-host-int8", "p50 ms", "cosine vs fp32", "int8", "measured"):
        assert text in res.stdout, text


def _relist_files(bundle):
    from deploykit.bundle.manifest import hash_files

    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"] = {k: v for k, v in hash_files(bundle).items() if k != "manifest.json"}
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def test_compare_reads_effect_rows_from_the_report(bundles, tmp_path):
    from deploykit.effect import Variant, measure_variants, write_report

    copy = tmp_path / "with-report"
    shutil.copytree(bundles["int8"], copy)
    source = onnx.load(str(bundles["model"]))
    x = source.graph.input[0]
    shape = [d.dim_value for d in x.type.tensor_type.shape.dim]
    feeds = [{x.name: np.random.default_rng(i).standard_normal(shape).astype(np.float32)} for i in range(3)]
    rows = measure_variants([Variant("fp32", source), Variant("int8 bundle", bundle_dir=copy)], feeds, runs=3)
    write_report(copy, rows, title="cnn")
    res = cli("compare", copy, bundles["fp32"], "--json", "--runs", "3")
    assert res.returncode == 0, res.stderr
    from_report, measured = json.loads(res.stdout)["bundles"]
    assert from_report["source"] == "report" and measured["source"] == "measured"
    assert from_report["latency_ms_p50"] == rows[1]["latency_ms_p50"]
    assert from_report["agreement_vs"].startswith("fp32 source") and measured["agreement_vs"].startswith("fp32 source")
    res = cli("compare", copy, "--measure", "--json", "--runs", "3")
    assert res.returncode != 0 and "modified" in res.stderr  # the report was written after the build: refused
    _relist_files(copy)  # as a build that wrote the report would have listed it
    res = cli("compare", copy, "--measure", "--json", "--runs", "3")
    assert res.returncode == 0, res.stderr
    remeasured = json.loads(res.stdout)["bundles"][0]
    assert remeasured["source"] == "measured"
    assert remeasured["cosine"] == rows[1]["cosine"]  # agreement with the source stays the report's


def test_compare_a_bundle_built_with_compress(bundles, tmp_path):
    out = tmp_path / "cnn-compressed"
    calib = bundles["int8"].parent / "calib.npy"
    res = cli("build", bundles["model"], "--target", "host", "--precision", "int8", "--calibration", calib,
              "--compress", "auto", "-o", out)
    assert res.returncode == 0, res.stderr
    assert (out / "report.html").is_file()
    res = cli("compare", bundles["int8"], out, "--json", "--runs", "3")
    assert res.returncode == 0, res.stderr
    plain, compressed = json.loads(res.stdout)["bundles"]
    assert compressed["source"] == "report" and compressed["macs"] <= plain["macs"]
    assert compressed["cosine"] is not None


def test_compare_rpi4_bundle_reads_the_tflite_artifact(bundles, tmp_path):
    pytest.importorskip("ai_edge_litert")
    env = {"DEPLOYKIT_PLUGINS": "profiles,onnxruntime,tflite"}
    out = tmp_path / "cnn-rpi4-fp32"
    res = cli("build", bundles["model"], "--target", "rpi4", "--precision", "fp32", "-o", out, env=env)
    assert res.returncode == 0, res.stderr
    res = cli("compare", bundles["fp32"], out, "--json", "--runs", "3", env=env)
    assert res.returncode == 0, res.stderr
    host, rpi4 = json.loads(res.stdout)["bundles"]
    assert rpi4["target"] == "rpi4" and rpi4["size_raw"] == (out / "model.tflite").stat().st_size
    assert rpi4["macs"] == host["macs"] and rpi4["cosine"] > 0.9999
    assert "litert" in rpi4["runtime"].lower() or "tflite" in rpi4["runtime"].lower()


def _one_error_line(res) -> str:
    assert res.returncode != 0
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.stderr
    return lines[0]


def test_bad_input_not_a_folder(tmp_path, bundles):
    line = _one_error_line(cli("compare", bundles["fp32"], tmp_path / "nope"))
    assert "not a bundle folder" in line


def test_bad_input_missing_manifest(tmp_path, bundles):
    (tmp_path / "empty").mkdir()
    line = _one_error_line(cli("compare", tmp_path / "empty"))
    assert "manifest.json" in line and "bundle" in line


def test_bad_input_bundle_without_samples_or_report(tmp_path, bundles):
    copy = tmp_path / "stripped"
    shutil.copytree(bundles["fp32"], copy)
    shutil.rmtree(copy / "samples")
    line = _one_error_line(cli("compare", copy))
    assert "rebuild" in line


def test_no_arguments_shows_usage():
    res = cli("compare")
    assert res.returncode != 0 and "Traceback" not in res.stderr
