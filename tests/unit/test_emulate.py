"""Emulated devices without emulating anything: profiles' [emulation] tables, the device's cpuinfo,
why a machine cannot emulate (the traps of facts/arm64-emulation.md and the message the user gets),
and the device environment the Dockerfile and the emulated root share."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from deploykit.devenv import PIP_FLAGS, VENV, device_env, requirement_lines
from deploykit.emulate import root as emroot
from deploykit.emulate.cpus import ARM_CPUS, arm_cpu
from deploykit.errors import DeployError, TargetError
from deploykit.targets import profile_from_dict

pytestmark = pytest.mark.unit


def _rpi4_dict() -> dict:
    return {
        "target": {"name": "pi", "description": "a Pi", "backend": "tflite", "default_precision": "fp32",
                   "precisions": ["fp32"]},
        "device": {"arch": "aarch64", "cpu": "Cortex-A72", "cores": 4, "memory_mb": 4096, "os": "bookworm",
                   "python": "3.11"},
        "runtime": {"name": "ai-edge-litert", "version": "2.3.0", "requirements": ["ai-edge-litert==2.3.0"]},
        "docker": {"base_image": "python:3.11-slim-bookworm", "platform": "linux/arm64"},
        "options": {"fallback_runtime": "tflite-runtime==2.14.0"},
        "emulation": {"cpu": "cortex-a72", "debian": "bookworm"},
    }


def test_profile_emulation_table_is_read_and_optional():
    p = profile_from_dict(_rpi4_dict())
    assert p.emulation == {"cpu": "cortex-a72", "debian": "bookworm"}
    d = _rpi4_dict()
    del d["emulation"]
    assert profile_from_dict(d).emulation == {}


def test_profile_refuses_qemu_cpu_max():
    """Trap 4: QEMU's 'max' CPU offers SME and XNNPACK int8 is wrong on it."""
    d = _rpi4_dict()
    d["emulation"]["cpu"] = "max"
    with pytest.raises(TargetError, match="SME"):
        profile_from_dict(d)
    with pytest.raises(DeployError, match="SME, which no edge board has"):
        arm_cpu("max,sve=off")


def test_profile_emulation_errors_name_the_field():
    d = _rpi4_dict()
    d["emulation"]["cores"] = 4
    with pytest.raises(TargetError, match=r"emulation.cores' is unknown"):
        profile_from_dict(d)
    d = _rpi4_dict()
    del d["emulation"]["debian"]
    with pytest.raises(TargetError, match=r"emulation.debian' is missing"):
        profile_from_dict(d)
    d = copy.deepcopy(_rpi4_dict())
    d["device"]["arch"] = "x86_64"
    d["docker"]["platform"] = "linux/amd64"
    with pytest.raises(TargetError, match="only supported for aarch64"):
        profile_from_dict(d)


def test_builtin_profiles_emulate_the_device_cores():
    from deploykit.plugins import default_registry

    targets = default_registry().targets
    assert targets["rpi4"].emulation["cpu"] == "cortex-a72"
    assert targets["rpi5"].emulation["cpu"] == "cortex-a76"
    assert targets["coral-devboard"].emulation["cpu"] == "cortex-a53"
    assert "note" in targets["coral-devboard"].emulation  # stand-in runtime, said so
    assert not targets["host"].emulation and not targets["jetson-orin-nano"].emulation


@pytest.mark.parametrize("cpu,part,has_fp16", [("cortex-a72", "0xd08", False), ("cortex-a76", "0xd0b", True),
                                               ("cortex-a53", "0xd03", False)])
def test_cpuinfo_is_the_devices(cpu, part, has_fp16):
    text = ARM_CPUS[cpu].cpuinfo(4)
    assert text.count("processor\t:") == 4
    assert f"CPU part\t: {part}" in text
    assert "CPU implementer\t: 0x41" in text
    assert ("asimdhp" in text) is has_fp16
    assert "sme" not in text


def _binfmt(tmp_path: Path, entry: str | None, mounted: bool = True) -> Path:
    d = tmp_path / "binfmt_misc"
    d.mkdir(parents=True)
    if mounted:
        (d / "status").write_text("enabled\n")
    if entry is not None:
        (d / "qemu-aarch64").write_text(entry)
    return d


@pytest.fixture
def on_x86(monkeypatch):
    monkeypatch.setattr(emroot.platform, "machine", lambda: "x86_64")


def test_missing_binfmt_says_how_to_mount_it(tmp_path, on_x86):
    """Trap 1: binfmt_misc not mounted -> 'Exec format error'; the message names the fix."""
    problem, _ = emroot.binfmt_problem("arm64", _binfmt(tmp_path, None, mounted=False))
    assert "binfmt_misc is not mounted" in problem
    assert "mount -t binfmt_misc binfmt_misc" in problem and "update-binfmts --enable qemu-aarch64" in problem


def test_missing_handler_disabled_handler_and_no_fix_binary_flag(tmp_path, on_x86):
    assert "no binfmt handler for arm64" in emroot.binfmt_problem("arm64", _binfmt(tmp_path / "a", None))[0]
    disabled = _binfmt(tmp_path / "b", "disabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\n")
    assert "is disabled" in emroot.binfmt_problem("arm64", disabled)[0]
    no_f = _binfmt(tmp_path / "c", "enabled\ninterpreter /usr/bin/qemu-aarch64\nflags: P\n")
    assert "fix-binary" in emroot.binfmt_problem("arm64", no_f)[0]
    good = _binfmt(tmp_path / "d", "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\n")
    assert emroot.binfmt_problem("arm64", good) == ("", "qemu-aarch64")


def test_status_without_root_or_tools(monkeypatch, tmp_path, on_x86):
    monkeypatch.setattr(emroot.platform, "system", lambda: "Linux")
    monkeypatch.setattr(emroot.os, "geteuid", lambda: 1000)
    status = emroot.emulation_status()
    assert not status.available and "needs root" in status.reason
    monkeypatch.setattr(emroot.os, "geteuid", lambda: 0)
    monkeypatch.setattr(emroot.shutil, "which", lambda name: None if name == "mmdebstrap" else f"/usr/bin/{name}")
    status = emroot.emulation_status()
    assert not status.available and "mmdebstrap not found" in status.reason
    with pytest.raises(emroot.EmulationUnavailable, match="^cannot verify on an emulated device here: mmdebstrap"):
        emroot.require_emulation()


def test_cli_build_verify_on_emulated_without_binfmt_is_one_line(monkeypatch, tmp_path, on_x86, cnn):
    """What a user sees when binfmt is missing: exit != 0 and one line, before any work."""
    from typer.testing import CliRunner

    from deploykit.cli.app import app

    import deploykit.plugins

    monkeypatch.setenv("DEPLOYKIT_PLUGINS", "profiles,onnxruntime,tflite")
    monkeypatch.setattr(deploykit.plugins, "_DEFAULT", None)
    monkeypatch.setattr(emroot, "BINFMT_DIR", _binfmt(tmp_path, None, mounted=False))
    monkeypatch.setattr(emroot.os, "geteuid", lambda: 0)
    monkeypatch.setattr(emroot.shutil, "which", lambda name: f"/usr/bin/{name}")
    result = CliRunner().invoke(app, ["build", str(cnn), "--target", "rpi4", "--precision", "fp32",
                                      "--verify-on", "emulated", "-o", str(tmp_path / "out")])
    assert result.exit_code != 0, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot verify on an emulated device here: binfmt_misc is not mounted")
    assert not (tmp_path / "out").exists()


def test_root_env_pins_the_device_cpu_whatever_the_host_says(monkeypatch):
    from deploykit.plugins import default_registry

    monkeypatch.setenv("QEMU_CPU", "max")
    monkeypatch.setenv("PIP_FIND_LINKS", "/host/only/wheels")
    monkeypatch.setenv("PIP_INDEX_URL", "https://mirror.example/simple")
    env = emroot.root_env(device_env(default_registry().targets["rpi5"]))
    assert env["QEMU_CPU"] == "cortex-a76"
    assert "PIP_FIND_LINKS" not in env  # a host folder is not visible in the root
    assert env["PIP_INDEX_URL"] == "https://mirror.example/simple"
    assert env["PIP_CERT"] == emroot.ROOT_CA_FILE


def test_device_env_roles_and_stand_ins():
    from deploykit.plugins import default_registry

    targets = default_registry().targets
    rpi4 = device_env(targets["rpi4"], ("ai-edge-litert==2.3.0", "numpy>=1.23.2"))
    assert rpi4.requirements == ("ai-edge-litert==2.3.0", "numpy>=1.23.2") and rpi4.arch == "arm64" and not rpi4.note
    fallback = device_env(targets["rpi4"], rpi4.requirements, role="fallback")
    assert fallback.requirements == ("tflite-runtime==2.14.0", "numpy<2") and fallback.role == "fallback"
    assert fallback.root_key == rpi4.root_key and fallback.venv_key != rpi4.venv_key
    coral = device_env(targets["coral-devboard"], ("tflite-runtime==2.5.0.post1", "pycoral==2.0.0"))
    assert coral.requirements[0].startswith("tflite-runtime==2.13") and "Coral" in coral.note
    assert device_env(targets["host"]) is None
    assert requirement_lines("# c\nai-edge-litert==2.3.0  # pin\n\nnumpy\n") == ("ai-edge-litert==2.3.0", "numpy")


def test_dockerfile_and_emulated_root_install_the_same(tmp_path, monkeypatch):
    """One source of truth: the rpi Dockerfile runs DeviceEnv's pip command and apt packages, and the
    emulated root's venv is filled by the same pip flags."""
    from deploykit.bundle.render import render
    from deploykit.plugins import default_registry

    profile = default_registry().targets["rpi4"]
    env = device_env(profile, profile.requirements)
    text = render("Dockerfile.j2", {"profile": profile, "device_env": env, "version": "x", "verification": {},
                                    "requirements": list(profile.requirements)}, "")
    assert " ".join(env.pip_install_command("requirements.txt")) in text
    assert f"python3 -m venv {VENV}" in text
    assert f"apt-get install -y --no-install-recommends {' '.join(env.apt_packages)}" in text

    calls = []
    root = emroot.DeviceRoot(env, cache=tmp_path)

    def fake_run(cmd, *args, **kwargs):  # "python3 -m venv DIR" makes DIR; pip installs nothing
        calls.append(cmd)
        if "venv" in cmd:
            (root.path / cmd[-1].lstrip("/")).mkdir(parents=True)

    monkeypatch.setattr(emroot, "_run", fake_run)
    monkeypatch.setattr(emroot, "host_ca_bundle", lambda: None)
    root.path.mkdir(parents=True)
    venv = root.venv(lambda c: c)
    assert (root.path / venv.lstrip("/") / ".deploykit-complete").is_file()
    pip = calls[1]
    assert pip[pip.index("install"):] == ["install", *PIP_FLAGS, "-r", pip[-1]]
    assert set(env.apt_packages) <= set(env.root_packages)


def test_tolerance_for_fp16_arithmetic(tmp_path):
    from deploykit.emulate.verify import tolerance_key
    from deploykit.plugins import default_registry
    from deploykit.verification import TOLERANCES

    targets = default_registry().targets
    (tmp_path / "model.tflite").write_bytes(b"TFL3....reduced_precision_support\x00fp16accfp16")
    assert tolerance_key("fp16", targets["rpi5"], tmp_path) == "fp16-arithmetic"
    assert tolerance_key("fp16", targets["rpi4"], tmp_path) == "fp16"  # the A72 has no fp16 arithmetic
    assert tolerance_key("int8", targets["rpi5"], tmp_path) == "int8"
    (tmp_path / "model.tflite").write_bytes(b"TFL3 without the metadata")
    assert tolerance_key("fp16", targets["rpi5"], tmp_path) == "fp16"
    assert TOLERANCES["fp16-arithmetic"]["rel_max_abs_error"] > TOLERANCES["fp16"]["rel_max_abs_error"]


def test_verify_on_emulated_refuses_targets_without_a_device(cli, cnn, tmp_path):
    r = cli("build", cnn, "--target", "host", "--precision", "fp32", "--verify-on", "emulated", "-o", tmp_path / "o")
    assert r.returncode != 0 and "has no emulated device" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "o").exists()
    r = cli("build", cnn, "--target", "host", "--verify-on", "board", "-o", tmp_path / "o")
    assert r.returncode != 0 and "unknown --verify-on 'board'" in r.stderr
