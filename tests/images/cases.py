"""The image matrix the tests (``tests/images``) and ``benchmarks/images/run.py`` build, and how each case runs.

A case either must build and pass its check, or must stop at a named step (what this machine cannot
reach: the Coral apt repository, NVIDIA's registry, an archived Debian suite, a Python the local base
lacks). A stop at any *other* step is a failure: the steps before the named one are proven to work.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import modelzoo
from clirun import python_command, run_cli

ENGINE = "podman"
PULL_NEVER = {"DEPLOYKIT_PULL": "never"}  # local bases only (deploykit images bootstrap); nothing is pulled
AMD64_BASES = ["python:3.11-slim-bookworm", "python:3.10-slim-bookworm"]
ARM64_BASES = ["python:3.11-slim-bookworm", "python:3.7-slim-buster"]


@dataclass(frozen=True)
class Case:
    kind: str                  # "device" (bundle image) or "toolchain" (build image)
    name: str                  # device: target; toolchain: backend (+ variant)
    target: str
    precision: str
    plugins: str               # DEPLOYKIT_PLUGINS for the builds
    platform: str = "linux/amd64"
    stops_at: str = ""         # regex on the step where it must stop here ("" = must build and pass)
    why: str = ""              # why it stops there (for the results table)
    no_side_venv: bool = False  # toolchain variant without its second Python environment

    @property
    def arch(self) -> str:
        return self.platform.split("/")[1]

    @property
    def tag(self) -> str:
        return f"localhost/deploykit-imagetest-{self.kind}-{self.name}:{self.precision}-{self.arch}"


CORAL = (r"packages\.cloud\.google\.com", "the Coral apt repository (packages.cloud.google.com) is not reachable here")
DEVICE_CASES = [
    Case("device", "host", "host", "fp32", "profiles,onnxruntime"),
    Case("device", "intel-cpu", "intel-cpu", "int8", "profiles,openvino"),
    Case("device", "rpi4", "rpi4", "int8", "profiles,tflite", "linux/arm64"),
    Case("device", "rpi5", "rpi5", "fp16", "profiles,tflite", "linux/arm64"),
    # base python:3.7-slim-buster: buster is archived (deb.debian.org dropped it; archive.debian.org does not
    # resolve here), so the FROM step stops it; where the base exists it must stop at the Coral step instead
    Case("device", "coral-devboard", "coral-devboard", "int8", "profiles,tflite,edgetpu", "linux/arm64",
         r"^FROM python:3\.7-slim-buster|" + CORAL[0],
         "no local python:3.7-slim-buster (Debian buster is archived; archive.debian.org not reachable), "
         "and past it " + CORAL[1]),
]
TOOLCHAIN_CASES = [
    Case("toolchain", "onnxruntime", "host", "fp32", "profiles,onnxruntime"),
    Case("toolchain", "tflite", "rpi4", "int8", "profiles,tflite"),
    Case("toolchain", "tensorrt", "jetson-orin-nano", "fp16", "profiles,tensorrt"),
    Case("toolchain", "openvino-no-ov2022", "intel-cpu", "int8", "profiles,openvino", no_side_venv=True),
    Case("toolchain", "openvino", "intel-cpu", "int8", "profiles,openvino", stops_at=r"/opt/ov2022",
         why="openvino==2022.3.1 has no wheel for Python 3.11: the local stand-in for python:3.10-slim-bookworm is "
             "Debian bookworm's 3.11 (the upstream 3.10 image would pass this step)"),
    Case("toolchain", "edgetpu", "coral-usb", "int8", "profiles,tflite,edgetpu", stops_at=CORAL[0], why=CORAL[1]),
]


def model_and_calibration(work: Path) -> tuple[Path, Path]:
    work.mkdir(parents=True, exist_ok=True)
    model = modelzoo.small_cnn(work / "cnn.onnx")
    calib = work / "calib.npy"
    np.save(calib, np.random.default_rng(3).standard_normal((16, 3, 16, 16)).astype(np.float32))
    return model, calib


def build_bundle(case: Case, work: Path, out: Path) -> Path:
    """The case's bundle, built here (outside any image)."""
    model, calib = model_and_calibration(work)
    res = run_cli("build", model, "--target", case.target, "--precision", case.precision, "--calibration", calib,
                  "-o", out, env={"DEPLOYKIT_PLUGINS": case.plugins})
    assert res.returncode == 0, f"bundle build for {case.target} failed: {res.stderr[-2000:]}"
    return out


def _stop_check(case: Case, outcome) -> str:
    """"" when the outcome is what the case expects on this machine, else why not."""
    if not case.stops_at:
        return "" if outcome.ok else f"expected to build; {outcome.summary()}"
    if outcome.ok:
        return f"expected to stop at /{case.stops_at}/ but it built (update the case: {case.why} no longer holds?)"
    if not re.search(case.stops_at, outcome.step_text):
        return f"expected to stop at /{case.stops_at}/ ({case.why}); {outcome.summary()}"
    return ""


def run_device_case(case: Case, work: Path, rebuild: bool = True) -> dict:
    """Bundle -> ``deploykit package --docker`` (podman, local bases) -> runner on the stored samples in the image."""
    from deploykit.docker.imagecheck import build_image, image_size_mb, verify_in_image

    bundle = build_bundle(case, work, work / f"bundle-{case.name}")
    cmd = [*python_command(), "-m", "deploykit.cli.app", "package", str(bundle), "--docker", "--engine", ENGINE,
           "--tag", case.tag]
    env = {**PULL_NEVER, "DEPLOYKIT_PLUGINS": case.plugins}
    outcome = build_image(cmd, env=env)
    row = {"case": case, "outcome": outcome, "problem": _stop_check(case, outcome)}
    if outcome.ok:
        row["size_mb"] = image_size_mb(ENGINE, case.tag)
        if rebuild:
            row["rebuild"] = build_image(cmd, env=env)
        row["verify"] = verify_in_image(ENGINE, case.tag, bundle, case.platform, case.target)
    return row


def run_toolchain_case(case: Case, work: Path, rebuild: bool = True) -> dict:
    """Toolchain image build (podman, local bases), then ``deploykit build`` in it vs the same build here."""
    from deploykit import __version__
    from deploykit.docker.engine import Engine
    from deploykit.docker.imagecheck import build_image, bundle_files, image_size_mb
    from deploykit.plugins import default_registry
    from deploykit.docker.toolchain import TOOLCHAIN_IMAGES, plan_build, write_context

    model, calib = model_and_calibration(work)
    outside = build_bundle(case, work, work / "outside" / "b")
    image = TOOLCHAIN_IMAGES[case.name.split("-")[0]]
    if case.no_side_venv:
        image = dataclasses.replace(image, side_venv=None)
    plan = plan_build(backend=image.backend, model=model, output=work / "inside" / "b", calibration=calib,
                      inner_args=["--target", case.target, "--precision", case.precision],
                      context_dir=work / "ctx", env={"DEPLOYKIT_PLUGINS": case.plugins}, platform=case.platform,
                      engine=Engine(ENGINE, pull_never=True), profile=default_registry().targets[case.target])
    default_tag = image.tag(__version__)  # the case's own tag instead (a variant must not take the real one's)
    build_cmd = [case.tag if w == default_tag else w for w in plan.build_cmd]
    run_cmd = [case.tag if w == default_tag else w for w in plan.run_cmd]
    write_context(image, plan.context_dir)
    outcome = build_image(build_cmd)
    row = {"case": case, "outcome": outcome, "problem": _stop_check(case, outcome)}
    if not outcome.ok:
        return row
    row["size_mb"] = image_size_mb(ENGINE, case.tag)
    if rebuild:
        row["rebuild"] = build_image(build_cmd)
    for d in plan.mkdirs:
        d.mkdir(parents=True, exist_ok=True)
    # emulated arm64: plan_build gave the container the board's core and /proc/cpuinfo (else LiteRT's
    # verification segfaults under qemu: it reads the host's x86 cpuinfo; facts/arm64-emulation.md trap 3)
    t0 = time.perf_counter()
    res = subprocess.run(run_cmd, capture_output=True, text=True, timeout=1800)
    row["run_seconds"] = round(time.perf_counter() - t0, 1)
    if res.returncode != 0:
        row["verify"] = {"status": "error", "problems": [f"deploykit build in the image: exit {res.returncode}: "
                                                         f"{res.stderr.strip()[-400:]}"]}
        return row
    a, b = bundle_files(outside), bundle_files(work / "inside" / "b")
    differ = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    row["verify"] = {"status": "passed" if not differ else "failed", "identical_files": len(a) - len(differ),
                     "files": len(a), "differ": differ}
    shutil.rmtree(work / "ctx" / "src", ignore_errors=True)
    return row
