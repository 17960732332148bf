"""Benchmark of the openvino backend: ``python benchmarks/openvino/run.py``.

Model: PP-OCR mobile v2 direction classifier (``rapidocr_onnxruntime`` wheel), input pinned 1x3x48x192.
Data: rendered text lines (benchmarks/datasets/textlines.py): ``--calib`` lines (seed 1) for calibration,
``--eval`` lines (seed 2) for accuracy (top-1, upright vs rotated).

Measured in one run on this machine:

* build time of ``deploykit build`` (fresh process, CLI) for intel-cpu fp32 / int8 and ncs2 fp16;
* latency of each IR in OpenVINO on the host CPU (same harness for all: LATENCY hint, ``--threads``
  threads, f32 inference precision, ``infer()`` only, ``--runs`` runs, best p50 of three);
* top-1 accuracy of: fp32 onnxruntime (source model), OpenVINO fp32, OpenVINO INT8 (deploykit engine),
  OpenVINO INT8 (NNCF ``nncf.quantize`` on the same calibration lines, default preset), ncs2 FP16 IR;
* NNCF quantization wall time. NNCF lives in its own venv (``~/.cache/deploykit/venvs/nncf``,
  ``pip install nncf==3.4.0 openvino==<host version>``); ``--no-nncf`` skips it.

Results: benchmarks/results/openvino.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
import modelzoo  # noqa: E402
from datasets import textlines  # noqa: E402
from hostinfo import cpu_model  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
VENVS = Path(os.environ.get("DEPLOYKIT_BENCH_VENVS", Path.home() / ".cache" / "deploykit" / "venvs"))
NNCF_VERSION = "3.4.0"
ENV = {**os.environ, "DEPLOYKIT_PLUGINS": "profiles,onnxruntime,openvino"}
SHAPE = [1, 3, 48, 192]

NNCF_SCRIPT = r"""
import sys, time, json
import numpy as np
t0 = time.perf_counter()
import nncf, openvino as ov
onnx_path, calib_path, xml_out = sys.argv[1:4]
t1 = time.perf_counter()
model = ov.convert_model(onnx_path, input=[1, 3, 48, 192])
calib = np.load(calib_path)
dataset = nncf.Dataset(list(calib), lambda x: x[None])
q = nncf.quantize(model, dataset, subset_size=len(calib))
ov.save_model(q, xml_out, compress_to_fp16=False)
t2 = time.perf_counter()
print(json.dumps({"quantize_s": t2 - t1, "total_s": t2 - t0, "nncf": nncf.__version__}))
"""


def build(model: Path, target: str, precision: str, out: Path, extra: list[str]) -> float:
    cmd = [sys.executable, "-m", "deploykit.cli.app", "build", str(model), "--target", target, "--precision", precision,
           "--input-shape", "x:" + ",".join(map(str, SHAPE)), "-o", str(out), "--force", *extra]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=ROOT)
    dt = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"build failed ({target} {precision}): {proc.stderr[-1500:]}")
    return dt


def compiled(xml: Path, threads: int):
    import openvino as ov

    return ov.Core().compile_model(str(xml), "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads,
                                                     "INFERENCE_PRECISION_HINT": "f32"})


def latency(xml: Path, threads: int, runs: int) -> dict:
    c = compiled(xml, threads)
    req = c.create_infer_request()
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    for _ in range(10):
        req.infer({0: x})
    best = None
    for _ in range(3):
        t = []
        for _ in range(runs):
            t0 = time.perf_counter()
            req.infer({0: x})
            t.append((time.perf_counter() - t0) * 1e3)
        p50 = float(np.percentile(t, 50))
        if best is None or p50 < best["p50_ms"]:
            best = {"p50_ms": p50, "p90_ms": float(np.percentile(t, 90)), "mean_ms": float(np.mean(t))}
    return best


def accuracy_ov(xml: Path, x: np.ndarray, labels: np.ndarray, threads: int) -> float:
    c = compiled(xml, threads)
    req = c.create_infer_request()

    def run(batch):
        req.infer({0: batch})
        return np.array(req.get_output_tensor(0).data)

    return textlines.evaluate_cls(run, x, labels)


def accuracy_ort(model: Path, x: np.ndarray, labels: np.ndarray) -> float:
    import onnxruntime as ort

    s = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return textlines.evaluate_cls(lambda b: s.run(None, {"x": b})[0], x, labels)


def nncf_python(install: bool) -> Path | None:
    import openvino as ov

    py = VENVS / "nncf" / "bin" / "python"
    if not py.exists() and install:
        subprocess.run([sys.executable, "-m", "venv", str(VENVS / "nncf")], check=True)
        ver = str(ov.get_version()).split("-")[0]
        subprocess.run([str(py), "-m", "pip", "install", "-q", f"nncf=={NNCF_VERSION}", f"openvino=={ver}"], check=True)
    return py if py.exists() else None


def run_nncf(py: Path, model: Path, calib: Path, xml: Path) -> dict:
    t = time.perf_counter()
    proc = subprocess.run([str(py), "-c", NNCF_SCRIPT, str(model), str(calib), str(xml)], capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"nncf failed: {proc.stderr[-1500:]}")
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    info["process_s"] = wall
    return info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calib", type=int, default=64)
    ap.add_argument("--eval", type=int, default=300)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-nncf", action="store_true")
    args = ap.parse_args()
    import openvino as ov

    model = modelzoo.ppocr_cls_path()
    if model is None:
        raise SystemExit("rapidocr-onnxruntime (PP-OCR cls) is not installed")
    xc, _ = textlines.cls_dataset(args.calib, seed=1)
    xe, ye = textlines.cls_dataset(args.eval, seed=2)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="dk-ov-bench-") as tmp:
        tmp = Path(tmp)
        calib = tmp / "calib.npy"
        np.save(calib, xc)
        fp32_acc = accuracy_ort(model, xe, ye)
        rows.append({"variant": "fp32 onnxruntime (source)", "accuracy": fp32_acc})
        builds = [("intel-cpu", "fp32", []), ("intel-cpu", "int8", ["--calibration", str(calib)]), ("ncs2", "fp16", [])]
        for target, precision, extra in builds:
            out = tmp / f"{target}-{precision}"
            dt = build(model, target, precision, out, extra)
            report = json.loads((out / "report.json").read_text())
            row = {"variant": f"deploykit {target} {precision}", "build_s": dt,
                   "accuracy": accuracy_ov(out / "model.xml", xe, ye, args.threads),
                   "latency": latency(out / "model.xml", args.threads, args.runs),
                   "ir_bytes": (out / "model.bin").stat().st_size,
                   "verification": report["verification"]["status"]}
            if precision == "int8":
                row["runtime_precision"] = report["backend_report"].get("int8_runtime_precision")
                row["range_method"] = (report.get("quantization") or {}).get("range_method")
            if target == "ncs2":
                row["ov2022_check"] = report["backend_report"].get("ov2022_check", {}).get("status")
            rows.append(row)
            print(json.dumps(row), flush=True)
        nncf_info = None
        py = None if args.no_nncf else nncf_python(install=True)
        if py is not None:
            xml = tmp / "nncf" / "model.xml"
            xml.parent.mkdir()
            nncf_info = run_nncf(py, model, calib, xml)
            row = {"variant": f"NNCF {nncf_info['nncf']} nncf.quantize (default preset)", "build_s": nncf_info["process_s"],
                   "quantize_s": nncf_info["quantize_s"], "accuracy": accuracy_ov(xml, xe, ye, args.threads),
                   "latency": latency(xml, args.threads, args.runs), "ir_bytes": xml.with_suffix(".bin").stat().st_size,
                   "runtime_precision": _runtime_precision(xml)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {
        "model": "ch_ppocr_mobile_v2.0_cls (PP-OCR mobile v2 direction classifier), 1x3x48x192",
        "host": {"cpu": _cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                 "openvino": str(ov.get_version()).split("-")[0]},
        "settings": {"calibration_lines": args.calib, "eval_lines": args.eval, "threads": args.threads,
                     "runs": args.runs, "latency": "best p50 of 3 x runs, infer() only, LATENCY hint, f32 inference precision"},
        "rows": rows,
    }
    fp32 = next(r for r in rows if r["variant"] == "deploykit intel-cpu fp32")
    int8 = next(r for r in rows if r["variant"] == "deploykit intel-cpu int8")
    result["int8_speedup_vs_fp32"] = fp32["latency"]["p50_ms"] / int8["latency"]["p50_ms"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "openvino.json").write_text(json.dumps(_round(result), indent=2, sort_keys=True) + "\n")
    (RESULTS / "openvino.md").write_text(_markdown(result))
    print((RESULTS / "openvino.md").read_text())
    return 0


def _runtime_precision(xml: Path) -> dict:
    sys.path.insert(0, str(ROOT / "plugins"))
    from deploykit_openvino.lowering import runtime_precisions

    return runtime_precisions(xml)


def _cpu_name() -> str:
    return cpu_model(platform.processor())


def _round(v):
    if isinstance(v, float):
        return float(f"{v:.4g}")
    if isinstance(v, dict):
        return {k: _round(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_round(x) for x in v]
    return v


def _markdown(r: dict) -> str:
    s = r["settings"]
    lines = [
        "# openvino backend benchmark", "",
        f"Model: {r['model']}. Host: {r['host']['cpu']}, {r['host']['cores']} cores, Python {r['host']['python']}, "
        f"OpenVINO {r['host']['openvino']}. Accuracy: top-1 on {s['eval_lines']} rendered text lines "
        f"(benchmarks/datasets/textlines.py, seed 2); calibration: {s['calibration_lines']} other lines (seed 1). "
        f"Latency: {s['latency']}, {s['threads']} threads, {s['runs']} runs.", "",
        "Reproduce: `python benchmarks/openvino/run.py`", "",
        "| variant | top-1 | p50 latency (ms) | build / quantize time (s) | weights (.bin bytes) | notes |",
        "|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        lat = row.get("latency", {}).get("p50_ms")
        lat_s = "" if lat is None else f"{lat:.3f}"
        build_s = "" if row.get("build_s") is None else f"{row['build_s']:.3g}"
        notes = []
        if row.get("verification"):
            notes.append(f"verification {row['verification']}")
        if row.get("runtime_precision"):
            notes.append("CPU kernels " + ", ".join(f"{k}: {v}" for k, v in row["runtime_precision"].items()))
        if row.get("range_method"):
            notes.append(f"range method {row['range_method']}")
        if row.get("ov2022_check"):
            notes.append(f"OpenVINO 2022.3 check {row['ov2022_check']}")
        if row.get("quantize_s") is not None:
            notes.append(f"nncf.quantize + convert {row['quantize_s']:.3g} s in-process")
        lines.append(f"| {row['variant']} | {row['accuracy']:.4f} | {lat_s} | {build_s} | {row.get('ir_bytes', '')} | "
                     f"{'; '.join(notes)} |")
    lines += ["", f"INT8 vs FP32 latency (deploykit, OpenVINO CPU): {r['int8_speedup_vs_fp32']:.3g}x.", "",
              "Build time is the whole `deploykit build` process (import, canonicalize, calibrate, lower, fp32 "
              "reference, verification through the generated runner, bundle); NNCF's is its process "
              "(imports + convert_model + nncf.quantize + save_model), without verification or bundling.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
