"""``deploykit build``: one ONNX model -> a verified bundle for a target."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from deploykit.cli.common import DebugOption, JsonOption, RichReporter, cli_errors, err_console, print_json, printable
from deploykit.cli.project_cmd import ExecutorOption, JobsOption, KeepGoingOption, ProjectOption, RebuildOption


@cli_errors
def build_command(
    ctx: typer.Context,
    model: Optional[list[str]] = typer.Argument(
        None, help="The ONNX model file; or, in a project (deploykit.toml), nothing for the whole matrix or "
        "MODEL[:TARGET[:PRECISION]] names from it.", show_default=False, metavar="MODEL|NAMES"),
    target: Optional[str] = typer.Option(None, "--target", "-t", help="Target device profile (see 'deploykit targets'); required with a model file."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Bundle folder [default: ./MODEL-TARGET-PRECISION]."),
    precision: Optional[str] = typer.Option(None, "--precision", "-p", help="fp32, fp16 or int8 [default: the target's]."),
    input_shape: list[str] = typer.Option([], "--input-shape", help="Pin dynamic dims: NAME:D0,D1,... (repeat per input)."),
    freeze_input: list[str] = typer.Option(
        [], "--freeze-input", help="Fix an input's value at build time: NAME=VALUE or NAME=V0,V1,... (repeat per input), "
        "e.g. sr=16000 for a sample-rate input that selects an If branch. The runner still accepts the input, "
        "only with that value."),
    calibration: Optional[str] = typer.Option(
        None, "--calibration", "-c",
        help=".npy (samples stacked on axis 0, shaped like the input without batch), .npz (one array per input name), "
        "or a folder of images (see --calib-*). Required for int8, the default precision of most targets.",
    ),
    calib_mean: Optional[str] = typer.Option(None, "--calib-mean", help="Image folders: per-channel mean after scaling, e.g. 0.485,0.456,0.406 [default: 0]."),
    calib_std: Optional[str] = typer.Option(None, "--calib-std", help="Image folders: per-channel std, e.g. 0.229,0.224,0.225 [default: 1]."),
    calib_scale: float = typer.Option(255.0, "--calib-scale", help="Image folders: divide pixel values by this first."),
    calib_bgr: bool = typer.Option(False, "--calib-bgr", help="Image folders: feed BGR channel order instead of RGB."),
    calib_layout: str = typer.Option("auto", "--calib-layout", help="Image folders: auto, nchw or nhwc."),
    calibration_samples: Optional[int] = typer.Option(
        None, "--calibration-samples", help="Use only the first N samples of the calibration data [default: all]."),
    calibration_method: str = typer.Option(
        "auto", "--calibration-method",
        help="Activation range method: auto (simulate minmax, percentile and mse; keep the most accurate), or one of minmax, percentile, entropy, mse."),
    accuracy_budget: Optional[str] = typer.Option(
        None, "--accuracy-budget",
        help="int8 accuracy to keep vs fp32 on every output: cosine=0.99 (the default) or e.g. sqnr=25 (dB). "
        "Layers fall back to float until it holds, where the target allows mixed precision."),
    eval_data: Optional[Path] = typer.Option(
        None, "--eval-data",
        help="Evaluation data with labels (.npz: one array per input + 'labels'), never used for calibration: "
        "the task metric (--metric) drives int8 method choice and float fallback and is reported fp32 vs the bundle."),
    metric: Optional[str] = typer.Option(
        None, "--metric",
        help="Task metric on --eval-data: top1, topk:K, argmax[:AXIS], ctc[:BLANK], detection (YOLOv8-style output), "
        "sqnr, or FILE.py:FUNCTION ((outputs, labels) -> float). With it, --accuracy-budget is the largest drop "
        "allowed, e.g. top1=-0.5 (points) [default: 0.5 points; sqnr: 25 dB]."),
    compress: Optional[str] = typer.Option(
        None, "--compress",
        help="Compress before lowering: 'auto', KEY=VALUE pairs (prune=0.3,lowrank=auto,cluster=64,sparsity=0.5,"
        "budget=0.99) or a .toml/.json file; adds the compression details and an effect report (report.html)."),
    io: str = typer.Option("float", "--io", help="Artifact I/O type where the backend supports integer I/O: float or int8."),
    force: bool = typer.Option(False, "--force", "-f", help="Replace the output folder if it exists."),
    strict: bool = typer.Option(False, "--strict", help="Exit with code 4 when verification fails or the accuracy budget is missed."),
    verify_on: str = typer.Option(
        "host", "--verify-on",
        help="host: verify with the target's runtime on this machine. emulated: also run the bundle's runner on the "
        "emulated device (arm64 root under QEMU with the device's CPU, Python and runtime wheels; needs root; "
        "Raspberry Pi and Coral targets), with the bundle's runtime and the runner's fallback runtime; the result "
        "goes into the manifest."),
    docker: bool = typer.Option(False, "--docker", help="Build inside the backend's toolchain image (docker or podman), as the calling user."),
    engine: Optional[str] = typer.Option(
        None, "--engine", help="With --docker: container engine, docker or podman [default: $DEPLOYKIT_ENGINE, else docker "
        "when its daemon answers, else podman]. DEPLOYKIT_PULL=never: use local base images only."),
    platform: Optional[str] = typer.Option(None, "--platform", help="With --docker: docker platform of the toolchain image, e.g. linux/amd64."),
    dry_run: bool = typer.Option(False, "--dry-run", help="With --docker: write the image context, print the docker commands, build nothing."),
    docker_context: Optional[Path] = typer.Option(
        None, "--docker-context", help="With --docker: folder for the generated Dockerfile [default: OUTPUT/../.deploykit-docker/BACKEND]."),
    jobs: Optional[int] = JobsOption,
    keep_going: bool = KeepGoingOption,
    rebuild: bool = RebuildOption,
    executor: Optional[str] = ExecutorOption,
    project: Optional[Path] = ProjectOption,
    json_out: bool = JsonOption,
    debug: bool = DebugOption,
) -> None:
    """Build MODEL into a verified, ready-to-run bundle for a TARGET device.

    Without a model file: build the project's matrix (deploykit.toml) into dist/, incrementally.
    """
    from deploykit.cli.project_cmd import build_project, is_project_build, reject_project_options

    if is_project_build(model):
        build_project(ctx)
        return
    reject_project_options(ctx)
    model = Path(model[0])
    if target is None:
        from deploykit.errors import DeployError

        raise DeployError("--target is required with a model file, e.g. --target rpi4 (see 'deploykit targets')")
    if docker or dry_run or platform or docker_context or engine:
        from deploykit.cli.docker_cmd import build_in_docker

        if not docker:
            from deploykit.errors import DeployError

            raise DeployError("--platform, --dry-run, --docker-context and --engine only apply with --docker")
        build_in_docker(ctx, model=model, target=target, output=output, precision=precision, calibration=calibration,
                        platform=platform, dry_run=dry_run, docker_context=docker_context, engine=engine)
        return
    if precision is not None and precision not in ("fp32", "fp16", "int8"):
        from deploykit.errors import DeployError

        raise DeployError(f"unknown --precision {precision!r}; use fp32, fp16 or int8")
    if io not in ("float", "int8"):
        from deploykit.errors import DeployError

        raise DeployError(f"unknown --io {io!r}; use float or int8")
    if verify_on not in ("host", "emulated"):
        from deploykit.errors import DeployError

        raise DeployError(f"unknown --verify-on {verify_on!r}; use host or emulated")
    from deploykit.pipeline import BuildRequest, build
    from deploykit.quant.images import IMAGE_SUFFIXES, ImagePreprocess

    if calibration and Path(calibration).suffix.lower() in IMAGE_SUFFIXES and Path(calibration).is_file():
        from deploykit.errors import CalibrationError

        raise CalibrationError(f"--calibration {calibration!r} is a single image; calibration needs many samples: "
                               f"pass the folder that holds them (--calibration {str(Path(calibration).parent)!r})")
    if calib_layout not in ("auto", "nchw", "nhwc"):
        from deploykit.errors import DeployError

        raise DeployError(f"unknown --calib-layout {calib_layout!r}; use auto, nchw or nhwc")
    images = ImagePreprocess(mean=ImagePreprocess.parse_floats(calib_mean, "--calib-mean", (0.0,)),
                             std=ImagePreprocess.parse_floats(calib_std, "--calib-std", (1.0,)),
                             scale=calib_scale, bgr=calib_bgr, layout=calib_layout)
    reporter = RichReporter()
    result = build(
        BuildRequest(model=model, target=target, output=output, precision=precision, input_shapes=list(input_shape),
                     freeze_inputs=list(freeze_input), calibration=calibration,
                     force=force, io=io, calibration_samples=calibration_samples,
                     calibration_method=calibration_method, accuracy_budget=accuracy_budget, images=images,
                     compress=compress, eval_data=str(eval_data) if eval_data else None, metric=metric,
                     verify_on=verify_on),
        reporter=reporter,
    )
    verification = result.manifest["verification"]
    if json_out:
        print_json({"bundle": str(result.out_dir), "manifest": result.manifest,
                    "timings_s": {k: round(v, 3) for k, v in reporter.timings.items()}})
    else:
        try:
            _print_summary(result, verification)
        except Exception:  # noqa: BLE001 - the bundle is finished and in place: a display problem must not fail the build
            err_console.print(f"bundle: {printable(result.out_dir)} (verification {verification.get('status')})",
                              markup=False, highlight=False)
    quant = result.manifest.get("quantization") or {}
    if strict and (verification.get("status") == "failed" or quant.get("budget_met") is False):
        raise typer.Exit(4)


def metric_cells(name: str, v: dict) -> list:
    """Table cells of one output's (or part's) verification metrics; names are text, never markup."""
    from rich.text import Text

    agree = v.get("top1_agreement")
    agree_text = _fmt(agree, ".2%")
    if agree is None and v.get("topk_agreement") is not None:
        agree_text = _fmt(v["topk_agreement"], ".2%") + " top-k"
    return [Text(printable(name)), _fmt(v.get("max_abs_error"), ".3g"), _fmt(v.get("rel_max_abs_error"), ".3g"),
            _fmt(v.get("cosine"), ".6f"), _fmt(v.get("sqnr_db"), ".1f"), agree_text]


def _print_summary(result, verification) -> None:
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    from deploykit.cli.verdict import samples_text, verdict

    m = result.manifest
    if verification.get("status") in ("passed", "failed"):
        table = Table(title=f"verification vs fp32 on {samples_text(verification['samples'], False)} "
                            f"({verification['runtime']})", title_justify="left")
        for col in ("output", "max abs err", "rel. to range", "cosine", "SQNR dB", "top-1"):
            table.add_column(col, justify="right" if col != "output" else "left")
        for name, v in verification["outputs"].items():
            table.add_row(*metric_cells(name, v))
            for label, pv in (v.get("parts") or {}).items():  # a concatenated output, branch by branch
                table.add_row(*metric_cells(f"  {label}", pv))
        err_console.print(table)
    c = (result.report or {}).get("compression")
    if c:
        met = "[green]met[/]" if c["budget_met"] else "[red]MISSED[/]"
        err_console.print(f"compression ({escape(str(c['spec']))}): params {c['params_before']:,} -> {c['params_after']:,}, "
                          f"MACs {c['macs_before']:,} -> {c['macs_after']:,}, cosine vs source fp32 {c['cosine_vs_fp32']:.5f} "
                          f"(budget {c['budget']} {met}; the verification below is against the compressed model)")
    q = m.get("quantization")
    if q:
        err_console.print(f"int8: range method {q['range_method']}, {q.get('weight_bits', 8)}-bit weights, "
                          f"{len(q['fallback_layers'])} layer(s) in float, "
                          f"bias correction {'on' if q['bias_correction'] else 'off'}, "
                          f"{q['cross_layer_equalization']} equalized conv pairs", markup=False)
    t = verification.get("task")
    if t:
        from deploykit.quant.task_metrics import parse_metric_unit_format

        fmt = parse_metric_unit_format(t["unit"])
        prec = m["precision"]
        delta = "" if t.get("delta") is None else f" ({t['delta']:+.2f}{' pt' if t['unit'] == 'fraction' else ''})"
        err_console.print(f"task metric {t['metric']} on {t['samples']} evaluation samples: fp32 {fmt(t['fp32'])}, "
                          f"{prec} {fmt(t[prec])}{delta}; budget {t['budget']}: {'met' if t['met'] else 'MISSED'}",
                          markup=False, highlight=False)
    emulated = verification.get("emulated")
    if emulated:
        from deploykit.emulate.verify import summary_line

        err_console.print(summary_line(emulated), markup=False, highlight=False)
    status, line = verdict(verification, (result.report or {}).get("quantization") or q)
    style = {"passed": "green", "failed": "red", "budget-missed": "yellow", "skipped": "yellow"}.get(status, "")
    err_console.print(line, style=style, markup=False, highlight=False)
    err_console.print(f"bundle for [bold]{escape(printable(m['target']))}[/] ({escape(m['backend'])}, {m['precision']}): ", end="")
    err_console.print(printable(result.out_dir), markup=False, highlight=False)


def _fmt(value, spec: str) -> str:
    """A metric for the table; non-numbers (``"inf"``, ``None``) as text."""
    if value is None:
        return ""
    return format(value, spec) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
