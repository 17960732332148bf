"""Hostile command-line options: every bad value is one ``error:`` line naming the option."""

from __future__ import annotations

import pytest

import hostile_models as hm


@pytest.fixture
def model(sb):
    return hm.save(hm.conv_model(), sb.work / "m.onnx")


BUILD_OPTIONS = [
    ("input-shape-overflow", ["--input-shape", "image:1,3,99999999999999999999999,8"], "--input-shape"),
    ("input-shape-zero", ["--input-shape", "image:1,3,0,8"], "--input-shape"),
    ("input-shape-negative", ["--input-shape", "image:1,3,-8,8"], "--input-shape"),
    ("input-shape-conflict", ["--input-shape", "image:1,3,8,8", "--input-shape", "image:1,3,9,9"], "twice"),
    ("input-shape-unknown", ["--input-shape", "nope:1,2"], "not a model input"),
    ("input-shape-garbage", ["--input-shape", "image:a,b"], "--input-shape"),
    ("input-shape-empty", ["--input-shape", ""], "--input-shape"),
    ("precision", ["-p", "int4"], "--precision"),
    ("io", ["--io", "int16"], "--io"),
    ("target-unknown", ["--target", "toaster"], "unknown target"),
    ("target-empty", ["--target", ""], "target"),
    ("calib-layout", ["--calib-layout", "nhcw"], "--calib-layout"),
    ("calib-mean-text", ["--calib-mean", "a,b"], "--calib-mean"),
    ("calib-mean-nan", ["--calib-mean", "nan"], "--calib-mean"),
    ("calib-std-zero", ["--calib-std", "0"], "--calib-std"),
    ("calibration-samples-text", ["--calibration-samples", "many"], "--calibration-samples"),
    ("unknown-option", ["--frobnicate"], "no such option"),
    ("compress-garbage", ["--compress", "prune=banana"], "compress"),
    ("docker-flag-alone", ["--dry-run"], "--docker"),
]


@pytest.mark.parametrize("extra, match", [c[1:] for c in BUILD_OPTIONS], ids=[c[0] for c in BUILD_OPTIONS])
def test_bad_build_options(sb, model, extra, match):
    out = sb.work / "out"
    args = ["build", model, "-o", out, *extra]
    if "--target" not in extra:
        args[2:2] = ["--target", "host"]
    sb.expect_error(sb.run(*args), match, out=out)


INT8_OPTIONS = [
    ("calibration-samples-zero", ["--calibration-samples", "0"], "--calibration-samples"),
    ("calibration-samples-negative", ["--calibration-samples", "-5"], "--calibration-samples"),
    ("calibration-method", ["--calibration-method", "vibes"], "--calibration-method"),
    ("budget-garbage", ["--accuracy-budget", "cosine=abc"], "budget"),
    ("budget-metric", ["--accuracy-budget", "vibes=1"], "budget"),
    ("budget-nan", ["--accuracy-budget", "sqnr=nan"], "budget"),
]


@pytest.mark.parametrize("extra, match", [c[1:] for c in INT8_OPTIONS], ids=[c[0] for c in INT8_OPTIONS])
def test_bad_int8_options(sb, model, extra, match):
    import numpy as np

    calib = sb.work / "c.npy"
    np.save(calib, np.random.default_rng(0).standard_normal((8, 3, 8, 8)).astype(np.float32))
    out = sb.work / "out"
    sb.expect_error(sb.run("build", model, "--target", "host", "-p", "int8", "-c", calib, "-o", out, *extra), match, out=out)


@pytest.mark.parametrize("args, match", [
    (["nosuchcommand"], "no such command"),
    (["build"], "needs a model.onnx"),
    (["run"], "missing"),
    (["inspect", "--target"], "requires an argument"),
    (["compare"], "missing"),
])
def test_usage_errors_are_one_line(sb, args, match):
    sb.expect_error(sb.run(*args), match, code=2)


def test_missing_required_target(sb, model):
    sb.expect_error(sb.run("build", model), "--target", code=2)


def test_help_and_version_still_work(sb):
    assert sb.run("--version").returncode == 0
    res = sb.run("build", "--help")
    assert res.returncode == 0 and "--target" in res.stdout
