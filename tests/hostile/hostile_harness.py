"""The hostile-input harness: run ``deploykit`` in a sandbox and check the promises every command
makes, whatever it is fed.

A :class:`Sandbox` is a folder with ``work/`` (the working folder, inputs live here), ``tmp/``
(``TMPDIR``) and ``home/`` (``HOME``). Every run snapshots the whole sandbox before and after, so
a case can assert that nothing was written outside the folders it allows.

Promises checked by :meth:`Sandbox.expect_error`: exit code != 0 (and the expected one), exactly
one ``error: ...`` line on stderr and it is the last line, no traceback, no ``internal error``,
nothing left in ``TMPDIR`` or beside the output (``.*.partial``), nothing written anywhere.
:meth:`Sandbox.expect_ok` checks exit code 0, no traceback, ``TMPDIR`` empty, writes only inside
the output, and that ``deploykit verify`` accepts the bundle.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ALL_PLUGINS = "profiles,onnxruntime,tflite,edgetpu,tensorrt,openvino"
PAUSE_SCRIPT = Path(__file__).with_name("pause_at.py")


@dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    written: list[str] = field(default_factory=list)  # sandbox paths created, changed or removed

    def __str__(self) -> str:
        cut = lambda text, n: text if len(text) <= n else text[:n // 2] + "\n[...]\n" + text[-n // 2:]  # noqa: E731
        return (f"deploykit {cut(' '.join(self.args), 400)}\nexit {self.returncode}\n--- stderr\n{cut(self.stderr, 3000)}\n"
                f"--- stdout\n{cut(self.stdout, 1500)}\n--- written: {[cut(w, 120) for w in self.written[:12]]}")


class _ForkServer:
    """Client of fork_server.py (one per test process)."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("fork_server.py"))],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=dict(os.environ))

    def run(self, argv, cwd, env, scratch: Path, timeout: int) -> tuple[int, str, str]:
        import select

        outs = scratch.parent / f".fs-{os.getpid()}-{time.monotonic_ns()}"
        req = {"argv": argv, "cwd": str(cwd), "env": env, "stdout": f"{outs}.out", "stderr": f"{outs}.err"}
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        pid = json.loads(self.proc.stdout.readline())["pid"]
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            os.kill(pid, signal.SIGKILL)
        status = json.loads(self.proc.stdout.readline())["status"]
        try:
            return (status, Path(f"{outs}.out").read_text(errors="replace"), Path(f"{outs}.err").read_text(errors="replace"))
        finally:
            for suffix in (".out", ".err"):
                Path(f"{outs}{suffix}").unlink(missing_ok=True)


_SERVER: _ForkServer | None = None


def _server() -> _ForkServer:
    global _SERVER
    if _SERVER is None or _SERVER.proc.poll() is not None:
        _SERVER = _ForkServer()
    return _SERVER


def _snapshot(root: Path) -> dict[str, tuple]:
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            try:
                st = p.lstat()
            except OSError:
                continue
            rel = p.relative_to(root).as_posix()
            found[rel] = (st.st_mode, st.st_size, st.st_mtime_ns) if not os.path.isdir(p) or p.is_symlink() else (st.st_mode,)
    return found


class Sandbox:
    def __init__(self, root: Path):
        self.root = root
        self.work = root / "work"
        self.tmp = root / "tmp"
        self.home = root / "home"
        for p in (self.work, self.tmp, self.home):
            p.mkdir(parents=True, exist_ok=True)

    # -- running ---------------------------------------------------------------------------
    def env(self, extra: dict | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"TMPDIR": str(self.tmp), "HOME": str(self.home), "DEPLOYKIT_PLUGINS": ALL_PLUGINS,
                    "PYTHONDONTWRITEBYTECODE": "1", "COLUMNS": "200"})
        env.pop("DEPLOYKIT_DEBUG", None)
        env.update(extra or {})
        return env

    def command(self, *args) -> list[str]:
        return [sys.executable, "-m", "deploykit.cli.app", *map(str, args)]

    def run(self, *args, env: dict | None = None, cwd: Path | None = None, timeout: int = 600,
            fresh: bool = False) -> Result:
        """Run ``deploykit ARGS``: in a child forked from the preloaded server (fork_server.py), or
        with ``fresh`` in a new interpreter (start-up included)."""
        before = _snapshot(self.root)
        if fresh:
            proc = subprocess.run(self.command(*args), capture_output=True, text=True, errors="replace",
                                  cwd=cwd or self.work, env=self.env(env), timeout=timeout, stdin=subprocess.DEVNULL)
            return self._result(list(map(str, args)), proc.returncode, proc.stdout, proc.stderr, before)
        code, out, err = _server().run([str(a) for a in args], cwd or self.work, self.env(env), self.root, timeout)
        return self._result(list(map(str, args)), code, out, err, before)

    def _result(self, args, code, stdout, stderr, before) -> Result:
        after = _snapshot(self.root)
        written = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        return Result(args, code, stdout, stderr, written)

    def start_paused(self, stage: str, *args, env: dict | None = None) -> tuple[subprocess.Popen, dict]:
        """Start ``deploykit ARGS`` that stops inside the build stage whose name starts with
        ``stage`` (see pause_at.py); returns once it is there."""
        before = _snapshot(self.root)
        ready = self.root / f"paused-{time.monotonic_ns()}"
        proc = subprocess.Popen([sys.executable, str(PAUSE_SCRIPT), stage, str(ready), *map(str, args)],
                                cwd=self.work, env=self.env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, errors="replace", stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while not ready.exists():
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise AssertionError(f"ended before stage {stage!r} (exit {proc.returncode}):\n{err}")
            if time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"never reached stage {stage!r}")
            time.sleep(0.05)
        ready.unlink()
        before.pop(ready.relative_to(self.root).as_posix(), None)
        return proc, before

    def finish(self, proc: subprocess.Popen, before: dict, args=(), sig: int | None = None, timeout: int = 300) -> Result:
        if sig is not None:
            proc.send_signal(sig)
        out, err = proc.communicate(timeout=timeout)
        return self._result(list(map(str, args)), proc.returncode, out, err, before)

    # -- promises --------------------------------------------------------------------------
    def leftovers(self, out: Path | None = None) -> list[str]:
        """Files in TMPDIR, and staging folders beside ``out``."""
        left = [f"TMPDIR: {p.name}" for p in self.tmp.iterdir()]
        if out is not None and out.absolute().parent.is_dir():
            left += [f"beside output: {p.name}" for p in out.absolute().parent.iterdir()
                     if p.name.endswith((".partial", ".old")) or ".old-" in p.name]
        return left

    def expect_error(self, res: Result, match: str | tuple[str, ...] | None = None, code: int | None = None,
                     out: Path | None = None, allowed: tuple[str, ...] = ()) -> str:
        """The one-line error promise; returns the error line."""
        assert res.returncode != 0, res
        if code is not None:
            assert res.returncode == code, res
        text = res.stderr + res.stdout
        assert "Traceback" not in text, res
        assert not _library_noise(res.stderr), res
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("error:")]
        assert len(errors) == 1 and lines[-1] == errors[0], res
        line = errors[0]
        assert "internal error" not in line, res
        for m in (match,) if isinstance(match, str) else (match or ()):
            assert m.lower() in line.lower(), res
        assert not self.leftovers(out), f"leftovers: {self.leftovers(out)}\n{res}"
        stray = [w for w in res.written if not any(w == a or w.startswith(a + "/") for a in allowed)]
        assert not stray, f"written outside the allowed folders: {stray[:5]}\n{res}"
        return line

    def expect_ok(self, res: Result, out: Path, verify: bool = True, allowed: tuple[str, ...] = ()) -> dict:
        """Success promise; returns the bundle's manifest."""
        assert res.returncode == 0, res
        assert "Traceback" not in res.stderr + res.stdout, res
        assert "error:" not in res.stderr, res
        assert not _library_noise(res.stderr), res
        assert not self.leftovers(out), f"leftovers: {self.leftovers(out)}\n{res}"
        inside = out.absolute().relative_to(self.root).as_posix()
        ok = (inside, *allowed)
        parents = {"/".join(inside.split("/")[:i]) for i in range(1, inside.count("/") + 1)}
        stray = [w for w in res.written if w not in parents and not any(w == a or w.startswith(a + "/") for a in ok)]
        assert not stray, f"written outside the allowed folders: {stray[:5]}\n{res}"
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        if verify:
            v = self.run("verify", out)
            if manifest["verification"]["status"] == "passed":
                assert v.returncode == 0, v
            else:  # a build whose verification failed: verify says so in one line
                self.expect_error(v, "verification failed")
            assert not self.leftovers(out)
        return manifest


def _library_noise(stderr: str) -> list[str]:
    """Python warnings and runtime log lines that leaked to the user's terminal."""
    marks = ("RuntimeWarning", "UserWarning", "DeprecationWarning", "FutureWarning", "[E:onnxruntime", "[W:onnxruntime",
             "Exception ignored")
    return [ln for ln in stderr.splitlines() if any(m in ln for m in marks)]


def interrupted_code(sig: int) -> int:
    return 128 + int(sig)


SIGNAL_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}
