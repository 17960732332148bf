"""The emulated device root: can this machine run one, and the cached Debian root + venvs.

A root is made once per (Debian suite, architecture, packages) with ``mmdebstrap --variant=extract``
into ``$XDG_CACHE_HOME/deploykit/emulation/<suite>-<arch>-<hash>/root`` (≈ 100 MB, seconds), and one
virtual environment per set of requirements inside it (``/opt/venvs/<hash>``, ≈ 20–70 s under QEMU).
Both are made under a lock: the root in a temporary sibling renamed into place, the venv at its
final path (a venv's scripts hold their path) and complete only once its stamp file is written, so a
failed or interrupted creation leaves nothing that a later run could take for finished.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from deploykit.devenv import DeviceEnv
from deploykit.docker.engine import BINFMT_DIR, QEMU_HANDLER, host_platform, platform_arch
from deploykit.errors import DeployError

DEFAULT_MIRROR = "http://deb.debian.org/debian"
# the CA bundle pip inside the root uses: the host's, which holds locally added CAs (trap 2)
ROOT_CA_FILE = "/etc/deploykit-ca.pem"
VENVS_DIR = "/opt/venvs"
TOOLS = ("unshare", "chroot", "mount", "mmdebstrap")


class EmulationUnavailable(DeployError):
    """This machine cannot run an emulated device root; the message says why and how to fix it."""


@dataclass
class EmulationStatus:
    available: bool
    reason: str = ""          # one line: why not, and the fix
    handler: str = ""         # the binfmt handler that runs the device's binaries ("" = native)

    def to_json(self) -> dict:
        return {"available": self.available, "reason": self.reason, "handler": self.handler}


def cache_root() -> Path:
    from deploykit.buildsys.cache import default_root

    return default_root() / "emulation"


def binfmt_problem(arch: str = "arm64", binfmt_dir: Path | None = None) -> tuple[str, str]:
    """(problem, handler): ``problem`` is "" when ``arch`` binaries run here through a fix-binary handler."""
    binfmt_dir = binfmt_dir or BINFMT_DIR
    if platform_arch(host_platform()) == arch:
        return "", ""
    name = QEMU_HANDLER.get(arch, f"qemu-{arch}")
    if not (binfmt_dir / "status").exists():
        return (f"binfmt_misc is not mounted, so {arch} programs cannot run here ('Exec format error'): as root run "
                f"'mount -t binfmt_misc binfmt_misc {binfmt_dir}' and then 'update-binfmts --enable {name}' "
                "(Debian packages qemu-user-static and binfmt-support)"), ""
    entry = binfmt_dir / name
    if not entry.exists():
        return (f"no binfmt handler for {arch} ({binfmt_dir / name} is missing): install qemu-user-static and "
                f"binfmt-support, then run 'update-binfmts --enable {name}'"), ""
    text = entry.read_text(errors="replace")
    if not text.startswith("enabled"):
        return f"the binfmt handler {name} is disabled: run 'update-binfmts --enable {name}'", ""
    flags = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("flags:")), "")
    if "F" not in flags:
        return (f"the binfmt handler {name} lacks the F (fix-binary) flag, so it cannot run programs inside a chroot: "
                "use the qemu-user-static package's registration (flags PF)"), ""
    return "", name


def emulation_status(arch: str = "arm64", binfmt_dir: Path | None = None) -> EmulationStatus:
    """Whether ``deploykit verify --emulate`` can run here; one line saying why not."""
    if platform.system() != "Linux":
        return EmulationStatus(False, f"emulated verification needs Linux (this is {platform.system()})")
    if os.geteuid() != 0:
        return EmulationStatus(False, "emulated verification needs root (it mounts /proc and the device's cpuinfo "
                                      "in a private mount namespace and chroots into the device root): run it as root")
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return EmulationStatus(False, f"{', '.join(missing)} not found: install the Debian packages "
                                      f"{'mmdebstrap, ' if 'mmdebstrap' in missing else ''}util-linux and coreutils")
    problem, handler = binfmt_problem(arch, binfmt_dir)
    if problem:
        return EmulationStatus(False, problem)
    return EmulationStatus(True, handler=handler)


def require_emulation(arch: str = "arm64") -> EmulationStatus:
    status = emulation_status(arch)
    if not status.available:
        raise EmulationUnavailable(f"cannot verify on an emulated device here: {status.reason}")
    return status


def debian_mirror() -> str:
    """``$DEPLOYKIT_DEBIAN_MIRROR``, else the Debian mirror apt is configured with, else deb.debian.org."""
    env = os.environ.get("DEPLOYKIT_DEBIAN_MIRROR", "").strip()
    if env:
        return env
    if shutil.which("apt-get"):
        try:
            out = subprocess.run(["apt-get", "indextargets", "--format", "$(REPO_URI)"], capture_output=True,
                                 text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        for uri in out.split():
            if uri.rstrip("/").endswith("/debian"):
                return uri
    return DEFAULT_MIRROR


def host_ca_bundle() -> Path | None:
    for candidate in (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE"), os.environ.get("REQUESTS_CA_BUNDLE"),
                      "/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    try:
        import certifi

        return Path(certifi.where())
    except ImportError:
        return None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _run(cmd: list[str], what: str, fix: str, env: dict[str, str] | None = None, timeout: float = 1800) -> None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise DeployError(f"{what} took more than {timeout:.0f} s; {fix}") from e
    except OSError as e:
        raise DeployError(f"{what} could not start ({e.strerror or e}); {fix}") from e
    if out.returncode != 0:
        lines = [ln.strip() for ln in (out.stderr + out.stdout).splitlines() if ln.strip()]
        worst = next((ln for ln in reversed(lines) if "error" in ln.lower() or ln.startswith("E:")), lines[-1] if lines else "")
        raise DeployError(f"{what} failed (exit {out.returncode}): {worst[:300]}; {fix}")


def root_env(env: DeviceEnv) -> dict[str, str]:
    """The environment of programs inside the root: nothing of the host's but pip's index settings."""
    out = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "QEMU_CPU": env.cpu,
           "PIP_CERT": ROOT_CA_FILE, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    for key in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "PIP_DEFAULT_TIMEOUT",
                "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy", "NO_PROXY"):
        value = os.environ.get(key, "")
        # a host-only file:// index is not visible inside the root
        if value and "file:" not in value:
            out[key] = value
    return out


class DeviceRoot:
    """A cached Debian root for one :class:`DeviceEnv` (suite + architecture + packages)."""

    def __init__(self, env: DeviceEnv, cache: Path | None = None, log: Callable[[str], None] = lambda m: None):
        self.env = env
        self.dir = (cache or cache_root()) / env.root_key
        self.path = self.dir / "root"
        self.log = log

    def ensure(self) -> Path:
        """The root, made now if it is not cached."""
        if (self.path / "usr" / "bin" / "python3").exists():
            return self.path
        with _locked(self.dir.with_suffix(".lock")):
            if (self.path / "usr" / "bin" / "python3").exists():
                return self.path
            self.dir.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix="root.", suffix=".tmp", dir=self.dir))
            mirror = debian_mirror()
            self.log(f"creating the emulated {self.env.debian} {self.env.arch} root (mmdebstrap from {mirror}; once, "
                     f"then cached in {self.dir})")
            try:
                _run(["mmdebstrap", "--variant=extract", f"--arch={self.env.arch}",
                      f"--include={','.join(self.env.root_packages)}", self.env.debian, str(tmp), mirror],
                     f"creating the {self.env.debian} {self.env.arch} root with mmdebstrap",
                     "check that the Debian mirror is reachable (or set DEPLOYKIT_DEBIAN_MIRROR)")
                for sub in ("proc", "dev", "sys", "mnt/work", "tmp"):
                    (tmp / sub).mkdir(parents=True, exist_ok=True)
                os.chmod(tmp / "tmp", 0o1777)
                shutil.rmtree(self.path, ignore_errors=True)
                os.rename(tmp, self.path)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return self.path

    def venv(self, chroot_cmd: Callable[[list[str]], list[str]]) -> str:
        """The root's virtual environment for ``env.requirements`` (path inside the root), made now
        if it is not cached. ``chroot_cmd`` wraps a command to run inside the root."""
        final = f"{VENVS_DIR}/{self.env.venv_key}"
        stamp = self.path / final.lstrip("/") / ".deploykit-complete"
        if stamp.exists():
            return final
        with _locked(self.dir / f"venv-{self.env.venv_key}.lock"):
            if stamp.exists():
                return final
            ca = host_ca_bundle()
            if ca is not None:
                shutil.copyfile(ca, self.path / ROOT_CA_FILE.lstrip("/"))
            # made at its final path (a venv's scripts hold their path); complete only once the stamp exists
            shutil.rmtree(self.path / final.lstrip("/"), ignore_errors=True)
            (self.path / VENVS_DIR.lstrip("/")).mkdir(parents=True, exist_ok=True)
            self.log(f"installing {', '.join(self.env.requirements)} into the emulated root (pip, {self.env.cpu}; once, then cached)")
            env = root_env(self.env)
            fix = "check that PyPI is reachable from here and that the requirements have aarch64 wheels"
            try:
                _run(chroot_cmd(["/usr/bin/python3", "-m", "venv", final]), "creating the venv in the emulated root",
                     "the root may be damaged: delete " + str(self.dir), env=env)
                reqs = self.path / final.lstrip("/") / "requirements.txt"
                reqs.write_text("".join(r + "\n" for r in self.env.requirements), encoding="utf-8")
                cmd = self.env.pip_install_command(f"{final}/requirements.txt")
                _run(chroot_cmd([f"{final}/bin/python", "-m", "pip", *cmd[1:]]),
                     f"pip install {' '.join(self.env.requirements)} in the emulated {self.env.cpu} root", fix, env=env)
                stamp.write_text("\n".join(self.env.requirements) + "\n", encoding="utf-8")
            except BaseException:
                shutil.rmtree(self.path / final.lstrip("/"), ignore_errors=True)
                raise
        return final

    def installed(self, venv: str) -> dict[str, str]:
        """{distribution: version} installed in ``venv`` (read from its dist-info folders)."""
        out: dict[str, str] = {}
        for info in sorted((self.path / venv.lstrip("/")).glob("lib/python3*/site-packages/*.dist-info")):
            name, _, version = info.name[: -len(".dist-info")].partition("-")
            if name.lower() not in ("pip", "setuptools", "wheel"):
                out[name.lower().replace("_", "-")] = version
        return out
