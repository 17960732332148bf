"""``deploykit targets``: list device profiles and whether their backend is installed."""

from __future__ import annotations


from deploykit.cli.common import DebugOption, JsonOption, cli_errors, out_console, print_json
from deploykit.plugins import default_registry


def target_rows(registry) -> list[dict]:
    rows = []
    for name in sorted(registry.targets):
        p = registry.targets[name]
        backend = registry.backends.get(p.backend)
        if backend is None:
            status = "backend not installed"
        else:
            missing = backend.missing_host_modules()
            status = "ready" if not missing else f"needs {', '.join(missing)}"
        rows.append({"name": p.name, "backend": p.backend, "installed": backend is not None and status == "ready",
                     "status": status, "precisions": list(p.precisions), "default_precision": p.default_precision,
                     "device": p.description, "arch": p.arch, "runtime": f"{p.runtime} {p.runtime_version}"})
    return rows


@cli_errors
def targets_command(json_out: bool = JsonOption, debug: bool = DebugOption) -> None:
    """List every target profile with its backend and whether that backend is installed."""
    rows = target_rows(default_registry())
    if json_out:
        print_json(rows)
        return
    from rich.table import Table

    table = Table()
    for col in ("target", "backend", "installed", "precisions", "device", "runtime"):
        table.add_column(col)
    for r in rows:
        mark = "[green]yes[/]" if r["installed"] else f"[yellow]no[/] ({r['status']})"
        precisions = ", ".join(f"[bold]{p}[/]" if p == r["default_precision"] else p for p in r["precisions"])
        table.add_row(r["name"], r["backend"], mark, precisions, r["device"].split(",")[0], r["runtime"])
    out_console.print(table)
    out_console.print("[dim]bold precision = the target's default[/]")
