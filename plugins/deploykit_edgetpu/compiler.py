"""``edgetpu_compiler`` integration: find it, run it, parse its log, or ship ``compile.sh``.

Facts (facts/edgetpu.md §3, §4): the compiler is x86-64 Linux only (no ARM64 build since 2.1), from
the Coral apt repo (package ``edgetpu-compiler``); output ``<name>_edgetpu.tflite`` + ``<name>_edgetpu.log``
in ``--out_dir``; ``-m N`` sets the oldest runtime to support; ``-s`` prints the op table;
``-d -k N`` retries with shorter segments on failure; stdout is a ``key: value`` block then
an ``Operator Count Status`` table, ending with "Compilation succeeded!" / "Compilation failed!".
Seen in compiler output quoted on Coral's issue tracker (and covered by the recorded samples in the
tests): with ``-d`` each try prints "Try to compile segment with N ops" (+ "Intermediate tensors: a,b"),
failed tries end in "Compilation failed!" and the *last* verdict counts; an op type can have several
table rows (mapped / "More than one subgraph is not supported" / "Tensor has unsupported rank ...");
an op version the compiler's TFLite resolver lacks gives "ERROR: Didn't find op ... Invalid model ...
Model could not be parsed" with no verdict line; compiler 2.0 said "available" for "remaining".
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

COMPILER_ENV = "DEPLOYKIT_EDGETPU_COMPILER"  # path of the compiler binary (default: edgetpu_compiler on PATH)
COMPILE_SCRIPT = "compile.sh"
TIMEOUT_SEC = 180


def find_compiler() -> str | None:
    explicit = os.environ.get(COMPILER_ENV)
    if explicit:
        return explicit if Path(explicit).is_file() and os.access(explicit, os.X_OK) else None
    return shutil.which("edgetpu_compiler")


def compiler_args(model: str, out_dir: str, min_runtime: int, timeout: int = TIMEOUT_SEC) -> list[str]:
    """Flags: keep the op table in the log (-s), target the profile's runtime (-m), and on a failed
    segment retry with shorter ones (-d -k 10) instead of failing the whole model."""
    return ["--out_dir", out_dir, "--show_operations", "--min_runtime_version", str(min_runtime),
            "--search_delegate", "--delegate_search_step", "10", "--timeout_sec", str(timeout), model]


_SIZE = re.compile(r"^\s*([0-9.]+)\s*([KMG]?i?B)\s*$")
_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3, "KB": 1000, "MB": 1000 ** 2, "GB": 1000 ** 3}
_KEYS = {
    "Edge TPU Compiler version": "compiler_version",
    "Input model": "input_model",
    "Input size": "input_size",
    "Output model": "output_model",
    "Output size": "output_size",
    "On-chip memory used for caching model parameters": "on_chip_used",
    "On-chip memory remaining for caching model parameters": "on_chip_remaining",
    "On-chip memory available for caching model parameters": "on_chip_remaining",  # compiler 2.0 wording
    "Off-chip memory used for streaming uncached model parameters": "off_chip_streamed",
    "Number of Edge TPU subgraphs": "edgetpu_subgraphs",
    "Total number of operations": "total_operations",
    "Operation log": "operation_log",
    "Number of operations that will run on Edge TPU": "tpu_operations",
    "Number of operations that will run on CPU": "cpu_operations",
}
_TABLE_ROW = re.compile(r"^(\S+)\s+(\d+)\s+(\S.*?)\s*$")
_SIZE_KEYS = ("input_size", "output_size", "on_chip_used", "on_chip_remaining", "off_chip_streamed")
_LOG_FILE_KEYS = {"Input": "input_model", "Output": "output_model"}  # the .log file's header
_FAILED = ("Invalid model", "Model not quantized", "Model could not be parsed", "Internal compiler error")
MAPPED = "Mapped to Edge TPU"


def parse_size(text: str) -> int | None:
    """"5.90MiB", "41.75KiB", "0.00B" -> bytes (``None`` if not a size)."""
    m = _SIZE.match(text)
    if not m or m.group(2) not in _UNITS:
        return None
    return int(round(float(m.group(1)) * _UNITS[m.group(2)]))


def parse_log(text: str) -> dict[str, Any]:
    """The compiler's stdout (or its ``.log`` file) as data.

    Keys (when present): ``compiler_version``, ``status`` ("succeeded"/"failed": the *last* verdict,
    since ``--search_delegate`` retries after failures), ``error`` (the failed compilation's messages),
    ``compile_ms``, sizes in bytes (``on_chip_used_bytes``, ``off_chip_streamed_bytes``, ...), counts
    (``edgetpu_subgraphs``, ``total_operations``, ``tpu_operations``, ``cpu_operations``), ``partial``
    (the "not all operations are supported" warning), ``operations`` (table rows {op, count, status};
    one op may have several rows), ``not_mapped`` ({status: ops}), ``mapped_fraction``, and for a
    delegate search ``delegate_search_step`` and ``search_attempts`` ([{segment_ops, status,
    intermediate_tensors, error}]: the ops compiled per try and the tensors cut to the CPU)."""
    out: dict[str, Any] = {"operations": []}
    attempts: list[dict[str, Any]] = []
    errors: list[str] = []
    in_table = False

    def verdict(status: str) -> None:
        out["status"] = status
        if attempts:
            attempts[-1]["status"] = status
        if status == "failed" and errors:
            out["error"] = "; ".join(dict.fromkeys(errors))
            if attempts:
                attempts[-1]["error"] = out["error"]
        elif status == "succeeded":
            out.pop("error", None)
        errors.clear()

    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("Edge TPU Compiler version"):
            out["compiler_version"] = line.rsplit(" ", 1)[-1]
            continue
        if re.match(r"^Operator\s+Count\s+Status$", line):
            in_table = True
            continue
        m = re.match(r"^Searching for valid delegate with step (\d+)", line)
        if m:
            out["delegate_search_step"] = int(m.group(1))
            continue
        m = re.match(r"^Try to compile segment with (\d+) ops", line)
        if m:
            attempts.append({"segment_ops": int(m.group(1)), "status": None})
            errors.clear()
            in_table = False
            continue
        if line.startswith("Intermediate tensors:") and attempts:
            attempts[-1]["intermediate_tensors"] = [t for t in line.partition(":")[2].strip().split(",") if t]
            continue
        m = re.match(r"^Model compiled successfully in (\d+) ms", line)
        if m:
            out["compile_ms"] = int(m.group(1))
            continue
        if line.startswith("Model successfully compiled but not all operations are supported"):
            out["partial"] = True
            continue
        if line.startswith("Compilation succeeded"):
            verdict("succeeded")
            in_table = False
            continue
        if line.startswith("Compilation failed!") or line == "Compilation failed":
            verdict("failed")
            in_table = False
            continue
        if line.startswith(("ERROR:", "Error:", "Compilation failed:")):
            errors.append(line.partition(":")[2].strip() or line)
            continue
        if line.startswith(_FAILED):  # a verdict of its own (no "Compilation failed!" follows some of them)
            errors.append(line)
            out["status"], out["error"] = "failed", "; ".join(dict.fromkeys(errors))
            continue
        key, sep, value = line.partition(":")
        name = _KEYS.get(key.strip()) or _LOG_FILE_KEYS.get(key.strip())
        if sep and name:
            value = value.strip()
            if name in _SIZE_KEYS:
                out[name + "_bytes"] = parse_size(value)
            elif value.isdigit():
                out[name] = int(value)
            else:
                out[name] = value
            in_table = False
            continue
        if in_table:
            row = _TABLE_ROW.match(line)
            if row:
                out["operations"].append({"op": row.group(1), "count": int(row.group(2)), "status": row.group(3)})
    if errors and out.get("status") != "succeeded":  # error lines without a verdict (e.g. a crash)
        out["error"] = "; ".join(dict.fromkeys(errors))
    if attempts:
        out["search_attempts"] = attempts
    not_mapped: dict[str, int] = {}
    for r in out["operations"]:
        if r["status"] != MAPPED:
            not_mapped[r["status"]] = not_mapped.get(r["status"], 0) + r["count"]
    if not_mapped:
        out["not_mapped"] = not_mapped
    total = sum(r["count"] for r in out["operations"])
    if total:
        out["mapped_fraction"] = round(sum(r["count"] for r in out["operations"] if r["status"] == MAPPED) / total, 6)
    elif out.get("total_operations") and "tpu_operations" in out:
        out["mapped_fraction"] = round(out["tpu_operations"] / out["total_operations"], 6)
    elif out.get("total_operations") and out.get("status") == "succeeded" and not out.get("partial"):
        out["mapped_fraction"] = 1.0
    return out


def run_compiler(binary: str, model: Path, min_runtime: int) -> tuple[dict[str, Any], bytes | None, str]:
    """Compile ``model`` in a scratch folder; (parsed log, compiled model bytes or None, raw log)."""
    with tempfile.TemporaryDirectory(prefix="deploykit-edgetpu-") as tmp:
        src = Path(tmp) / model.name
        shutil.copyfile(model, src)
        try:
            proc = subprocess.run([binary, *compiler_args(src.name, tmp, min_runtime)], cwd=tmp,
                                  capture_output=True, text=True, timeout=TIMEOUT_SEC + 60)
        except (OSError, subprocess.TimeoutExpired) as e:
            return {"status": "failed", "error": f"could not run {binary}: {e}"}, None, ""
        log = proc.stdout + ("\n" + proc.stderr if proc.stderr.strip() else "")
        parsed = parse_log(log)
        if proc.returncode != 0:
            parsed["status"] = "failed"
            parsed.setdefault("error", f"exit code {proc.returncode}")
        compiled = Path(tmp) / (src.stem + "_edgetpu.tflite")
        data = compiled.read_bytes() if compiled.exists() and parsed.get("status") != "failed" else None
        if data is None and parsed.get("status") != "failed":
            parsed.update(status="failed", error="the compiler wrote no " + compiled.name)
        return parsed, data, log


def compile_script(model_file: str, min_runtime: int, apt_source: str, version: str) -> str:
    """``compile.sh``: compiles the bundle's model on x86-64 Linux, natively or in Docker."""
    args = " ".join(compiler_args('"$MODEL"', '"$HERE"', min_runtime))
    return f"""#!/usr/bin/env bash
# Compile {model_file} for the Edge TPU (writes model_edgetpu.tflite + model_edgetpu.log beside it).
# edgetpu_compiler {version} runs on x86-64 Linux only (no ARM64 build: not on the Pi / Dev Board).
#   ./compile.sh            use edgetpu_compiler from PATH, else Docker (linux/amd64)
#   ./compile.sh --docker   always use Docker
#   ./compile.sh --install  apt-install edgetpu-compiler first (Debian/Ubuntu x86-64, needs sudo)
# After compiling, the runner loads model_edgetpu.tflite with the Edge TPU delegate automatically.
set -euo pipefail
HERE="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
MODEL="$HERE/{model_file}"
APT_SOURCE="{apt_source}"
KEY_URL="https://packages.cloud.google.com/apt/doc/apt-key.gpg"
MODE="${{1:-auto}}"

install_compiler() {{
  if [ "$(uname -m)" != "x86_64" ]; then
    echo "compile.sh: edgetpu_compiler needs an x86-64 Linux machine (this is $(uname -m)); use --docker" >&2
    exit 1
  fi
  curl -fsSL "$KEY_URL" | sudo gpg --dearmor -o /usr/share/keyrings/coral-edgetpu.gpg
  echo "${{APT_SOURCE/deb /deb [signed-by=/usr/share/keyrings/coral-edgetpu.gpg] }}" \\
    | sudo tee /etc/apt/sources.list.d/coral-edgetpu.list >/dev/null
  sudo apt-get update
  sudo apt-get install -y edgetpu-compiler
}}

compile_native() {{
  edgetpu_compiler {args}
}}

compile_docker() {{
  docker run --rm --platform linux/amd64 -v "$HERE:/bundle" -w /bundle debian:bookworm-slim bash -c '
    set -euo pipefail
    apt-get update >/dev/null
    apt-get install -y --no-install-recommends curl gnupg ca-certificates >/dev/null
    curl -fsSL "'"$KEY_URL"'" | gpg --dearmor -o /usr/share/keyrings/coral-edgetpu.gpg
    echo "deb [signed-by=/usr/share/keyrings/coral-edgetpu.gpg] https://packages.cloud.google.com/apt coral-edgetpu-stable main" \\
      > /etc/apt/sources.list.d/coral-edgetpu.list
    apt-get update >/dev/null
    apt-get install -y --no-install-recommends edgetpu-compiler >/dev/null
    edgetpu_compiler {args.replace('"$HERE"', '/bundle').replace('"$MODEL"', '/bundle/' + model_file)}
  '
}}

case "$MODE" in
  --install) install_compiler; compile_native ;;
  --docker) compile_docker ;;
  auto)
    if command -v edgetpu_compiler >/dev/null 2>&1; then compile_native
    elif command -v docker >/dev/null 2>&1; then compile_docker
    else
      echo "compile.sh: no edgetpu_compiler and no docker; run ./compile.sh --install on x86-64 Debian/Ubuntu" >&2
      exit 1
    fi ;;
  *) echo "usage: $0 [--docker|--install]" >&2; exit 2 ;;
esac
echo "compile.sh: check the log above: 'Number of Edge TPU subgraphs: 1' and every op 'Mapped to Edge TPU' is the goal"
"""
