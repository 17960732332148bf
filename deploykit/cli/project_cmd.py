"""``deploykit build`` without a model file (the project's matrix) and ``deploykit cache``.

``deploykit build`` alone builds every bundle the project file lists; ``deploykit build detector
ocr:rpi4`` builds a part of it. Only typer is imported at module level: ``deploykit --help``
stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import typer

from deploykit.cli.common import DebugOption, JsonOption, cli_errors, err_console, out_console, print_json

# options of the single-model build that a project sets per model in its file instead
SINGLE_MODEL_OPTIONS = ("input_shape", "freeze_input", "calibration", "calib_mean", "calib_std", "calib_scale", "calib_bgr", "calib_layout",
                        "calibration_samples", "calibration_method", "accuracy_budget", "compress", "io", "force",
                        "docker", "platform", "dry_run", "docker_context")
PROJECT_OPTIONS = {"jobs": "-j/--jobs", "keep_going": "--keep-going", "rebuild": "--rebuild", "executor": "--executor",
                   "project": "--project"}

JobsOption = typer.Option(None, "--jobs", "-j", min=1, help="Project builds: bundles built at once [default: the usable cores].")
KeepGoingOption = typer.Option(False, "--keep-going", "-k", help="Project builds: build the rest after a failure.")
RebuildOption = typer.Option(False, "--rebuild", help="Project builds: rebuild the selected bundles even if up to date.")
ExecutorOption = typer.Option(None, "--executor", help="Project builds: local (default), ray (RAY_ADDRESS or a local Ray) or ray://HOST:PORT.")
ProjectOption = typer.Option(None, "--project", help="Project builds: the project file [default: deploykit.toml or pyproject.toml here or above].")


def _explicit(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def is_project_build(args: list[str] | None) -> bool:
    """``deploykit build`` with no argument, or with names that are not an existing model file."""
    if not args:
        return True
    # anything that exists (a folder, a device, a pipe: the model check says what is wrong with it) or
    # looks like a path is a model argument
    return not (len(args) == 1 and (args[0].endswith(".onnx") or os.path.lexists(args[0]) or os.sep in args[0]))


def reject_project_options(ctx: typer.Context) -> None:
    """Single-model builds: refuse the options that only mean something for a project."""
    from deploykit.errors import DeployError

    given = [flag for name, flag in PROJECT_OPTIONS.items() if _explicit(ctx, name)]
    if given:
        raise DeployError(f"{', '.join(given)} apply to project builds: run 'deploykit build' without a model file, "
                          "next to a deploykit.toml")


def build_project(ctx: typer.Context) -> None:
    """Build the project's matrix (called by ``deploykit build`` when no model file is given)."""
    from deploykit.buildsys.matrix import Matrix, MatrixOptions
    from deploykit.buildsys.project import ProjectError, find_project, load_project
    from deploykit.plugins import default_registry

    p = ctx.params
    given = sorted("--" + n.replace("_", "-") for n in SINGLE_MODEL_OPTIONS if _explicit(ctx, n))
    if given:
        raise ProjectError(f"{', '.join(given)} apply to single-model builds (deploykit build MODEL.onnx); in a project, "
                           "set them per model in the project file")
    selectors = list(p.get("model") or [])
    if any(s.endswith(".onnx") for s in selectors):
        raise ProjectError("give one MODEL.onnx for a single-model build, or model names from the project file; "
                           f"got {' '.join(selectors)}")
    path = p.get("project") or find_project()
    if path is None:
        raise ProjectError("deploykit build needs a MODEL.onnx (with --target), or a deploykit.toml (or [tool.deploykit] "
                           "in pyproject.toml) in this folder or above; see README, 'Projects'")
    registry = default_registry()
    project = load_project(path, registry.targets)
    jobs = project.select(selectors, target=p.get("target"), precision=p.get("precision"))
    _check_eval(project, jobs)
    s = project.settings
    options = MatrixOptions(
        dist=Path(p["output"]) if p.get("output") else s.dist, jobs=p.get("jobs") or s.jobs,
        keep_going=p.get("keep_going") or s.keep_going, rebuild=bool(p.get("rebuild")),
        executor=p.get("executor") or s.executor, memory_mb=s.memory_mb, cache=s.cache, measure=s.measure)
    events = RichEvents(quiet=bool(p.get("json_out")))
    matrix = Matrix(project, registry, options, events)
    try:
        rows = matrix.run(jobs)
    finally:
        events.close()
    if p.get("json_out"):
        import json

        print_json(json.loads((matrix.dist / "matrix.json").read_text(encoding="utf-8")))
    else:
        _print_summary(rows, matrix)
    _exit_status(rows, strict=bool(p.get("strict")) or s.strict, dist=matrix.dist)


def _check_eval(project, jobs) -> None:
    from deploykit.buildsys.child import eval_supported
    from deploykit.buildsys.project import ProjectError

    for name in dict.fromkeys(j.model for j in jobs):
        if project.models[name].eval_data is not None and not eval_supported():
            raise ProjectError(f"{project.file.name}: [{project.table_prefix}models.{name}] field 'eval': task metrics "
                               "(eval data + metric) are not supported by this deploykit version; remove the field")


def _exit_status(rows, strict: bool, dist: Path) -> None:
    from deploykit.errors import DeployError

    failed = [r for r in rows if r.status in ("failed", "skipped") and r.selected]
    if failed:
        first = next((r for r in failed if r.status == "failed"), failed[0])
        raise DeployError(f"{len(failed)} of {sum(r.selected for r in rows)} selected bundle(s) not built; "
                          f"{first.job.id}: {first.error} (log: {dist / first.log if first.log else 'none'}; all: {dist / 'matrix.html'})")
    gated = [r for r in rows if r.gate == "failed" and r.selected]
    if gated and strict:
        err_console.print(f"error: {len(gated)} bundle(s) missed their accuracy gate: {', '.join(r.job.id for r in gated)}",
                          markup=False, highlight=False)
        raise typer.Exit(4)


def _cell(value: Any, fmt: str) -> str:
    return fmt.format(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else "—"


def _print_summary(rows, matrix) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from deploykit.effect.report import human

    table = Table(title=f"build matrix ({matrix.executor_name}, {matrix.wall_s:.1f} s)", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("bundle", "status", "s", "MB", "size", "p50 ms", "cosine"):
        table.add_column(col, justify="left" if col in ("bundle", "status") else "right", no_wrap=True)
    styles = {"built": "green", "restored": "green", "up to date": "dim", "failed": "red", "skipped": "yellow",
              "out of date": "yellow"}
    for r in rows:
        f = r.figures
        status = Text(r.status, style=styles.get(r.status, ""))
        if r.gate == "failed":
            status.append(", gate failed", style="red")
        table.add_row(Text(r.job.id), status, _cell(r.seconds, "{:.1f}"), _cell(r.peak_rss_mb, "{:.0f}"),
                      human(f["artifact_bytes"], "B") if f.get("artifact_bytes") else "—",
                      _cell((r.latency or {}).get("latency_ms_p50"), "{:.2g}"), _cell(f.get("cosine"), "{:.4f}"))
    err_console.print(table, width=max(err_console.width, 100))  # bundle names are never cut
    counts = {s: sum(r.status == s for r in rows) for s in ("built", "restored", "up to date", "failed", "skipped", "out of date")}
    err_console.print(", ".join(f"{n} {s}" for s, n in counts.items() if n) + ": ", end="", markup=False)
    err_console.print(str(matrix.dist / "matrix.html"), markup=False, highlight=False)


class RichEvents:
    """Live progress: one line per running build (its current stage), a line per finished one."""

    def __init__(self, quiet: bool = False):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.quiet = quiet
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}", markup=False), BarColumn(bar_width=20),
                                 MofNCompleteColumn(), TimeElapsedColumn(), console=err_console, transient=True)
        self.running: dict[str, Any] = {}
        self.overall = None

    def planned(self, rows, executor: str) -> None:
        todo = sum(r.status == "pending" for r in rows)
        counts = {s: sum(r.status == s for r in rows) for s in ("up to date", "restored", "out of date")}
        parts = [f"{todo} to build"] + [f"{n} {s}" for s, n in counts.items() if n]
        if not self.quiet:
            err_console.print(f"{len(rows)} bundle(s): {', '.join(parts)}" + (f" ({executor})" if todo else ""), markup=False)
            self.overall = self.progress.add_task("matrix", total=todo + counts["restored"])
            self.progress.start()

    def started(self, task) -> None:
        if not self.quiet:
            self.running[task.job.id] = self.progress.add_task(f"{task.job.id}: starting", total=None)

    def stage(self, task, stage: str) -> None:
        if task.job.id in self.running:
            self.progress.update(self.running[task.job.id], description=f"{task.job.id}: {stage}")

    def finished(self, row) -> None:
        if self.quiet:
            return
        tid = self.running.pop(row.job.id, None)
        if tid is not None:
            self.progress.remove_task(tid)
        if self.overall is not None:
            self.progress.advance(self.overall)
        from rich.text import Text

        if row.status == "built":
            line = Text(f"✓ {row.job.id} built in {row.seconds or 0:.1f} s (peak {row.peak_rss_mb or 0:.0f} MB)", style="green")
        elif row.status == "restored":
            line = Text(f"✓ {row.job.id} restored from the cache", style="green")
        else:
            line = Text(f"✗ {row.job.id} {row.status}: {row.error}", style="red" if row.status == "failed" else "yellow")
        for w in row.warnings:
            line.append(f"\n  warning: {w}", style="yellow")
        self.progress.console.print(line)

    def measuring(self, row) -> None:
        if self.overall is not None:
            self.progress.update(self.overall, description=f"latency on this machine: {row.job.id}")

    def close(self) -> None:
        if self.overall is not None:
            self.progress.stop()


# ------------------------------------------------------------------------------ deploykit cache

cache_app = typer.Typer(help="The local bundle cache ($XDG_CACHE_HOME/deploykit/bundles): list, prune, clear.",
                        no_args_is_help=True, add_completion=False, rich_markup_mode=None)


@cache_app.command("ls")
@cli_errors
def cache_ls(json_out: bool = JsonOption, debug: bool = DebugOption) -> None:
    """List cached bundles (newest use last)."""
    import time

    from deploykit.buildsys.cache import BundleCache
    from deploykit.effect.report import human

    cache = BundleCache()
    entries = sorted(cache.entries(), key=lambda e: e.last_used)
    if json_out:
        print_json({"root": str(cache.bundles), "entries": [e.to_json() for e in entries],
                    "total_bytes": sum(e.size for e in entries)})
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{len(entries)} cached bundle(s) in {cache.bundles}", title_justify="left")
    for col in ("key", "model", "target", "precision", "size", "built s", "last used"):
        table.add_column(col, justify="right" if col in ("size", "built s") else "left")
    for e in entries:
        m = e.meta
        table.add_row(e.key[:12], Text(str(m.get("model", ""))), str(m.get("target", "")), str(m.get("precision", "")),
                      human(e.size, "B"), _cell(m.get("seconds"), "{:.1f}"),
                      time.strftime("%Y-%m-%d %H:%M", time.localtime(e.last_used)))
    out_console.print(table)
    out_console.print(f"total {human(sum(e.size for e in entries), 'B')}", markup=False)


@cache_app.command("prune")
@cli_errors
def cache_prune(
    older_than: Optional[str] = typer.Option("30d", "--older-than", help="Drop bundles not used for this long (30d, 12h, 90m)."),
    max_size: Optional[str] = typer.Option(None, "--max-size", help="Then drop the least recently used until the cache is at most this big (500M, 2G)."),
    json_out: bool = JsonOption,
    debug: bool = DebugOption,
) -> None:
    """Drop old bundles, and the least recently used ones beyond a size."""
    from deploykit.buildsys.cache import BundleCache, parse_age, parse_size

    cache = BundleCache()
    removed = cache.prune(max_age_days=parse_age(older_than) if older_than else None,
                          max_bytes=parse_size(max_size) if max_size else None)
    _report_removed(removed, cache, json_out)


@cache_app.command("clear")
@cli_errors
def cache_clear(json_out: bool = JsonOption, debug: bool = DebugOption) -> None:
    """Remove every cached bundle."""
    from deploykit.buildsys.cache import BundleCache

    cache = BundleCache()
    _report_removed(cache.clear(), cache, json_out)


def _report_removed(removed, cache, json_out: bool) -> None:
    from deploykit.effect.report import human

    freed = sum(e.size for e in removed)
    left = cache.entries()
    if json_out:
        print_json({"removed": [e.key for e in removed], "freed_bytes": freed, "left": len(left)})
        return
    out_console.print(f"removed {len(removed)} bundle(s), freed {human(freed, 'B')}; {len(left)} left", markup=False)
