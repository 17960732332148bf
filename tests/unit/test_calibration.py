"""deploykit.quant.calibration: reading and validating .npy / .npz sample data."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from deploykit.errors import CalibrationError, DeployError
from deploykit.ir.info import TensorSpec
from deploykit.quant.calibration import SampleSet, load_samples, random_samples, sample_shape

pytestmark = pytest.mark.unit

IMG = TensorSpec("image", [1, 3, 4, 4])
TOK = TensorSpec("tokens", [1, 5], dtype="int64")


def _npy(tmp_path, arr, name="calib.npy"):
    p = tmp_path / name
    np.save(p, arr)
    return p


def _npz(tmp_path, name="calib.npz", **arrays):
    p = tmp_path / name
    np.savez(p, **arrays)
    return p


# --------------------------------------------------------------------------- sample_shape
@pytest.mark.parametrize("shape, expected", [([1, 3, 4, 4], [3, 4, 4]), ([2, 3], [2, 3]), ([1], []), ([], [])])
def test_sample_shape_removes_batch_one(shape, expected):
    assert sample_shape(TensorSpec("x", shape)) == expected


# --------------------------------------------------------------------------- good files
def test_npy_stacked_samples(tmp_path):
    data = np.random.default_rng(0).standard_normal((6, 3, 4, 4)).astype(np.float32)
    s = load_samples(_npy(tmp_path, data), [IMG])
    assert len(s) == 6
    np.testing.assert_array_equal(s.arrays["image"], data)
    feed = s.feed(2)
    assert feed["image"].flags.c_contiguous
    assert list(feed) == ["image"] and feed["image"].shape == (1, 3, 4, 4)
    np.testing.assert_array_equal(feed["image"][0], data[2])


def test_npy_single_sample_without_n(tmp_path):
    data = np.ones((3, 4, 4), np.float32)
    s = load_samples(_npy(tmp_path, data), [IMG])
    assert len(s) == 1 and s.arrays["image"].shape == (1, 3, 4, 4)


def test_npy_with_batch_dim_kept(tmp_path):
    data = np.ones((5, 1, 3, 4, 4), np.float32)  # [N, 1, C, H, W]: each sample still has batch 1
    s = load_samples(_npy(tmp_path, data), [IMG])
    assert s.arrays["image"].shape == (5, 3, 4, 4)


def test_float64_is_converted_to_the_input_dtype(tmp_path):
    data = np.full((2, 3, 4, 4), 0.5, np.float64)
    s = load_samples(_npy(tmp_path, data), [IMG])
    assert s.arrays["image"].dtype == np.float32
    np.testing.assert_array_equal(s.arrays["image"], 0.5)


def test_fortran_order_feeds_are_contiguous(tmp_path):
    data = np.asfortranarray(np.random.default_rng(1).standard_normal((2, 3, 4, 4)).astype(np.float32))
    s = load_samples(_npy(tmp_path, data), [IMG])
    np.testing.assert_array_equal(s.arrays["image"], data)
    for i in range(2):
        feed = s.feed(i)["image"]
        assert feed.flags.c_contiguous and feed.shape == (1, 3, 4, 4)
        np.testing.assert_array_equal(feed[0], data[i])


def test_limit_keeps_the_first_samples(tmp_path):
    data = np.arange(5 * 48, dtype=np.float32).reshape(5, 3, 4, 4)
    s = load_samples(_npy(tmp_path, data), [IMG], limit=2)
    assert len(s) == 2
    np.testing.assert_array_equal(s.arrays["image"], data[:2])
    assert len(load_samples(_npy(tmp_path, data), [IMG], limit=99)) == 5
    with pytest.raises(CalibrationError, match=">= 1"):
        load_samples(_npy(tmp_path, data), [IMG], limit=0)


def test_npz_one_array_per_input(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.standard_normal((4, 3, 4, 4)).astype(np.float32)
    tok = rng.integers(0, 30, (4, 5)).astype(np.int32)
    s = load_samples(_npz(tmp_path, image=img, tokens=tok, unused=np.zeros(3)), [IMG, TOK])
    assert len(s) == 4 and set(s.arrays) == {"image", "tokens"}
    assert s.arrays["tokens"].dtype == np.int64  # cast to the input dtype
    np.testing.assert_array_equal(s.arrays["tokens"], tok)
    feed = s.feed(3)
    assert feed["tokens"].shape == (1, 5) and feed["image"].shape == (1, 3, 4, 4)
    assert len(list(s.feeds())) == 4 and len(list(s.feeds([0, 2]))) == 2


def test_npz_content_under_npy_suffix(tmp_path):
    p = _npz(tmp_path, image=np.ones((2, 3, 4, 4), np.float32))
    renamed = tmp_path / "calib.npy"
    shutil.copy(p, renamed)
    assert len(load_samples(renamed, [IMG])) == 2


def test_input_without_batch_one(tmp_path):
    spec = TensorSpec("x", [2, 3])  # batch 2 is part of every sample
    s = load_samples(_npy(tmp_path, np.ones((7, 2, 3), np.float32)), [spec])
    assert len(s) == 7 and s.feed(0)["x"].shape == (2, 3)


# --------------------------------------------------------------------------- bad files
def test_missing_file(tmp_path):
    with pytest.raises(CalibrationError, match="does not exist"):
        load_samples(tmp_path / "nope.npy", [IMG])


def test_folder_without_images_is_a_calibration_error(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(CalibrationError, match="calibration folder"):
        load_samples(tmp_path, [IMG])


@pytest.mark.parametrize("content", [b"", b"not numpy at all", b"\x93NUMPY\x01\x00garbage"])
def test_unreadable_file(tmp_path, content):
    p = tmp_path / "calib.npy"
    p.write_bytes(content)
    with pytest.raises(CalibrationError, match="cannot read calibration data"):
        load_samples(p, [IMG])


def test_broken_npz(tmp_path):
    p = tmp_path / "calib.npz"
    p.write_bytes(b"PK\x03\x04 this is no zip")
    with pytest.raises(CalibrationError, match="cannot read calibration data"):
        load_samples(p, [IMG])


@pytest.mark.parametrize(
    "shape",
    [(6, 3, 4, 5), (6, 4, 4, 3), (6, 2, 3, 4, 4), (3, 4), (6, 1, 1, 3, 4, 4), (48,)],
)
def test_wrong_shape_names_input_and_expected_shape(tmp_path, shape):
    with pytest.raises(CalibrationError) as ei:
        load_samples(_npy(tmp_path, np.ones(shape, np.float32)), [IMG])
    msg = str(ei.value)
    assert "'image'" in msg and f"{list(shape)}" in msg and "[N, 3, 4, 4]" in msg


def test_integer_data_for_float_input(tmp_path):
    with pytest.raises(CalibrationError) as ei:
        load_samples(_npy(tmp_path, np.ones((2, 3, 4, 4), np.uint8)), [IMG])
    assert "'image'" in str(ei.value) and "uint8" in str(ei.value) and "astype" in str(ei.value)


def test_float_data_for_integer_input(tmp_path):
    with pytest.raises(CalibrationError, match=r"'tokens' has dtype float32; expected int64"):
        load_samples(_npz(tmp_path, image=np.ones((2, 3, 4, 4), np.float32), tokens=np.ones((2, 5), np.float32)),
                     [IMG, TOK])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values(tmp_path, bad):
    data = np.zeros((3, 3, 4, 4), np.float32)
    data[1, 2, 3, 0] = bad
    with pytest.raises(CalibrationError, match="'image' contains NaN or Inf"):
        load_samples(_npy(tmp_path, data), [IMG])


@pytest.mark.parametrize("arr", [np.array([["a"] * 4] * 3), np.array([[b"x"] * 4] * 3), np.ones((3, 4), bool)],
                         ids=["unicode", "bytes", "bool"])
def test_non_numeric_dtypes(tmp_path, arr):
    spec = TensorSpec("x", [1, 4])
    with pytest.raises(CalibrationError) as ei:
        load_samples(_npy(tmp_path, arr), [spec])
    assert "'x'" in str(ei.value) and str(arr.dtype) in str(ei.value)


def test_object_arrays_are_not_unpickled(tmp_path):
    p = tmp_path / "calib.npy"
    np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(CalibrationError, match="cannot read calibration data"):
        load_samples(p, [IMG])


def test_npy_for_multi_input_model_names_the_inputs(tmp_path):
    with pytest.raises(CalibrationError) as ei:
        load_samples(_npy(tmp_path, np.ones((2, 3, 4, 4), np.float32)), [IMG, TOK])
    msg = str(ei.value)
    assert "2 inputs" in msg and "'image'" in msg and "'tokens'" in msg and ".npz" in msg


def test_npz_missing_an_input(tmp_path):
    with pytest.raises(CalibrationError) as ei:
        load_samples(_npz(tmp_path, image=np.ones((2, 3, 4, 4), np.float32), other=np.ones(2)), [IMG, TOK])
    msg = str(ei.value)
    assert "no array for input(s) 'tokens'" in msg and "'image'" in msg and "'other'" in msg


def test_npz_different_sample_counts(tmp_path):
    with pytest.raises(CalibrationError, match=r"different sample counts \[2, 3\]"):
        load_samples(_npz(tmp_path, image=np.ones((2, 3, 4, 4), np.float32), tokens=np.ones((3, 5), np.int64)),
                     [IMG, TOK])


def test_zero_samples(tmp_path):
    with pytest.raises(CalibrationError, match="'image' holds no samples"):
        load_samples(_npy(tmp_path, np.ones((0, 3, 4, 4), np.float32)), [IMG])


def test_calibration_error_is_a_deploy_error():
    assert issubclass(CalibrationError, DeployError)


def test_bool_input_accepts_bool_data(tmp_path):
    spec = TensorSpec("mask", [1, 4], dtype="bool")
    data = np.array([[True, False, True, True]] * 3)
    s = load_samples(_npy(tmp_path, data), [spec])
    assert s.arrays["mask"].dtype == np.bool_ and len(s) == 3


def test_npy_content_under_npz_suffix_is_a_clear_error_or_works(tmp_path):
    p = _npy(tmp_path, np.ones((2, 3, 4, 4), np.float32))
    renamed = tmp_path / "calib.npz"
    shutil.copy(p, renamed)
    try:
        assert len(load_samples(renamed, [IMG])) == 2
    except CalibrationError:
        pass


# --------------------------------------------------------------------------- SampleSet.split / subset
def _set(n: int) -> SampleSet:
    return SampleSet({"image": np.arange(n * 48, dtype=np.float32).reshape(n, 3, 4, 4)}, [IMG])


@pytest.mark.parametrize("n, holdout, sizes", [(10, 3, (7, 3)), (10, 0, (10, 0)), (5, 5, (1, 4)), (5, 99, (1, 4)),
                                               (1, 1, (1, 0)), (2, 1, (1, 1))])
def test_split_holds_out_the_last_samples(n, holdout, sizes):
    calib, held = _set(n).split(holdout)
    assert (len(calib), len(held)) == sizes
    full = _set(n).arrays["image"]
    np.testing.assert_array_equal(np.concatenate([calib.arrays["image"], held.arrays["image"]]), full)


def test_split_never_leaves_calibration_empty():
    for n in range(1, 8):
        calib, _ = _set(n).split(n + 3)
        assert len(calib) >= 1


def test_subset_picks_indices():
    s = _set(6).subset([4, 1])
    np.testing.assert_array_equal(s.arrays["image"], _set(6).arrays["image"][[4, 1]])


def test_empty_sample_set_has_length_zero():
    assert len(SampleSet({}, [])) == 0


# --------------------------------------------------------------------------- random_samples
def test_random_samples_are_deterministic():
    specs = [IMG, TOK, TensorSpec("mask", [1, 4], dtype="bool"), TensorSpec("h", [1, 2], dtype="float16")]
    a, b = random_samples(specs, 3, seed=5), random_samples(specs, 3, seed=5)
    for name in ("image", "tokens", "mask", "h"):
        np.testing.assert_array_equal(a.arrays[name], b.arrays[name])
    c = random_samples(specs, 3, seed=6)
    assert not np.array_equal(a.arrays["image"], c.arrays["image"])


def test_random_samples_shapes_and_dtypes():
    specs = [IMG, TOK, TensorSpec("mask", [1, 4], dtype="bool")]
    s = random_samples(specs, 4)
    assert len(s) == 4
    assert s.arrays["image"].shape == (4, 3, 4, 4) and s.arrays["image"].dtype == np.float32
    assert s.arrays["tokens"].dtype == np.int64 and set(np.unique(s.arrays["tokens"])) <= {0, 1}
    assert s.arrays["mask"].dtype == np.bool_
    assert s.feed(0)["image"].shape == (1, 3, 4, 4)
    assert all(a.flags.c_contiguous for a in s.arrays.values())  # generated in memory


# --------------------------------------------------------------------------- hostile input
def test_non_float32_npy_stays_memory_mapped(tmp_path):
    """float64 data is converted chunk by chunk into a temporary memory-map, not copied into RAM."""
    data = np.random.default_rng(0).standard_normal((40, 3, 4, 4))
    np.save(tmp_path / "c.npy", data)
    arr = load_samples(tmp_path / "c.npy", [TensorSpec("x", [1, 3, 4, 4])]).arrays["x"]
    assert isinstance(arr, np.memmap) and arr.dtype == np.float32
    np.testing.assert_allclose(arr, data.astype(np.float32))
    assert list(tmp_path.iterdir()) == [tmp_path / "c.npy"]


def test_overflow_to_inf_in_the_input_dtype(tmp_path):
    np.save(tmp_path / "c.npy", np.full((4, 3), 1e300))
    with pytest.raises(CalibrationError, match="NaN or Inf"):
        load_samples(tmp_path / "c.npy", [TensorSpec("x", [1, 3])])


def test_complex_is_called_complex(tmp_path):
    np.save(tmp_path / "c.npy", np.ones((4, 3), np.complex64))
    with pytest.raises(CalibrationError, match="complex dtype complex64"):
        load_samples(tmp_path / "c.npy", [TensorSpec("x", [1, 3])])


def test_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "c.npy")
    with pytest.raises(CalibrationError, match="named pipe"):
        load_samples(tmp_path / "c.npy", [TensorSpec("x", [1, 3])])


@pytest.mark.parametrize("pre, words", [
    (dict(scale=0.0), "--calib-scale"), (dict(scale=float("nan")), "--calib-scale"),
    (dict(scale=1e300), "--calib-scale"), (dict(mean=(float("inf"),)), "--calib-mean"),
    (dict(std=(0.0,)), "--calib-std"),
])
def test_image_preprocessing_checks(pre, words):
    from deploykit.quant.images import ImagePreprocess

    with pytest.raises(CalibrationError, match=words):
        ImagePreprocess(**pre).check()
