"""deploykit.signals, deploykit.locks, deploykit.tempdir: stopping cleanly, owned folders, private
temporary folders and the removal of a dead process's leftovers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest
import typer

from deploykit import locks, signals
from deploykit.cli.common import report_exception
from deploykit.errors import DeployError
from deploykit.tempdir import PATTERN, private_tempdir

pytestmark = pytest.mark.unit


# --------------------------------------------------------------------------- signals
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_handled_turns_signals_into_interrupted(sig):
    before = signal.getsignal(sig)
    with pytest.raises(signals.Interrupted) as info:
        with signals.handled():
            os.kill(os.getpid(), sig)
            time.sleep(1)  # the handler raises here
    assert info.value.signum == sig and isinstance(info.value, KeyboardInterrupt)
    assert signal.getsignal(sig) == before  # restored


def test_deferred_records_and_raises_only_when_asked():
    with signals.handled():
        with signals.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)  # not cut short
        assert signals.received() == signal.SIGTERM  # recorded, not raised
    assert signals.received() is None  # the next command starts clean
    with pytest.raises(signals.Interrupted):
        with signals.handled():
            with signals.deferred(raise_after=True):
                os.kill(os.getpid(), signal.SIGHUP)
                time.sleep(0.2)


def test_a_signal_wins_over_the_error_a_library_made_of_it(capsys):
    """OpenVINO turns Ctrl-C into 'could not convert': once a signal arrived, it is 'interrupted'."""
    with signals.handled():
        with signals.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)
        with pytest.raises(typer.Exit) as info:
            report_exception(DeployError("OpenVINO could not convert the model: stopped"), debug=False)
    assert info.value.exit_code == 143
    assert capsys.readouterr().err == "error: interrupted (SIGTERM)\n"


def test_exit_on_signal_during_startup():
    code = "from deploykit.signals import exit_on_signal; import os, signal, time; exit_on_signal(); " \
           "os.kill(os.getpid(), signal.SIGTERM); time.sleep(5)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 143 and res.stderr == "error: interrupted (SIGTERM)\n"


# --------------------------------------------------------------------------- locks
def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_owner_alive_by_lock_and_pid(tmp_path):
    pattern = locks.pid_pattern(".x.", ".partial")
    dead = tmp_path / f".x.{_dead_pid()}.abcdefgh.partial"
    dead.mkdir()
    mine = tmp_path / f".x.{os.getpid()}.abcdefgh.partial"
    mine.mkdir()
    fd = locks.hold(mine)
    try:
        assert locks.stale_folders(tmp_path, pattern) == [dead]
        assert locks.remove_stale(tmp_path, pattern) == [dead] and not dead.exists() and mine.exists()
    finally:
        locks.release(fd)


def test_a_folder_locked_by_another_live_process_is_kept(tmp_path):
    folder = tmp_path / f".x.{_dead_pid()}.abcdefgh.partial"  # even with a dead pid in its name
    folder.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from deploykit import locks; "
                               f"fd = locks.hold({str(folder)!r}); print(fd is not None, flush=True); time.sleep(30)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "True"
        assert locks.stale_folders(tmp_path, locks.pid_pattern(".x.", ".partial")) == []
    finally:
        holder.kill()
        holder.wait()
    assert locks.stale_folders(tmp_path, locks.pid_pattern(".x.", ".partial")) == [folder]


def test_symlinks_and_files_are_never_stale(tmp_path):
    pattern = locks.pid_pattern(".x.", ".partial")
    (tmp_path / f".x.{_dead_pid()}.abcdefgh.partial").write_text("a file")
    target = tmp_path / "real"
    target.mkdir()
    os.symlink(target, tmp_path / f".x.{_dead_pid()}.abcdefgi.partial")
    assert locks.stale_folders(tmp_path, pattern) == []


# --------------------------------------------------------------------------- private temporary folder
def test_private_tempdir_is_used_and_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with private_tempdir() as path:
        assert path.parent == tmp_path and PATTERN.fullmatch(path.name)
        assert tempfile.gettempdir() == str(path) and os.environ["TMPDIR"] == str(path)
        with tempfile.NamedTemporaryFile(delete=False) as f:
            f.write(b"x")
    assert not path.exists() and tempfile.gettempdir() == str(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_private_tempdir_removes_a_dead_processes_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stale = tmp_path / f"deploykit-{_dead_pid()}-abcdefgh"
    (stale / "sub").mkdir(parents=True)
    other = tmp_path / "deploykit-ort-abcdefgh"  # not ours by name: kept
    other.mkdir()
    with private_tempdir():
        assert not stale.exists() and other.exists()


def test_private_tempdir_removed_on_interrupt(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        with private_tempdir():
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_private_tempdir_on_an_unusable_tmpdir(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    with private_tempdir() as path:
        assert path is None
