"""What ``dist/matrix.json`` and ``dist/matrix.html`` say about each bundle.

:func:`bundle_figures` reads a finished bundle's manifest and report: verification status and the
worst output's cosine / top-1 agreement / SQNR against fp32, the int8 accuracy budget, artifact
size, accelerator coverage (Edge TPU share of MACs, XNNPACK share of operators) and the task
metric where the build computed one. :func:`write_html` renders the whole matrix on one
self-contained page (no script, no external reference; every name autoescaped): a table of every
bundle and, per model, bar charts of latency on this machine, size and SQNR.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import jinja2

from deploykit.effect.report import bar_chart, human


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _worst(outputs: dict[str, Any], key: str, pick) -> float | None:
    values = [o.get(key) for o in outputs.values() if isinstance(o, dict)]
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    return pick(numbers) if numbers else None


def coverage(backend: str, backend_report: dict[str, Any]) -> dict[str, Any] | None:
    """How much of the model runs on the fast path: Edge TPU share of MACs, or XNNPACK share of ops."""
    tpu = backend_report.get("edgetpu")
    if isinstance(tpu, dict) and isinstance(tpu.get("tpu_mac_share"), (int, float)):
        share = float(tpu["tpu_mac_share"])
        cpu = tpu.get("cpu_operators")
        return {"kind": "Edge TPU", "share": share, "text": f"TPU {share:.0%} of MACs" + (f", {cpu} op(s) on CPU" if cpu else "")}
    xnn = backend_report.get("xnnpack")
    ops = backend_report.get("operators")
    if isinstance(xnn, dict) and isinstance(ops, dict) and ops:
        total = sum(v for v in ops.values() if isinstance(v, int))
        left = sum(v for v in (xnn.get("undelegated") or {}).values() if isinstance(v, int))
        if total:
            share = (total - left) / total
            parts = xnn.get("partitions")
            return {"kind": "XNNPACK", "share": share,
                    "text": f"XNNPACK {share:.0%} of ops" + (f" ({parts} partition{'s' if parts != 1 else ''})" if parts else "")}
    return None


def bundle_figures(folder: Path) -> dict[str, Any]:
    folder = Path(folder)
    manifest = _read(folder / "manifest.json")
    report = _read(folder / "report.json")
    ver = manifest.get("verification") or {}
    outs = ver.get("outputs") or {}
    quant = manifest.get("quantization") or {}
    sizes = [(folder / a).stat().st_size for a in manifest.get("artifacts") or [] if (folder / a).is_file()]
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return {
        "backend": manifest.get("backend"),
        "verification": ver.get("status"),
        "verification_runtime": ver.get("runtime"),
        "cosine": _worst(outs, "cosine", min),
        "top1_agreement": _worst(outs, "top1_agreement", min),
        "sqnr_db": _worst(outs, "sqnr_db", min),
        "max_abs_error": _worst(outs, "max_abs_error", max),
        "budget_met": quant.get("budget_met"),
        "budget": quant.get("budget"),
        "range_method": quant.get("range_method"),
        "fallback_layers": len(quant.get("fallback_layers") or []) if quant else None,
        "artifact_bytes": sum(sizes) if sizes else None,
        "bundle_bytes": total,
        "coverage": coverage(str(manifest.get("backend")), report.get("backend_report") or {}),
        "task_metric": report.get("task_metric"),
    }


def _num(v: Any, fmt: str) -> str:
    return fmt.format(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else "—"


def table_row(job: dict[str, Any]) -> dict[str, str]:
    f = job.get("figures") or {}
    lat = job.get("latency") or {}
    cov = f.get("coverage") or {}
    task = f.get("task_metric")
    budget = {True: "met", False: "MISSED", None: "—"}[f.get("budget_met")]
    return {
        "id": job["id"], "model": job["model"], "target": job["target"], "precision": job["precision"],
        "status": job["status"], "gate": job.get("gate") or "—", "bundle": job.get("bundle") or "",
        "size": human(f.get("artifact_bytes"), "B") if f.get("artifact_bytes") else "—",
        "p50": _num(lat.get("latency_ms_p50"), "{:.3g}"), "runtime": lat.get("runtime") or lat.get("error") or "—",
        "cosine": _num(f.get("cosine"), "{:.5f}"), "top1": _num(f.get("top1_agreement"), "{:.3f}"),
        "sqnr": _num(f.get("sqnr_db"), "{:.1f}"), "budget": budget, "coverage": cov.get("text") or "—",
        "task": json.dumps(task, sort_keys=True) if task else "—",
        "seconds": _num(job.get("seconds"), "{:.1f}"), "peak": _num(job.get("peak_rss_mb"), "{:.0f}"),
        "error": job.get("error") or "",
    }


def model_charts(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for j in jobs:
        f, lat = j.get("figures") or {}, j.get("latency") or {}
        rows.append({"name": f"{j['target']} {j['precision']}", "latency_ms_p50": lat.get("latency_ms_p50"),
                     "latency_ms_p90": lat.get("latency_ms_p90"), "artifact_bytes": f.get("artifact_bytes"),
                     "sqnr_db": f.get("sqnr_db") if isinstance(f.get("sqnr_db"), (int, float)) and math.isfinite(f["sqnr_db"]) else None})
    charts = [
        bar_chart("Latency on this machine, p50 ms, 1 thread (tick: p90)", rows, [("latency_ms_p50", "p50")], " ms",
                  whisker="latency_ms_p90"),
        bar_chart("Artifact size", rows, [("artifact_bytes", "size")], "B"),
        bar_chart("SQNR vs fp32, dB (worst output; higher is closer)", rows, [("sqnr_db", "SQNR")], " dB"),
    ]
    return [c for c in charts if c is not None]


def render_html(data: dict[str, Any]) -> str:
    env = jinja2.Environment(loader=jinja2.PackageLoader("deploykit.buildsys", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    jobs = data.get("jobs") or []
    models = []
    for name in dict.fromkeys(j["model"] for j in jobs):
        mine = [j for j in jobs if j["model"] == name and j.get("bundle")]
        models.append({"name": name, "charts": model_charts(mine) if mine else []})
    summary = data.get("summary") or {}
    return env.get_template("matrix.html.j2").render(
        project=str(data.get("project", "")), version=str(data.get("deploykit_version", "")),
        executor=str(data.get("executor", "")), host=str(data.get("host", "")), wall_s=data.get("wall_s"),
        summary=[(k, v) for k, v in summary.items() if v], rows=[table_row(j) for j in jobs], models=models)


def write_html(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_html(data), encoding="utf-8")
    tmp.replace(path)
