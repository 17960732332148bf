"""The generated ``runner.py`` command line with hostile arguments: one line, no traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

import hostile_models as hm



@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from hostile_harness import Sandbox

    sb = Sandbox(tmp_path_factory.mktemp("runner"))
    model = hm.save(hm.conv_model(), sb.work / "m.onnx")
    out = sb.work / "bundle"
    assert sb.run("build", model, "--target", "host", "-o", out).returncode == 0
    np.save(sb.work / "x.npy", np.zeros((1, 3, 8, 8), np.float32))
    np.save(sb.work / "wrong.npy", np.zeros((1, 3, 9, 8), np.float32))
    (sb.work / "text.npy").write_text("not an array")
    return sb, out


def _runner(python, bundle, *args):
    sb, out = bundle
    return subprocess.run([python, str(out / "runner.py"), *map(str, args)], capture_output=True, text=True,
                          cwd=sb.work, env=sb.env(), timeout=300)


def _one_line(res):
    assert res.returncode != 0, res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines and "error" in lines[-1].lower(), res.stderr


@pytest.mark.parametrize("args", [
    ["--input", "image=wrong.npy"],
    ["--input", "image=x.npy", "--input", "extra=x.npy"],
    ["--input", "image=text.npy"],
    ["--input", "image=missing.npy"],
], ids=["wrong-shape", "extra-input", "not-npy", "missing-file"])
def test_runner_cli_bad_arguments(bundle, args):
    _one_line(_runner(sys.executable, bundle, *args))


def test_runner_without_its_runtime(bundle):
    """A python with numpy but no onnxruntime: one line naming what to install."""
    python = shutil.which("python3")
    probe = subprocess.run([python, "-c", "import numpy, importlib.util as u; "
                            "raise SystemExit(0 if u.find_spec('onnxruntime') is None else 1)"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("no python with numpy and without onnxruntime on this machine")
    res = _runner(python, bundle, "--input", "image=x.npy")
    _one_line(res)
    assert "onnxruntime" in res.stderr


def test_runner_cli_good_call(bundle):
    sb, out = bundle
    res = _runner(sys.executable, bundle, "--input", "image=x.npy", "--output", sb.work / "y.npz")
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
