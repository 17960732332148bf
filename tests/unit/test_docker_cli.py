"""``build --docker`` / ``package --docker`` / doctor through a recording stand-in for the docker binary."""

from __future__ import annotations

import json
import os
import sys
import textwrap

import pytest

import modelzoo
from deploykit import __version__

pytestmark = pytest.mark.unit

FAKE_DOCKER = textwrap.dedent(f"""\
    #!{sys.executable}
    import json, os, sys
    with open(os.environ["FAKE_DOCKER_LOG"], "a") as f:
        f.write(json.dumps(sys.argv[1:]) + "\\n")
    if sys.argv[1:2] == ["info"] and os.environ.get("FAKE_DOCKER_NO_DAEMON"):
        sys.stderr.write("Cannot connect to the Docker daemon at unix:///var/run/docker.sock.\\n")
        sys.exit(1)
    if sys.argv[1:2] == ["--version"]:
        print("Docker version 99.0.0, build fake")
    sys.exit(0)
""")


@pytest.fixture
def fake_docker(tmp_path):
    """Returns (env, log reader); the stand-in is first on PATH."""
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    exe = bindir / "docker"
    exe.write_text(FAKE_DOCKER)
    exe.chmod(0o755)
    log = tmp_path / "docker.log"
    # DEPLOYKIT_ENGINE=docker: these tests are about docker even where podman is installed too
    env = {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "FAKE_DOCKER_LOG": str(log), "DEPLOYKIT_ENGINE": "docker"}

    def calls():
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    return env, calls


@pytest.fixture
def work(tmp_path):
    (tmp_path / "models").mkdir()
    model = modelzoo.small_cnn(tmp_path / "models" / "cnn.onnx")
    return tmp_path, model


def _expected(tmp_path, backend, target, platform=None, extra=()):
    tag = f"deploykit-toolchain-{backend}:{__version__}"
    plat = ["--platform", platform] if platform else []
    build = ["docker", "build", *plat, "-t", tag, str(tmp_path / "out" / ".deploykit-docker" / backend)]
    run = ["docker", "run", "--rm", *plat, "--user", f"{os.getuid()}:{os.getgid()}", "-e", "HOME=/tmp",
           "-e", f"DEPLOYKIT_PLUGINS={os.environ['DEPLOYKIT_PLUGINS']}",
           "-v", f"{tmp_path / 'models'}:/work/model:ro", "-v", f"{tmp_path / 'out'}:/work/out:rw", "-w", "/work/out",
           tag, "build", "/work/model/cnn.onnx", "-o", "/work/out/b", "--target", target, *extra]
    return build, run


def test_dry_run_prints_the_exact_commands_and_writes_the_context(cli, work, fake_docker):
    tmp_path, model = work
    env, calls = fake_docker
    res = cli("build", model, "--target", "host", "-o", tmp_path / "out" / "b", "--docker", "--dry-run",
              "--precision", "fp32", "--input-shape", "x:1,3,8,8", env=env)
    assert res.returncode == 0, res.stderr
    build, run = _expected(tmp_path, "onnxruntime", "host", extra=["--precision", "fp32", "--input-shape", "x:1,3,8,8"])
    import shlex

    assert res.stdout.splitlines() == [shlex.join(build), shlex.join(run)]
    assert calls() == []  # nothing built, docker not even asked
    assert (tmp_path / "out" / ".deploykit-docker" / "onnxruntime" / "Dockerfile").is_file()
    assert not (tmp_path / "out" / "b").exists()


def test_build_runs_docker_build_then_run_as_the_calling_user(cli, work, fake_docker):
    tmp_path, model = work
    env, calls = fake_docker
    res = cli("build", model, "--target", "host", "-o", tmp_path / "out" / "b", "--docker", "--platform", "linux/amd64", env=env)
    assert res.returncode == 0, res.stderr
    build, run = _expected(tmp_path, "onnxruntime", "host", platform="linux/amd64")
    assert calls()[-2:] == [build[1:], run[1:]]
    assert ["info", "--format", "{{.ServerVersion}}"] in calls()
    assert (tmp_path / "out").is_dir()  # created by us before docker run, so not root-owned


def test_edgetpu_toolchain_is_amd64_only(cli, work, fake_docker):
    tmp_path, model = work
    env, _ = fake_docker
    env = {**env, "DEPLOYKIT_PLUGINS": "profiles,onnxruntime,tflite,edgetpu"}
    res = cli("build", model, "--target", "coral-usb", "-o", tmp_path / "out" / "b", "--docker", "--dry-run", env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0].startswith("docker build --platform linux/amd64 -t deploykit-toolchain-edgetpu:")
    df = (tmp_path / "out" / ".deploykit-docker" / "edgetpu" / "Dockerfile").read_text()
    assert "coral-edgetpu-stable" in df and "edgetpu-compiler=16.0" in df
    res = cli("build", model, "--target", "coral-usb", "-o", tmp_path / "out" / "b", "--docker", "--dry-run",
              "--platform", "linux/arm64", env=env)
    assert res.returncode != 0 and "linux/amd64" in res.stderr and "Traceback" not in res.stderr


def test_docker_context_option(cli, work, fake_docker):
    tmp_path, model = work
    env, _ = fake_docker
    ctx = tmp_path / "ctx"
    res = cli("build", model, "--target", "host", "-o", tmp_path / "out" / "b", "--docker", "--dry-run",
              "--docker-context", ctx, env=env)
    assert res.returncode == 0, res.stderr
    assert (ctx / "Dockerfile").is_file() and res.stdout.splitlines()[0].endswith(f" {ctx}")


def test_daemon_down_writes_everything_and_says_what_to_do(cli, work, fake_docker):
    tmp_path, model = work
    env, calls = fake_docker
    res = cli("build", model, "--target", "host", "-o", tmp_path / "out" / "b", "--docker",
              env={**env, "FAKE_DOCKER_NO_DAEMON": "1"})
    assert res.returncode == 3
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the Docker daemon is not reachable")
    assert (tmp_path / "out" / ".deploykit-docker" / "onnxruntime" / "Dockerfile").is_file()
    assert not any(c[:1] in (["build"], ["run"]) for c in calls())


def test_docker_missing_says_what_to_install(cli, work, tmp_path):
    _, model = work
    empty = tmp_path / "emptybin"
    empty.mkdir()
    res = cli("build", model, "--target", "host", "-o", tmp_path / "out" / "b", "--docker", env={"PATH": str(empty)})
    assert res.returncode == 3
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "docker is not installed" in lines[0] and "install Docker Engine" in lines[0]
    assert (tmp_path / "out" / ".deploykit-docker" / "onnxruntime" / "Dockerfile").is_file()


def test_docker_options_need_docker(cli, work):
    tmp_path, model = work
    res = cli("build", model, "--target", "host", "-o", tmp_path / "b", "--dry-run")
    assert res.returncode == 2 and "only apply with --docker" in res.stderr


def _fake_bundle(path, target="rpi4"):
    """A bundle package accepts: a valid manifest whose files match (package checks both)."""
    import hashlib

    path.mkdir(parents=True)
    (path / "Dockerfile").write_text("FROM python:3.11-slim-bookworm\n")
    spec = {"name": "x", "shape": [1, 4], "dtype": "float32"}
    (path / "manifest.json").write_text(json.dumps({
        "schema_version": 1, "deploykit_version": "0", "target": target, "backend": "tflite", "precision": "int8",
        "files": {"Dockerfile": hashlib.sha256((path / "Dockerfile").read_bytes()).hexdigest()},
        "inputs": [spec], "outputs": [{**spec, "name": "y"}],
        "source_model": {"file": "m.onnx", "sha256": "ab" * 32}}))
    return path


def test_package_dry_run_and_build_use_buildx_with_the_profile_platform(cli, tmp_path, fake_docker):
    env, calls = fake_docker
    bundle = _fake_bundle(tmp_path / "bundle")
    expected = ["docker", "buildx", "build", "--platform", "linux/arm64", "-t", "deploykit-rpi4-int8:" + "ab" * 6,
                "--load", str(bundle)]
    res = cli("package", bundle, "--docker", "--dry-run", env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [" ".join(expected)] and calls() == []
    res = cli("package", bundle, "--docker", "--tag", "me/pi:1", env=env)
    assert res.returncode == 0, res.stderr
    assert calls()[-1] == expected[1:5] + ["-t", "me/pi:1", "--load", str(bundle)]
    assert ["buildx", "version"] in calls()


def test_package_without_daemon_or_bundle(cli, tmp_path, fake_docker):
    env, _ = fake_docker
    bundle = _fake_bundle(tmp_path / "bundle")
    res = cli("package", bundle, "--docker", env={**env, "FAKE_DOCKER_NO_DAEMON": "1"})
    assert res.returncode == 3 and "Docker daemon is not reachable" in res.stderr
    res = cli("package", tmp_path, "--docker", "--dry-run", env=env)
    assert res.returncode != 0 and "is it a deploykit bundle" in res.stderr


def test_doctor_reports_docker_and_per_target_needs(cli, fake_docker):
    env, _ = fake_docker
    res = cli("doctor", "--json", env={**env, "FAKE_DOCKER_NO_DAEMON": "1"})
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["docker"]["cli"].startswith("Docker version 99") and info["docker"]["daemon"] is None
    assert "qemu_binfmt" in info["docker"] and "buildx" in info["docker"]
    rows = {r["target"]: r for r in info["docker_targets"]}
    assert rows["host"]["device_platform"] == "linux/amd64"
    assert "a running Docker daemon" in rows["rpi4"]["needs"]
