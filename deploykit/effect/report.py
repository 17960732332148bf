"""``report.html`` (self-contained, inline SVG charts) and the ``effect`` key of ``report.json``.

Charts are drawn here as plain geometry (rectangles and text positions); the jinja2 template
(``templates/effect_report.html.j2``, autoescape on) turns them into SVG. Variant names, runtime
strings and errors are untrusted text: they reach the page only through autoescaped expressions,
and the page has no script, no external reference and no timestamp.

Call :func:`write_report` before the bundle's manifest is written: the manifest lists the sha256
of ``report.json`` and ``report.html``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import jinja2

from deploykit.bundle.files import round_floats, write_json
from deploykit.errors import BundleError
from deploykit.quant.metrics import json_safe

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"

LABEL_W, BAR_W, VALUE_W, BAR_H, GAP, TOP = 190, 360, 90, 14, 10, 34
SERIES_CLASSES = ("s0", "s1", "s2")


def human(value: Any, unit: str = "") -> str:
    """``1234567`` -> ``1.23 M``; bytes (``unit="B"``) in KiB/MiB/GiB; ``None`` -> ``—``."""
    if value is None or isinstance(value, str):
        return "—" if value is None else value
    if unit == "B":
        for u in ("B", "KiB", "MiB", "GiB"):
            if abs(value) < 1024 or u == "GiB":
                return f"{value:.0f} {u}" if u == "B" else f"{value:.3g} {u}"
            value /= 1024
    for u in ("", "K", "M", "G", "T"):
        if abs(value) < 1000 or u == "T":
            return f"{value:.3g}{(' ' + u) if u else ''}{unit}"
        value /= 1000
    return str(value)


def _short(name: str, n: int = 26) -> str:
    return name if len(name) <= n else name[: n - 1] + "…"


def bar_chart(title: str, rows: list[dict], series: list[tuple[str, str]], unit: str = "",
              whisker: str | None = None) -> dict | None:
    """Horizontal grouped bar chart: one group per row, one bar per ``(key, label)`` in ``series``.

    ``whisker``: a row key drawn as a tick on the first series' bar (e.g. p90 on a p50 bar).
    Returns None when no row has a value for any series.
    """
    values = [r.get(k) for r in rows for k, _ in series]  # the scale; a whisker past it is clipped (its value is printed)
    numbers = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not numbers:
        return None
    vmax = max(max(numbers), 1e-12)
    group_h = len(series) * BAR_H + GAP
    bars, labels = [], []
    for i, row in enumerate(rows):
        y0 = TOP + i * group_h
        labels.append({"x": LABEL_W - 8, "y": y0 + len(series) * BAR_H / 2 + 4, "text": _short(str(row.get("name", "")))})
        for j, (key, _) in enumerate(series):
            v = row.get(key)
            y = y0 + j * BAR_H
            ok = isinstance(v, (int, float)) and math.isfinite(v)
            w = max(1.0, BAR_W * v / vmax) if ok and v > 0 else 0.0
            bar = {"x": LABEL_W, "y": y + 1, "w": round(w, 1), "h": BAR_H - 2, "cls": SERIES_CLASSES[j % 3],
                   "tx": LABEL_W + w + 4, "ty": y + BAR_H - 3, "text": human(v, unit) if ok else "n/a"}
            if whisker and j == 0 and isinstance(row.get(whisker), (int, float)) and ok:
                bar["wx"] = round(LABEL_W + min(BAR_W * row[whisker] / vmax, BAR_W + 8), 1)
                bar["text"] += f" (p90 {human(row[whisker], unit)})"
                bar["tx"] = max(bar["tx"], bar["wx"] + 4)
            bars.append(bar)
    height = TOP + len(rows) * group_h + 6
    legend = [{"x": LABEL_W + k * 120, "cls": SERIES_CLASSES[k % 3], "text": label} for k, (_, label) in enumerate(series)]
    return {"title": title, "width": LABEL_W + BAR_W + VALUE_W + 80, "height": height, "bars": bars,
            "labels": labels, "legend": legend if len(series) > 1 else []}


def _ratio(a: Any, b: Any) -> str:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a > 0 and b > 0:
        return f"{a / b:.2f}×"
    return "—"


def table_rows(rows: list[dict]) -> list[dict]:
    """Display strings for the HTML table (and ``deploykit compare``)."""
    ref = next((r for r in rows if r.get("name") == rows[0].get("reference")), rows[0]) if rows else {}
    out = []
    for r in rows:
        out.append({
            "name": str(r.get("name")),
            "target": r.get("target") or "—",
            "precision": r.get("precision") or "—",
            "size_raw": human(r.get("size_raw"), "B"),
            "size_zip": human(r.get("size_zip"), "B"),
            "size_huffman": human(r.get("size_huffman"), "B"),
            "size_ratio": _ratio(ref.get("size_raw"), r.get("size_raw")),
            "params": human(r.get("params")),
            "macs": human(r.get("macs")),
            "p50": _num(r.get("latency_ms_p50"), "{:.3g}"),
            "p90": _num(r.get("latency_ms_p90"), "{:.3g}"),
            "speedup": _ratio(ref.get("latency_ms_p50"), r.get("latency_ms_p50")),
            "cosine": _num(r.get("cosine"), "{:.5f}"),
            "top1": _num(r.get("top1_agreement"), "{:.3f}"),
            "accuracy": _num(r.get("accuracy"), "{:.4f}"),
            "runtime": r.get("runtime") or "—",
            "error": r.get("error") or "",
        })
    return out


def _num(v: Any, fmt: str) -> str:
    if isinstance(v, (int, float)):
        return fmt.format(v)
    return "—" if v is None else str(v)


def charts(rows: list[dict]) -> list[dict]:
    has_acc = any(isinstance(r.get("accuracy"), (int, float)) for r in rows)
    specs = [
        bar_chart("Size", rows, [("size_raw", "raw"), ("size_zip", "zlib -9"), ("size_huffman", "Huffman weights")], "B"),
        bar_chart("MACs", rows, [("macs", "MACs")]),
        bar_chart("Latency on this host, p50 ms (tick: p90)", rows, [("latency_ms_p50", "p50")], " ms", whisker="latency_ms_p90"),
        bar_chart("Accuracy (labelled samples)", rows, [("accuracy", "accuracy")]) if has_acc else
        bar_chart("Top-1 agreement with the reference", rows, [("top1_agreement", "top-1 agreement")]),
        bar_chart("Cosine similarity with the reference", rows, [("cosine", "cosine")]),
    ]
    return [c for c in specs if c is not None]


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("deploykit.effect", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)


def render_html(rows: list[dict], title: str) -> str:
    hosts = {json.dumps(r.get("host"), sort_keys=True) for r in rows if r.get("host")}
    host = json.loads(sorted(hosts)[0]) if len(hosts) == 1 else None
    return _environment().get_template("effect_report.html.j2").render(
        title=str(title), rows=table_rows(rows), charts=charts(rows), host=host,
        reference=str(rows[0].get("reference", "")) if rows else "",
        runs=max((r.get("latency_runs") or 0 for r in rows), default=0),
        samples=max((r.get("samples") or 0 for r in rows), default=0))


def write_report(out_dir: Path, rows: list[dict], title: str) -> None:
    """Write ``out_dir/report.html`` and set ``"effect"`` (the rows) in ``out_dir/report.json``.

    Other keys of an existing ``report.json`` are kept; the JSON is written with sorted keys and
    floats rounded to 6 significant digits, so equal rows give equal bytes.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [json_safe(round_floats(dict(r))) for r in rows]
    path = out_dir / REPORT_JSON
    report: dict[str, Any] = {}
    if path.is_file():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            loaded = None
        if not isinstance(loaded, dict):
            raise BundleError(f"{path} is not a JSON object; move it away (or delete it) and write the report again")
        report = loaded
    report["effect"] = rows
    write_json(path, report)
    (out_dir / REPORT_HTML).write_text(render_html(rows, title), encoding="utf-8")
