"""x86-64 vs emulated arm64 verification of Raspberry Pi bundles: ``python benchmarks/emulated/run.py``.

For the quickstart model, PP-OCR cls and rec (rapidocr wheel; calibration and verification inputs
are rendered text lines, ``benchmarks/datasets/textlines.py``) and the tflite architecture corpus
(``benchmarks/tflite/arch_corpus.py`` models exported with torch at opset 17; skipped without an
interpreter that has torch), each built through the CLI for rpi4 fp32/fp16/int8 and rpi5
fp16/int8: the bundle's stored held-out samples run through its runner

* on this x86-64 host (LiteRT = ai-edge-litert, as host verification does), and
* on the emulated device (``deploykit.emulate``: arm64 Debian root, QEMU with the device's core and
  cpuinfo) with the runtime the bundle names (ai-edge-litert 2.3.0) and the runner's fallback
  (tflite-runtime 2.14.0),

and records per bundle × runtime: the share of output values that differ between x86 and arm64,
their largest difference, the max abs error vs fp32 on each, arg-max agreement with fp32, whether
XNNPACK was applied, and the emulated verification status (device tolerance). Writes
``benchmarks/results/emulated.{json,md}``. Needs what ``deploykit verify --emulate`` needs (root,
qemu-user-static + binfmt, mmdebstrap). Emulated speed says nothing about a Pi's: no timings.

    python benchmarks/emulated/run.py [--torch-python PY] [--only quickstart,ppocr_cls] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "benchmarks" / "tflite"), str(ROOT)]
RESULTS = ROOT / "benchmarks" / "results"
ENV = {**os.environ, "DEPLOYKIT_PLUGINS": "profiles,onnxruntime,tflite"}
CASES = (("rpi4", "fp32"), ("rpi4", "fp16"), ("rpi4", "int8"), ("rpi5", "fp16"), ("rpi5", "int8"))


def text_models(work: Path) -> dict[str, dict]:
    """quickstart + PP-OCR cls/rec with real calibration inputs (the build keeps a held-out part for verification)."""
    models: dict[str, dict] = {}
    qs = work / "quickstart"
    subprocess.run([sys.executable, str(ROOT / "examples/quickstart/make_model.py"), "--out", str(qs)], check=True,
                   capture_output=True)
    models["quickstart"] = {"model": qs / "model.onnx", "calib": qs / "calib.npy", "args": []}
    try:
        from datasets import textlines
    except ImportError as e:  # pillow / rapidocr missing
        print(f"emulated: PP-OCR models skipped ({e})")
        return models
    cls_x, _ = textlines.cls_dataset(24, seed=11)
    np.save(work / "cls_calib.npy", cls_x[:, 0] if cls_x.ndim == 5 else cls_x)
    models["ppocr_cls"] = {"model": textlines.model_path("ch_ppocr_mobile_v2.0_cls_infer.onnx"),
                           "calib": work / "cls_calib.npy", "args": ["--input-shape", "x:1,3,48,192"]}
    rec_x, _ = textlines.rec_dataset(24, seed=12)
    np.save(work / "rec_calib.npy", rec_x[:, 0] if rec_x.ndim == 5 else rec_x)
    models["ppocr_rec"] = {"model": textlines.model_path("ch_PP-OCRv4_rec_infer.onnx"),
                           "calib": work / "rec_calib.npy", "args": ["--input-shape", "x:1,3,48,320"]}
    return models


def arch_models(work: Path, torch_python: str, only: list[str]) -> dict[str, dict]:
    import arch_corpus

    arch = work / "arch"
    arch.mkdir(exist_ok=True)
    index = arch_corpus.export_models(torch_python, arch, only, (17,))
    models = {}
    for fname, info in sorted((index or {}).items()):
        if "export_error" in info:
            continue
        name = info["arch"]
        models[name] = {"model": arch / fname, "calib": arch_corpus.calibration(arch, name, info), "args": [],
                        "corpus": "arch"}
    return models


def build(work: Path, name: str, m: dict, target: str, precision: str) -> tuple[Path | None, str]:
    out = work / "bundles" / f"{name}-{target}-{precision}"
    cmd = [sys.executable, "-m", "deploykit.cli.app", "build", str(m["model"]), "--target", target, "--precision",
           precision, "--calibration", str(m["calib"]), "-o", str(out), "--force", *m["args"]]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=3600)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        return None, (lines[-1] if lines else f"exit {proc.returncode}")[:200]
    return out, ""


def compare(bundle: Path) -> dict:
    from deploykit.bundle.manifest import open_bundle, read_samples
    from deploykit.emulate.run import Emulator
    from deploykit.emulate.verify import environments, profile_for, tolerance_key
    from deploykit.verification import run_bundle, stored_output_parts, verify_outputs

    manifest = open_bundle(bundle)
    feeds, refs = read_samples(bundle, manifest)
    host, host_runtime = run_bundle(bundle, feeds)
    profile = profile_for(manifest)
    names = ([s["name"] for s in manifest["inputs"]], [s["name"] for s in manifest["outputs"]])
    key = tolerance_key(manifest["precision"], profile, bundle)
    row = {"samples": len(feeds), "host": _errors(refs, host), "host_runtime": host_runtime, "runs": {}}
    for env in environments(profile, bundle, ("bundle", "fallback")):
        t0 = time.perf_counter()
        try:
            outs, info = Emulator(env, cores=profile.cores).run_bundle(bundle, feeds, *names)
        except Exception as e:  # noqa: BLE001 - one failing run is a row, not the end of the benchmark
            row["runs"][env.role] = {"error": f"{type(e).__name__}: {e}"[:300]}
            continue
        verdict = verify_outputs(refs, outs, key, info.get("runtime", "?"), parts=stored_output_parts(bundle, manifest))
        row["runs"][env.role] = {
            "runtime": info.get("runtime"), "cpu": env.cpu, "status": verdict["status"], "tolerance": key,
            "xnnpack": bool(info.get("xnnpack")),
            **_errors(refs, outs), **_diff(host, outs), "seconds": round(time.perf_counter() - t0, 1),
        }
    return row


def _errors(refs, outs) -> dict:
    err, agree, total = 0.0, 0, 0
    for r, o in zip(refs, outs):
        for k in r:
            a, b = np.asarray(r[k], np.float64), np.asarray(o[k], np.float64)
            err = max(err, float(np.max(np.abs(a - b))) if a.size else 0.0)
            if a.ndim >= 1 and a.shape[-1] > 1:
                agree += int(np.sum(np.argmax(a, -1) == np.argmax(b, -1)))
                total += int(np.prod(a.shape[:-1]))
    return {"max_err_vs_fp32": err, "argmax_agreement": agree / total if total else None}


def _diff(host, emulated) -> dict:
    differ, count, worst = 0, 0, 0.0
    for h, e in zip(host, emulated):
        for k in h:
            a, b = np.asarray(h[k]), np.asarray(e[k])
            differ += int(np.sum(a != b))
            count += a.size
            worst = max(worst, float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0)
    return {"differ_fraction": differ / count if count else 0.0, "max_diff_x86_arm": worst}


def header() -> list[str]:
    import platform

    from hostinfo import cpu_class_label, cpu_model

    qemu = subprocess.run(["qemu-aarch64-static", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return [f"Host: {cpu_model()} ({os.cpu_count()} cores), CPU class {cpu_class_label()}, {platform.system()} "
            f"{platform.machine()}, Python {platform.python_version()}; emulation: {qemu} (user mode), Debian bookworm "
            "arm64 root, QEMU_CPU and /proc/cpuinfo of the device (rpi4 cortex-a72, rpi5 cortex-a76)."]


def write(rows: list[dict], path: Path) -> None:
    path.with_suffix(".json").write_text(json.dumps({"header": header(), "rows": rows}, indent=1) + "\n")
    lines = ["# x86-64 vs emulated arm64 verification (`python benchmarks/emulated/run.py`)", "", *header(), "",
             "Per bundle: the stored held-out samples through the bundle's runner on this x86-64 host (ai-edge-litert) "
             "and on the emulated device with the bundle's runtime (ai-edge-litert 2.3.0) and the runner's fallback "
             "(tflite-runtime 2.14.0). *differ* = share of output values not bit-identical between x86 and the emulated "
             "device; *Δ x86/arm* = their largest difference; *err* = max abs error vs fp32 (onnxruntime); *argmax* = "
             "arg-max agreement with fp32 over the last axis; status = emulated verification under the device's "
             "tolerance (rpi5 fp16: fp16 arithmetic).", "",
             "## Summary per target, precision and runtime", "",
             "| target | precision | runtime | bundles | passed | XNNPACK | bit-identical to x86 | median differ | worst Δ x86/arm | worst argmax |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for target, precision in CASES:
        for role in ("bundle", "fallback"):
            runs = [r["runs"][role] for r in rows if r["target"] == target and r["precision"] == precision
                    and role in r.get("runs", {}) and "error" not in r["runs"][role]]
            if not runs:
                continue
            agree = [x["argmax_agreement"] for x in runs if x["argmax_agreement"] is not None]
            lines.append(f"| {target} | {precision} | {runs[0]['runtime'].split(' (')[0]} | {len(runs)} | "
                         f"{sum(x['status'] == 'passed' for x in runs)} | {sum(x['xnnpack'] for x in runs)} | "
                         f"{sum(x['differ_fraction'] == 0 for x in runs)} | {np.median([x['differ_fraction'] for x in runs]):.1%} | "
                         f"{max(x['max_diff_x86_arm'] for x in runs):.3g} | {min(agree) if agree else float('nan'):.3f} |")
    lines += ["", "## Per bundle", "", "| model | target | precision | x86 err | runtime | status | differ | Δ x86/arm | err | argmax |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("error"):
            lines.append(f"| {r['model']} | {r['target']} | {r['precision']} | build failed: {r['error']} | | | | | | |")
            continue
        for role, x in r["runs"].items():
            if "error" in x:
                lines.append(f"| {r['model']} | {r['target']} | {r['precision']} | | {role}: {x['error']} | | | | | |")
                continue
            am = "" if x["argmax_agreement"] is None else f"{x['argmax_agreement']:.3f}"
            lines.append(f"| {r['model']} | {r['target']} | {r['precision']} | {r['host']['max_err_vs_fp32']:.3g} | "
                         f"{x['runtime']} | {x['status']} | {x['differ_fraction']:.1%} | {x['max_diff_x86_arm']:.3g} | "
                         f"{x['max_err_vs_fp32']:.3g} | {am} |")
    path.write_text("\n".join(lines) + "\n")


def add_common_options(ap: argparse.ArgumentParser, out_name: str) -> None:
    ap.add_argument("--work", type=Path, default=None, help="folder for models and bundles (default: temp)")
    ap.add_argument("--only", default="", help="comma-separated model names")
    ap.add_argument("--out", type=Path, default=RESULTS / out_name)
    ap.add_argument("--update", action="store_true",
                    help="keep the rows of the existing results for models not run now (with --only: re-run a few)")


def start(args, label: str) -> tuple[Path, list[str], list[dict]] | None:
    """(work folder, --only names, rows kept from the last results) or None when this machine cannot emulate."""
    from deploykit.emulate.root import emulation_status

    status = emulation_status()
    if not status.available:
        print(f"{label}: cannot emulate here: {status.reason}")
        return None
    work = args.work or Path(tempfile.mkdtemp(prefix=f"deploykit-{label}-"))
    work.mkdir(parents=True, exist_ok=True)
    only = [s for s in args.only.split(",") if s]
    kept = []
    if args.update and args.out.with_suffix(".json").is_file():
        kept = [r for r in json.loads(args.out.with_suffix(".json").read_text())["rows"] if only and r["model"] not in only]
    return work, only, kept


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--torch-python", default=sys.executable, help="interpreter with torch for the arch corpus export")
    add_common_options(ap, "emulated.md")
    args = ap.parse_args(argv)
    started = start(args, "emulated")
    if started is None:
        return 0
    work, only, rows = started
    models = text_models(work)
    models.update(arch_models(work, args.torch_python, [o for o in only if o not in models]))
    for name, m in models.items():
        if only and name not in only:
            continue
        for target, precision in CASES:
            bundle, error = build(work, name, m, target, precision)
            row = {"model": name, "corpus": m.get("corpus", "real"), "target": target, "precision": precision}
            if bundle is None:
                rows.append({**row, "error": error})
            else:
                rows.append({**row, **compare(bundle)})
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "host"})[:300], flush=True)
            write(rows, args.out)
    print(f"emulated: {len(rows)} bundles -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
