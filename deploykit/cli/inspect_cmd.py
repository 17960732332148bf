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
        shapes_out = _output_shapes(m, support)
        info["target"] = {"name": profile.name, "backend": backend.name, "runtime": backend.runtime,
                          "precision": profile.default_precision, "runs_on": _runs_on(profile),
                          "support": [{**s.to_json(), "output_shape": shape} for s, shape in zip(support, shapes_out)],
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
        _print_support(info["target"])


# NodeSupport.device values -> what the table says
DEVICES = {"tpu": "Edge TPU", "cpu": "CPU", "vpu": "VPU", "gpu": "GPU", "npu": "NPU"}
# where a backend's nodes run when it does not say per node
RUNS_ON = {"tflite": "LiteRT", "onnxruntime": "CPU", "tensorrt": "GPU (TensorRT)"}


def _runs_on(profile) -> str:
    if profile.backend == "openvino":
        return f"OpenVINO {profile.options.get('device', 'CPU')}"
    return RUNS_ON.get(profile.backend, profile.runtime)


def _output_shapes(model, support) -> list[list[int] | None]:
    """The first output shape of each analysed node (analysis lists nodes in graph order)."""
    import onnx_ir as ir

    nodes = list(ir.traversal.RecursiveGraphIterator(model.graph))
    if len(nodes) != len(support):
        nodes = list(model.graph)
    by_name = {n.name: n for n in nodes if n.name}
    shapes = []
    for i, s in enumerate(support):
        node = nodes[i] if i < len(nodes) and (nodes[i].name or "") == s.node else by_name.get(s.node)
        out = node.outputs[0] if node is not None and node.outputs else None
        shape = out.shape if out is not None else None
        shapes.append([d if isinstance(d, int) else -1 for d in shape] if shape is not None else None)
    return shapes


def _print_support(t: dict) -> None:
    """One row per node (op, output shape, where it runs, status), then the summary."""
    from rich import box
    from rich.table import Table
    from rich.markup import escape
    from rich.text import Text

    default = t.get("runs_on") or t["backend"]
    sup = Table(title=Text(printable(f"nodes on {t['name']} ({t['backend']}, {t['precision']} by default)")), title_justify="left",
                box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for col in ("node", "op", "output shape", "runs on", "status"):
        sup.add_column(col, overflow="fold")
    counts: dict[str, int] = {}
    for s in t["support"]:
        where = DEVICES.get(s["device"], s["device"]) if s["device"] else default
        if s["status"] == "unsupported":
            where = "-"
        counts[where] = counts.get(where, 0) + 1
        # the reason of a supported node is its op's table note (e.g. about 3-D convs): not about this node
        status = s["status"] + (f": {s['reason']}" if s["reason"] and s["status"] != "supported" else "")
        style = {"unsupported": "red", "rewrite": "yellow"}.get(s["status"], "")
        shape = "" if s.get("output_shape") is None else "x".join(map(str, s["output_shape"])) or "scalar"
        sup.add_row(Text(printable(s["node"] or "(unnamed)")), Text(printable(s["op_type"])), Text(shape), Text(printable(where)),
                    Text(printable(status), style=style))
    out_console.print(sup)
    if t["backend"] == "tflite":
        out_console.print("LiteRT runs each op in XNNPACK or on a built-in kernel depending on the lowered graph and "
                          "its precision: 'deploykit build' measures which in LiteRT and reports the partitions",
                          markup=False)
    n = len(t["support"])
    where = ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]) if k != "-")
    out_console.print(f"{n - t['unsupported']}/{n} nodes supported on {escape(printable(t['name']))}"
                      + (f", [red]{t['unsupported']} unsupported[/]" if t["unsupported"] else "")
                      + (f" (runs on: {escape(printable(where))})" if where else ""), highlight=False)
