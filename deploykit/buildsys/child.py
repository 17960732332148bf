"""One build in its own process: a native crash of a backend kills that build, never the matrix.

A *build server* (``python -m deploykit.buildsys.child``, started once per run) imports the
pipeline, then forks one child per job, so a build does not pay the interpreter and import start-up
again (about 1.5 s of a small model's 2 s). A child calls the same :func:`deploykit.pipeline.build`
as ``deploykit build MODEL``, writes everything it prints to the job's log file, reports its stages
as JSON lines and leaves its result in a JSON file. The server reaps children with ``wait4``, so
the peak memory of every build (``ru_maxrss``) is known even when it crashed.

Protocol (JSON lines): parent -> server ``{"op": "build"|"measure"|"kill", "id", "spec"}``;
server -> parent ``{"id", "event": "stage", "stage"}`` and ``{"id", "event": "exit", "code",
"signal", "peak_rss_mb"}``. The server runs in its own session (Ctrl-C reaches only the parent,
which stops it) and ends its children and itself when its stdin closes.

A job *spec* is a plain JSON-able dict (it also travels to Ray workers)::

    {"id", "model", "target", "precision", "output", "log", "result", "input_shapes", "calibration",
     "calibration_samples", "calibration_method", "accuracy_budget", "io", "compress",
     "images", "eval_data", "metric"}
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PRELOAD = ("deploykit.pipeline", "deploykit.quant.engine", "deploykit.plugins", "onnxruntime", "numpy")
LOG_TAIL_LINES = 20


def eval_supported() -> bool:
    """Whether this deploykit's single-model build takes task metrics (eval data + metric)."""
    import dataclasses

    from deploykit.pipeline import BuildRequest

    names = {f.name for f in dataclasses.fields(BuildRequest)}
    return {"eval_data", "metric"} <= names


def build_request(spec: dict[str, Any]):
    """The :class:`~deploykit.pipeline.BuildRequest` of a job spec (what ``deploykit build`` makes of its options)."""
    from deploykit.errors import DeployError
    from deploykit.pipeline import BuildRequest

    images = None
    if spec.get("images"):
        from deploykit.quant.images import ImagePreprocess

        im = spec["images"]
        images = ImagePreprocess(mean=tuple(im["mean"]), std=tuple(im["std"]), scale=im["scale"], bgr=im["bgr"], layout=im["layout"])
    kwargs: dict[str, Any] = {}
    if spec.get("eval_data"):
        if not eval_supported():
            raise DeployError("eval (task metrics: eval data and metric) is not supported by this deploykit version's "
                              "single-model build; remove the eval field from the project file")
        kwargs = {"eval_data": spec["eval_data"], "metric": spec.get("metric")}
    return BuildRequest(
        model=Path(spec["model"]), target=spec["target"], output=Path(spec["output"]), precision=spec["precision"],
        input_shapes=list(spec.get("input_shapes") or []), calibration=spec.get("calibration"), force=True,
        io=spec.get("io") or "float", calibration_samples=spec.get("calibration_samples"),
        calibration_method=spec.get("calibration_method") or "auto", accuracy_budget=spec.get("accuracy_budget"),
        images=images, compress=spec.get("compress"), **kwargs)



def failure(e: BaseException) -> dict[str, Any]:
    """The result of a build that raised: the one-line message of a :class:`DeployError`, else an
    internal error (its traceback goes to the job's log)."""
    from deploykit.errors import DeployError

    if isinstance(e, DeployError):
        return {"status": "failed", "error": " ".join(str(e).split()), "exit_code": e.exit_code}
    import traceback

    traceback.print_exc()
    text = " ".join(str(e).split()) or type(e).__name__
    return {"status": "failed", "error": f"internal error: {type(e).__name__}: {text[:400]}", "exit_code": 1}


def run_build(spec: dict[str, Any], on_stage=None) -> dict[str, Any]:
    """Build one job in *this* process; raises what the pipeline raises."""
    import contextlib

    from deploykit.pipeline import Reporter, build

    warnings: list[str] = []
    timings: dict[str, float] = {}

    class StageReporter(Reporter):
        @contextlib.contextmanager
        def stage(self, name: str):
            if on_stage:
                on_stage(name)
            print(f"== {name}", file=sys.stderr, flush=True)
            t = time.perf_counter()
            yield
            timings[name] = round(time.perf_counter() - t, 3)

        def log(self, message: str) -> None:
            print(f"   {message}", file=sys.stderr, flush=True)

        def warn(self, message: str) -> None:
            warnings.append(message)
            print(f"warning: {message}", file=sys.stderr, flush=True)

    result = build(build_request(spec), reporter=StageReporter())
    return {"status": "built", "out_dir": str(result.out_dir), "warnings": warnings, "timings": timings}


def measure_bundle(bundle: Path, runs: int = 20) -> dict[str, Any]:
    """p50/p90 latency (1 thread) of a bundle's runner on its stored samples, with sizes."""
    from deploykit.bundle.files import read_npz
    from deploykit.bundle.manifest import read_manifest
    from deploykit.effect import Variant, measure_variants

    manifest = read_manifest(bundle)
    inputs = read_npz(bundle / manifest["samples"]["inputs"])
    expected = read_npz(bundle / manifest["samples"]["expected"])
    n = len(inputs["in_0"]) if "in_0" in inputs else 0
    feeds = [{s["name"]: inputs[f"in_{i}"][j] for i, s in enumerate(manifest["inputs"])} for j in range(n)]
    refs = [{s["name"]: expected[f"out_{i}"][j] for i, s in enumerate(manifest["outputs"])} for j in range(n)]
    row = measure_variants([Variant(bundle.name, bundle_dir=bundle)], feeds, runs=runs, threads=1, reference_outputs=refs)[0]
    keys = ("size_raw", "size_zip", "params", "macs", "latency_ms_p50", "latency_ms_p90", "latency_runs", "runtime", "error")
    return {k: row.get(k) for k in keys if row.get(k) is not None}


# ------------------------------------------------------------------------------ the server (child side)


def _write_json_atomic(path: str, data: dict[str, Any]) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, default=str)
    os.replace(tmp, path)


def _emit(fd: int, message: dict[str, Any]) -> None:
    """One JSON line on the event pipe (short lines: a single write is atomic below PIPE_BUF)."""
    line = (json.dumps(message, default=str)[:3800] + "\n").encode()
    os.write(fd, line)


def _die_with_parent() -> None:
    try:  # Linux: SIGKILL this child when the server goes away
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort; the server also kills its children on exit
        pass


def _child(request: dict[str, Any], event_fd: int) -> None:
    """In the forked child: run the job, leave its result file, exit."""
    spec = request["spec"]
    log = spec.get("log") or os.devnull
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    job_id = request["id"]
    t0 = time.perf_counter()
    try:
        if request["op"] == "measure":
            result = {"status": "measured", "row": measure_bundle(Path(spec["bundle"]), int(spec.get("runs", 20)))}
        else:
            result = run_build(spec, lambda stage: _emit(event_fd, {"id": job_id, "event": "stage", "stage": stage}))
    except BaseException as e:  # noqa: BLE001 - every failure becomes a result
        result = failure(e)
    result["seconds"] = round(time.perf_counter() - t0, 3)
    sys.stdout.flush()
    sys.stderr.flush()
    _write_json_atomic(spec["result"], result)


def serve() -> None:
    """The build server's main loop (``python -m deploykit.buildsys.child``)."""
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a preload is an optimisation; the child imports what it needs
            pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    event_fd = os.dup(1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # stray prints never corrupt the event stream
    children: dict[int, str] = {}
    _emit(event_fd, {"event": "ready", "pid": os.getpid()})
    stdin = sys.stdin.buffer
    buffer = b""
    open_ = True
    while open_ or children:
        if open_:
            ready, _, _ = select.select([stdin], [], [], 0.05)
            if ready:
                chunk = os.read(stdin.fileno(), 65536)
                if not chunk:
                    open_ = False
                    for pid in children:  # the parent is gone or done: stop what still runs
                        _kill(pid)
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    _handle(json.loads(line), children, event_fd)
        else:
            time.sleep(0.02)
        _reap(children, event_fd)


def _handle(request: dict[str, Any], children: dict[int, str], event_fd: int) -> None:
    if request["op"] == "kill":
        for pid, job_id in children.items():
            if job_id == request["id"]:
                _kill(pid)
        return
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            _die_with_parent()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            _child(request, event_fd)
        except BaseException:  # noqa: BLE001
            code = 70
        finally:
            os._exit(code)
    children[pid] = request["id"]


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _reap(children: dict[int, str], event_fd: int) -> None:
    while children:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            children.clear()
            return
        if pid == 0:
            return
        job_id = children.pop(pid, None)
        if job_id is None:
            continue
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
        _emit(event_fd, {"id": job_id, "event": "exit", "code": code, "signal": sig,
                         "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)})


# ------------------------------------------------------------------------------ the parent's handle


class BuildServer:
    """Parent side: start the server, submit jobs, read events, collect results."""

    def __init__(self, log: Path | None = None):
        env = dict(os.environ)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "deploykit.buildsys.child"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=open(log, "ab") if log else subprocess.DEVNULL, env=env, start_new_session=True)
        self._buffer = b""
        self.specs: dict[str, dict[str, Any]] = {}
        self.started: dict[str, float] = {}
        ready = self._read(timeout=120.0)
        if not any(e.get("event") == "ready" for e in ready):
            self.close()
            raise RuntimeError("the build server did not start (see its log)")

    def submit(self, job_id: str, spec: dict[str, Any], op: str = "build") -> None:
        self.specs[job_id] = spec
        self.started[job_id] = time.perf_counter()
        self._send({"op": op, "id": job_id, "spec": spec})

    def kill(self, job_id: str) -> None:
        self._send({"op": "kill", "id": job_id})

    def _send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(message, default=str) + "\n").encode())
        self.process.stdin.flush()

    def _read(self, timeout: float) -> list[dict[str, Any]]:
        out = self.process.stdout
        assert out is not None
        ready, _, _ = select.select([out], [], [], timeout)
        if not ready:
            return []
        chunk = os.read(out.fileno(), 65536)
        if not chunk:
            if self.process.poll() is not None:
                raise RuntimeError(f"the build server exited (code {self.process.returncode})")
            return []
        self._buffer += chunk
        events = []
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            events.append(json.loads(line))
        return events

    def events(self, timeout: float = 0.1) -> list[dict[str, Any]]:
        """Events since the last call; an ``exit`` event carries the job's ``result``."""
        events = self._read(timeout)
        for e in events:
            if e.get("event") == "exit":
                e["result"] = self._result(e)
        return events

    def _result(self, exit_event: dict[str, Any]) -> dict[str, Any]:
        job_id = exit_event["id"]
        spec = self.specs.pop(job_id, {})
        seconds = round(time.perf_counter() - self.started.pop(job_id, time.perf_counter()), 3)
        try:
            result = json.loads(Path(spec["result"]).read_text(encoding="utf-8"))
            Path(spec["result"]).unlink()
        except (OSError, KeyError, ValueError):
            result = {"status": "failed", "exit_code": 1, "crashed": True, "seconds": seconds,
                      "error": _crash_reason(exit_event)}
        result["peak_rss_mb"] = exit_event.get("peak_rss_mb")
        return result

    def close(self) -> None:
        """Stop the server and any child still running."""
        if self.process.poll() is None:
            try:
                if self.process.stdin:
                    self.process.stdin.close()
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()

    def __enter__(self) -> BuildServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _crash_reason(exit_event: dict[str, Any]) -> str:
    sig = exit_event.get("signal")
    if sig:
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        hint = " (out of memory? lower -j)" if sig == signal.SIGKILL else ""
        return f"the build process died of {name}{hint}"
    return f"the build process exited with code {exit_event.get('code')} without a result"


def run_one(server: BuildServer, job_id: str, spec: dict[str, Any], op: str = "build", on_event=None) -> dict[str, Any]:
    """Submit one job and wait for its result (the Ray task and the latency pass use this)."""
    server.submit(job_id, spec, op)
    while True:
        for e in server.events(0.2):
            if on_event is not None:
                on_event(e)
            if e.get("event") == "exit" and e.get("id") == job_id:
                return e["result"]


def log_tail(log: str | None, lines: int = LOG_TAIL_LINES) -> str:
    if not log:
        return ""
    try:
        text = Path(log).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


if __name__ == "__main__":
    serve()
