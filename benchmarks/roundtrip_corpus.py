"""Round-trip the onnx backend node-test corpus through deploykit and report the pass rate.

    python benchmarks/roundtrip_corpus.py [--jobs N] [--only SUBSTRING]

Every case: onnxruntime on the original model vs onnxruntime on
``deploykit.ir.load_model(require_static=False) -> deploykit.passes.canonicalize -> to_proto``.
Cases ORT cannot run on the original are "not counted". Writes
``benchmarks/results/roundtrip_corpus.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))


def _corpus():
    spec = importlib.util.spec_from_file_location("roundtrip_corpus_lib", ROOT / "tests" / "roundtrip" / "corpus.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _run(name: str):
    import logging
    import warnings

    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    res = _corpus().run_case(name)
    return res.name, res.status, res.reason


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only", default="", help="run only cases whose name contains this")
    args = parser.parse_args(argv)

    corpus = _corpus()
    names = [n for n in corpus.case_names() if args.only in n]
    start = time.time()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(_run, names, chunksize=8))
    elapsed = time.time() - start

    counted = [r for r in rows if r[1] != corpus.NOT_COUNTED]
    passed = [r for r in counted if r[1] == corpus.PASS]
    failed = [r for r in counted if r[1] == corpus.FAIL]
    skipped = [r for r in rows if r[1] == corpus.NOT_COUNTED]
    import onnx
    import onnx_ir
    import onnxruntime

    summary = {
        "corpus": "onnx backend node tests (onnx.backend.test.case.node)",
        "versions": {"onnx": onnx.__version__, "onnx_ir": onnx_ir.__version__, "onnxruntime": onnxruntime.__version__},
        "cases": len(rows),
        "counted": len(counted),
        "passed": len(passed),
        "failed": len(failed),
        "not_counted": len(skipped),
        "pass_rate": round(len(passed) / len(counted), 4) if counted else None,
        "seconds": round(elapsed, 1),
        "failures": {n: reason for n, _, reason in failed},
        "not_counted_cases": {n: reason for n, _, reason in skipped},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "roundtrip_corpus.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    md = [
        "# Round-trip corpus: onnx backend node tests",
        "",
        "`load_model(require_static=False) -> canonicalize -> to_proto`, compared with onnxruntime on the",
        "original model (rtol 1e-4, atol 1e-5 + 1e-4 x output range). Regenerate with",
        "`python benchmarks/roundtrip_corpus.py`.",
        "",
        f"- versions: onnx {onnx.__version__}, onnx_ir {onnx_ir.__version__}, onnxruntime {onnxruntime.__version__}",
        f"- cases: {len(rows)}; counted (ORT runs the original): {len(counted)}; not counted: {len(skipped)}",
        f"- **passed: {len(passed)} / {len(counted)} ({100 * len(passed) / max(len(counted), 1):.2f} %)**",
        "",
        "## Failures",
        "",
    ]
    md += [f"- `{n}`: {reason}" for n, _, reason in failed] or ["none"]
    md += ["", "## Not counted (reason from onnxruntime on the original model)", ""]
    reasons: dict[str, int] = {}
    for _, _, reason in skipped:
        key = reason.split(":")[0] if "cannot run" not in reason else reason[:120]
        reasons[key] = reasons.get(key, 0) + 1
    md += [f"- {count} x {reason}" for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1])[:40]]
    (RESULTS / "roundtrip_corpus.md").write_text("\n".join(md) + "\n")
    print(f"{len(passed)}/{len(counted)} passed ({len(skipped)} not counted) in {elapsed:.0f}s")
    for n, _, reason in failed:
        print(f"FAIL {n}: {reason}")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
