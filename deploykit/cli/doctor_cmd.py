"""``deploykit doctor``: which runtimes and toolchains this machine has."""

from __future__ import annotations

import importlib.metadata as md
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from deploykit.cli.common import DebugOption, JsonOption, cli_errors, out_console, print_json

PYTHON_PACKAGES = ("onnx", "onnx-ir", "onnxruntime", "numpy", "ai-edge-litert", "tflite-runtime", "openvino",
                   "tensorrt", "pycuda", "nncf", "pillow")
TOOLS = {
    "docker": ["docker", "--version"],
    "edgetpu_compiler": ["edgetpu_compiler", "--version"],
    "trtexec": ["trtexec", "--help"],
    "nvidia-smi": ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
    "hadolint": ["hadolint", "--version"],
}


def _pkg_version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def _tool(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return "present (did not answer)"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0][:100] if text else "present"


def collect() -> dict:
    from deploykit import __version__
    from deploykit.cli.targets_cmd import target_rows
    from deploykit.plugins import default_registry

    from deploykit.cpu import cpu_class

    registry = default_registry()
    binfmt = sorted(p.name for p in Path("/proc/sys/fs/binfmt_misc").glob("qemu-*")) if Path("/proc/sys/fs/binfmt_misc").exists() else []
    return {
        "deploykit": __version__,
        "python": sys.version.split()[0],
        "platform": f"{platform.system()} {platform.machine()}",
        "cpu": cpu_class().to_json(),
        "packages": {p: _pkg_version(p) for p in PYTHON_PACKAGES},
        "tools": {name: _tool(cmd) for name, cmd in TOOLS.items()},
        "qemu_binfmt": binfmt,
        "plugins": registry.plugins,
        "backends": {name: {"installed": cls.is_installed(), "missing": cls.missing_host_modules()}
                     for name, cls in sorted(registry.backends.items())},
        "targets": target_rows(registry),
        **_docker_info(registry),
    }


def _docker_info(registry) -> dict:
    from deploykit.docker.engine import docker_status
    from deploykit.docker.needs import target_needs

    status = docker_status()
    return {"docker": status.to_json(), "docker_targets": target_needs(registry.targets.values(), status)}


@cli_errors
def doctor_command(json_out: bool = JsonOption, debug: bool = DebugOption) -> None:
    """Report which runtimes, toolchains and plugins are present, with versions."""
    info = collect()
    if json_out:
        print_json(info)
        return
    from rich.table import Table

    out_console.print(f"deploykit {info['deploykit']} on Python {info['python']} ({info['platform']})")
    cpu = info["cpu"]
    from deploykit.cpu import CpuClass

    note = CpuClass(cpu["arch"], cpu["isa"], cpu["vnni"], cpu["dotprod"]).int8_note
    out_console.print(f"CPU class: {cpu['label']} - {note}", markup=False, highlight=False)
    t = Table(title="packages and tools", title_justify="left")
    t.add_column("name")
    t.add_column("version / status")
    for name, v in {**info["packages"], **info["tools"]}.items():
        t.add_row(name, v or "[dim]not found[/]")
    t.add_row("qemu binfmt", ", ".join(info["qemu_binfmt"]) or "[dim]none[/]")
    out_console.print(t)
    b = Table(title="backends", title_justify="left")
    b.add_column("backend")
    b.add_column("status")
    for name, s in info["backends"].items():
        b.add_row(name, "[green]ready[/]" if s["installed"] else f"[yellow]missing {', '.join(s['missing'])}[/]")
    out_console.print(b)
    d = info["docker"]
    out_console.print(f"docker: cli {d['cli'] or 'not found'}; daemon {d['daemon'] or 'not reachable'}; "
                      f"buildx {d['buildx'] or 'not found'}; qemu binfmt {', '.join(d['qemu_binfmt']) or 'none'}",
                      markup=False, highlight=False)
    dt = Table(title="docker per target (build --docker / package --docker)", title_justify="left")
    for col in ("target", "toolchain platform", "device image", "still needs"):
        dt.add_column(col)
    for r in info["docker_targets"]:
        dt.add_row(r["target"], r["toolchain_platform"], f"{r['device_base_image']} ({r['device_platform']})",
                   "; ".join(r["needs"]) or "[green]nothing[/]")
    out_console.print(dt)
    ready = [r["name"] for r in info["targets"] if r["installed"]]
    out_console.print(f"targets ready to build here: {', '.join(ready) or 'none'}")
