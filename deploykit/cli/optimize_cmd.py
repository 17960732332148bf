"""``deploykit optimize``: compress a model (pruning, low-rank, clustering) and write the ONNX only.

The model is imported and canonicalized like ``deploykit build`` does (BatchNorm folding makes
channel importance meaningful), compressed with :func:`deploykit.compress.compress`, and written
atomically (temporary file + rename): on any error no output file is left behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional

import typer

from deploykit.cli.common import DebugOption, JsonOption, RichReporter, cli_errors, err_console, human_count, out_console, print_json


@cli_errors
def optimize_command(
    model: Path = typer.Argument(..., help="The ONNX model file.", show_default=False),
    compress_spec: str = typer.Option(
        "auto", "--compress",
        help="What to apply: 'auto' (prune=auto,lowrank=auto,cluster=auto: each within the budget), KEY=VALUE pairs such as "
        "prune=0.3,lowrank=auto,cluster=64,sparsity=0.5,budget=0.99, or a .toml/.json file with those keys."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output .onnx file [default: ./MODEL.compressed.onnx]."),
    calibration: Optional[str] = typer.Option(
        None, "--calibration", "-c",
        help="Samples for the sensitivity scans of 'auto': .npy (stacked on axis 0, without batch) or .npz "
        "(one array per input) [default: random inputs, with a stricter margin]."),
    calibration_samples: Optional[int] = typer.Option(None, "--calibration-samples", help="Use only the first N samples."),
    budget: float = typer.Option(0.99, "--budget", help="Accuracy to keep: cosine of the outputs vs fp32 (0.5..1)."),
    input_shape: list[str] = typer.Option([], "--input-shape", help="Pin dynamic dims: NAME:D0,D1,... (repeat per input)."),
    force: bool = typer.Option(False, "--force", "-f", help="Replace the output file if it exists."),
    finetune: Optional[int] = typer.Option(
        None, "--finetune", min=1,
        help="After compressing, distill from the original model for STEPS optimizer steps on the calibration "
        "samples (unlabeled; needs --calibration and the [train] extra: PyTorch)."),
    finetune_lr: float = typer.Option(1e-3, "--finetune-lr", help="Learning rate (Adam) of --finetune."),
    json_out: bool = JsonOption,
    debug: bool = DebugOption,
) -> None:
    """Compress MODEL and write the compressed ONNX (no bundle); print what each step did."""
    from deploykit.compress import compress, parse_spec
    from deploykit.errors import DeployError
    from deploykit.ir import graph_inputs, load_model, parse_input_shapes, save_model, to_proto
    from deploykit.passes import canonicalize
    from deploykit.pipeline import log_or_warn

    spec = parse_spec(compress_spec)
    if not 0.5 <= budget <= 1.0:
        raise DeployError(f"--budget {budget} is out of range; use a cosine between 0.5 and 1 (e.g. 0.99)")
    out = output or Path.cwd() / f"{Path(model).stem}.compressed.onnx"
    if (out.exists() or out.is_symlink()) and (out.is_symlink() or not out.is_file()):
        raise DeployError(f"output {str(out)!r} exists and is not a regular file; choose another -o")
    if out.exists() and not force:
        raise DeployError(f"output {str(out)!r} already exists; pass --force to replace it or choose another -o")
    if not out.parent.is_dir():
        raise DeployError(f"the folder of output {str(out)!r} does not exist")
    if finetune is not None:
        _check_finetune(calibration)
    shapes = parse_input_shapes(input_shape)
    reporter = RichReporter(quiet=json_out)
    with reporter.stage("import"):
        m = load_model(model, shapes)
        inputs = graph_inputs(m)
    feeds = None
    if calibration:
        from deploykit.quant.calibration import load_samples

        with reporter.stage("calibration data"):
            samples = load_samples(calibration, inputs, limit=calibration_samples)
            feeds = list(samples.feeds())
    with reporter.stage("canonicalize"):
        proto = to_proto(canonicalize(m))
    with reporter.stage("compress"):
        result = compress(proto, spec, samples=feeds, budget=budget, log=log_or_warn(reporter))
    if finetune is not None:
        from deploykit.train import distill

        with reporter.stage("fine-tune (distillation)"):
            result.model, result.details["finetune"] = distill(result.model, proto, feeds, finetune, finetune_lr,
                                                               log=log_or_warn(reporter))
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
    os.close(fd)
    try:
        written = save_model(result.model, tmp)
        if len(written) > 1:
            raise DeployError("the compressed model is over 2 GB; external data output is not supported by optimize")
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        for p in (Path(tmp), Path(tmp + ".data")):
            p.unlink(missing_ok=True)
        raise
    report = {"output": str(out.absolute()), "compression": result.to_json()}
    if json_out:
        print_json(report)
        return
    _print_table(result)
    ft = result.details.get("finetune")
    if ft:
        cos = (f", held-out cosine vs original {ft['heldout_cosine_before']:.4f} -> {ft['heldout_cosine_after']:.4f}"
               if ft.get("heldout_cosine_after") is not None else "")
        out_console.print(f"fine-tune: {ft['steps']} steps in {ft['time_s']} s, loss {ft['loss_before']:.4g} -> "
                          f"{ft['loss_after']:.4g}{cos}"
                          + ("" if ft["applied"] else " (not kept: no improvement on the held-out samples)"))
    err_console.print("compressed model: ", end="")
    err_console.print(str(out), markup=False, highlight=False)


def _check_finetune(calibration: Optional[str]) -> None:
    from deploykit.errors import DeployError

    if not calibration:
        raise DeployError("--finetune needs --calibration: unlabeled samples shaped like the model input (.npy/.npz)")
    try:
        import torch  # noqa: F401
    except ImportError:
        from deploykit.train import TORCH_HINT

        raise DeployError(f"--finetune needs PyTorch: {TORCH_HINT}") from None


def _print_table(result) -> None:
    from rich.table import Table

    d = result.details
    table = Table(title=f"compression ({result.spec}; budget cosine {result.budget}, {d['samples']} {d['samples_kind']} samples)",
                  title_justify="left")
    for col in ("step", "setting", "params", "MACs", "cosine vs fp32", "changed", "skipped"):
        table.add_column(col, justify="left" if col in ("step", "setting", "changed") else "right")
    table.add_row("fp32", "", human_count(d["params_before"]), human_count(d["macs_before"]), "1", "", "")
    for step in result.steps:
        s = step.details
        table.add_row(step.name, str(s.get("setting")), human_count(s["params_after"]), human_count(s["macs_after"]),
                      f"{s['cosine_vs_fp32']:.5f}", _changed(step.name, s), str(len(s.get("skipped", []))))
    out_console.print(table)
    met = "met" if d["budget_met"] else "MISSED"
    out_console.print(f"params {d['params_before']:,} -> {d['params_after']:,} "
                      f"({_pct(d['params_after'], d['params_before'])}), MACs {d['macs_before']:,} -> {d['macs_after']:,} "
                      f"({_pct(d['macs_after'], d['macs_before'])}); budget {met}")


def _pct(after: int, before: int) -> str:
    return f"{(after - before) / before:+.1%}" if before else "n/a"


def _changed(name: str, s: dict) -> str:
    if not s.get("applied", True):
        return "dropped: " + str(s.get("error", ""))[:60]
    if name == "prune":
        return f"{sum(1 for r in s.get('ratios', {}).values() if r > 0)} channel group(s)"
    if name == "lowrank":
        return f"{len(s.get('ranks', {}))} layer(s) factorized"
    if name == "cluster":
        layers = s.get("layers", {})
        return f"{len(layers)} layer(s), Huffman {human_count(s.get('huffman_bytes', 0))}B of {human_count(s.get('dense_bytes', 0))}B"
    if name == "sparsity":
        return f"{s.get('sparsity', 0):.1%} zeros (needs a sparse backend)"
    return ""
