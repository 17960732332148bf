"""Worker: ``onnxruntime.quantization.quantize_static`` on a model with any number of inputs.

    python ort_worker.py MODEL CALIB.npz OUT.onnx --input-shape NAME:D0,D1,.. [...] \
        --method MinMax|Entropy|Percentile --activation QInt8|QUInt8

The multi-input counterpart of ``benchmarks/quant/ort_quantize.py``, whose ``prepare`` it reuses:
opset raised to 13 when lower (per-channel DequantizeLinear needs it), dynamic dims pinned,
``quant_pre_process`` (retried without symbolic shape inference when that fails), then
``quantize_static`` with QDQ, per-channel QInt8 weights, the requested activation type and
calibration method, samples fed one by one (batch 1). ``CalibStridedMinMax`` (ORT's own option;
despite its name every calibrator honours it) collects statistics in strides of at most 8 samples
and merges them, which bounds the memory of the histogram methods: they otherwise keep every
intermediate tensor of every sample (13 GB on PP-OCR rec). MinMax ranges are the same either way.
Prints one JSON line: ``{"quant_s", "prep_note"}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.quant.ort_quantize import prepare  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("calibration", help=".npz, one array per input, samples on axis 0 (batch-1 axis removed)")
    ap.add_argument("output")
    ap.add_argument("--input-shape", action="append", required=True, help="NAME:D0,D1,...")
    ap.add_argument("--method", default="MinMax", choices=["MinMax", "Entropy", "Percentile"])
    ap.add_argument("--activation", default="QUInt8", choices=["QInt8", "QUInt8"])
    args = ap.parse_args(argv)

    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    shapes = {}
    for spec in args.input_shape:
        name, dims = spec.rsplit(":", 1)
        shapes[name] = [int(d) for d in dims.split(",")]
    calib = dict(np.load(args.calibration))
    n = len(next(iter(calib.values())))

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.i, self.end = 0, n

        def __len__(self):
            return n

        def set_range(self, start_index: int, end_index: int):
            self.i, self.end = start_index, min(end_index, n)

        def get_next(self):
            if self.i >= self.end:
                return None
            feed = {k: np.ascontiguousarray(v[self.i]).reshape(shapes[k]) for k, v in calib.items()}
            self.i += 1
            return feed

        def rewind(self):
            self.i, self.end = 0, n

    stride = max(d for d in range(1, 9) if n % d == 0)

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ortq-") as tmp:
        prep = Path(tmp) / "prep.onnx"
        note = prepare(args.model, shapes, prep, Path(tmp))
        quantize_static(str(prep), args.output, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=getattr(QuantType, args.activation), weight_type=QuantType.QInt8,
                        calibrate_method=getattr(CalibrationMethod, args.method),
                        extra_options={"CalibStridedMinMax": stride})
    print(json.dumps({"quant_s": round(time.perf_counter() - t0, 2), "prep_note": note, "stride": stride}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
