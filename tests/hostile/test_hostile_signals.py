"""Signals at several stages of a build: SIGINT/SIGTERM/SIGHUP stop it with one line and leave
nothing behind; after SIGKILL the next build removes the dead build's leftovers, never those of a
build that is still running."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import hostile_models as hm
from hostile_harness import SIGNAL_NAMES, interrupted_code

STAGES = ["import", "canonicalize", "calibrate + quantize", "lower", "reference", "render runner", "verify"]


@pytest.fixture
def job(sb):
    model = hm.save(hm.conv_model(), sb.work / "m.onnx")
    calib = sb.work / "c.npy"
    np.save(calib, np.random.default_rng(0).standard_normal((16, 3, 8, 8)).astype(np.float32))
    out = sb.work / "out"
    return ["build", model, "--target", "host", "-p", "int8", "-c", calib, "-o", out], out


CASES = [(sig, stage) for stage in STAGES for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
         if stage in ("import", "lower", "verify") or sig == signal.SIGTERM]


@pytest.mark.parametrize("sig, stage", CASES, ids=[f"{SIGNAL_NAMES[s]}-{st.split()[0]}" for s, st in CASES])
def test_signal_stops_cleanly(sb, job, sig, stage):
    args, out = job
    proc, before = sb.start_paused(stage, *args)
    res = sb.finish(proc, before, args, sig=sig)
    line = sb.expect_error(res, "interrupted", code=interrupted_code(sig), out=out)
    assert SIGNAL_NAMES[sig] in line
    assert not out.exists()


def test_sigkill_leftovers_are_removed_by_the_next_build(sb, job):
    args, out = job
    proc, before = sb.start_paused("lower", *args)
    sb.finish(proc, before, args, sig=signal.SIGKILL)
    left = sb.leftovers(out)
    assert any(x.startswith("TMPDIR") for x in left) and any(x.startswith("beside output") for x in left), left
    stale = [p.relative_to(sb.root).as_posix() for p in [*sb.tmp.iterdir(), *sb.work.glob(".*.partial")]]
    other = sb.work / "other"
    res = sb.run(*[other if a == out else a for a in args])
    sb.expect_ok(res, other, allowed=tuple(stale))
    assert not sb.leftovers(out)


def test_running_builds_leftovers_are_kept(sb, job):
    """A build paused in 'lower' owns a staging folder and a temporary folder: a second build in
    the same folders must not touch them, and the first one still finishes."""
    args, out = job
    proc, before = sb.start_paused("lower", *args)
    try:
        owned = set(sb.leftovers(out))
        assert owned
        other = sb.work / "other"
        res = sb.run(*[other if a == out else a for a in args])
        assert res.returncode == 0, res
        assert owned <= set(sb.leftovers(out)), "a running build's folders were removed"
    finally:
        res = sb.finish(proc, before, args, sig=signal.SIGTERM)
    sb.expect_error(res, "interrupted", code=interrupted_code(signal.SIGTERM), out=out,
                    allowed=("work/other",))
    assert not sb.leftovers(out)


def _console_script() -> Path:
    return Path(sys.executable).with_name("deploykit")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("entry", ["module", "console-script"])
def test_signal_during_startup_imports(sb, sig, entry):
    """The first seconds are imports: an interrupt there exits at once with one line."""
    model = hm.save(hm.conv_model(), sb.work / "m.onnx")
    if entry == "console-script":
        if not _console_script().exists():
            pytest.skip("the deploykit console script is not installed in this environment")
        cmd = [str(_console_script())]
    else:
        cmd = [sys.executable, "-m", "deploykit.cli.app"]
    proc = subprocess.Popen([*cmd, "build", str(model), "--target", "host", "-o", str(sb.work / "out")],
                            cwd=sb.work, env=sb.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.6)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert "Traceback" not in err, err
    if proc.returncode == 0:  # the machine was fast enough to finish first: nothing to check
        return
    assert proc.returncode == interrupted_code(sig), err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines[-1].startswith("error: interrupted"), err
    assert not sb.leftovers(sb.work / "out") and not (sb.work / "out").exists()
