"""TensorRT/Jetson backend: what can be measured on a host without a GPU.

PP-OCR text-direction classifier (rapidocr_onnxruntime) on rendered text lines
(benchmarks/datasets/textlines.py): int8 QDQ model (placed for TensorRT) vs fp32 in onnxruntime CPU,
build times and artifact sizes for jetson-nano fp16, jetson-orin-nano fp16 and int8.
Engine latency needs a Jetson: it is not measured here.

    python benchmarks/tensorrt/run.py [--calib 64] [--eval 300]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ["DEPLOYKIT_PLUGINS"] = "profiles,onnxruntime,tensorrt"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calib", type=int, default=64)
    ap.add_argument("--eval", type=int, default=300)
    args = ap.parse_args()
    import onnxruntime as ort

    from datasets.textlines import cls_dataset, evaluate_cls, model_path
    from deploykit.pipeline import BuildRequest, build

    model = model_path("ch_ppocr_mobile_v2.0_cls_infer.onnx")
    xc, _ = cls_dataset(args.calib, seed=1)
    xe, ye = cls_dataset(args.eval, seed=2)
    work = Path(tempfile.mkdtemp(prefix="dk-trt-bench-"))
    np.save(work / "calib.npy", xc)
    builds = {}
    for target, precision in [("jetson-nano", "fp16"), ("jetson-orin-nano", "fp16"), ("jetson-orin-nano", "int8")]:
        req = BuildRequest(model=model, target=target, precision=precision, output=work / f"{target}-{precision}",
                           input_shapes=["x:1,3,48,192"], calibration=str(work / "calib.npy") if precision == "int8" else None)
        t0 = time.perf_counter()
        res = build(req)
        seconds = time.perf_counter() - t0
        files = {p.name: p.stat().st_size for p in sorted(res.out_dir.iterdir()) if p.is_file()}
        builds[f"{target}/{precision}"] = {"build_s": round(seconds, 2), "files_bytes": files,
                                           "verification": res.manifest["verification"]["status"],
                                           "quantization": res.manifest.get("quantization"),
                                           "backend_report": res.report["backend_report"]}

    def runner(path):
        s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = s.get_inputs()[0].name
        return lambda x: s.run(None, {name: x})[0]

    fp32 = runner(model)
    int8 = runner(work / "jetson-orin-nano-int8" / "model.onnx")
    acc32 = evaluate_cls(fp32, xe, ye)
    acc8 = evaluate_cls(int8, xe, ye)
    p32 = np.concatenate([fp32(x[None]) for x in xe])
    p8 = np.concatenate([int8(x[None]) for x in xe])
    agree = float((p32.argmax(1) == p8.argmax(1)).mean())
    maxdiff = float(np.abs(p32 - p8).max())
    result = {
        "model": "ch_ppocr_mobile_v2.0_cls_infer.onnx (input x:1,3,48,192)",
        "dataset": f"textlines.cls_dataset: calibration n={args.calib} seed=1, evaluation n={args.eval} seed=2",
        "host_accuracy": {"fp32_onnxruntime": acc32, "int8_qdq_onnxruntime_cpu": acc8,
                          "top1_agreement_int8_vs_fp32": agree, "max_abs_prob_diff": maxdiff},
        "builds": builds,
        "engine_latency": "not measured: needs a Jetson with TensorRT (no GPU on this host)",
    }
    out = ROOT / "benchmarks" / "results"
    (out / "tensorrt.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    lines = ["# TensorRT / Jetson backend benchmark (host, no GPU)", "",
             f"Model: {result['model']}. Data: {result['dataset']}.", "",
             "## Accuracy on the host (onnxruntime CPU)", "", "| model | accuracy |", "|---|---|",
             f"| fp32 source | {acc32:.4f} |", f"| int8 QDQ (jetson-orin-nano model.onnx) | {acc8:.4f} |", "",
             f"Top-1 agreement int8 vs fp32: {agree:.4f}; max |prob diff|: {maxdiff:.4f}.", "",
             "## Builds", "", "| target/precision | build s | model.onnx bytes | all files bytes | verification |",
             "|---|---|---|---|---|"]
    for k, b in builds.items():
        lines.append(f"| {k} | {b['build_s']} | {b['files_bytes'].get('model.onnx')} | {sum(b['files_bytes'].values())} | {b['verification']} |")
    q = builds["jetson-orin-nano/int8"]["backend_report"]
    lines += ["", f"int8 placement: {json.dumps(q.get('qdq_placement'))}",
              f"calibration cache: {json.dumps(q.get('calibration_cache'))}", "",
              "Engine latency: **not measured** — it needs a Jetson with TensorRT; run "
              "`python3 runner.py --benchmark 50` in a bundle on the device.", ""]
    (out / "tensorrt.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
