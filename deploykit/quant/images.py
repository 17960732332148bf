"""Calibration data from a folder of images, preprocessed to the model input.

Each image is resized to the input's height/width, converted to RGB (or BGR) or grayscale to match
the channel count, scaled (``/ scale``, default 255), normalized with ``(x - mean) / std`` per
channel and laid out as NCHW or NHWC (guessed from the input shape unless given). Preprocessed
samples are written to a temporary memory-mapped ``.npy`` so memory stays bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deploykit.errors import CalibrationError, ToolchainError
from deploykit.ir.info import TensorSpec

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


@dataclass
class ImagePreprocess:
    """How to turn an image into a model input (CLI: --calib-mean/--calib-std/--calib-scale/--calib-bgr/--calib-layout)."""

    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    scale: float = 255.0
    bgr: bool = False
    layout: str = "auto"  # auto | nchw | nhwc

    @staticmethod
    def parse_floats(text: str | None, what: str, default: tuple[float, ...]) -> tuple[float, ...]:
        if not text:
            return default
        try:
            values = tuple(float(v) for v in text.split(","))
        except ValueError:
            raise CalibrationError(f"{what} {text!r} must be comma-separated numbers, e.g. 0.485,0.456,0.406") from None
        with np.errstate(over="ignore"):
            finite = all(np.isfinite(values)) and np.isfinite(np.float32(values)).all()
        if not finite:
            raise CalibrationError(f"{what} {text!r} must hold finite numbers")
        if what.endswith("std") and any(v == 0 for v in values):
            raise CalibrationError(f"{what} must not contain 0")
        return values

    def check(self) -> None:
        """Refuse settings that turn every pixel into NaN/Inf."""
        with np.errstate(over="ignore"):
            bad = not np.isfinite(self.scale) or self.scale == 0 or not np.isfinite(np.float32(self.scale))
        if bad:
            raise CalibrationError(f"--calib-scale must be a finite non-zero number (pixels are divided by it), got {self.scale}")
        for what, values in (("--calib-mean", self.mean), ("--calib-std", self.std)):
            if not all(np.isfinite(values)):
                raise CalibrationError(f"{what} must hold finite numbers")
        if any(v == 0 for v in self.std):
            raise CalibrationError("--calib-std must not contain 0")


def _layout_and_size(spec: TensorSpec, layout: str) -> tuple[str, int, int, int]:
    shape = spec.shape
    if len(shape) != 4:
        raise CalibrationError(f"image calibration needs a 4-D image input; input {spec.name!r} has shape {shape}")
    if layout == "auto":
        if shape[1] in (1, 3, 4):
            layout = "nchw"
        elif shape[3] in (1, 3, 4):
            layout = "nhwc"
        else:
            raise CalibrationError(f"cannot tell the layout of input {spec.name!r} {shape}; pass --calib-layout nchw or nhwc")
    if layout == "nchw":
        return layout, shape[1], shape[2], shape[3]
    return layout, shape[3], shape[1], shape[2]


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_image_folder(folder: str | Path, inputs: list[TensorSpec], pre: ImagePreprocess, limit: int | None = None):
    """Return a :class:`~deploykit.quant.calibration.SampleSet` backed by a temporary memory-map."""
    from deploykit.quant.calibration import SampleSet, sample_shape, temporary_memmap

    folder = Path(folder)
    if len(inputs) != 1:
        raise CalibrationError(f"an image folder can calibrate a single-input model only; this one has {len(inputs)} inputs "
                               "— pass a .npz with one array per input")
    try:
        from PIL import Image
    except ImportError as e:
        raise ToolchainError("image-folder calibration needs Pillow: pip install 'deploykit[images]'") from e
    pre.check()
    spec = inputs[0]
    layout, channels, height, width = _layout_and_size(spec, pre.layout)
    files = list_images(folder)[:limit] if limit else list_images(folder)
    if not files:
        raise CalibrationError(f"calibration folder {str(folder)!r} has no images ({', '.join(IMAGE_SUFFIXES)})")
    mean = np.asarray(pre.mean if len(pre.mean) in (1, channels) else None, np.float32)
    std = np.asarray(pre.std if len(pre.std) in (1, channels) else None, np.float32)
    if mean.ndim == 0 or std.ndim == 0:
        raise CalibrationError(f"--calib-mean/--calib-std need 1 or {channels} values")
    arr = temporary_memmap(np.float32, (len(files), *sample_shape(spec)))
    for i, f in enumerate(files):
        try:
            with Image.open(f) as img:
                img = img.convert("L" if channels == 1 else "RGB").resize((width, height), Image.BILINEAR)
                x = np.asarray(img, np.float32)
        except Exception as e:  # noqa: BLE001 - any unreadable image is the user's file
            raise CalibrationError(f"cannot read image {f.name!r} in {str(folder)!r}: {e}") from e
        if x.ndim == 2:
            x = x[:, :, None]
        if pre.bgr and channels == 3:
            x = x[:, :, ::-1]
        with np.errstate(all="ignore"):
            x = (x / np.float32(pre.scale) - mean) / std
        if not np.isfinite(x).all():
            raise CalibrationError(f"image {f.name!r} becomes NaN/Inf after preprocessing (--calib-scale {pre.scale}, "
                                   f"--calib-mean, --calib-std); use values that keep pixels finite")
        if layout == "nchw":
            x = x.transpose(2, 0, 1)
        arr[i] = x.reshape(sample_shape(spec))
    arr.flush()
    return SampleSet({spec.name: arr}, list(inputs))
