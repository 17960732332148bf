"""The container-engine abstraction (docker vs podman), its auto-detection, the symptom -> fix messages,
the build-log parser of the image tests, and the local-base recipes (no engine needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploykit.docker.engine import DockerStatus, Engine, auto_engine_name, choose_engine, fix_for
from deploykit.docker.imagecheck import parse_build_log, run_args_for

pytestmark = pytest.mark.unit


def test_command_forms_and_same_tag_for_both_engines():
    ctx = Path("/ctx")
    assert Engine("docker").build_command(ctx, "t:1", "linux/arm64", device=True) == [
        "docker", "buildx", "build", "--platform", "linux/arm64", "-t", "t:1", "--load", "/ctx"]
    assert Engine("docker").build_command(ctx, "t:1", None) == ["docker", "build", "-t", "t:1", "/ctx"]
    assert Engine("podman").build_command(ctx, "t:1", "linux/arm64", device=True) == [
        "podman", "build", "--platform", "linux/arm64", "-t", "t:1", "/ctx"]
    assert Engine("podman", pull_never=True).build_command(ctx, "t:1", None) == [
        "podman", "build", "--pull=never", "-t", "t:1", "/ctx"]
    assert Engine("podman").run_prefix("linux/amd64") == ["podman", "run", "--rm", "--platform", "linux/amd64"]


@pytest.mark.parametrize("cli,daemon,podman,expected", [
    ("Docker 28", "28", "podman 4", "docker"),      # a docker daemon answers: docker
    ("Docker 28", None, "podman 4", "podman"),      # docker CLI without daemon, podman there: podman
    (None, None, "podman 4", "podman"),
    ("Docker 28", None, None, "docker"),            # only the docker CLI: docker (its error names the daemon)
    (None, None, None, None),
])
def test_auto_detection_order(cli, daemon, podman, expected):
    assert auto_engine_name(DockerStatus(cli=cli, daemon=daemon, podman=podman)) == expected


def test_choose_engine_flag_env_and_errors(monkeypatch):
    monkeypatch.setenv("DEPLOYKIT_ENGINE", "podman")
    monkeypatch.setenv("DEPLOYKIT_PULL", "never")
    assert choose_engine() == Engine("podman", pull_never=True)
    assert choose_engine("docker").name == "docker"
    from deploykit.errors import DeployError

    with pytest.raises(DeployError, match="use docker or podman"):
        choose_engine("containerd")
    monkeypatch.delenv("DEPLOYKIT_ENGINE")
    assert choose_engine(status=DockerStatus()).name == "docker"  # neither: docker, whose require() says what to install


@pytest.mark.parametrize("symptom,fix", [
    ("Error: crun: cgroups in hybrid mode not supported", 'runtime = "runc"'),
    ("setrlimit RLIMIT_NOFILE: Operation not permitted", "default_ulimits"),
    ("exec /bin/sh: exec format error", "qemu-user-static"),
    ("SSL: CERTIFICATE_VERIFY_FAILED certificate verify failed: self-signed certificate in certificate chain",
     "images bootstrap"),
    ("Error: creating build container: python:3.11-slim-bookworm: image not known", "images bootstrap"),
])
def test_known_symptoms_name_their_fix(symptom, fix):
    assert fix in fix_for(symptom)
    assert fix_for("some other failure") == ""


PODMAN_LOG = """STEP 1/6: FROM python:3.11-slim-bookworm
STEP 2/6: WORKDIR /bundle
--> Using cache 4f2e
STEP 3/6: RUN curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg | gpg --dearmor
curl: (6) Could not resolve host: packages.cloud.google.com
Error: building at STEP "RUN curl ...": while running runtime: exit status 6
"""
BUILDX_LOG = """#5 [1/4] FROM docker.io/library/python:3.11-slim-bookworm
#6 [2/4] COPY requirements.txt .
#6 CACHED
#7 [3/4] RUN pip install --no-cache-dir -r requirements.txt
#7 ERROR: process "/bin/sh -c pip install" did not complete successfully: exit code: 1
"""


def test_build_log_parser_names_the_step_that_stopped():
    out = parse_build_log(PODMAN_LOG, 6, 2.0)
    assert not out.ok and (out.step, out.steps) == (3, 6) and "packages.cloud.google.com" in out.step_text
    assert "Could not resolve host" in out.reason and out.cached_steps == 1
    assert out.summary().startswith("failed at step 3/6 (RUN curl")
    out = parse_build_log(BUILDX_LOG, 1, 1.0)
    assert (out.step, out.steps, out.cached_steps) == (3, 4, 1) and out.step_text.startswith("RUN pip")
    assert parse_build_log(PODMAN_LOG, 0, 1.0).summary() == "built"


def test_emulated_arm64_containers_get_the_boards_core_and_cpuinfo(tmp_path, monkeypatch):
    """Same table as `deploykit verify --emulate` (deploykit/emulate/cpus.py, profiles' [emulation])."""
    import deploykit.docker.engine as engine_mod

    monkeypatch.setattr(engine_mod, "host_platform", lambda: "linux/amd64")
    args = run_args_for("rpi5", "linux/arm64", tmp_path)
    assert args[:2] == ["-e", "QEMU_CPU=cortex-a76"] and args[3].endswith(":/proc/cpuinfo:ro")
    text = Path(args[3].split(":")[0]).read_text()
    assert text.count("processor\t:") == 4 and "CPU part\t: 0xd0b" in text and "asimdhp" in text
    assert run_args_for("rpi4", "linux/amd64", tmp_path) == []
    assert run_args_for("host", "linux/arm64", tmp_path)[1] == "QEMU_CPU=cortex-a72"  # no board: a generic arm64 core


def test_toolchain_run_on_emulated_arm64_gets_a_board_cpu(tmp_path, monkeypatch):
    import deploykit.docker.engine as engine_mod
    from deploykit.docker.toolchain import plan_build
    from deploykit.plugins import default_registry

    monkeypatch.setattr(engine_mod, "host_platform", lambda: "linux/amd64")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    plan = plan_build(backend="tflite", model=tmp_path / "m.onnx", output=tmp_path / "out", inner_args=[],
                      platform="linux/arm64", profile=default_registry().targets["rpi4"])
    assert "QEMU_CPU=cortex-a72" in plan.run_cmd
    native = plan_build(backend="tflite", model=tmp_path / "m.onnx", output=tmp_path / "out", inner_args=[])
    assert not any(a.startswith("QEMU_CPU") for a in native.run_cmd)


def test_local_bases_cover_the_python_bases_the_dockerfiles_name():
    import importlib

    from deploykit.docker.bases import LOCAL_BASES
    from deploykit.docker.toolchain import TOOLCHAIN_IMAGES
    from deploykit.plugins import Registry

    mods = ("deploykit_profiles", "deploykit_onnxruntime", "deploykit_tflite", "deploykit_edgetpu",
            "deploykit_tensorrt", "deploykit_openvino")
    reg = Registry.from_plugins([importlib.import_module(m) for m in mods])
    named = {p.docker_base_image for p in reg.targets.values()} | {i.base_image for i in TOOLCHAIN_IMAGES.values()}
    assert {n for n in named if n.startswith("python:")} <= set(LOCAL_BASES)
    assert "NOT 3.10" in LOCAL_BASES["python:3.10-slim-bookworm"].note()
    assert "not the upstream image" in LOCAL_BASES["python:3.11-slim-bookworm"].note()


def test_toolchain_image_installs_requirements_before_the_code(tmp_path):
    from deploykit.docker.toolchain import TOOLCHAIN_IMAGES, write_context

    dockerfile = write_context(TOOLCHAIN_IMAGES["openvino"], tmp_path / "ctx").read_text()
    reqs = (tmp_path / "ctx" / "requirements.txt").read_text().splitlines()
    assert any(r.startswith("onnx>=") for r in reqs) and any(r.startswith("openvino") for r in reqs)
    order = [dockerfile.index(s) for s in ("/opt/ov2022/bin/pip install", "COPY requirements.txt", "COPY src/",
                                           "--no-deps")]
    assert order == sorted(order)


def test_images_bootstrap_without_the_engine_is_one_error_line(cli, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    res = cli("images", "bootstrap", "--engine", "podman", env={"PATH": str(empty)})
    assert res.returncode != 0 and "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: podman is not installed"), res.stderr


def test_build_docker_with_podman_dry_run_prints_podman_commands(cli, tmp_path):
    import modelzoo

    model = modelzoo.small_cnn(tmp_path / "cnn.onnx")
    res = cli("build", model, "--target", "host", "-o", tmp_path / "out" / "b", "--docker", "--engine", "podman",
              "--dry-run", env={"DEPLOYKIT_PULL": "never"})
    assert res.returncode == 0, res.stderr
    build, run = res.stdout.splitlines()
    assert build.startswith("podman build --pull=never -t deploykit-toolchain-onnxruntime:")
    assert run.startswith("podman run --rm --user ")
