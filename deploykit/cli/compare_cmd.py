"""``deploykit compare``: several bundles side by side (size, latency, agreement with fp32)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from deploykit.cli.common import DebugOption, JsonOption, cli_errors, err_console, out_console, print_json
from deploykit.errors import BundleError

# one table row per figure, one column per bundle (fits a terminal for a handful of bundles)
ROWS = (("target", "target"), ("precision", "precision"), ("size", "size_raw"), ("zlib -9", "size_zip"),
        ("Huffman weights", "size_huffman"), ("params", "params"), ("MACs", "macs"), ("p50 ms", "latency_ms_p50"),
        ("p90 ms", "latency_ms_p90"), ("speed vs 1st", "speedup"), ("cosine vs fp32", "cosine"),
        ("top-1 vs fp32", "top1_agreement"), ("accuracy", "accuracy"), ("verification", "verification"),
        ("runtime", "runtime"), ("figures", "source"))
AGREEMENT = ("cosine", "max_abs_error", "top1_agreement", "accuracy")
KEYS = ("target", "precision", "size_raw", "size_zip", "size_huffman", "params", "macs", "latency_ms_p50",
        "latency_ms_p90", "latency_runs", "cosine", "max_abs_error", "top1_agreement", "accuracy", "runtime", "host", "error")


def _report(bundle: Path) -> dict[str, Any]:
    path = bundle / "report.json"
    try:  # a plain file of sane size only: a bundle may have been tampered with
        if path.is_symlink() or not path.is_file() or path.stat().st_size > 64 << 20:
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _effect_row(report: dict[str, Any]) -> dict[str, Any] | None:
    """The row of the built bundle itself among the report's effect rows (the last bundle step)."""
    rows = [r for r in report.get("effect") or [] if isinstance(r, dict)]
    if not rows:
        return None
    own = [r for r in rows if r.get("kind") == "bundle"] or rows
    return own[-1]


def _verified(manifest: dict[str, Any]) -> dict[str, Any]:
    """Cosine / top-1 agreement with fp32 from the manifest's verification (worst output)."""
    outs = (manifest.get("verification") or {}).get("outputs") or {}
    cos = [m.get("cosine") for m in outs.values() if isinstance(m.get("cosine"), (int, float))]
    t1 = [m.get("top1_agreement") for m in outs.values() if isinstance(m.get("top1_agreement"), (int, float))]
    return {"cosine": min(cos) if cos else None, "top1_agreement": min(t1) if t1 else None}


def _stored_samples(bundle: Path, manifest: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """The bundle's held-out inputs and their fp32 outputs (``samples/*.npz``)."""
    from deploykit.bundle.manifest import read_samples

    if not (manifest.get("samples") or {}):
        raise BundleError(f"bundle {str(bundle)!r} has no stored samples to measure with and no effect report; "
                          "rebuild it with a current 'deploykit build'")
    return read_samples(bundle, manifest)


def _plan(bundle: Path, force_measure: bool) -> tuple[dict, dict | None, tuple | None]:
    """Check one argument before anything runs: (manifest, effect row or None, samples to measure or None)."""
    from deploykit.bundle.manifest import open_bundle, read_manifest

    manifest = read_manifest(bundle)
    row = _effect_row(_report(bundle))
    if row is None or force_measure:  # the bundle's runner will run: its files must match the manifest
        return open_bundle(bundle), row, _stored_samples(bundle, manifest)
    return manifest, row, None


def _entry(bundle: Path, plan: tuple, runs: int, threads: int | None) -> dict[str, Any]:
    from deploykit.effect import Variant, measure_variants

    manifest, report_row, samples = plan
    row, source = report_row, "report"
    agreement_vs = "fp32 source model (build report)"
    if samples is not None:
        err_console.print(f"measuring {bundle} ({runs} runs)…", markup=False, style="dim")
        feeds, refs = samples
        row = measure_variants([Variant(bundle.name, bundle_dir=bundle)], feeds, runs=runs, threads=threads,
                               reference_outputs=refs)[0]
        source = "measured"
        if report_row is not None:  # the report compared with the source model; the stored samples may not
            row.update({k: report_row.get(k) for k in AGREEMENT})
        elif (manifest.get("build_options") or {}).get("compress"):
            agreement_vs = "compressed fp32 model (stored samples)"
        else:
            agreement_vs = "fp32 source model (stored samples)"
    entry = {"bundle": str(bundle), "source": source, "agreement_vs": agreement_vs, **{k: row.get(k) for k in KEYS}}
    entry["target"] = entry["target"] or manifest.get("target")
    entry["precision"] = entry["precision"] or manifest.get("precision")
    entry["verification"] = (manifest.get("verification") or {}).get("status")
    recorded = _report(bundle).get("model") or {}
    for key in ("params", "macs"):  # artifacts deploykit cannot parse (OpenVINO IR): the build's figures
        if entry[key] is None and isinstance(recorded.get(key), int):
            entry[key] = recorded[key]
    entry["latency_note"] = _latency_note(manifest, entry) if source == "measured" else None
    verified = _verified(manifest)
    for key in ("cosine", "top1_agreement"):
        if entry[key] is None:
            entry[key] = verified[key]
    return entry


def _latency_note(manifest: dict[str, Any], entry: dict[str, Any]) -> str | None:
    """Say so when the measured latency did not use the target's accelerator or runtime."""
    profile = manifest.get("target_profile") or {}
    accelerator = str((profile.get("device") or {}).get("accelerator") or "none")
    runtime = str(entry.get("runtime") or "")
    if "fallback" in runtime.lower():
        return (f"latency measured with the runner's fallback ({runtime}) on this CPU, not with "
                f"{manifest.get('runtime') or 'the target runtime'}: no indication of the device's speed")
    if accelerator != "none":
        return f"latency measured on this CPU ({runtime}), without the target's {accelerator}"
    return None


def _cell(key: str, value: Any) -> str:
    from deploykit.effect.report import human

    if value is None:
        return "—"
    if key.startswith("size") and isinstance(value, (int, float)):
        return human(value, "B")
    if key in ("macs", "params") and isinstance(value, (int, float)):
        return human(value)
    if key.startswith("latency") and isinstance(value, (int, float)):
        return f"{value:.3g}"
    if key == "cosine":
        return f"{value:.5f}" if isinstance(value, float) else str(value)
    if key in ("top1_agreement", "accuracy") and isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


@cli_errors
def compare_command(
    bundles: list[Path] = typer.Argument(..., help="Bundle folders made by 'deploykit build'.", show_default=False),
    runs: int = typer.Option(20, "--runs", min=1, help="Timed runs per bundle when measuring."),
    measure: bool = typer.Option(False, "--measure", help="Measure every bundle now, even if its report has figures."),
    threads: int = typer.Option(1, "--threads", min=1, help="CPU threads per runtime when measuring."),
    json_out: bool = JsonOption,
    debug: bool = DebugOption,
) -> None:
    """Compare bundles: target, precision, sizes, latency and agreement with fp32.

    Figures come from each bundle's report (the effect rows written by 'build --compress') and its
    manifest's verification; bundles without them are measured here on their stored samples.
    """
    plans = [_plan(b, measure) for b in bundles]  # every argument checked before anything runs
    entries = [_entry(b, plan, runs, threads) for b, plan in zip(bundles, plans)]
    if json_out:
        print_json({"bundles": entries})
        return
    from rich.table import Table
    from rich.text import Text

    _print_table(entries)


def _fits(titles: list[str], columns: list[list[str]], width: int) -> bool:
    """Whether a table with bundle names as column headers fits ``width`` without cutting any cell."""
    need = max(map(len, titles)) + 3
    for col in columns:
        need += max(len(c) for c in col) + 3
    return need + 1 <= width


def _print_table(entries: list[dict[str, Any]]) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    first = entries[0].get("latency_ms_p50")
    for e in entries:
        p50 = e.get("latency_ms_p50")
        e["speedup"] = f"{first / p50:.2f}×" if isinstance(first, (int, float)) and isinstance(p50, (int, float)) and p50 > 0 else None
    names = [Path(e["bundle"]).name or e["bundle"] for e in entries]
    if len(set(names)) != len(names):
        names = [e["bundle"] for e in entries]
    cells = [[_cell(key, e.get(key)) for title, key in ROWS if key != "runtime"] for e in entries]
    numbered = not _fits([t for t, _ in ROWS], [[n, *c] for n, c in zip(names, cells)], out_console.width)
    table = Table(title="bundles", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("", no_wrap=True)
    for i, name in enumerate(names, 1):
        table.add_column(Text(f"#{i}" if numbered else name), justify="right", overflow="fold")
    for title, key in ROWS:
        table.add_row(Text(title), *(Text(_cell(key, e.get(key))) for e in entries))
    out_console.print(table)
    if numbered:  # names too long for the width: listed in full below, never cut
        for i, e in enumerate(entries, 1):
            out_console.print(Text(f"#{i} = {e['bundle']}"))
    for e in entries:
        if e.get("error"):
            out_console.print(Text(f"{e['bundle']}: not run here: {e['error']}"))
        if e.get("latency_note"):
            out_console.print(Text(f"{e['bundle']}: {e['latency_note']}"))
    for e in entries:
        if e["agreement_vs"].startswith("compressed"):
            out_console.print(Text(f"{e['bundle']}: built with --compress and no effect report: its agreement is with "
                                   "the compressed fp32 model, not the source"))
    if any(e["source"] == "measured" for e in entries):
        out_console.print(Text("latency is measured on this machine, not on the target devices"))
    if len({e["source"] for e in entries}) > 1:
        out_console.print(Text("note: latency from build reports and from this run may come from different machines "
                               "or thread counts; pass --measure to measure all bundles now"))
