"""Hostile calibration data: .npy/.npz files and image folders."""

from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest

import hostile_models as hm


@pytest.fixture
def model(sb):
    return hm.save(hm.conv_model(), sb.work / "m.onnx")


def _int8(sb, model, calib, *extra):
    out = sb.work / "out"
    return out, sb.run("build", model, "--target", "host", "-p", "int8", "-c", calib, "-o", out, *extra)


def _good(n=8, dtype=np.float32):
    return np.random.default_rng(0).standard_normal((n, 3, 8, 8)).astype(dtype)


def _pickled_npy(path):
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    return path


def _corrupt_npz(path):
    with open(path, "wb") as f:
        np.savez(f, image=_good())
    path.write_bytes(path.read_bytes()[:300])


NPY_CASES = [
    ("nan", lambda p: np.save(p, np.full((8, 3, 8, 8), np.nan, np.float32)), "nan or inf"),
    ("inf", lambda p: np.save(p, np.where(_good() > 1, np.inf, 0).astype(np.float32)), "nan or inf"),
    ("float64-overflows-float32", lambda p: np.save(p, _good(dtype=np.float64) * 1e300), "nan or inf"),
    ("complex64", lambda p: np.save(p, _good().astype(np.complex64)), "complex"),
    ("int-for-float", lambda p: np.save(p, (_good() * 10).astype(np.int32)), "integer dtype"),
    ("strings", lambda p: np.save(p, np.array(["a", "b"])), "dtype"),
    ("pickled", _pickled_npy, "cannot read"),
    ("empty", lambda p: np.save(p, np.zeros((0, 3, 8, 8), np.float32)), "no samples"),
    ("wrong-shape", lambda p: np.save(p, np.zeros((8, 3, 9, 8), np.float32)), "shape"),
    ("zero-bytes", lambda p: p.write_bytes(b""), "cannot read"),
    ("truncated", lambda p: (np.save(p, _good()), p.write_bytes(p.read_bytes()[:200])), "cannot read"),
    ("text", lambda p: p.write_text("1,2,3\n"), "cannot read"),
    ("npz-missing-input", lambda p: np.savez(p, other=_good()), "no array for input"),
    ("npz-pickled", lambda p: np.savez(p, image=np.array([{"a": 1}], dtype=object)), "cannot read"),
    ("npz-corrupt", lambda p: _corrupt_npz(p), "cannot read"),
    ("zip-not-npz", lambda p: zipfile.ZipFile(p, "w").writestr("evil.txt", "x"), "no array for input"),
]


@pytest.mark.parametrize("write, match", [c[1:] for c in NPY_CASES], ids=[c[0] for c in NPY_CASES])
def test_bad_calibration_files(sb, model, write, match):
    calib = sb.work / "calib.npy"
    write(calib)
    if not calib.exists():  # np.savez appends .npz
        calib = calib.with_name(calib.name + ".npz")
    out, res = _int8(sb, model, calib)
    sb.expect_error(res, match, code=2, out=out)


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder-without-images", "missing"])
def test_calibration_paths(sb, model, kind):
    if kind == "fifo":
        calib = hm.fifo(sb.work / "c.npy")
    elif kind == "dev-zero":
        calib = "/dev/zero"
    elif kind == "folder-without-images":
        calib = sb.work / "imgs"
        calib.mkdir()
        (calib / "readme.txt").write_text("no images here")
    else:
        calib = sb.work / "nope.npy"
    out, res = _int8(sb, model, calib)
    sb.expect_error(res, code=2, out=out)


def test_huge_values_make_the_reference_non_finite(sb):
    """Finite calibration data that overflows the fp32 model: the build says the fp32 reference is
    non-finite and verification does not pass."""
    m = hm.relu_model(shape=(1, 4))
    m.graph.node[0].op_type = "Exp"
    model = hm.save(m, sb.work / "exp.onnx")
    calib = sb.work / "c.npy"
    np.save(calib, np.full((8, 4), 1e37, np.float32))
    out, res = _int8(sb, model, calib)
    if res.returncode == 0:
        assert "non-finite" in res.stderr, res
        assert sb.expect_ok(res, out)["verification"]["status"] == "failed"
    else:
        sb.expect_error(res, out=out)


def test_float64_memmap_accepted(sb, model):
    calib = sb.work / "c64.npy"
    np.save(calib, _good(16, np.float64))
    out, res = _int8(sb, model, calib)
    sb.expect_ok(res, out)


def _png(path, size=(8, 8), mode="RGB"):
    from PIL import Image

    Image.new(mode, size, (10, 20, 30) if mode == "RGB" else 10).save(path)


@pytest.mark.parametrize("extra, match", [
    (["--calib-scale", "0"], "--calib-scale"),
    (["--calib-scale", "nan"], "--calib-scale"),
    (["--calib-scale", "1e-45"], ("nan/inf", "--calib-scale")),
    (["--calib-std", "1e-45"], "nan/inf"),
    (["--calib-mean", "inf"], "--calib-mean"),
])
def test_image_preprocessing_that_makes_nan(sb, model, extra, match):
    pytest.importorskip("PIL")
    folder = sb.work / "imgs"
    folder.mkdir()
    for i in range(3):
        _png(folder / f"{i}.png")
    out, res = _int8(sb, model, folder, *extra)
    line = sb.expect_error(res, out=out)
    assert any(m.lower() in line.lower() for m in ((match,) if isinstance(match, str) else match)), line


def test_image_folder_hostile_entries(sb, model):
    pytest.importorskip("PIL")
    folder = sb.work / "imgs"
    folder.mkdir()
    _png(folder / "ok.png")
    os.mkfifo(folder / "pipe.png")  # skipped: not a regular file
    os.symlink("/dev/zero", folder / "zero.jpg")  # skipped: not a regular file
    os.symlink(folder, folder / "loop")  # a symlink loop is not followed
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    out, res = _int8(sb, model, folder)
    sb.expect_error(res, ("corrupt.png",), code=2, out=out)
    (folder / "corrupt.png").unlink()
    out, res = _int8(sb, model, folder)
    sb.expect_ok(res, out)
