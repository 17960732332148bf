"""Whether docker is usable here, running docker commands, and the errors that say what to install."""

from __future__ import annotations

import platform
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from deploykit.errors import ToolchainError

INSTALL_DOCKER = "install Docker Engine (https://docs.docker.com/engine/install/) or Docker Desktop"
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
# docker platform arch -> the qemu binfmt handler that runs it on another host
QEMU_HANDLER = {"arm64": "qemu-aarch64", "arm": "qemu-arm", "amd64": "qemu-x86_64", "riscv64": "qemu-riscv64"}
_MACHINE_TO_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm"}


def host_platform() -> str:
    """This machine as a docker platform string, e.g. ``linux/amd64``."""
    m = platform.machine().lower()
    return f"linux/{_MACHINE_TO_ARCH.get(m, m)}"


def platform_arch(docker_platform: str) -> str:
    """``linux/arm64/v8`` -> ``arm64``."""
    parts = docker_platform.split("/")
    return parts[1] if len(parts) > 1 else parts[0]


def qemu_handlers() -> list[str]:
    if not BINFMT_DIR.is_dir():
        return []
    return sorted(p.name for p in BINFMT_DIR.glob("qemu-*"))


def _first_line(cmd: list[str], timeout: float = 15) -> tuple[int, str]:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return 1, str(e)
    text = (out.stdout or out.stderr).strip().splitlines()
    return out.returncode, (text[0][:200] if text else "")


@dataclass
class DockerStatus:
    """What of docker works on this machine."""

    cli: str | None = None          # `docker --version` first line, None when not on PATH
    daemon: str | None = None       # server version when `docker info` answers
    daemon_error: str = ""
    buildx: str | None = None       # `docker buildx version` first line
    qemu_binfmt: list[str] = field(default_factory=list)
    host_platform: str = ""

    def can_run(self, docker_platform: str | None) -> bool:
        """Whether an image of ``docker_platform`` runs here (natively or through qemu binfmt)."""
        if not docker_platform or platform_arch(docker_platform) == platform_arch(self.host_platform):
            return True
        return QEMU_HANDLER.get(platform_arch(docker_platform), "") in self.qemu_binfmt

    def to_json(self) -> dict:
        return {"cli": self.cli, "daemon": self.daemon, "daemon_error": self.daemon_error, "buildx": self.buildx,
                "qemu_binfmt": self.qemu_binfmt, "host_platform": self.host_platform}


def docker_status(check_buildx: bool = True) -> DockerStatus:
    status = DockerStatus(qemu_binfmt=qemu_handlers(), host_platform=host_platform())
    if shutil.which("docker") is None:
        return status
    rc, line = _first_line(["docker", "--version"])
    status.cli = line or "present"
    rc, line = _first_line(["docker", "info", "--format", "{{.ServerVersion}}"])
    if rc == 0:
        status.daemon = line or "running"
    else:
        status.daemon_error = line
    if check_buildx:
        rc, line = _first_line(["docker", "buildx", "version"])
        status.buildx = line if rc == 0 else None
    return status


def require_docker(generated: Path | None = None, buildx: bool = False) -> DockerStatus:
    """Raise one clear :class:`ToolchainError` when docker (or its daemon, or buildx) is missing."""
    status = docker_status(check_buildx=buildx)
    where = f"; the generated files are in {generated}" if generated else ""
    if status.cli is None:
        raise ToolchainError(f"docker is not installed (no 'docker' on PATH): {INSTALL_DOCKER}{where}")
    if status.daemon is None:
        raise ToolchainError(
            "the Docker daemon is not reachable ('docker info' failed): start it (e.g. 'sudo systemctl start docker') "
            f"or {INSTALL_DOCKER}, and make sure your user may use it{where}")
    if buildx and status.buildx is None:
        raise ToolchainError("docker buildx is missing: install the Docker Buildx plugin "
                             f"(Debian/Ubuntu package docker-buildx-plugin){where}")
    return status


def emulation_hint(docker_platform: str) -> str:
    arch = platform_arch(docker_platform)
    return (f"no qemu binfmt handler for {arch} on this {host_platform()} host: install qemu-user-static and "
            f"binfmt-support, or run 'docker run --privileged --rm tonistiigi/binfmt --install {arch}'")


def format_command(cmd: list[str]) -> str:
    return shlex.join(cmd)


def run_command(cmd: list[str]) -> int:
    """Run a docker command with the terminal attached; its exit code."""
    try:
        return subprocess.run(cmd).returncode
    except OSError as e:
        raise ToolchainError(f"could not run {cmd[0]}: {e}; {INSTALL_DOCKER}") from e
