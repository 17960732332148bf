"""Wall time and peak memory of import + canonicalize for every ONNX ``light_*`` model.

    python benchmarks/import_canonicalize.py [--repeats 3] [--only SUBSTRING]

For each model and repeat, a fresh Python subprocess runs ``deploykit.ir.load_model`` (import)
then ``deploykit.passes.canonicalize`` twice over:

* a *timing* run without tracing: wall time of each step and peak RSS (``resource.getrusage``,
  ``ru_maxrss``) measured after the imports, after import, and after canonicalize;
* a *tracemalloc* run: peak of Python-traced allocations during each step (numpy buffers are
  traced; onnx/protobuf C++ allocations are not, which is why peak RSS is reported too).

Figures are medians over the repeats. Writes ``benchmarks/results/import_canonicalize.json``
and ``.md``. Machine info has no host names or paths.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PACKAGES = ("deploykit", "onnx", "onnx-ir", "onnxruntime", "numpy", "protobuf")


def light_models() -> list[Path]:
    import onnx

    return sorted((Path(onnx.__file__).parent / "backend" / "test" / "data" / "light").glob("light_*.onnx"))


# --------------------------------------------------------------------------- child process
def _child(path: str, mode: str) -> dict:
    import resource

    def rss_mb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux

    import logging
    import warnings

    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    sys.path.insert(0, str(ROOT))
    import deploykit.ir as dir_
    import deploykit.passes as passes
    from deploykit.ir.stats import model_stats

    result: dict = {"rss_after_imports_mb": rss_mb()}
    if mode == "tracemalloc":
        import tracemalloc

        tracemalloc.start()
        model = dir_.load_model(path)
        result["tracemalloc_import_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.reset_peak()
        model = passes.canonicalize(model)
        result["tracemalloc_canonicalize_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        return result
    t0 = time.perf_counter()
    model = dir_.load_model(path)
    t1 = time.perf_counter()
    result["rss_after_import_mb"] = rss_mb()
    nodes_before = len(list(model.graph))
    before = model_stats(model)
    t2 = time.perf_counter()
    model = passes.canonicalize(model)
    t3 = time.perf_counter()
    result["rss_after_canonicalize_mb"] = rss_mb()
    after = model_stats(model)
    result.update(
        import_s=t1 - t0,
        canonicalize_s=t3 - t2,
        nodes_before=nodes_before,
        nodes_after=len(list(model.graph)),
        params_before=before.params,
        params_after=after.params,
        weight_bytes_after=after.param_bytes,
        macs=after.macs,
    )
    return result


def _run_child(path: Path, mode: str) -> dict:
    res = subprocess.run([sys.executable, __file__, "--child", str(path), "--mode", mode],
                         capture_output=True, text=True, cwd=ROOT, timeout=1800)
    if res.returncode != 0:
        raise RuntimeError(f"{path.name} ({mode}) failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- machine info
def machine_info() -> dict:
    from hostinfo import cpu_model, memory_gb  # benchmarks/ is this script's folder

    cpu = cpu_model(platform.processor() or platform.machine())
    mem_gb = memory_gb()
    versions = {}
    for p in PACKAGES:
        try:
            versions[p] = md.version(p)
        except md.PackageNotFoundError:
            versions[p] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": mem_gb,
        "os": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        "packages": versions,
    }


# --------------------------------------------------------------------------- report
def _median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def summarize(path: Path, timing: list[dict], traced: list[dict]) -> dict:
    first = timing[0]
    return {
        "model": path.stem,
        "file_bytes": path.stat().st_size,
        "nodes_before": first["nodes_before"],
        "nodes_after": first["nodes_after"],
        "params_before": first["params_before"],
        "params_after": first["params_after"],
        "weight_mb_after": round(first["weight_bytes_after"] / 2**20, 1),
        "gmacs": round(first["macs"] / 1e9, 3),
        "import_s": round(_median(timing, "import_s"), 4),
        "canonicalize_s": round(_median(timing, "canonicalize_s"), 4),
        "total_s": round(statistics.median(r["import_s"] + r["canonicalize_s"] for r in timing), 4),
        "total_s_min_max": [round(min(r["import_s"] + r["canonicalize_s"] for r in timing), 4),
                            round(max(r["import_s"] + r["canonicalize_s"] for r in timing), 4)],
        "rss_baseline_mb": round(_median(timing, "rss_after_imports_mb"), 1),
        "peak_rss_import_mb": round(_median(timing, "rss_after_import_mb"), 1),
        "peak_rss_mb": round(_median(timing, "rss_after_canonicalize_mb"), 1),
        "tracemalloc_import_peak_mb": round(_median(traced, "tracemalloc_import_peak_mb"), 1),
        "tracemalloc_canonicalize_peak_mb": round(_median(traced, "tracemalloc_canonicalize_peak_mb"), 1),
        "runs": {"timing": timing, "tracemalloc": traced},
    }


def write_markdown(report: dict, path: Path) -> None:
    m = report["machine"]
    rows = report["models"]
    largest = max(rows, key=lambda r: r["weight_mb_after"])
    lines = [
        "# Import + canonicalize: time and memory on the ONNX light models",
        "",
        f"`python benchmarks/import_canonicalize.py` — {report['repeats']} repeats per model, median; every run in a "
        "fresh subprocess. *import* = `deploykit.ir.load_model` (read, check, shape inference, onnx_ir conversion); "
        "*canonicalize* = `deploykit.passes.canonicalize` (constant folding, BatchNorm folding, fusions, dead code). "
        "The light models store no weights: they build them with `ConstantOfShape` nodes, so constant folding "
        "materializes every weight tensor — that is where the time and memory go.",
        "",
        f"**Largest model: {largest['model']}** — {largest['params_after']:,} parameters "
        f"({largest['weight_mb_after']} MiB of float32 weights after folding, from a {largest['file_bytes']:,}-byte file): "
        f"import {largest['import_s']:.3f} s + canonicalize {largest['canonicalize_s']:.3f} s, "
        f"peak RSS {largest['peak_rss_mb']:.0f} MiB (process baseline after imports {largest['rss_baseline_mb']:.0f} MiB), "
        f"tracemalloc peak during canonicalize {largest['tracemalloc_canonicalize_peak_mb']:.0f} MiB.",
        "",
        "| model | nodes before → after | params after | weights MiB | GMACs | import s | canonicalize s | "
        "peak RSS MiB (import / total) | tracemalloc peak MiB (import / canonicalize) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(rows, key=lambda r: -r["weight_mb_after"]):
        name = f"**{r['model']}**" if r is largest else r["model"]
        lines.append(
            f"| {name} | {r['nodes_before']} → {r['nodes_after']} | {r['params_after']:,} | {r['weight_mb_after']} | "
            f"{r['gmacs']} | {r['import_s']:.4f} | {r['canonicalize_s']:.3f} | "
            f"{r['peak_rss_import_mb']:.0f} / {r['peak_rss_mb']:.0f} | "
            f"{r['tracemalloc_import_peak_mb']:.1f} / {r['tracemalloc_canonicalize_peak_mb']:.1f} |"
        )
    total = sum(r["total_s"] for r in rows)
    lines += [
        "",
        f"Sum over the {len(rows)} models (medians): {total:.2f} s. Spread of import+canonicalize over the repeats "
        "(min–max, s): " + ", ".join(f"{r['model'][6:]} {r['total_s_min_max'][0]:.2f}–{r['total_s_min_max'][1]:.2f}"
                                      for r in rows) + ".",
        "",
        f"Load average (1/5/15 min) at start {report['load_average_1_5_15']['start']}, at end "
        f"{report['load_average_1_5_15']['end']} on {m['cores']} cores: the machine was shared, so wall times are "
        "noisy (memory figures are not).",
        "",
        "Peak RSS is the process's `ru_maxrss` (includes the interpreter and the imported libraries — see the "
        "baseline). tracemalloc sees Python/numpy allocations only, not onnx's C++ protobuf buffers.",
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu']} ({m['cores']} logical cores), memory {m['memory_gb']} GB, {m['os']}",
        f"- Python {m['python']}; " + ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v),
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="", help="only models whose name contains this")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="timing", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args.mode)))
        return 0

    models = [p for p in light_models() if args.only in p.stem]
    if not models:
        print("no light_* models found (is onnx installed?)", file=sys.stderr)
        return 1
    start = time.time()
    load_before = [round(x, 2) for x in os.getloadavg()]
    rows = []
    for path in models:
        timing = [_run_child(path, "timing") for _ in range(args.repeats)]
        traced = [_run_child(path, "tracemalloc") for _ in range(args.repeats)]
        row = summarize(path, timing, traced)
        rows.append(row)
        print(f"{row['model']:24s} import {row['import_s']:.4f}s  canonicalize {row['canonicalize_s']:.3f}s  "
              f"peak RSS {row['peak_rss_mb']:.0f} MiB  tracemalloc {row['tracemalloc_canonicalize_peak_mb']:.1f} MiB",
              flush=True)
    largest = max(rows, key=lambda r: r["weight_mb_after"])
    report = {
        "benchmark": "import_canonicalize",
        "command": "python benchmarks/import_canonicalize.py" + (f" --repeats {args.repeats}" if args.repeats != 3 else ""),
        "repeats": args.repeats,
        "statistic": "median",
        "machine": machine_info(),
        "largest_model": {k: largest[k] for k in largest if k != "runs"},
        "models": rows,
        "elapsed_s": round(time.time() - start, 1),
        "load_average_1_5_15": {"start": load_before, "end": [round(x, 2) for x in os.getloadavg()]},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "import_canonicalize.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    write_markdown(report, RESULTS / "import_canonicalize.md")
    print(f"largest: {largest['model']} ({largest['params_after']:,} params) -> benchmarks/results/import_canonicalize.{{json,md}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
