"""Processes, hashes, machine facts and the two tools deploykit is compared with.

* :func:`run_process` runs one build / quantization / evaluation in its own process group with a
  time-out and a memory cap (a crash, a signal or a kill is a recorded result, never the end of the
  run); its log goes to a file.
* :func:`fingerprint` hashes source trees and files: the keys of the build cache.
* :func:`onnx2tf_venv` / :func:`onnx2tf_command`: onnx2tf 2.6.9 (Python >= 3.12, TensorFlow) in its
  own venv under ``~/.cache/deploykit/venvs/onnx2tf-2.6.9``, created on first use with pyenv's 3.12
  (never in the project's venv); int8 through ``-tb tf_converter -oiqt``.
"""

from __future__ import annotations

import glob
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ONNX2TF = "2.6.9"
VENVS = Path(os.environ.get("DEPLOYKIT_VENVS") or Path.home() / ".cache" / "deploykit" / "venvs")


# ------------------------------------------------------------------ processes
def run_process(cmd: list[str], log: Path, timeout: float, mem_limit_mb: float, env: dict | None = None,
                cwd: Path | None = None) -> dict:
    """Run ``cmd`` (stdout+stderr to ``log``); rc, wall time, peak RSS, and why it was killed."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from hostinfo import proc_status_mb

    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    killed = None
    hwm = 0.0
    with open(log, "wb") as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=cwd or ROOT, start_new_session=True)
        n = 0
        while True:
            pid, status, _ = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            hwm = max(hwm, proc_status_mb(p.pid, "VmHWM"))
            n += 1
            if mem_limit_mb and n % 5 == 0 and proc_status_mb(p.pid, "VmRSS") > mem_limit_mb:
                killed = f"killed: RSS above the benchmark's memory cap ({mem_limit_mb / 1024:.1f} GB)"
            elif time.perf_counter() - t0 > timeout:
                killed = f"killed: timed out after {timeout:.0f} s"
            if killed:
                os.killpg(p.pid, 9)
                _, status, _ = os.wait4(p.pid, 0)
                break
            time.sleep(0.05 if n < 100 else 0.5)
    rc = os.waitstatus_to_exitcode(status)
    return {"rc": rc, "wall_s": round(time.perf_counter() - t0, 1), "peak_rss_mb": round(hwm),
            "killed": killed, "log": str(log)}


def failure_line(res: dict) -> str:
    """One line saying why a process failed: the kill reason, the ``error:`` line, or the last line."""
    if res.get("killed"):
        return res["killed"]
    text = Path(res["log"]).read_text(errors="replace") if Path(res["log"]).exists() else ""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    exc = [i for i, ln in enumerate(lines) if re.match(r"^[\w.]*(Error|Exception)\b.*:", ln)]
    rc = res["rc"]
    if rc < 0 or rc > 128:  # killed by a signal (Python reports 128 + n through a shell)
        import signal as _signal

        num = -rc if rc < 0 else rc - 128
        try:
            name = _signal.Signals(num).name
        except ValueError:
            name = str(num)
        last = (errors or lines or ["no output"])[-1]
        return f"crashed: signal {num} ({name}) after: {last}"[:400]
    sig = ""
    if errors:
        line = errors[-1]
    elif exc:  # the exception and the line that explains it (TensorFlow puts the reason there)
        i = exc[-1]
        line = lines[i] + (" " + lines[i + 1] if i + 1 < len(lines) and not lines[i + 1].startswith(("Call arguments", "File ")) else "")
    else:
        line = (lines or [f"exit code {rc}"])[-1]
    return (line + sig)[:400]


# ------------------------------------------------------------------ hashes
def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def fingerprint(*paths: Path, extra: str = "") -> str:
    """sha256 over the files under ``paths`` (sources; caches and bytecode skipped) and ``extra``."""
    h = hashlib.sha256(extra.encode())
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for p in files:
            if "__pycache__" in p.parts or p.suffix in (".pyc", ".pyo") or ".egg-info" in str(p):
                continue
            h.update(str(p.relative_to(ROOT) if p.is_relative_to(ROOT) else p.name).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def deploykit_fingerprint() -> str:
    """What a deploykit bundle depends on besides its inputs: the engine, the plugins, the profiles."""
    return fingerprint(ROOT / "deploykit", ROOT / "plugins", ROOT / "targets")


# ------------------------------------------------------------------ machine
def cpu_class_label() -> str:
    try:  # the benchmark helper, once it exists
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from hostinfo import cpu_class_label as label  # type: ignore[attr-defined]

        return label()
    except Exception:  # noqa: BLE001 - older trees: derive it here
        pass
    try:
        from deploykit.cpu import cpu_class

        label = cpu_class().label
    except Exception:  # noqa: BLE001
        label = platform.machine()
    try:
        flags = sorted(set(re.findall(r"\b(avx512_vnni|avx_vnni|avx2)\b", Path("/proc/cpuinfo").read_text())))
    except OSError:
        flags = []
    return f"{label}; flags: {', '.join(flags) or 'none of avx2/avx_vnni/avx512_vnni'}"


def machine_info() -> dict:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from hostinfo import cpu_model, memory_gb

    vers = {}
    for mod in ("onnxruntime", "onnx", "numpy", "openvino", "ai_edge_litert", "PIL"):
        try:
            m = __import__(mod)
            vers[mod] = getattr(m, "__version__", None) or getattr(getattr(m, "runtime", None), "get_version", lambda: None)()
        except Exception:  # noqa: BLE001
            vers[mod] = None
    try:
        from importlib.metadata import version

        vers["ai_edge_litert"] = version("ai-edge-litert")
        vers["openvino"] = version("openvino")
    except Exception:  # noqa: BLE001
        pass
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "deploykit", "plugins", "targets"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu_model(), "cpu_class": cpu_class_label(), "logical_cores": os.cpu_count(),
            "memory_gb": memory_gb(), "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "versions": vers, "git_commit": commit + (" (engine files modified)" if dirty else ""),
            "deploykit_fingerprint": deploykit_fingerprint()[:16],
            "load_avg_at_start": [round(v, 2) for v in os.getloadavg()]}


# ------------------------------------------------------------------ onnx2tf
def _python312() -> str | None:
    for cand in sorted(glob.glob(str(Path.home() / ".pyenv" / "versions" / "3.1[2-9]*" / "bin" / "python3"))):
        return cand
    return shutil.which("python3.12") or shutil.which("python3.13")


def onnx2tf_venv(log: Path) -> tuple[Path | None, str | None]:
    """(venv, None) with onnx2tf 2.6.9 and TensorFlow installed, or (None, why not)."""
    venv = VENVS / f"onnx2tf-{ONNX2TF}"
    py = venv / "bin" / "python"
    check = [str(py), "-c", "import onnx2tf, tensorflow, ai_edge_litert"]
    if py.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return venv, None
    base = _python312()
    if base is None:
        return None, "onnx2tf 2.x needs Python >= 3.12 and none was found (pyenv install 3.12)"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as f:
        subprocess.run([base, "-m", "venv", str(venv)], stdout=f, stderr=subprocess.STDOUT)
        # the [tensorflow] extra pins tensorflow, tf-keras and keras: -tb tf_converter needs them
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        f"onnx2tf[tensorflow]=={ONNX2TF}"], stdout=f, stderr=subprocess.STDOUT)
    if subprocess.run(check, capture_output=True).returncode != 0:
        return None, f"could not install onnx2tf[tensorflow]=={ONNX2TF} into {venv.name} (see {log.name})"
    return venv, None


def _neutral(rank: int, value: float) -> str:
    """A mean/std literal that broadcasts over a calibration array of ``rank`` dims (batch included)."""
    return "[" * max(rank - 1, 1) + repr(value) + "]" * max(rank - 1, 1)


def onnx2tf_command(venv: Path, model: Path, out: Path, shapes: dict, calib: dict[str, Path], ranks: dict,
                    keep: tuple[str, ...]) -> list[str]:
    """``onnx2tf -tb tf_converter -oiqt``; calibration arrays are already in model units (mean 0, std 1)."""
    cmd = [str(venv / "bin" / "onnx2tf"), "-i", str(model), "-o", str(out), "-tb", "tf_converter", "-oiqt",
           "-ois", *[f"{k}:{','.join(map(str, v))}" for k, v in shapes.items()]]
    for name, path in calib.items():
        cmd += ["-cind", name, str(path), _neutral(ranks[name], 0.0), _neutral(ranks[name], 1.0)]
    if keep:
        cmd += ["-k", *keep]
    return cmd
