"""Issue 18 (the first hour of a new user), the points that need bundles: the generated runner's
CLI (threads, benchmark line, quiet LiteRT, one-line errors), one verdict for the int8 budget and
verification (and ``verify`` on the same samples), ``compare`` and ``inspect --target`` at 80
columns. Every command's stdout is a pipe; ``COLUMNS=80`` where the width matters.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import modelzoo

pytestmark = pytest.mark.e2e

ALL_BUILTIN = "profiles,onnxruntime,tflite,edgetpu,tensorrt,openvino"
HAS_LITERT = importlib.util.find_spec("ai_edge_litert") is not None
HAS_OPENVINO = importlib.util.find_spec("openvino") is not None


def cli(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, "DEPLOYKIT_PLUGINS": ALL_BUILTIN, "COLUMNS": "80", **(env or {})}
    return subprocess.run([sys.executable, "-m", "deploykit.cli.app", *map(str, args)],
                          capture_output=True, text=True, env=full, timeout=600)


def runner(bundle: Path, *args, env: dict | None = None, python: str = sys.executable) -> subprocess.CompletedProcess:
    return subprocess.run([python, str(bundle / "runner.py"), *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300, cwd=bundle.parent)


def one_error_line(res: subprocess.CompletedProcess, *needles: str) -> str:
    assert res.returncode != 0, res.stdout
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("first-hour")
    model = modelzoo.small_cnn(tmp / "cnn.onnx")
    calib = tmp / "calib.npy"
    np.save(calib, np.random.default_rng(0).standard_normal((20, 3, 16, 16)).astype(np.float32))
    np.save(tmp / "image.npy", np.random.default_rng(1).standard_normal((1, 3, 16, 16)).astype(np.float32))
    return {"tmp": tmp, "model": model, "calib": calib}


def _build(work, name: str, *args) -> tuple[Path, subprocess.CompletedProcess]:
    out = work["tmp"] / name
    res = cli("build", work["model"], "-o", out, "--force", *args)
    assert res.returncode == 0, res.stderr
    return out, res


@pytest.fixture(scope="module")
def host(work):
    return _build(work, "host-fp32", "--target", "host")[0]


@pytest.fixture(scope="module")
def rpi4(work):
    if not HAS_LITERT:
        pytest.skip("ai-edge-litert not installed")
    return _build(work, "rpi4-fp32", "--target", "rpi4", "--precision", "fp32")[0]


# -- point 3: the generated runner -----------------------------------------------------------------
def test_runner_threads_default_to_min_of_profile_and_cores(host):
    code = ("import os, sys; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); sys.path.insert(0, %r); "
            "import runner; r = runner.Runner(); print(r.num_threads, runner.Runner(num_threads=3).num_threads, "
            "runner.SPEC['threads'])" % str(host))
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no CPU affinity on this OS")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    default, told, profile = map(int, res.stdout.split())
    assert profile == 4 and default == 1 and told == 3  # one core available: 1 thread unless told


def test_runner_benchmark_line_names_threads_once(host):
    res = runner(host, "--benchmark", "3", "--threads", "1")
    assert res.returncode == 0, res.stderr
    line = next(line for line in res.stdout.splitlines() if line.startswith("latency over 3 runs"))
    assert line.count("thread") == 1 and ", 1 thread:" in line and "1 threads" not in line


def test_litert_info_line_is_quiet_by_default(rpi4):
    quiet = runner(rpi4, "--benchmark", "2")
    assert quiet.returncode == 0, quiet.stderr
    assert "INFO:" not in quiet.stderr and "XNNPACK delegate" not in quiet.stderr
    loud = runner(rpi4, env={"DEPLOYKIT_RUNTIME_LOG": "1"})
    assert loud.returncode == 0 and "INFO: Created TensorFlow Lite XNNPACK delegate" in loud.stderr


def test_build_does_not_print_litert_info(work, rpi4):
    _, res = _build(work, "rpi4-again", "--target", "rpi4", "--precision", "fp32")
    assert "INFO:" not in res.stderr


@pytest.mark.parametrize("bundle_name", ["host", "rpi4"])
def test_missing_runtime_is_one_line_naming_requirements(request, tmp_path, bundle_name):
    bundle = request.getfixturevalue(bundle_name)
    fake = tmp_path / "fake"
    for module in ("onnxruntime", "ai_edge_litert", "tflite_runtime"):
        (fake / module).mkdir(parents=True)
        (fake / module / "__init__.py").write_text(f"raise ImportError('no {module} here (test stand-in)')\n")
    res = runner(bundle, env={"PYTHONPATH": str(fake)})
    line = one_error_line(res, "error: this bundle needs", "pip install -r requirements.txt")
    assert res.returncode == 3 and line.count("error") == 1


@pytest.mark.parametrize("command", ["run", "verify"])
def test_deploykit_run_and_verify_without_the_runtime_are_one_line(host, work, tmp_path, command):
    fake = tmp_path / "fake" / "onnxruntime"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no onnxruntime here (test stand-in)')\n")
    extra = ["--input", f"image={work['tmp'] / 'image.npy'}"] if command == "run" else []
    res = cli(command, host, *extra, env={"PYTHONPATH": str(fake.parent)})
    line = one_error_line(res, f"error: cannot run bundle {str(host)!r} here: this bundle needs onnxruntime",
                          f"pip install -r {host / 'requirements.txt'}")
    assert line.count("pip install") == 1


def test_unknown_input_name_lists_the_model_inputs(host, work):
    one_error_line(runner(host, "--input", f"x={work['tmp'] / 'image.npy'}"), "unknown input 'x'", '"image"')


def test_extra_input_is_refused(host, work):
    img = work["tmp"] / "image.npy"
    one_error_line(runner(host, "--input", f"image={img}", "--input", f"extra={img}"), "unknown input 'extra'")


@pytest.mark.parametrize(("make", "needle"), [
    (lambda p: np.save(p, np.zeros((16, 16), np.float32)), "has shape [16, 16], this model takes [1, 3, 16, 16]"),
    (lambda p: p.write_text("not an array"), "is not a .npy file"),
    (lambda p: np.savez(p, image=np.zeros((1, 3, 16, 16), np.float32)), "is an .npz archive"),
    (lambda p: None, "no such file"),
])
def test_bad_input_files_are_one_line(host, tmp_path, make, needle):
    path = tmp_path / "in.npy"
    make(path)
    if path.with_suffix(".npy.npz").exists():  # np.savez appends .npz
        path.with_suffix(".npy.npz").rename(path)
    res = runner(host, "--input", f"image={path}")
    one_error_line(res, needle)
    assert res.returncode == 2


def test_good_input_runs_and_batchless_input_is_accepted(host, tmp_path, work):
    np.save(tmp_path / "x.npy", np.zeros((3, 16, 16), np.float32))
    for path in (work["tmp"] / "image.npy", tmp_path / "x.npy"):
        res = runner(host, "--input", f"image={path}", "--output", tmp_path / "o.npz")
        assert res.returncode == 0, res.stderr
        assert '"scores": shape=[1, 10]' in res.stdout


# -- point 6: one rule, stated once ---------------------------------------------------------------
def test_missed_budget_is_never_a_bare_passed_and_verify_matches_build(work):
    out, res = _build(work, "host-int8-strict-budget", "--target", "host", "--precision", "int8",
                      "--calibration", work["calib"], "--accuracy-budget", "sqnr=200")  # 200 dB: out of int8's reach
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["quantization"]["budget_met"] is False
    last = [line for line in res.stderr.splitlines() if line.strip()][-2]
    assert last.startswith("accuracy budget sqnr>=200 MISSED: int8 reaches sqnr "), last
    assert "verification passed" not in res.stderr
    assert "cosine >= 0.95" in last and "held-out samples" in last  # the rule verification applied, once
    # every held-out sample the build verified on is stored, so verify recomputes the same figures
    samples = np.load(out / "samples" / "inputs.npz")
    assert len(samples["in_0"]) == manifest["verification"]["samples"] == 4
    ver = cli("verify", out, "--json")
    assert ver.returncode == 0, ver.stderr
    again = json.loads(ver.stdout)
    assert again["samples"] == 4
    for name, m in manifest["verification"]["outputs"].items():
        assert again["outputs"][name]["cosine"] == pytest.approx(m["cosine"], abs=1e-6)
    text = cli("verify", out).stdout
    assert "MISSED" in text and "verification passed" not in text and "4 stored held-out samples" in text


def test_met_budget_verdict_states_the_rule(work):
    _, res = _build(work, "host-int8", "--target", "host", "--precision", "int8", "--calibration", work["calib"],
                    "--accuracy-budget", "cosine=0.5")
    verdict = [line for line in res.stderr.splitlines() if line.startswith("verification")][-1]
    assert verdict.startswith("verification passed: every output within cosine >= 0.95")
    assert "on 4 held-out samples" in verdict and "int8 accuracy budget cosine>=0.5 met" in verdict


# -- point 7: compare ----------------------------------------------------------------------------------
def test_compare_at_80_columns(work, host):
    jetson, _ = _build(work, "a-rather-long-bundle-name-jetson-nano-fp16", "--target", "jetson-nano")
    bundles = [host, jetson]
    if HAS_OPENVINO:
        bundles.append(_build(work, "ncs2", "--target", "ncs2")[0])
    res = cli("compare", *bundles, "--runs", "2", "--threads", "1")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "…" not in out and "1 threads" not in out
    lines = out.splitlines()
    table = lines[:next(i for i, line in enumerate(lines) if line.startswith("figures")) + 1]
    assert max(len(line.rstrip()) for line in table) <= 80  # the table fits; the notes below are prose
    for b in bundles:  # every name in full, in a header or the legend below the table
        assert b.name in out
    assert "fallback" in out and "not with tensorrt" in " ".join(out.split())
    data = json.loads(cli("compare", *bundles, "--runs", "2", "--json").stdout)["bundles"]
    for e in data:
        assert isinstance(e["params"], int) and isinstance(e["macs"], int), e["bundle"]  # ncs2 (OpenVINO IR) too
    assert "fallback" in (data[1]["latency_note"] or "")


# -- point 8: inspect --target -------------------------------------------------------------------------
def test_inspect_target_prints_one_row_per_node_then_the_summary(work):
    res = cli("inspect", work["model"], "--target", "host")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.rstrip().splitlines()
    info = json.loads(cli("inspect", work["model"], "--target", "host", "--json").stdout)
    nodes = info["target"]["support"]
    for s in nodes:
        row = next(line for line in lines if line.split() and line.split()[0] == s["node"] and s["op_type"] in line)
        assert "x".join(map(str, s["output_shape"])) in row and "CPU" in row
    assert lines[-1].startswith(f"{len(nodes)}/{len(nodes)} nodes supported on host")


def test_inspect_coral_shows_where_nodes_run(work):
    if not HAS_LITERT:
        pytest.skip("ai-edge-litert not installed")
    res = cli("inspect", work["model"], "--target", "coral-usb")
    assert res.returncode == 0, res.stderr
    assert "Edge TPU" in res.stdout and "runs on" in res.stdout
    assert res.stdout.rstrip().splitlines()[-1].startswith(("14/14 nodes supported", "13/13 nodes supported")) or \
        "nodes supported on coral-usb" in res.stdout.rstrip().splitlines()[-1]
