"""``deploykit run`` and ``deploykit verify``: use a finished bundle on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer

from deploykit.cli.common import DebugOption, JsonOption, cli_errors, err_console, out_console, print_json
from deploykit.errors import BundleError, DeployError


def _parse_inputs(items: list[str], names: list[str]) -> dict[str, Path]:
    feeds: dict[str, Path] = {}
    for item in items:
        # names may contain '=': take the split whose left part is a known input name
        splits = [i for i, ch in enumerate(item) if ch == "=" and item[:i] in names]
        if not splits:
            raise DeployError(f"--input {item!r} must be NAME=FILE.npy with NAME one of {names}")
        i = splits[-1]
        feeds[item[:i]] = Path(item[i + 1:])
    missing = [n for n in names if n not in feeds]
    if missing:
        raise DeployError(f"missing --input for {', '.join(map(repr, missing))} (inputs: {names})")
    return feeds


def _load_array(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DeployError(f"cannot read input array {str(path)!r}: {str(e).splitlines()[0]}") from e


@cli_errors
def run_command(
    bundle: Path = typer.Argument(..., help="A bundle folder made by 'deploykit build'.", show_default=False),
    input: list[str] = typer.Option([], "--input", "-i", help="NAME=FILE.npy, one per model input."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the outputs to this .npz file."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads [default: the target's]."),
    json_out: bool = JsonOption,
    debug: bool = DebugOption,
) -> None:
    """Run a bundle on this machine with inputs from .npy files."""
    from deploykit.bundle.files import write_npz
    from deploykit.bundle.manifest import read_manifest
    from deploykit.verification import load_runner_module

    manifest = read_manifest(bundle)
    names = [s["name"] for s in manifest["inputs"]]
    paths = _parse_inputs(input, names)
    feeds = {n: _load_array(p) for n, p in paths.items()}
    try:
        runner = load_runner_module(bundle).Runner(str(bundle), num_threads=threads)
    except ImportError as e:
        raise DeployError(f"the bundle's runtime is not installed here: {e}; pip install -r {bundle}/requirements.txt") from e
    try:
        outputs = runner.run(feeds)
    except (ValueError, KeyError, TypeError) as e:
        raise DeployError(f"bad input: {e}") from e
    if output:
        write_npz(output, outputs)
    summary = {name: {"shape": list(y.shape), "dtype": str(y.dtype),
                      "min": float(np.min(y)) if y.size else None, "max": float(np.max(y)) if y.size else None}
               for name, y in outputs.items()}
    if json_out:
        print_json({"runtime": runner.runtime, "outputs": summary})
        return
    for name, s in summary.items():
        out_console.print(f"{name}: shape={s['shape']} dtype={s['dtype']} min={s['min']:.6g} max={s['max']:.6g}",
                          markup=False, highlight=False)
    if output:
        err_console.print(f"outputs written to {output}", markup=False)


@cli_errors
def verify_command(
    bundle: Path = typer.Argument(..., help="A bundle folder made by 'deploykit build'.", show_default=False),
    json_out: bool = JsonOption,
    debug: bool = DebugOption,
) -> None:
    """Re-check a bundle: file checksums, then run its runner on the stored samples."""
    from deploykit.bundle.files import read_npz
    from deploykit.bundle.manifest import check_hashes, read_manifest
    from deploykit.verification import run_bundle, verify_outputs

    manifest = read_manifest(bundle)
    problems = check_hashes(bundle, manifest)
    if problems:
        raise BundleError(f"bundle {str(bundle)!r} was modified: " + "; ".join(problems[:10]))
    inputs = read_npz(Path(bundle) / manifest["samples"]["inputs"])
    expected = read_npz(Path(bundle) / manifest["samples"]["expected"])
    n = len(next(iter(inputs.values()))) if inputs else 0
    feeds = [{s["name"]: inputs[f"in_{i}"][j] for i, s in enumerate(manifest["inputs"])} for j in range(n)]
    refs = [{s["name"]: expected[f"out_{i}"][j] for i, s in enumerate(manifest["outputs"])} for j in range(n)]
    try:
        outs, runtime = run_bundle(bundle, feeds)
    except ImportError as e:
        raise DeployError(f"the bundle's runtime is not installed here: {e}; pip install -r {bundle}/requirements.txt") from e
    from deploykit.quant.parts import ConcatTail

    stored_parts = (manifest.get("verification") or {}).get("output_parts") or {}
    parts = {o: ConcatTail.from_json(d) for o, d in stored_parts.items()}
    result = verify_outputs(refs, outs, manifest["precision"], runtime, parts=parts)
    result["files_checked"] = len(manifest["files"])
    if json_out:
        print_json(result)
    else:
        out_console.print(f"{result['files_checked']} files match their sha256", markup=False)
        for name, m in result["outputs"].items():
            rows = [(name, m)] + [(f"{name} {label}", pm) for label, pm in (m.get("parts") or {}).items()]
            for label, v in rows:
                out_console.print(f"{label}: max abs err {v['max_abs_error']:.3g}, cosine {v['cosine']:.6f}, "
                                  f"SQNR {v['sqnr_db']} dB", markup=False, highlight=False)
        out_console.print(f"verification {result['status']} ({runtime})", markup=False)
    if result["status"] != "passed":
        raise DeployError("verification failed: " + "; ".join(result["problems"]))
