"""Shared CLI plumbing: one-line errors, rich progress, JSON output."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from deploykit.errors import DeployError

F = TypeVar("F", bound=Callable[..., Any])

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
out_console = Console(highlight=False, soft_wrap=True)

DebugOption = typer.Option(False, "--debug", help="Show full tracebacks on errors.")
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")


def fail(message: str, code: int = 2) -> None:
    sys.stderr.write(f"error: {one_line(message)}\n")
    raise typer.Exit(code)


def printable(text: object) -> str:
    """``text`` with control characters (a newline, or a terminal escape sequence hidden in a
    model's tensor name) shown escaped: whatever comes from a model or a path is printed as text."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def one_line(text: str, limit: int = 2000) -> str:
    """``text`` as one printable line: newlines become spaces, other control characters are shown
    escaped (:func:`printable`), very long text is cut."""
    text = printable(" ".join(str(text).split("\n")))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cli_errors(func: F) -> F:
    """Run a command in a :func:`command_session` and turn every exception into one ``error: ...``
    line and an exit code (tracebacks with --debug): a user's mistake or the machine's limits
    (disk full, memory, permissions; :func:`deploykit.errors.explain`) get a message saying what
    to do, an interrupt exits 128 + the signal, anything else is an ``internal error``."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = bool(kwargs.get("debug")) or os.environ.get("DEPLOYKIT_DEBUG") == "1"
        with command_session(debug):
            try:
                return func(*args, **kwargs)
            except (typer.Exit, SystemExit):
                raise
            except BaseException as e:  # noqa: BLE001 - never show a traceback without --debug
                report_exception(e, debug)

    return wrapper  # type: ignore[return-value]


def report_exception(e: BaseException, debug: bool) -> None:
    """Print the one ``error:`` line for ``e`` and exit (re-raise with ``debug``)."""
    import signal

    from deploykit import signals
    from deploykit.errors import explain

    signum = signals.received()
    if signum is not None or isinstance(e, KeyboardInterrupt):
        signum = signum or getattr(e, "signum", None) or signal.SIGINT
        fail(f"interrupted ({signals.signal_name(signum)})", signals.exit_code(signum))
    known = explain(e)
    if debug:
        raise e
    if known is not None:
        fail(str(known), known.exit_code)
    text = " ".join(str(e).split()) or type(e).__name__
    fail(f"internal error: {type(e).__name__}: {text[:500]} (run again with --debug for the traceback)", 1)


_session_depth = 0


@contextlib.contextmanager
def command_session(debug: bool) -> Iterator[None]:
    """What every command runs inside: SIGINT/SIGTERM/SIGHUP stop it cleanly
    (:mod:`deploykit.signals`), temporary files go to a private folder removed afterwards
    (:mod:`deploykit.tempdir`), and without --debug library warnings, log records and
    "exception ignored" reports stay off stderr (deploykit reports what matters itself)."""
    global _session_depth
    if _session_depth:
        yield
        return
    import logging
    import warnings

    from deploykit import signals
    from deploykit.tempdir import private_tempdir

    _session_depth += 1
    saved_hooks = (sys.unraisablehook, threading.excepthook)
    try:
        with signals.handled(), warnings.catch_warnings():
            if not debug:
                warnings.simplefilter("ignore")
                logging.disable(logging.CRITICAL)
                sys.unraisablehook = lambda unraisable: None
                threading.excepthook = lambda hook_args: None
            with private_tempdir():
                yield
    finally:
        _session_depth -= 1
        sys.unraisablehook, threading.excepthook = saved_hooks
        if not debug:
            logging.disable(logging.NOTSET)


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
            with err_console.status(f"[bold]{escape(printable(name))}[/]…", spinner="dots"):
                yield
        dt = time.perf_counter() - t0
        self.timings[name] = dt
        if not self.quiet:
            err_console.print(f"[green]✓[/] {escape(printable(name))} [dim]({dt:.2f} s)[/]")

    def log(self, message: str) -> None:
        if not self.quiet:
            err_console.print("  " + printable(message), markup=False, style="dim")

    def warn(self, message: str) -> None:
        err_console.print("warning: " + one_line(message), markup=False, style="yellow")
