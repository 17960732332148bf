"""Shared CLI plumbing: one-line errors, rich progress, JSON output."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import typer
from rich.console import Console

from deploykit.errors import DeployError

F = TypeVar("F", bound=Callable[..., Any])

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
out_console = Console(highlight=False, soft_wrap=True)

DebugOption = typer.Option(False, "--debug", help="Show full tracebacks on errors.")
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")


def fail(message: str, code: int = 2) -> None:
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(code)


def cli_errors(func: F) -> F:
    """Turn exceptions into one ``error: ...`` line and an exit code (tracebacks with --debug)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = kwargs.get("debug") or os.environ.get("DEPLOYKIT_DEBUG") == "1"
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except DeployError as e:
            if debug:
                raise
            fail(" ".join(str(e).split("\n")), e.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except Exception as e:  # noqa: BLE001 - never show a traceback without --debug
            if debug:
                raise
            text = " ".join(str(e).split()) or type(e).__name__
            fail(f"internal error: {type(e).__name__}: {text[:500]} (run again with --debug for the traceback)", 1)

    return wrapper  # type: ignore[return-value]


def human_count(n: float) -> str:
    """``1234567`` -> ``1.23M`` (K, M, G, T, P; three significant digits)."""
    for unit in ("", "K", "M", "G", "T"):
        if abs(n) < 1000:
            return f"{n:.3g}{unit}"
        n /= 1000
    return f"{n:.3g}P"


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


class RichReporter:
    """Prints each build stage with its duration on stderr (the interface of
    :class:`deploykit.pipeline.Reporter`, not imported here: it pulls in the graph stack)."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.timings: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        if self.quiet:
            yield
        else:
            with err_console.status(f"[bold]{name}[/]…", spinner="dots"):
                yield
        dt = time.perf_counter() - t0
        self.timings[name] = dt
        if not self.quiet:
            err_console.print(f"[green]✓[/] {name} [dim]({dt:.2f} s)[/]")

    def log(self, message: str) -> None:
        if not self.quiet:
            err_console.print("  " + message, markup=False, style="dim")

    def warn(self, message: str) -> None:
        err_console.print("warning: " + message, markup=False, style="yellow")
