"""``deploykit inspect``: what is in a model, and what a target can run of it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from deploykit.cli.common import DebugOption, JsonOption, cli_errors, human_count, out_console, print_json, printable


@cli_errors
def inspect_command(
    model: Path = typer.Argument(..., help="The ONNX model file.", show_default=False),
    target: Optional[str] = typer.Option(None, "--target", "-t", help="Also report per-node support on this target."),
    input_shape: list[str] = typer.Option([], "--input-shape", help="Pin dynamic dims: NAME:D0,D1,..."),
    json_out: bool = JsonOption,
    debug: bool = DebugOption,
) -> None:
    """Show a model's inputs, outputs, ops, parameters and MACs, and per-target support."""
    from deploykit.backend import Support
    from deploykit.ir import graph_inputs, graph_outputs, load_model, opset_version, parse_input_shapes
    from deploykit.ir.stats import model_stats
    from deploykit.passes import canonicalize
    from deploykit.plugins import default_registry

    shapes = parse_input_shapes(input_shape)
    m = load_model(model, shapes, require_static=False)
    info = {
        "model": str(model),
        "opset": opset_version(m),
        "producer": f"{m.producer_name or ''} {m.producer_version or ''}".strip(),
        "inputs": [s.to_json() for s in graph_inputs(m)],
        "outputs": [s.to_json() for s in graph_outputs(m)],
    }
    dynamic = any(d < 0 for s in info["inputs"] for d in s["shape"])
    if not dynamic:
        m = canonicalize(m)
    info["stats"] = model_stats(m).to_json()
    info["canonicalized"] = not dynamic
    if target:
        registry = default_registry()
        profile = registry.target(target)
        backend = registry.backend_for(profile)(profile)
        from deploykit.backend import BuildOptions

        m = backend.prepare(m, BuildOptions(precision=profile.default_precision, input_shapes=shapes))
        support = backend.analyze(m)
        info["target"] = {"name": profile.name, "backend": backend.name,
                          "support": [s.to_json() for s in support],
                          "unsupported": sum(s.status is Support.UNSUPPORTED for s in support)}
    if json_out:
        print_json(info)
        return
    _print(info, dynamic)


def _print(info: dict, dynamic: bool) -> None:
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    out_console.print(f"[bold]{escape(printable(info['model']))}[/]  opset {info['opset']}  {escape(printable(info['producer']))}", markup=True,
                      highlight=False)
    io = Table(title="inputs / outputs", title_justify="left")
    for col in ("", "name", "shape", "dtype"):
        io.add_column(col)
    for kind in ("inputs", "outputs"):
        for s in info[kind]:
            io.add_row(kind[:-1], Text(printable(s["name"])), str(s["shape"]), Text(s["dtype"]))
    out_console.print(io)
    st = info["stats"]
    out_console.print(f"params {human_count(st['params'])} ({human_count(st['param_bytes'])}B)  MACs {human_count(st['macs'])}  "
                      f"FLOPs {human_count(st['flops'])}" + ("  [yellow](dynamic dims: pass --input-shape for exact figures)[/]" if dynamic else ""))
    ops = Table(title="ops", title_justify="left")
    ops.add_column("op")
    ops.add_column("count", justify="right")
    for op, n in sorted(st["ops"].items(), key=lambda kv: -kv[1]):
        ops.add_row(Text(printable(op)), str(n))
    out_console.print(ops)
    if "target" in info:
        t = info["target"]
        sup = Table(title=Text(printable(f"support on {t['name']} ({t['backend']})")), title_justify="left")
        for col in ("node", "op", "status", "reason", "device"):
            sup.add_column(col)
        for s in t["support"]:
            if s["status"] != "supported" or s["device"]:
                style = {"unsupported": "red", "rewrite": "yellow"}.get(s["status"], "")
                sup.add_row(Text(printable(s["node"])), Text(printable(s["op_type"])), Text(s["status"], style=style),
                            Text(printable(s["reason"])), Text(printable(s["device"])))
        if sup.row_count:
            out_console.print(sup)
        n = len(t["support"])
        out_console.print(f"{n - t['unsupported']}/{n} nodes supported on {escape(printable(t['name']))}"
                          + (f", [red]{t['unsupported']} unsupported[/]" if t["unsupported"] else ""))
