"""Calibration / sample data: read ``.npy`` / ``.npz`` files and check them against the model inputs.

Contract (design.md): ``.npy`` = samples stacked on axis 0, each sample shaped like the model
input with batch 1 removed; ``.npz`` = one such array per input name.
"""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deploykit.errors import CalibrationError
from deploykit.ir.info import TensorSpec
from deploykit.userfiles import regular_file


def sample_shape(spec: TensorSpec) -> list[int]:
    """Shape of one sample of ``spec`` in calibration files (batch 1 removed)."""
    return list(spec.shape[1:]) if spec.shape and spec.shape[0] == 1 else list(spec.shape)


@dataclass
class SampleSet:
    """Per-input arrays of N samples, each shaped like :func:`sample_shape`."""

    arrays: dict[str, np.ndarray]
    inputs: list[TensorSpec]

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values()))) if self.arrays else 0

    def feed(self, index: int) -> dict[str, np.ndarray]:
        """One sample as a model feed (batch dim restored)."""
        return {s.name: np.ascontiguousarray(self.arrays[s.name][index]).reshape(s.shape) for s in self.inputs}

    def feeds(self, indices: Sequence[int] | None = None) -> Iterator[dict[str, np.ndarray]]:
        for i in indices if indices is not None else range(len(self)):
            yield self.feed(i)

    def subset(self, indices: Sequence[int]) -> SampleSet:
        if isinstance(indices, range) and indices.step == 1:  # a view: keeps memory-mapped data on disk
            return SampleSet({k: v[indices.start:indices.stop] for k, v in self.arrays.items()}, self.inputs)
        idx = np.asarray(list(indices), dtype=np.int64)
        return SampleSet({k: v[idx] for k, v in self.arrays.items()}, self.inputs)

    def split(self, holdout: int) -> tuple[SampleSet, SampleSet]:
        """(calibration part, held-out verification part); the last ``holdout`` samples are held out."""
        n = len(self)
        holdout = min(holdout, max(n - 1, 0))
        return self.subset(range(n - holdout)), self.subset(range(n - holdout, n))


def _all_finite(arr: np.ndarray, chunk: int = 64) -> bool:
    """np.isfinite over a (possibly memory-mapped) array in chunks of samples: bounded memory."""
    return all(bool(np.isfinite(arr[i:i + chunk]).all()) for i in range(0, len(arr), chunk))


def temporary_memmap(dtype, shape) -> np.memmap:
    """A writable memory-mapped array backed by an already unlinked temporary file: memory stays
    bounded, and nothing is left on disk whatever happens to the process."""
    tmp = tempfile.NamedTemporaryFile(prefix="deploykit-calib-", suffix=".npy", delete=False)
    tmp.close()
    try:
        return np.lib.format.open_memmap(tmp.name, mode="w+", dtype=dtype, shape=tuple(shape))
    finally:
        Path(tmp.name).unlink()


def _as_dtype(arr: np.ndarray, target: np.dtype, chunk: int = 64) -> np.ndarray:
    """``arr`` as ``target``; a memory-mapped file of another dtype is converted sample chunk by
    chunk into a temporary memory-map instead of a copy in RAM."""
    if arr.dtype == target and isinstance(arr, np.memmap):
        return arr  # streamed from disk sample by sample
    if not isinstance(arr, np.memmap):
        return np.ascontiguousarray(arr.astype(target, copy=False))
    out = temporary_memmap(target, arr.shape)
    with np.errstate(all="ignore"):  # overflow to Inf is caught by the finite check after
        for i in range(0, len(arr), chunk):
            out[i:i + chunk] = arr[i:i + chunk]
    return out


def _check_array(name: str, arr: np.ndarray, spec: TensorSpec, source: str, limit: int | None = None) -> np.ndarray:
    want = sample_shape(spec)
    target = np.dtype(spec.dtype)
    if arr.dtype == object or arr.dtype.kind in "USV" or (arr.dtype.kind == "b") != (target.kind == "b"):
        raise CalibrationError(f"calibration data {source} for input {name!r} has dtype {arr.dtype}; expected {spec.dtype}")
    if arr.ndim == len(want) and list(arr.shape) == want:
        arr = arr[None]  # a single sample
    if list(arr.shape[1:]) != want:
        if arr.ndim == len(want) + 2 and arr.shape[1] == 1 and list(arr.shape[2:]) == want:
            arr = arr[:, 0]
        else:
            raise CalibrationError(
                f"calibration data {source} for input {name!r} has shape {list(arr.shape)}; expected "
                f"[N, {', '.join(map(str, want))}] (samples stacked on axis 0, batch dim removed)"
            )
    if limit is not None:
        arr = arr[:limit]
    if arr.dtype.kind == "c":
        raise CalibrationError(f"calibration data {source} for input {name!r} has complex dtype {arr.dtype}; the input "
                               f"is {spec.dtype}: pass real values")
    if target.kind == "f" and arr.dtype.kind != "f":
        raise CalibrationError(
            f"calibration data {source} for input {name!r} has integer dtype {arr.dtype} but the input is "
            f"{spec.dtype}; convert and normalize it the way your model expects (e.g. x.astype('float32') / 255)"
        )
    if target.kind != "f" and arr.dtype.kind not in ("b" if target.kind == "b" else "iu"):
        raise CalibrationError(f"calibration data {source} for input {name!r} has dtype {arr.dtype}; expected {spec.dtype}")
    if len(arr) == 0:
        raise CalibrationError(f"calibration data {source} for input {name!r} holds no samples")
    arr = _as_dtype(arr, target)
    if target.kind == "f" and not _all_finite(arr):
        raise CalibrationError(f"calibration data {source} for input {name!r} contains NaN or Inf values "
                               f"(as {spec.dtype}); replace them, and scale values into the range the model expects")
    return arr


def load_samples(path: str | Path, inputs: list[TensorSpec], limit: int | None = None, images=None) -> SampleSet:
    """Read ``.npy`` / ``.npz`` sample data for ``inputs`` and validate it.

    ``.npy`` files are memory-mapped, so samples stream from disk; ``limit`` keeps the first N.
    A folder is read as images (``images``: a :class:`~deploykit.quant.images.ImagePreprocess`).
    """
    if limit is not None and limit < 1:
        raise CalibrationError(f"--calibration-samples must be >= 1, got {limit}")
    p = Path(path)
    if not p.exists():
        raise CalibrationError(f"calibration data {str(p)!r} does not exist")
    source = p.name
    if not p.is_dir():
        regular_file(p, "calibration data", "pass a .npy or .npz file or a folder of images", error=CalibrationError)
    if p.is_dir():
        from deploykit.quant.images import ImagePreprocess, load_image_folder

        return load_image_folder(p, inputs, images or ImagePreprocess(), limit)
    try:
        loaded = np.load(p, allow_pickle=False, mmap_mode="r")
        if isinstance(loaded, np.lib.npyio.NpzFile):  # an .npz archive, whatever its suffix
            with loaded as z:
                raw = {k: z[k] for k in z.files}
        elif len(inputs) != 1:
            names = ", ".join(repr(s.name) for s in inputs)
            raise CalibrationError(
                f"the model has {len(inputs)} inputs ({names}); pass calibration data as .npz with one array per input name"
            )
        else:
            raw = {inputs[0].name: loaded}
    except CalibrationError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError) as e:
        raise CalibrationError(f"cannot read calibration data {str(p)!r}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    missing = [s.name for s in inputs if s.name not in raw]
    if missing:
        raise CalibrationError(
            f"calibration data {source} has no array for input(s) {', '.join(map(repr, missing))} "
            f"(it has {', '.join(map(repr, raw)) or 'none'})"
        )
    arrays = {s.name: _check_array(s.name, raw[s.name], s, source, limit) for s in inputs}
    counts = {len(a) for a in arrays.values()}
    if len(counts) != 1:
        raise CalibrationError(f"calibration data {source}: inputs have different sample counts {sorted(counts)}")
    return SampleSet(arrays, list(inputs))


def random_samples(inputs: list[TensorSpec], count: int, seed: int = 0) -> SampleSet:
    """Seeded random samples (standard normal for floats, small ints for integer inputs)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for s in inputs:
        shape = [count, *sample_shape(s)]
        dt = np.dtype(s.dtype)
        if dt.kind == "f":
            arrays[s.name] = rng.standard_normal(shape).astype(dt)
        elif dt.kind == "b":
            arrays[s.name] = rng.integers(0, 2, size=shape).astype(dt)
        else:
            arrays[s.name] = rng.integers(0, 2, size=shape).astype(dt)
        arrays[s.name] = np.ascontiguousarray(arrays[s.name])
    return SampleSet(arrays, list(inputs))
