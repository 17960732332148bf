"""Worker: ``onnxruntime.quantization.quantize_static`` (QDQ, per-channel) in its own process.

Run by ``run.py`` in a fresh subprocess so that the peak RSS measured for it is its own::

    python ort_quantize.py MODEL CALIB.npy OUT.onnx --input-shape x:1,3,48,192 \
        --method MinMax --activation QInt8

Steps, all timed: upgrade to opset 13 when older (per-channel QDQ needs it), pin the dynamic input dims (``onnxruntime.tools.onnx_model_utils``), run
``quant_pre_process`` (symbolic shape inference + ORT graph optimization + ONNX shape inference,
as the ORT docs recommend before static quantization), then ``quantize_static`` with
``weight_type=QInt8``, ``per_channel=True``, ``quant_format=QDQ`` and the requested activation
type / calibration method, feeding the calibration samples one by one (batch 1).

Prints one JSON line on stdout: ``{"prep_s", "quant_s", "total_s", "self_peak_rss_mb"}``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def pin_input_shape(model, name: str, shape: list[int]) -> None:
    """Set the input's dims to ``shape`` directly and drop stale intermediate/output shapes.

    (``onnx_model_utils.make_input_shape_fixed`` replaces a ``dim_param`` everywhere it occurs:
    the PP-OCR cls model names both H and W ``"?"``, so pinning H=48 would also set W=48.)"""
    for inp in model.graph.input:
        if inp.name == name:
            dims = inp.type.tensor_type.shape.dim
            if len(dims) != len(shape):
                raise ValueError(f"input {name}: rank {len(dims)}, --input-shape has {len(shape)} dims")
            for d, v in zip(dims, shape):
                if d.HasField("dim_value") and d.dim_value > 0 and d.dim_value != v:
                    raise ValueError(f"input {name}: fixed dim {d.dim_value} != {v}")
                d.Clear()
                d.dim_value = v
            break
    else:
        raise ValueError(f"input {name} not in the model")
    del model.graph.value_info[:]
    for out in model.graph.output:
        for d in out.type.tensor_type.shape.dim:
            d.Clear()


def prepare(model_path: str, shapes: dict[str, list[int]], out: Path, tmp: Path) -> str | None:
    """Write the model ``quantize_static`` is given to ``out``: opset raised to 13 when older,
    input dims pinned, ``quant_pre_process`` (re-run without symbolic shape inference when that
    fails: then a note saying so is returned)."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fixed = tmp / "fixed.onnx"
    m = onnx.load(model_path)
    opset = next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 13:
        # per-channel DequantizeLinear (axis attribute) needs opset >= 13; quantize_static
        # otherwise writes a model ORT refuses to load (PP-OCR cls is opset 11, rec opset 12)
        from onnx import version_converter

        m = version_converter.convert_version(m, 13)
    for name, shape in shapes.items():
        pin_input_shape(m, name, shape)
    onnx.save(m, str(fixed))
    del m
    try:
        quant_pre_process(str(fixed), str(out))
    except Exception as e:  # noqa: BLE001 - ORT's symbolic shape inference is fragile
        # e.g. PP-OCR cls: AssertionError in _infer_Concat (axis != 0 on a shape tensor)
        quant_pre_process(str(fixed), str(out), skip_symbolic_shape=True)
        return f"symbolic shape inference failed ({type(e).__name__}), skipped"
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("calibration", help=".npy, samples stacked on axis 0 (batch dim removed)")
    ap.add_argument("output")
    ap.add_argument("--input-shape", required=True, help="NAME:D0,D1,...")
    ap.add_argument("--method", default="MinMax", choices=["MinMax", "Entropy", "Percentile", "Distribution"])
    ap.add_argument("--activation", default="QInt8", choices=["QInt8", "QUInt8"])
    ap.add_argument("--reduce-range", action="store_true", help="7-bit weights (ORT's advice for x86 without VNNI)")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    name, dims = args.input_shape.split(":", 1)
    shape = [int(d) for d in dims.split(",")]
    calib = np.load(args.calibration, mmap_mode="r")

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.i = 0

        def get_next(self):
            if self.i >= len(calib):
                return None
            x = np.ascontiguousarray(calib[self.i : self.i + 1], dtype=np.float32)
            self.i += 1
            return {name: x}

        def rewind(self):
            self.i = 0

    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ortq-") as tmp:
        prep = Path(tmp) / "prep.onnx"
        prep_note = prepare(args.model, {name: shape}, prep, Path(tmp))
        t_prep = time.perf_counter()
        quantize_static(
            str(prep),
            args.output,
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=getattr(QuantType, args.activation),
            weight_type=QuantType.QInt8,
            calibrate_method=getattr(CalibrationMethod, args.method),
            reduce_range=args.reduce_range,
        )
        t_end = time.perf_counter()
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "import_s": round(t_start - t0, 3),
        "prep_s": round(t_prep - t_start, 3),
        "quant_s": round(t_end - t_prep, 3),
        "total_s": round(t_end - t_start, 3),
        "self_peak_rss_mb": round(rss_kb / 1024, 1),
        "prep_note": prep_note,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
