"""``deploykit targets``: list device profiles and whether their backend is installed.

Start-up matters here: only the profiles and the backends' declarations are read (a backend class,
which imports the graph stack, is never loaded). The table never cuts a target name, marks the
default precision with text (bold is lost in a pipe) and lists it first.
"""

from __future__ import annotations

from deploykit.cli.common import DebugOption, JsonOption, cli_errors, out_console, print_json
from deploykit.plugins import default_registry

WIDE = 120  # from this console width on, the table also shows the device runtime


def default_first(precisions, default: str) -> list[str]:
    """``["fp32", "fp16", "int8"]``, default ``int8`` -> ``["int8", "fp32", "fp16"]``."""
    return [default] + [p for p in precisions if p != default]


def target_rows(registry) -> list[dict]:
    rows = []
    for name in sorted(registry.targets):
        p = registry.targets[name]
        backend = registry.backends.declared(p.backend)
        if backend is None:
            status = "backend not installed"
        else:
            missing = backend.missing_host_modules()
            status = "ready" if not missing else f"needs {', '.join(missing)}"
        rows.append({"name": p.name, "backend": p.backend, "installed": backend is not None and status == "ready",
                     "status": status, "precisions": default_first(p.precisions, p.default_precision),
                     "default_precision": p.default_precision,
                     "device": p.description, "arch": p.arch, "runtime": f"{p.runtime} {p.runtime_version}"})
    return rows


def _device(description: str) -> str:
    """The device part of a profile description: up to its first comma outside parentheses
    (the OS and runtime details follow)."""
    depth = 0
    for i, ch in enumerate(description):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            return description[:i].strip()
    return description.strip()


@cli_errors
def targets_command(json_out: bool = JsonOption, debug: bool = DebugOption) -> None:
    """List every target profile with its backend and whether that backend is installed."""
    rows = target_rows(default_registry())
    if json_out:
        print_json(rows)
        return
    from rich import box
    from rich.table import Table
    from rich.text import Text

    wide = out_console.width >= WIDE
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("target", no_wrap=True)
    table.add_column("backend", no_wrap=True)
    table.add_column("ready")
    table.add_column("precisions", min_width=14)
    table.add_column("device", ratio=1)
    if wide:
        table.add_column("device runtime")
    for r in rows:
        ready = "yes" if r["installed"] else f"no: {r['status']}"
        precisions = ", ".join(f"{p} (default)" if p == r["default_precision"] else p for p in r["precisions"])
        cells = [r["name"], r["backend"], ready, precisions, _device(r["device"])] + ([r["runtime"]] if wide else [])
        table.add_row(*(Text(c) for c in cells))
    out_console.print(table)
    if not rows:
        out_console.print("no targets: no plugin registered one (is DEPLOYKIT_PLUGINS set?)", markup=False)
