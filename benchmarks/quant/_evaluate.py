"""Worker: evaluate one model (an ONNX file in onnxruntime, or a bundle through its runner) on a
saved data set and print the metrics as JSON. ``run.py --emulate-cpu`` starts it under QEMU so
that the int8 kernels are the emulated CPU's."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent.parent))

import run  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", help="model key: ppocr_cls | ppocr_rec")
    ap.add_argument("data", type=Path, help=".npz written by run.save_data")
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--onnx", type=Path)
    group.add_argument("--bundle", type=Path)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    spec = next(s for s in run.model_specs(args.quick) if s.key == args.spec)
    data = run.load_data(args.data)
    fn = run.ort_run_fn(args.onnx, spec.input_name) if args.onnx else run.bundle_run_fn(args.bundle, spec.input_name)
    res = run.evaluate(spec, fn, data)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
