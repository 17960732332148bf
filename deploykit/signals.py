"""Stopping a command: SIGINT (Ctrl-C), SIGTERM and SIGHUP all stop it the same way.

While a command runs (:func:`handled`), each of the three signals raises :class:`Interrupted` in
the main thread, so every ``with`` block unwinds: the staging folder and temporary files are
removed and the CLI prints ``error: interrupted (SIGTERM)``. Sections that must not be cut in two
(renaming a finished bundle into place, removing a staging folder) run under :func:`deferred`:
a signal there is recorded, and raised afterwards only if the section asks for it. Once a signal arrived, the command is reported
as interrupted whatever exception it ends with (a library may wrap the interrupt in its own error).

Before the heavy imports of the CLI, :func:`exit_on_signal` makes the same signals end the
process at once with one line and no traceback: there is nothing to clean up yet.

This module imports nothing heavy: it runs first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

SIGNALS = tuple(s for s in (getattr(signal, n, None) for n in ("SIGINT", "SIGTERM", "SIGHUP")) if s is not None)


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread when SIGINT, SIGTERM or SIGHUP arrives during a command."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal_name(signum))


class _State:
    received: int | None = None  # the first signal of this command
    deferring: int = 0  # > 0 inside deferred()
    raised: bool = False  # Interrupted was raised for `received`


_state = _State()


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def exit_code(signum: int) -> int:
    """The shell convention: 128 + signal number (130 for Ctrl-C, 143 for SIGTERM)."""
    return 128 + int(signum)


def received() -> int | None:
    """The first signal received while the current command ran (``None``: none)."""
    return _state.received


def _raise_handler(signum, frame) -> None:
    if _state.received is None:
        _state.received = signum
    if _state.deferring:
        return  # recorded; the deferred section acts on it when it ends
    _state.raised = True
    raise Interrupted(signum)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Install the raising handlers for one command; restore the previous ones afterwards."""
    if not _in_main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    _state.received, _state.deferring, _state.raised = None, 0, False
    for s in SIGNALS:
        signal.signal(s, _raise_handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        _state.received, _state.deferring, _state.raised = None, 0, False


@contextlib.contextmanager
def deferred(raise_after: bool = False) -> Iterator[None]:
    """Run the block without being cut by a signal. A signal that arrived meanwhile is raised
    when the block ends with ``raise_after`` (and the block itself did not raise); otherwise it is
    only recorded: a finished bundle renamed into place stays a finished build."""
    _state.deferring += 1
    try:
        yield
    finally:
        _state.deferring -= 1
    if raise_after and not _state.deferring and _state.received is not None and not _state.raised:
        _state.raised = True
        raise Interrupted(_state.received)


def _exit_now(signum, frame) -> None:
    os.write(2, f"error: interrupted ({signal_name(signum)})\n".encode())
    os._exit(exit_code(signum))


def exit_on_signal() -> None:
    """During start-up (imports): the signals end the process at once, with one line."""
    if _in_main_thread():
        for s in SIGNALS:
            signal.signal(s, _exit_now)
