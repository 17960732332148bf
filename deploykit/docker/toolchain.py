"""Per-backend toolchain images and the docker command lines of ``deploykit build --docker``.

The image holds deploykit + one backend's host toolchain (pinned); the build runs in it as the
calling user, with the model folder mounted read-only and the output's parent folder read-write
(the bundle is staged in a sibling temp folder and renamed into place, so the parent must be writable).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from deploykit.errors import DeployError

MODEL_MOUNT = "/work/model"
CALIB_MOUNT = "/work/calibration"
OUT_MOUNT = "/work/out"
CONTEXT_DIRNAME = ".deploykit-docker"


@dataclass(frozen=True)
class ToolchainImage:
    """A build image for one backend: pinned base image and package versions."""

    backend: str
    description: str
    base_image: str                 # pinned by tag
    extra: str = ""                 # deploykit extra to install: tflite, openvino, ...
    pins: tuple[str, ...] = ()      # exact versions of the toolchain's Python packages
    coral_apt: str = ""             # edgetpu-compiler apt version ("" = no Coral repository)
    platform: str | None = None     # forced docker platform (None = the caller's --platform or native)
    # (venv path, env variable pointing at its python, pins): a second Python environment, e.g.
    # OpenVINO 2022.3 for NCS2 IR conversion/verification, which cannot share deploykit's interpreter
    side_venv: tuple[str, str, tuple[str, ...]] | None = None

    def tag(self, version: str) -> str:
        return f"deploykit-toolchain-{self.backend}:{version}"


# Versions match the profiles deploykit verifies with: host (onnxruntime), rpi4/rpi5 (ai-edge-litert),
# intel-cpu (openvino); tests/unit/test_docker_toolchain.py checks they agree.
_PY = "python:3.11-slim-bookworm"
TOOLCHAIN_IMAGES: dict[str, ToolchainImage] = {
    img.backend: img
    for img in (
        ToolchainImage("onnxruntime", "ONNX Runtime CPU (host target, fp32 reference)", _PY,
                       pins=("onnxruntime==1.32.0",)),
        ToolchainImage("tflite", "LiteRT (ai-edge-litert) for Raspberry Pi targets", _PY, extra="tflite",
                       pins=("ai-edge-litert==2.3.0",)),
        ToolchainImage("edgetpu", "x86-64 Debian 12 + Coral apt repository edgetpu_compiler + LiteRT", _PY,
                       extra="tflite", pins=("ai-edge-litert==2.3.0",), coral_apt="16.0", platform="linux/amd64"),
        # Python 3.10: the newest Python that OpenVINO 2022.3 (the last release with the NCS2 plugin)
        # has wheels for, so the ncs2 IR is converted and verified with 2022.3 inside the image too.
        ToolchainImage("openvino", "OpenVINO (Intel CPU / NPU) + OpenVINO 2022.3 for NCS2 IR",
                       "python:3.10-slim-bookworm", extra="openvino", pins=("openvino==2026.4.1",),
                       platform="linux/amd64",
                       side_venv=("/opt/ov2022", "DEPLOYKIT_OV2022_PYTHON", ("openvino==2022.3.1", "numpy<1.25"))),
        # TensorRT engines are built on the Jetson (build_engine.sh in the bundle); lowering needs ONNX only.
        ToolchainImage("tensorrt", "ONNX + ONNX Runtime (TensorRT engines are built on the Jetson itself)", _PY,
                       pins=("onnxruntime==1.32.0",)),
    )
}


def toolchain_for_backend(backend: str) -> ToolchainImage:
    if backend not in TOOLCHAIN_IMAGES:
        raise DeployError(f"no toolchain image for the {backend!r} backend; known: {', '.join(sorted(TOOLCHAIN_IMAGES))} "
                          "(build without --docker)")
    return TOOLCHAIN_IMAGES[backend]


def source_tree() -> Path | None:
    """The deploykit source checkout this module runs from, if it is one (pyproject.toml beside it)."""
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / "deploykit" / "__init__.py").is_file():
        return root
    return None


def render_dockerfile(image: ToolchainImage, source: str = "source") -> str:
    """The toolchain Dockerfile; ``source`` is ``"source"`` (copied src/ tree) or ``"pypi"``."""
    from deploykit import __version__
    from deploykit.bundle.render import environment

    env = environment("deploykit.docker")
    return env.get_template("toolchain.Dockerfile.j2").render(
        image=image, version=__version__, source=source, extra=f"[{image.extra}]" if image.extra else "")


def source_requirements(root: Path, extra: str = "") -> list[str]:
    """deploykit's dependencies (and its ``extra``'s) from ``root/pyproject.toml``: the image installs them in a
    layer of their own before the source, so a code change does not reinstall them."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = list(project.get("dependencies", []))
    reqs += project.get("optional-dependencies", {}).get(extra, []) if extra else []
    return list(dict.fromkeys(reqs))


_SOURCE_PARTS = ("pyproject.toml", "README.md", "deploykit", "plugins", "targets")
CONTEXT_MARKER = ".deploykit-context"


def write_context(image: ToolchainImage, context_dir: Path) -> Path:
    """Write the Dockerfile (and a clean copy of the deploykit source, when running from one).

    ``context_dir`` must be new, empty, or a context deploykit wrote before (it holds
    :data:`CONTEXT_MARKER`): the ``src/`` copy is replaced, and a user's folder is never touched.
    """
    from deploykit.errors import DeployError

    if context_dir.is_symlink() or (context_dir.exists() and not context_dir.is_dir()):
        raise DeployError(f"docker context {str(context_dir)!r} is not a folder; choose another --docker-context")
    if context_dir.is_dir() and any(context_dir.iterdir()) and not (context_dir / CONTEXT_MARKER).is_file():
        raise DeployError(f"docker context {str(context_dir)!r} is a folder deploykit did not write (its files would be "
                          "replaced); choose a new or empty --docker-context")
    context_dir.mkdir(parents=True, exist_ok=True)
    (context_dir / CONTEXT_MARKER).write_text("written by deploykit build --docker\n", encoding="utf-8")
    root = source_tree()
    src = context_dir / "src"
    if src.exists():
        shutil.rmtree(src)
    if root is not None:
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache")
        src.mkdir()
        for part in _SOURCE_PARTS:
            p = root / part
            if p.is_dir():
                shutil.copytree(p, src / part, ignore=ignore)
            elif p.is_file():
                shutil.copy2(p, src / part)
        (context_dir / "requirements.txt").write_text(
            "".join(f"{r}\n" for r in source_requirements(root, image.extra)), encoding="utf-8")
    dockerfile = context_dir / "Dockerfile"
    dockerfile.write_text(render_dockerfile(image, "source" if root is not None else "pypi"), encoding="utf-8")
    (context_dir / ".dockerignore").write_text(f"**/__pycache__\n**/*.pyc\n{CONTEXT_MARKER}\n", encoding="utf-8")
    return dockerfile


@dataclass
class DockerBuildPlan:
    """The two engine commands (build the image, run the build in it) of one ``deploykit build --docker``."""

    image: ToolchainImage
    context_dir: Path
    build_cmd: list[str]
    run_cmd: list[str]
    mkdirs: list[Path] = field(default_factory=list)   # created before `docker run` (else docker makes them root-owned)


def _platform_for(image: ToolchainImage, requested: str | None) -> str | None:
    if image.platform and requested and requested != image.platform:
        raise DeployError(f"the {image.backend} toolchain only exists for {image.platform} (got --platform {requested}); "
                          f"drop --platform or use {image.platform}")
    return requested or image.platform


def plan_build(*, backend: str, model: Path, output: Path, inner_args: list[str], calibration: Path | None = None,
               platform: str | None = None, context_dir: Path | None = None, uid: int | None = None,
               gid: int | None = None, env: dict[str, str] | None = None, engine=None, profile=None) -> DockerBuildPlan:
    """Engine commands that build ``model`` into ``output`` inside the backend's toolchain image
    (``engine``: a :class:`deploykit.docker.engine.Engine`, docker when not given).

    ``inner_args`` are the remaining ``deploykit build`` options (everything but MODEL, -o and
    --calibration, which are rewritten to the mount points).
    """
    from deploykit import __version__
    from deploykit.docker.engine import Engine, host_platform

    engine = engine or Engine("docker")
    image = toolchain_for_backend(backend)
    plat = _platform_for(image, platform)
    model = model.absolute()
    output = output.absolute()
    ctx = (context_dir.absolute() if context_dir else output.parent / CONTEXT_DIRNAME / backend)
    tag = image.tag(__version__)
    build_cmd = engine.build_command(ctx, tag, plat)
    uid = os.getuid() if uid is None else uid
    gid = os.getgid() if gid is None else gid
    run_cmd = engine.run_prefix(plat)
    run_cmd += ["--user", f"{uid}:{gid}", "-e", "HOME=/tmp"]
    for k, v in sorted((env or {}).items()):
        run_cmd += ["-e", f"{k}={v}"]
    if plat and plat.endswith("arm64") and not host_platform().endswith("arm64"):
        # LiteRT verifies inside the emulated container: give it a board's core and cpuinfo (it crashes with the host's)
        from deploykit.emulate.cpus import container_cpu_args

        run_cmd += container_cpu_args(profile)
    run_cmd += ["-v", f"{model.parent}:{MODEL_MOUNT}:ro"]
    args = ["build", f"{MODEL_MOUNT}/{model.name}", "-o", f"{OUT_MOUNT}/{output.name}"]
    if calibration is not None:
        calibration = calibration.absolute()
        run_cmd += ["-v", f"{calibration.parent}:{CALIB_MOUNT}:ro"]
        args += ["--calibration", f"{CALIB_MOUNT}/{calibration.name}"]
    run_cmd += ["-v", f"{output.parent}:{OUT_MOUNT}:rw", "-w", OUT_MOUNT, tag]
    return DockerBuildPlan(image=image, context_dir=ctx, build_cmd=build_cmd, run_cmd=run_cmd + args + list(inner_args),
                           mkdirs=[output.parent])
