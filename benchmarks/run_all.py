"""Run every benchmark, one after another (``make bench``); each writes its own file in
``benchmarks/results/``. ``--only quant,tflite`` runs a subset; ``--quick`` passes ``--quick`` to
the benchmarks that have a short mode. A failing benchmark does not stop the others; the exit code
says whether all passed."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (script, takes --quick)
BENCHMARKS = {
    "import_canonicalize": ("import_canonicalize.py", False),
    "roundtrip_corpus": ("roundtrip_corpus.py", False),
    "quant": ("quant/run.py", True),
    "tflite": ("tflite/run.py", False),
    "edgetpu": ("edgetpu/run.py", True),
    "openvino": ("openvino/run.py", False),
    "tensorrt": ("tensorrt/run.py", False),
    "compress": ("compress/run.py", True),
    "fleet": ("fleet.py", False),
    "startup": ("startup.py", False),
    "int8_corpus": ("int8_corpus/run.py", True),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    ap.add_argument("--quick", action="store_true", help="short mode where a benchmark has one")
    args = ap.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    failed = []
    for name in names:
        script, has_quick = BENCHMARKS[name]
        cmd = [sys.executable, str(HERE / script)] + (["--quick"] if args.quick and has_quick else [])
        print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd, cwd=HERE.parent)
        print(f"== {name}: exit {rc} after {time.perf_counter() - t0:.0f} s", flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
