"""Container engines (docker, podman): which is usable here, their command forms, running their commands,
and one-line errors that name the symptom and the fix.

Engine choice (``choose_engine``), first match wins:
1. ``--engine docker|podman`` (or the ``DEPLOYKIT_ENGINE`` environment variable);
2. docker, when its CLI is on PATH and its daemon answers (``docker info``);
3. podman, when it is on PATH (daemonless);
4. docker, when only its CLI is there (the error then says to start the daemon);
5. neither: docker, and the error names both engines to install.
Both engines build the same Dockerfiles under the same image tags.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from deploykit.errors import ToolchainError

INSTALL_DOCKER = "install Docker Engine (https://docs.docker.com/engine/install/) or Docker Desktop"
INSTALL_PODMAN = "install podman (Debian/Ubuntu: apt-get install podman runc)"
ENGINES = ("docker", "podman")
ENGINE_ENV = "DEPLOYKIT_ENGINE"       # docker | podman: the engine when --engine is not given
PULL_ENV = "DEPLOYKIT_PULL"           # "never": never pull base images (local bases, see 'deploykit images bootstrap')
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
    podman: str | None = None       # `podman --version` first line, None when not on PATH
    podman_error: str = ""          # first line of a failing `podman info`
    qemu_binfmt: list[str] = field(default_factory=list)
    host_platform: str = ""

    def can_run(self, docker_platform: str | None) -> bool:
        """Whether an image of ``docker_platform`` runs here (natively or through qemu binfmt)."""
        if not docker_platform or platform_arch(docker_platform) == platform_arch(self.host_platform):
            return True
        return QEMU_HANDLER.get(platform_arch(docker_platform), "") in self.qemu_binfmt

    def to_json(self) -> dict:
        return {"cli": self.cli, "daemon": self.daemon, "daemon_error": self.daemon_error, "buildx": self.buildx,
                "podman": self.podman, "podman_error": self.podman_error,
                "qemu_binfmt": self.qemu_binfmt, "host_platform": self.host_platform}

    def usable(self, engine: str) -> bool:
        """Whether ``engine`` can build here (docker: CLI + daemon; podman: ``podman info`` answers)."""
        return bool(self.daemon) if engine == "docker" else bool(self.podman and not self.podman_error)

    def engines_json(self) -> dict:
        """For ``deploykit doctor``: each engine, whether it builds here, and whether arm64 images build here."""
        arm64 = self.can_run("linux/arm64")
        return {
            "docker": {"present": self.cli is not None, "builds": self.usable("docker"),
                       "arm64": arm64 and self.usable("docker") and self.buildx is not None},
            "podman": {"present": self.podman is not None, "builds": self.usable("podman"),
                       "arm64": arm64 and self.usable("podman")},
            "auto": auto_engine_name(self),
            "arm64_note": ("arm64 images build and run here through qemu binfmt" if arm64 else emulation_hint("linux/arm64")),
        }


def docker_status(check_buildx: bool = True, check_podman: bool = True) -> DockerStatus:
    status = DockerStatus(qemu_binfmt=qemu_handlers(), host_platform=host_platform())
    podman = None
    if check_podman and shutil.which("podman") is not None:
        import threading

        def probe() -> None:  # `podman info` takes ~1 s: beside the docker probes, not after them
            rc, line = _first_line(["podman", "--version"])
            status.podman = line or "present"
            rc, line = _first_line(["podman", "info", "--format", "{{.Host.OCIRuntime.Name}}"], timeout=60)
            status.podman_error = "" if rc == 0 else (line or f"podman info failed (exit {rc})")

        podman = threading.Thread(target=probe, daemon=True)
        podman.start()
    _docker_probes(status, check_buildx)
    if podman is not None:
        podman.join()
    return status


def _docker_probes(status: DockerStatus, check_buildx: bool) -> None:
    if shutil.which("docker") is None:
        return
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


def require_docker(generated: Path | None = None, buildx: bool = False) -> DockerStatus:
    """Raise one clear :class:`ToolchainError` when docker (or its daemon, or buildx) is missing."""
    status = docker_status(check_buildx=buildx, check_podman=False)
    where = f"; the generated files are in {generated}" if generated else ""
    if status.cli is None:
        raise ToolchainError(f"docker is not installed (no 'docker' on PATH): {INSTALL_DOCKER} "
                             f"(or {INSTALL_PODMAN} and pass --engine podman){where}")
    if status.daemon is None:
        raise ToolchainError(
            "the Docker daemon is not reachable ('docker info' failed): start it (e.g. 'sudo systemctl start docker') "
            f"or {INSTALL_DOCKER}, and make sure your user may use it (or use --engine podman){where}")
    if buildx and status.buildx is None:
        raise ToolchainError("docker buildx is missing: install the Docker Buildx plugin "
                             f"(Debian/Ubuntu package docker-buildx-plugin){where}")
    return status


def require_podman(generated: Path | None = None) -> DockerStatus:
    """Raise one clear :class:`ToolchainError` when podman is missing or cannot start (``podman info``)."""
    status = docker_status(check_buildx=False)
    where = f"; the generated files are in {generated}" if generated else ""
    if status.podman is None:
        raise ToolchainError(f"podman is not installed (no 'podman' on PATH): {INSTALL_PODMAN}{where}")
    if status.podman_error:
        raise ToolchainError(f"podman does not work here ('podman info': {status.podman_error}){fix_for(status.podman_error)}"
                             f"{where}")
    return status


def auto_engine_name(status: DockerStatus) -> str | None:
    """The engine the auto-detection order (module docstring) picks, None when there is neither."""
    if status.cli is not None and status.daemon:
        return "docker"
    if status.podman is not None:
        return "podman"
    return "docker" if status.cli is not None else None


@dataclass(frozen=True)
class Engine:
    """One container engine and its command forms (same Dockerfiles, same tags for both)."""

    name: str                  # "docker" or "podman"
    pull_never: bool = False   # never pull base images (podman: --pull=never; docker uses local images as they are)

    def build_command(self, context: Path, tag: str, platform: str | None, *, device: bool = False) -> list[str]:
        """Build ``context`` into ``tag``. ``device``: a bundle's device image (docker: buildx, --load)."""
        plat = ["--platform", platform] if platform else []
        if self.name == "docker":
            if device:
                return ["docker", "buildx", "build", *plat, "-t", tag, "--load", str(context)]
            return ["docker", "build", *plat, "-t", tag, str(context)]
        pull = ["--pull=never"] if self.pull_never else []
        return ["podman", "build", *plat, *pull, "-t", tag, str(context)]

    def run_prefix(self, platform: str | None) -> list[str]:
        return [self.name, "run", "--rm"] + (["--platform", platform] if platform else [])

    def require(self, generated: Path | None = None, *, device: bool = False) -> DockerStatus:
        if self.name == "docker":
            return require_docker(generated, buildx=device)
        return require_podman(generated)


def pull_never_default() -> bool:
    return os.environ.get(PULL_ENV, "").strip().lower() == "never"


def choose_engine(requested: str | None = None, *, pull_never: bool | None = None,
                  status: DockerStatus | None = None) -> Engine:
    """The engine to use: ``requested`` / ``DEPLOYKIT_ENGINE`` / auto-detection (module docstring)."""
    from deploykit.errors import DeployError

    pull = pull_never_default() if pull_never is None else pull_never
    name = (requested or os.environ.get(ENGINE_ENV, "")).strip().lower()
    if name:
        if name not in ENGINES:
            raise DeployError(f"unknown container engine {name!r}; use docker or podman")
        return Engine(name, pull)
    status = status or docker_status(check_buildx=False)
    # neither engine: docker, whose require() then says what to install (docker or podman)
    return Engine(auto_engine_name(status) or "docker", pull)


def emulation_hint(docker_platform: str) -> str:
    arch = platform_arch(docker_platform)
    return (f"no qemu binfmt handler for {arch} on this {host_platform()} host: install qemu-user-static and "
            f"binfmt-support, or run 'docker run --privileged --rm tonistiigi/binfmt --install {arch}'")


# symptom seen in an engine's output -> what fixes it (scripts/podman-setup.sh writes the containers.conf settings)
SYMPTOMS: tuple[tuple[str, str], ...] = (
    (r"cgroups in hybrid mode not supported",
     'crun cannot use this machine\'s hybrid cgroups: install runc and set [engine] runtime = "runc" in '
     "/etc/containers/containers.conf (scripts/podman-setup.sh does it)"),
    (r"setrlimit RLIMIT_(NOFILE|NPROC).*not permitted|RLIMIT_(NOFILE|NPROC).*Operation not permitted",
     "the engine's default ulimits cannot be applied here: set [containers] default_ulimits = "
     '["nofile=20000:20000", "nproc=32768:32768"] in /etc/containers/containers.conf (scripts/podman-setup.sh)'),
    (r"exec format error",
     "a foreign-architecture binary without a qemu binfmt handler: " + emulation_hint("linux/arm64")),
    (r"CERTIFICATE_VERIFY_FAILED|self[- ]signed certificate",
     "pip in the image does not trust this network's TLS: build local bases with 'deploykit images bootstrap' "
     "(it adds this machine's local CA certificates) or give pip the CA bundle (PIP_CERT)"),
    (r"image not known|manifest unknown|name unknown|(pull|resolv)\w* .*(registry|docker\.io)|"
     r"short-name .* did not resolve|initializing source docker://",
     "the base image is neither local nor pullable: make local bases with 'deploykit images bootstrap' "
     "(offline), or let the engine reach its registry"),
)


def fix_for(text: str) -> str:
    """``"; FIX"`` for the first known symptom in ``text``, else ``""``."""
    for pattern, fix in SYMPTOMS:
        if re.search(pattern, text, re.IGNORECASE):
            return f"; {fix}"
    return ""


def format_command(cmd: list[str]) -> str:
    return shlex.join(cmd)


def run_command(cmd: list[str]) -> int:
    """Run an engine command with stdout attached and stderr passed through; its exit code.

    The last stderr lines are kept in :data:`LAST_STDERR` for :func:`fix_for`."""
    LAST_STDERR.clear()
    try:
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, errors="replace")
    except OSError as e:
        raise ToolchainError(f"could not run {cmd[0]}: {e}; "
                             f"{INSTALL_PODMAN if cmd[0] == 'podman' else INSTALL_DOCKER}") from e
    assert proc.stderr is not None
    for line in proc.stderr:
        sys.stderr.write(line)
        LAST_STDERR.append(line.rstrip())
    return proc.wait()


LAST_STDERR: deque[str] = deque(maxlen=60)


def last_fix() -> str:
    """:func:`fix_for` over the last command's stderr."""
    return fix_for("\n".join(LAST_STDERR))
