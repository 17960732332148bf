"""Compression benchmark: what pruning, low-rank factorization and clustering do, measured.

    python benchmarks/compress/run.py [--quick]

Models (nothing is downloaded):

* ``ppocr_cls``  ``ch_ppocr_mobile_v2.0_cls_infer.onnx`` from the ``rapidocr_onnxruntime`` wheel
  (0/180 degree text direction), input pinned to ``x:1,3,48,192``; calibration lines and held-out
  labelled evaluation lines rendered locally (``benchmarks/datasets/textlines.py``, the same
  seeds as ``benchmarks/quant/run.py``);
* ``quickstart`` the CNN of ``examples/quickstart`` (``make_model.py``: trained with numpy in a few
  seconds), its ``calib.npy`` and its held-out labelled ``test.npz``.

Steps per model, all from the model as ``deploykit build`` sees it (imported with the input shape
pinned and canonicalized, i.e. BatchNorm folded):

* ``fp32``; each technique alone through ``deploykit.compress.compress`` under the default
  accuracy budget (cosine 0.99 vs fp32 on the calibration samples): ``prune=auto``,
  ``lowrank=auto``, ``cluster=auto``; fixed settings a user might pick without a budget
  (``prune=0.25``, ``lowrank=0.9``, ``sparsity=0.3``); all budgeted techniques combined (``auto``);
* ``prune 0.25 + distill`` when PyTorch is importable (the ``[train]`` extra; skipped with a note otherwise):
  the ``prune 0.25`` model distilled from ``fp32`` with ``deploykit.train.distill`` on unlabeled samples;
* int8 bundles of ``fp32`` and of ``combined`` for ``host`` (onnxruntime) and ``rpi4`` (LiteRT,
  XNNPACK), built with ``deploykit build`` in a fresh process from the saved ONNX.

Every step is measured with ``deploykit.effect.measure_variants`` on the held-out set: sizes (raw,
zlib -9, Huffman-coded weights), parameters, MACs, latency p50/p90 (ONNX Runtime CPU for ONNX
steps, the bundle's own ``runner.py`` for bundles; 1 thread, the process pinned to ``--cpus``
CPUs; best p50 of ``--rounds`` round-robin rounds of ``--runs`` runs each), agreement with fp32 and
top-1 accuracy. Writes ``benchmarks/results/compress.{md,json}`` (``compress_quick.*`` with
``--quick``) and one self-contained ``compress_<model>.html`` report per model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
sys.path.insert(0, str(BENCH))

from datasets import textlines as T  # noqa: E402

BUDGET = 0.99
# (step name, --compress spec); "combined" is the model the bundles are built from
STEPS = [
    ("prune (auto)", "prune=auto"),
    ("lowrank (auto)", "lowrank=auto"),
    ("cluster (auto)", "cluster=auto"),
    ("prune 0.25", "prune=0.25"),
    ("lowrank 0.9", "lowrank=0.9"),
    ("sparsity 0.3", "sparsity=0.3"),
    ("combined (auto)", "auto"),
]
QUICK_STEPS = ("prune (auto)", "lowrank (auto)", "cluster (auto)", "combined (auto)")
# optional (needs the [train] extra): the fixed 25 % pruning, then distilled from fp32 on unlabeled samples
DISTILL_STEP = ("prune 0.25 + distill", "prune 0.25")
DISTILL = {"steps": 2500, "lr": 1e-3, "batch_size": 16, "lines": 2000}  # lines: unlabeled ppocr_cls lines
BUNDLE_TARGETS = ("host", "rpi4")
WIN = 1.05  # a ratio counts as a win from 5 % (latency on a shared machine is noisy below that)


# ---------------------------------------------------------------- models and data


def ppocr_cls(work: Path, quick: bool) -> dict:
    model = T.model_path(T.CLS_MODEL)
    xc, _ = T.cls_dataset(64 if quick else 100, 101)
    xe, labels = T.cls_dataset(120 if quick else 300, 1001)
    calib = work / "ppocr_cls_calib.npy"
    np.save(calib, xc)
    xd = None
    if _has_torch():  # unlabeled lines for distillation (another seed; the held-out lines are never trained on)
        xd, _ = T.cls_dataset(300 if quick else DISTILL["lines"], 202)
    return {"key": "ppocr_cls", "file": T.CLS_MODEL, "path": model, "shape": {"x": [1, 3, 48, 192]},
            "calib": calib, "calib_x": {"x": xc}, "eval_x": {"x": xe}, "labels": labels,
            "distill_x": {"x": xd} if xd is not None else None,
            "metric": "top-1 accuracy, 0/180 degree text lines",
            "data": f"{len(xc)} calibration lines (seed 101), {len(xe)} held-out lines (seed 1001)"}


def quickstart(work: Path, quick: bool) -> dict:
    out = work / "quickstart"
    subprocess.run([sys.executable, str(REPO / "examples" / "quickstart" / "make_model.py"), "--out", str(out)],
                   check=True, capture_output=True, text=True, timeout=600)
    test = np.load(out / "test.npz")
    xc = np.load(out / "calib.npy")
    return {"key": "quickstart", "file": "examples/quickstart model.onnx", "path": out / "model.onnx", "shape": {},
            "calib": out / "calib.npy", "calib_x": {"image": xc}, "eval_x": {"image": test["x"]},
            "labels": test["y"], "metric": "top-1 accuracy, 4 stroke classes",
            "data": f"{len(xc)} calibration images, {len(test['y'])} held-out labelled images (make_model.py, seed 0)"}


MODELS = {"ppocr_cls": ppocr_cls, "quickstart": quickstart}


def _has_torch() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def distill_step(base, models: list[tuple[str, object]], spec: dict, quick: bool) -> tuple[list, list[dict]]:
    """``prune 0.25 + distill``: the ``prune 0.25`` model trained to match fp32 (deploykit.train), if torch is here."""
    name, source = DISTILL_STEP
    pruned = dict(models).get(source)
    if pruned is None:
        return [], []
    if not _has_torch():
        print(f"   {name}: skipped (needs PyTorch: pip install 'deploykit[train]')", flush=True)
        return [], [{"step": name, "spec": f"{source} + distill", "error": "skipped: PyTorch is not installed"}]
    from deploykit.train import distill

    samples = _feeds(spec.get("distill_x") or spec["calib_x"])
    steps = DISTILL["steps"] // (3 if quick else 1)
    t0 = time.perf_counter()
    model, d = distill(pruned, base, samples, steps=steps, lr=DISTILL["lr"], batch_size=DISTILL["batch_size"],
                       log=lambda m: print(f"   {m}", flush=True))
    info = {"step": name, "spec": f"prune=0.25 + distill {steps} steps, lr {DISTILL['lr']}, batch {DISTILL['batch_size']}, "
            f"{d['train_samples']} unlabeled samples", "compress_s": round(time.perf_counter() - t0, 1),
            "cosine_on_calibration": d["heldout_cosine_after"], "budget_met": "—",
            "applied": ["prune", "distill"] if d["applied"] else ["prune"], "dropped": [] if d["applied"] else ["distill"],
            "distill": d}
    print(f"   {name}: {info['compress_s']} s, loss {d['loss_before']:.4g} -> {d['loss_after']:.4g}, held-out cosine "
          f"{d['heldout_cosine_before']} -> {d['heldout_cosine_after']}", flush=True)
    return [(name, model)], [info]


def _feeds(arrays: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    n = len(next(iter(arrays.values())))
    return [{k: v[i:i + 1] for k, v in arrays.items()} for i in range(n)]


# ---------------------------------------------------------------- steps


def fp32_base(spec: dict):
    from deploykit.ir import load_model, to_proto
    from deploykit.passes import canonicalize

    return to_proto(canonicalize(load_model(spec["path"], spec["shape"])))


def compress_steps(base, spec: dict, steps: list[tuple[str, str]]) -> tuple[list[tuple[str, object]], list[dict]]:
    from deploykit.compress import compress, parse_spec

    calib = _feeds(spec["calib_x"])
    models, info = [], []
    for name, text in steps:
        t0 = time.perf_counter()
        try:
            result = compress(base, parse_spec(text), samples=calib, budget=BUDGET)
        except Exception as e:  # noqa: BLE001 - record, keep benchmarking
            info.append({"step": name, "spec": text, "error": f"{type(e).__name__}: {e}"[:400]})
            print(f"   {name}: FAILED {e}", flush=True)
            continue
        d = result.details
        info.append({"step": name, "spec": text, "compress_s": round(time.perf_counter() - t0, 1),
                     "cosine_on_calibration": d.get("cosine_vs_fp32"), "budget_met": d.get("budget_met"),
                     "applied": [s.name for s in result.steps if s.details.get("applied", True)],
                     "dropped": [s.name for s in result.steps if not s.details.get("applied", True)]})
        models.append((name, result.model))
        print(f"   {name}: {info[-1]['compress_s']} s, params {d.get('params_before')} -> {d.get('params_after')}, "
              f"MACs {d.get('macs_before')} -> {d.get('macs_after')}, cosine (calibration) {d.get('cosine_vs_fp32')}",
              flush=True)
    return models, info


def build_bundle(model_file: Path, spec: dict, target: str, out: Path, shape_args: list[str]) -> dict:
    cmd = [sys.executable, "-m", "deploykit.cli.app", "build", str(model_file), "--target", target,
           "--precision", "int8", "--calibration", str(spec["calib"]), *shape_args, "-o", str(out), "--force"]
    env = {**os.environ, "DEPLOYKIT_PLUGINS": "profiles,onnxruntime,tflite"}
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=1800)
    row = {"target": target, "build_s": round(time.perf_counter() - t0, 1), "rc": p.returncode}
    if p.returncode != 0:
        lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
        row["error"] = lines[-1][:400] if lines else f"exit code {p.returncode}"
    else:
        m = json.loads((out / "manifest.json").read_text())
        row["verification"] = (m.get("verification") or {}).get("status")
        row["fallback_layers"] = len((m.get("quantization") or {}).get("fallback_layers") or [])
    return row


# ---------------------------------------------------------------- measuring


def measure(variants, spec: dict, runs: int, rounds: int) -> list[dict]:
    """Accuracy, agreement and sizes in one pass over the held-out set; latency in ``rounds`` rounds.

    Each round measures every variant once (round-robin, ``runs`` timed runs on the first 16 held-out
    samples), so load from other processes hits all variants alike; a variant keeps the round with its
    lowest p50, and the median p50 over rounds is recorded too (``latency_ms_p50_median``).
    """
    from deploykit.effect import measure_variants

    feeds = _feeds(spec["eval_x"])
    rows = measure_variants(variants, feeds, labels=[int(v) for v in spec["labels"]], runs=0, threads=1)
    p50s: list[list[float]] = [[] for _ in variants]
    best: list[dict | None] = [None for _ in variants]
    for _ in range(rounds):
        for i, v in enumerate(variants):
            r = measure_variants([v], feeds[:16], runs=runs, threads=1)[0]
            if r.get("latency_ms_p50") is None:
                continue
            p50s[i].append(r["latency_ms_p50"])
            if best[i] is None or r["latency_ms_p50"] < best[i]["latency_ms_p50"]:
                best[i] = r
    for row, b, p in zip(rows, best, p50s):
        if b is not None:
            row.update({k: b[k] for k in ("latency_ms_p50", "latency_ms_p90", "latency_runs")})
            row["latency_ms_p50_median"] = round(float(np.median(p)), 6)
            row["latency_ms_p50_rounds"] = p
        row["latency_rounds"] = len(p)
    return rows


def _baseline(name: str, names: list[str]) -> str:
    """What a step is compared with: fp32, or for a compressed bundle the fp32 bundle of the same target."""
    if name.startswith("combined → "):
        same = "fp32 → " + name[len("combined → "):]
        if same in names:
            return same
    return names[0]


def findings(rows: list[dict]) -> list[dict]:
    return findings_vs(rows, None)


def findings_vs(rows: list[dict], baseline: str | None) -> list[dict]:
    """Ratios of every step but the first vs ``baseline`` (None: :func:`_baseline` per step)."""
    by_name = {r["name"]: r for r in rows}
    names = list(by_name)
    out = []
    for r in rows[1:]:
        ref = by_name[baseline or _baseline(r["name"], names)]

        def ratio(key, r=r, ref=ref):
            a, b = ref.get(key), r.get(key)
            return round(a / b, 3) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a > 0 and b > 0 else None

        speed, size, huff, macs = ratio("latency_ms_p50"), ratio("size_raw"), ratio("size_huffman"), ratio("macs")
        speed_median = ratio("latency_ms_p50_median")
        acc, ref_acc = r.get("accuracy"), ref.get("accuracy")
        d_acc = round((acc - ref_acc) * 100, 2) if acc is not None and ref_acc is not None else None
        out.append({"step": r["name"], "baseline": ref["name"], "speedup_p50": speed, "speedup_p50_median": speed_median,
                    "size_raw_ratio": size,
                    "size_huffman_ratio": huff, "macs_ratio": macs, "accuracy_delta_pt": d_acc,
                    "latency_win": bool(speed and speed >= WIN and speed_median and speed_median >= WIN),
                    "size_win": bool((size and size >= WIN) or (huff and huff >= WIN))})
    return out


# ---------------------------------------------------------------- report


def machine_info(cpus: list[int] | None) -> dict:
    from deploykit.effect.host import cpu_model, memory_gb

    vers = {}
    for mod in ("deploykit", "onnxruntime", "onnx", "numpy", "ai_edge_litert"):
        try:
            m = __import__(mod)
            vers[mod] = getattr(m, "__version__", None)
        except Exception:  # noqa: BLE001
            vers[mod] = None
    if vers.get("ai_edge_litert") is None:
        try:
            from importlib.metadata import version

            vers["ai_edge_litert"] = version("ai-edge-litert")
        except Exception:  # noqa: BLE001
            pass
    commit = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
    except Exception:  # noqa: BLE001
        pass
    return {"cpu": cpu_model(), "logical_cores": os.cpu_count(), "pinned_cpus": len(cpus) if cpus else None,
            "memory_gb": memory_gb(), "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "versions": vers, "git_commit": commit,
            "load_avg_at_start": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None}


def _f(v, fmt="{:.4f}"):
    return "—" if v is None else fmt.format(v)


def _size(v):
    from deploykit.effect.report import human

    return human(v, "B")


def write_markdown(res: dict, path: Path) -> None:
    from deploykit.effect.report import human

    mi = res["machine"]
    L = ["# Compression benchmark: pruning, low-rank, clustering, int8 — measured", "",
         f"Generated by `python benchmarks/compress/run.py{' --quick' if res['quick'] else ''}` "
         "(all figures in the `.json` next to this file; one HTML effect report per model beside it).", "",
         "## Machine", "",
         f"- CPU: {mi['cpu']} — {mi['logical_cores']} logical cores"
         + (f", benchmark pinned to {mi['pinned_cpus']} CPU(s)" if mi["pinned_cpus"] else "")
         + f"; memory {mi['memory_gb']} GB; {mi['os']}; Python {mi['python']}",
         "- Versions: " + ", ".join(f"{k} {v}" for k, v in mi["versions"].items() if v),
         f"- deploykit commit {mi['git_commit'] or '?'} (working tree may differ); load average at start "
         f"{mi['load_avg_at_start']} — a shared machine: compare ratios within one run, not absolute times.", "",
         "## Method", "",
         f"- Compression: `deploykit.compress.compress` on the imported + canonicalized model, accuracy budget "
         f"cosine {BUDGET} vs fp32 on the calibration samples for `auto` settings; fixed settings are applied as given. "
         "No fine-tuning after pruning, except the step `prune 0.25 + distill` (`deploykit.train.distill`, the `[train]` "
         "extra: the pruned model trained with Adam to match fp32's logits on unlabeled samples; its cosine column in "
         "the steps table is on the samples it held out; skipped when PyTorch is absent).",
         f"- Measurement: `deploykit.effect.measure_variants`: accuracy, agreement and sizes on the whole held-out set; "
         f"latency in {res['rounds']} round-robin rounds over all steps ({res['runs']} timed runs each after a warm-up, "
         "1 thread), best p50 (and its p90) kept; a latency *win* needs the best-p50 and the median-p50 ratio both. "
         "ONNX steps run in ONNX Runtime (CPU); bundles "
         "through their generated `runner.py` (host: ONNX Runtime QDQ int8; rpi4: LiteRT + XNNPACK on this x86 "
         "host, not on a Pi).",
         "- Sizes: *raw* = ONNX bytes (bundles: the artifact file); *zlib* = zlib level 9 of that; *Huffman* = "
         "Huffman-coded weights (int8 per-channel symbols for float weights, cluster indices + codebook for "
         "clustered layers, the stored int8 values for int8 artifacts).",
         f"- A *win* is a ratio of at least {WIN} vs the baseline (speed = baseline p50 / step p50; size = baseline "
         "bytes / step bytes). The table's ratios are vs fp32 (ONNX Runtime); in the findings a compressed bundle is "
         "compared with the fp32 model's bundle for the same target (same runtime), so they show what compression "
         "adds on top of int8.",
         ""]
    for m in res["models"]:
        L += [f"## {m['key']} — {m['file']}", "", f"Metric: {m['metric']}. Data: {m['data']}.", ""]
        if m.get("error"):
            L += [f"**not run**: {m['error']}", ""]
            continue
        hdr = ("| step | params | MACs | size | zlib -9 | Huffman | p50 ms | p90 ms | speed × fp32 | size × | Huffman × | "
               "cosine | top-1 agree | accuracy | Δ acc pt |")
        L += [hdr, "|" + "---|" * (hdr.count("|") - 1)]
        vs_fp32 = {f["step"]: f for f in findings_vs(m["rows"], m["rows"][0]["name"])}
        for r in m["rows"]:
            f = vs_fp32.get(r["name"], {})
            L.append(f"| {r['name']} | {human(r.get('params'))} | {human(r.get('macs'))} | {_size(r.get('size_raw'))} | "
                     f"{_size(r.get('size_zip'))} | {_size(r.get('size_huffman'))} | {_f(r.get('latency_ms_p50'), '{:.4g}')} | "
                     f"{_f(r.get('latency_ms_p90'), '{:.4g}')} | {_f(f.get('speedup_p50'), '{:.2f}')} | "
                     f"{_f(f.get('size_raw_ratio'), '{:.2f}')} | {_f(f.get('size_huffman_ratio'), '{:.2f}')} | "
                     f"{_f(r.get('cosine') if isinstance(r.get('cosine'), float) else None, '{:.5f}')} | "
                     f"{_f(r.get('top1_agreement'), '{:.3f}')} | {_f(r.get('accuracy'))} | "
                     f"{_f(f.get('accuracy_delta_pt'), '{:+.2f}')} |" + (f" error: {r['error']}" if r.get("error") else ""))
        L += ["", "Compression steps (on the calibration samples):", "",
              "| step | spec | time s | cosine (calibration) | budget met | applied | dropped / error |", "|---|---|---|---|---|---|---|"]
        for c in m["compress"]:
            L.append(f"| {c['step']} | `{c['spec']}` | {_f(c.get('compress_s'), '{:.1f}')} | "
                     f"{_f(c.get('cosine_on_calibration'), '{:.5f}')} | {c.get('budget_met', '—')} | "
                     f"{', '.join(c.get('applied', [])) or '—'} | {c.get('error') or ', '.join(c.get('dropped', [])) or ''} |")
        if m.get("bundles"):
            L += ["", "Bundles (int8, `deploykit build` from the saved ONNX):", "",
                  "| bundle | build s | verification | float fallback layers | error |", "|---|---|---|---|---|"]
            for b in m["bundles"]:
                L.append(f"| {b['name']} | {b['build_s']} | {b.get('verification', '—')} | {b.get('fallback_layers', '—')} | "
                         f"{b.get('error', '')} |")
        L += ["", "Findings:", ""]
        for f in m["findings"]:
            wins = [w for w, ok in (("latency", f["latency_win"]), ("size", f["size_win"])) if ok]
            L.append(f"- **{f['step']}** vs {f['baseline']}: {', '.join(wins) + ' win' if wins else 'no win'} — speed "
                     f"{_f(f['speedup_p50'], '{:.2f}×')} (median of rounds {_f(f['speedup_p50_median'], '{:.2f}×')}), raw size {_f(f['size_raw_ratio'], '{:.2f}×')}, Huffman "
                     f"{_f(f['size_huffman_ratio'], '{:.2f}×')}, MACs {_f(f['macs_ratio'], '{:.2f}×')} smaller, "
                     f"accuracy {_f(f['accuracy_delta_pt'], '{:+.2f}')} pt")
        L.append("")
    L += ["## Notes", "", *[f"- {n}" for n in res["notes"]], ""]
    path.write_text("\n".join(L))


# ---------------------------------------------------------------- main


def run_model(key: str, work: Path, args) -> dict:
    from deploykit.effect import Variant, write_report
    from deploykit.ir import save_model

    print(f"== {key}: data", flush=True)
    spec = MODELS[key](work, args.quick)
    entry = {"key": key, "file": spec["file"], "metric": spec["metric"], "data": spec["data"]}
    base = fp32_base(spec)
    steps = [s for s in STEPS if not args.quick or s[0] in QUICK_STEPS]
    print(f"== {key}: compression ({len(steps)} settings)", flush=True)
    models, entry["compress"] = compress_steps(base, spec, steps)
    distilled, info = distill_step(base, models, spec, args.quick)
    models += distilled
    entry["compress"] += info
    variants = [Variant("fp32", base)] + [Variant(n, m) for n, m in models]
    entry["bundles"] = []
    if not args.no_bundles:
        combined = dict(models).get("combined (auto)")
        sources = [("fp32", spec["path"], [f"--input-shape={k}:{','.join(map(str, v))}" for k, v in spec["shape"].items()])]
        if combined is not None:
            save_model(combined, work / f"{key}_combined.onnx")
            sources.append(("combined", work / f"{key}_combined.onnx", []))
        for label, path, shape_args in sources:
            for target in BUNDLE_TARGETS:
                name = f"{label} → int8 {target}"
                out = work / f"{key}_{label}_{target}_int8"
                print(f"== {key}: build {name}", flush=True)
                b = {"name": name, **build_bundle(path, spec, target, out, shape_args)}
                entry["bundles"].append(b)
                if "error" not in b:
                    variants.append(Variant(name, bundle_dir=out))
    print(f"== {key}: measuring {len(variants)} variants", flush=True)
    entry["rows"] = measure(variants, spec, args.runs, args.rounds)
    entry["findings"] = findings(entry["rows"])
    html_dir = work / f"{key}_report"
    write_report(html_dir, entry["rows"], title=f"{spec['file']}: compression and int8, measured")
    shutil.copyfile(html_dir / "report.html", args.out.parent / f"{args.out.name}_{key}.html")
    for r in entry["rows"]:
        print(f"   {r['name']}: p50 {r.get('latency_ms_p50')} ms, size {r.get('size_raw')}, Huffman {r.get('size_huffman')}, "
              f"acc {r.get('accuracy')}, cosine {r.get('cosine')} {r.get('error', '')}", flush=True)
    return entry


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="compression benchmark: measured size, latency and accuracy per step")
    ap.add_argument("--quick", action="store_true", help="smaller data, only the budgeted steps; writes compress_quick.*")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ", ".join(MODELS))
    ap.add_argument("--runs", type=int, default=None, help="timed runs per variant and repeat (default 100, 30 with --quick)")
    ap.add_argument("--rounds", type=int, default=None, help="latency rounds over all variants, best p50 kept (default 5, 2 with --quick)")
    ap.add_argument("--no-bundles", action="store_true", help="skip the int8 bundle builds")
    ap.add_argument("--cpus", type=int, default=1, help="pin the benchmark and its builds to this many CPUs; 0 = no pinning")
    ap.add_argument("--out", type=Path, default=None, help="output stem (default benchmarks/results/compress[_quick])")
    ap.add_argument("--keep", type=Path, default=None, help="keep models, bundles and reports in this folder")
    args = ap.parse_args(argv)
    args.runs = args.runs or (30 if args.quick else 100)
    args.rounds = args.rounds or (2 if args.quick else 5)
    args.out = args.out or (RESULTS / ("compress_quick" if args.quick else "compress"))
    args.out.parent.mkdir(parents=True, exist_ok=True)

    cpus = None
    if args.cpus and hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))[: args.cpus]
        os.sched_setaffinity(0, cpus)  # inherited by the build subprocesses
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    work = args.keep or Path(tempfile.mkdtemp(prefix="dk-compress-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    res = {"quick": args.quick, "runs": args.runs, "rounds": args.rounds, "budget": BUDGET,
           "machine": machine_info(cpus), "models": [], "notes": [
               "Pruning, factorization and clustering are applied to a trained model without fine-tuning; "
               "the `auto` settings stop where the calibration-set cosine would fall below the budget.",
               "Unstructured sparsity (`sparsity=`) and clustering change weight values only: the dense runtimes "
               "(ONNX Runtime, LiteRT) run the same number of MACs, so they can only win in stored / transferred "
               "size (zlib, Huffman), never in latency.",
               "Low-rank factorization replaces one layer by two: fewer MACs need not mean lower latency for the "
               "small layers of mobile models (two kernel launches, less efficient shapes).",
               "rpi4 bundles run on this x86 host through LiteRT/XNNPACK: ratios between rpi4 bundles are indicative, "
               "absolute times are not a Raspberry Pi's.",
               "cls top-1 on N held-out lines: one line = 100/N points.",
               "`prune 0.25 + distill` (needs PyTorch, the `[train]` extra) trains the pruned model's weights to "
               f"reproduce fp32's logits on unlabeled inputs (ppocr_cls: {DISTILL['lines']} extra rendered lines of "
               "another seed; "
               "quickstart: its calibration images), then is measured like every other step on the same held-out set.",
           ]}
    t0 = time.perf_counter()
    try:
        for key in [k for k in args.models.split(",") if k]:
            if key not in MODELS:
                print(f"error: unknown model {key!r}; use {', '.join(MODELS)}", file=sys.stderr)
                return 2
            try:
                entry = run_model(key, work, args)
            except (T.FontsNotFound, FileNotFoundError, subprocess.CalledProcessError) as e:
                entry = {"key": key, "file": key, "metric": "", "data": "", "error": f"{type(e).__name__}: {e}"[:400]}
                print(f"   {key}: not run: {entry['error']}", flush=True)
            res["models"].append(entry)
            res["total_s"] = round(time.perf_counter() - t0, 1)
            args.out.with_suffix(".json").write_text(json.dumps(res, indent=1, default=str) + "\n")
            write_markdown(res, args.out.with_suffix(".md"))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
