"""Local stand-ins for the base images deploykit's Dockerfiles name, made without a container registry.

``deploykit images bootstrap`` builds each base from the Debian package registry: ``mmdebstrap`` makes a
minimal root (Debian's ``python3`` + ``python3-venv`` + CA certificates), the engine imports it once per
architecture, and (podman) a manifest list under the upstream name (``docker.io/library/python:TAG``)
holds every architecture, so an unmodified ``FROM python:3.11-slim-bookworm`` resolves for
``--platform linux/amd64`` and ``linux/arm64`` alike.

It is **Debian's Python, not the upstream image**: ``python:3.10-slim-bookworm`` becomes bookworm's
Python 3.11 (Debian 12 has no 3.10). The Dockerfiles written for ``python:*-slim`` call ``pip`` and
``python``; the stand-in provides them through a venv at :data:`SHIM_VENV` that is first on ``PATH``
(the upstream images have their own Python in ``/usr/local``). This machine's local CA certificates
(``/usr/local/share/ca-certificates``) are added to the root, so pip inside a build trusts this network.

Roots are cached as tar files under ``$XDG_CACHE_HOME/deploykit/images/`` keyed by the recipe, and the
imported images are tagged ``localhost/deploykit-base:SUITE-ARCH-KEY``: a second bootstrap reuses both.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from deploykit.errors import ToolchainError

SHIM_VENV = "/opt/python"
BASE_REPO = "localhost/deploykit-base"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
LOCAL_CA_DIR = Path("/usr/local/share/ca-certificates")
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
ARCHIVE_MIRROR = "http://archive.debian.org/debian"
RECIPE_VERSION = 1  # bump when the recipe below changes in a way the key does not see


@dataclass(frozen=True)
class BaseImage:
    """An upstream base image name and the Debian suite that stands in for it."""

    name: str                      # as the Dockerfiles name it, e.g. python:3.11-slim-bookworm
    suite: str                     # Debian suite whose python3 stands in
    debian_python: str             # the Python the stand-in really has
    archs: tuple[str, ...]         # architectures the profiles/toolchains need
    archived: bool = False         # suite moved to archive.debian.org

    @property
    def full_name(self) -> str:
        return f"docker.io/library/{self.name}"

    @property
    def upstream_python(self) -> str:
        return self.name.split(":")[1].split("-")[0]

    def note(self) -> str:
        same = self.upstream_python == self.debian_python
        return (f"{self.name} is a local stand-in: Debian {self.suite}'s python3 {self.debian_python}"
                f"{'' if same else f' (NOT {self.upstream_python})'} in a venv at {SHIM_VENV} on PATH, not the upstream image")


# Every python: base the toolchain Dockerfiles and the Debian-based device profiles name
# (grep base_image targets/ deploykit/docker); ubuntu:* and nvcr.io/* bases are not made here.
LOCAL_BASES: dict[str, BaseImage] = {b.name: b for b in (
    BaseImage("python:3.11-slim-bookworm", "bookworm", "3.11", ("amd64", "arm64")),
    BaseImage("python:3.10-slim-bookworm", "bookworm", "3.11", ("amd64",)),
    BaseImage("python:3.9-slim-bullseye", "bullseye", "3.9", ("arm64",)),
    BaseImage("python:3.7-slim-buster", "buster", "3.7", ("arm64",), archived=True),
)}


def cache_root() -> Path:
    from deploykit.buildsys.cache import default_root

    return Path(os.environ.get("DEPLOYKIT_IMAGES_CACHE") or default_root() / "images")


def configured_mirror() -> str:
    """The Debian mirror apt on this machine uses (``deb.debian.org`` when none is found)."""
    try:
        out = subprocess.run(["apt-get", "indextargets", "--format", "$(REPO_URI) $(RELEASE)"],
                             capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    for line in out.splitlines():
        uri = line.split()[0] if line.split() else ""
        if "security" not in uri and uri.startswith("http"):
            return uri.rstrip("/")
    return "http://deb.debian.org/debian"


def local_cas() -> list[Path]:
    return sorted(LOCAL_CA_DIR.glob("**/*.crt")) if LOCAL_CA_DIR.is_dir() else []


def recipe_key(suite: str, arch: str) -> str:
    """What decides a root's contents: suite, arch, packages, shim, local CA certificates."""
    h = hashlib.sha256(json.dumps([RECIPE_VERSION, suite, arch, PACKAGES, SHIM_VENV]).encode())
    for ca in local_cas():
        h.update(ca.read_bytes())
    return h.hexdigest()[:12]


def image_ref(suite: str, arch: str) -> str:
    return f"{BASE_REPO}:{suite}-{arch}-{recipe_key(suite, arch)}"


@dataclass
class BaseResult:
    """What bootstrap did for one base image name."""

    name: str
    archs: dict[str, str] = field(default_factory=dict)     # arch -> image ref, or "failed: why"
    seconds: dict[str, float] = field(default_factory=dict)  # arch -> time to make the root + import (0: cached)
    note: str = ""
    error: str = ""

    def to_json(self) -> dict:
        return {"name": self.name, "archs": self.archs, "seconds": self.seconds, "note": self.note, "error": self.error}


def _run(cmd: list[str], timeout: float, what: str) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise ToolchainError(f"{what}: timed out after {timeout:.0f} s") from e
    except OSError as e:
        raise ToolchainError(f"{what}: {e}") from e
    if out.returncode != 0:
        lines = [ln for ln in (out.stderr or out.stdout).strip().splitlines() if ln.strip()]
        errs = [ln for ln in lines if ln.startswith(("E:", "Err:", "error", "Error"))] or lines
        raise ToolchainError(f"{what} failed (exit {out.returncode}): {' | '.join(errs[-3:])[:600]}")
    return out.stdout


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive file lock (bootstrap runs once when several test workers ask at the same time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _mmdebstrap_cmd(suite: str, arch: str, mirror: str, out: Path) -> list[str]:
    hooks = []
    if local_cas():
        hooks.append(f'cp {" ".join(str(c) for c in local_cas())} "$1/usr/local/share/ca-certificates/" '
                     '&& chroot "$1" update-ca-certificates >/dev/null')
    hooks.append(f'chroot "$1" python3 -m venv {SHIM_VENV}')
    cmd = ["mmdebstrap", "--variant=minbase", f"--arch={arch}", f"--include={','.join(PACKAGES)}",
           "--dpkgopt=path-exclude=/usr/share/man/*", "--dpkgopt=path-exclude=/usr/share/doc/*",
           "--dpkgopt=path-exclude=/usr/share/locale/*", "--dpkgopt=path-include=/usr/share/locale/locale.alias"]
    if mirror == ARCHIVE_MIRROR:
        cmd.append('--aptopt=Acquire::Check-Valid-Until "false"')
    cmd += [f"--customize-hook={h}" for h in hooks]
    return cmd + [suite, str(out), mirror]


def make_root(suite: str, arch: str, *, archived: bool = False, log: Callable[[str], None] = print) -> Path:
    """The cached root tar of ``suite``/``arch`` (made with mmdebstrap when missing)."""
    if shutil.which("mmdebstrap") is None:
        raise ToolchainError("mmdebstrap is not installed (apt-get install mmdebstrap): it makes the local base images")
    out = cache_root() / f"rootfs-{suite}-{arch}-{recipe_key(suite, arch)}.tar"
    if out.is_file():
        return out
    mirrors = [configured_mirror()] + ([ARCHIVE_MIRROR] if archived else [])
    errors = []
    for mirror in mirrors:
        log(f"mmdebstrap {suite} {arch} from {mirror} (arm64 runs under qemu: minutes)")
        tmp = out.with_suffix(".tmp.tar")
        try:
            _run(_mmdebstrap_cmd(suite, arch, mirror, tmp), 1800, f"mmdebstrap {suite}/{arch} from {mirror}")
        except ToolchainError as e:
            tmp.unlink(missing_ok=True)
            errors.append(str(e))
            continue
        tmp.replace(out)
        return out
    why = "; ".join(errors)
    if archived:
        why += (f" — {suite} is archived: the Debian mirrors dropped it and {ARCHIVE_MIRROR} serves it; "
                "when that host is not reachable from here the base cannot be made")
    raise ToolchainError(why)


def _image_exists(engine: str, ref: str) -> bool:
    return subprocess.run([engine, "image", "exists", ref], capture_output=True).returncode == 0


def import_root(engine: str, root: Path, ref: str, arch: str, base: BaseImage) -> None:
    changes = [f"ENV PATH={SHIM_VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "ENV LANG=C.UTF-8", f"ENV PIP_CERT={CA_BUNDLE}", 'CMD ["python3"]',
               f"LABEL org.deploykit.local-base=\"Debian {base.suite} python3 {base.debian_python}, not the upstream image\""]
    cmd = [engine, "import"]
    if engine == "podman":
        cmd += ["--arch", arch, "--os", "linux"]
    else:
        cmd += ["--platform", f"linux/{arch}"]
    for c in changes:
        cmd += ["--change", c]
    _run(cmd + [str(root), ref], 600, f"{engine} import of {root.name}")


def _digest(engine: str, ref: str) -> str:
    out = subprocess.run([engine, "image", "inspect", "--format", "{{.Digest}}", ref], capture_output=True, text=True)
    return out.stdout.strip()


def _published(base: BaseImage, refs: dict[str, str]) -> bool:
    """Whether podman's manifest list ``base.full_name`` already holds exactly these images."""
    out = subprocess.run(["podman", "manifest", "inspect", base.full_name], capture_output=True, text=True)
    if out.returncode != 0:
        return False
    try:
        have = {m["platform"]["architecture"]: m["digest"] for m in json.loads(out.stdout).get("manifests", [])}
    except (ValueError, KeyError, TypeError):
        return False
    return have == {arch: _digest("podman", ref) for arch, ref in refs.items()}


def publish(engine: str, base: BaseImage, refs: dict[str, str]) -> None:
    """Make ``base.full_name`` (and the short name) resolve to the imported images.

    podman: a manifest list holding each architecture (left alone when it already does: a build may be
    reading it); docker: a plain tag (one architecture)."""
    if engine == "docker":
        ref = next(iter(refs.values()))
        for name in (base.full_name, base.name):
            _run(["docker", "tag", ref, name], 60, f"docker tag {name}")
        return
    if _published(base, refs):
        return
    subprocess.run(["podman", "manifest", "rm", base.full_name], capture_output=True)
    subprocess.run(["podman", "rmi", "--force", base.full_name], capture_output=True)
    _run(["podman", "manifest", "create", base.full_name], 60, f"podman manifest create {base.full_name}")
    for arch, ref in refs.items():
        _run(["podman", "manifest", "add", "--arch", arch, "--os", "linux", base.full_name, f"containers-storage:{ref}"],
             120, f"podman manifest add {arch}")


def bootstrap(names: list[str] | None = None, *, engine: str = "podman", archs: list[str] | None = None,
              log: Callable[[str], None] = print) -> list[BaseResult]:
    """Make the local bases ``names`` (default: all of :data:`LOCAL_BASES`) for their architectures.

    One base failing (e.g. an archived suite) does not stop the others: its result says why."""
    from deploykit.docker.engine import host_platform, platform_arch

    if shutil.which(engine) is None:
        raise ToolchainError(f"{engine} is not installed: the local bases are imported into it")
    unknown = [n for n in names or [] if n not in LOCAL_BASES]
    if unknown:
        raise ToolchainError(f"no local recipe for {', '.join(unknown)}; known: {', '.join(LOCAL_BASES)}")
    host_arch = platform_arch(host_platform())
    results = []
    with locked(cache_root() / "bootstrap.lock"):
        for name in names or list(LOCAL_BASES):
            base = LOCAL_BASES[name]
            res = BaseResult(name, note=base.note())
            wanted = [a for a in base.archs if not archs or a in archs]
            if engine == "docker":  # docker cannot hold a local multi-architecture list without a registry
                wanted = [a for a in wanted if a == host_arch]
            for arch in wanted:
                t0 = time.perf_counter()
                ref = image_ref(base.suite, arch)
                try:
                    if not _image_exists(engine, ref):
                        import_root(engine, make_root(base.suite, arch, archived=base.archived, log=log), ref, arch, base)
                    res.archs[arch] = ref
                except ToolchainError as e:
                    res.archs[arch] = f"failed: {e}"
                    res.error = str(e)
                res.seconds[arch] = round(time.perf_counter() - t0, 1)
            # every architecture imported so far (this run or an earlier one), not only the ones asked for now
            made = {a: image_ref(base.suite, a) for a in base.archs if _image_exists(engine, image_ref(base.suite, a))}
            if made:
                publish(engine, base, made)
            results.append(res)
    return results


def base_image_size(engine: str, ref: str) -> int | None:
    out = subprocess.run([engine, "image", "inspect", "--format", "{{.Size}}", ref], capture_output=True, text=True)
    return int(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip().isdigit() else None
