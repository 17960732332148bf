"""The built-in target profiles (``targets/*.toml``) and the profile validator's error messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deploykit.errors import TargetError
from deploykit.targets import ARCHES, PRECISIONS, TargetProfile, load_profile, load_profiles_from_dir

pytestmark = pytest.mark.unit

TARGETS_DIR = Path(__file__).resolve().parents[2] / "targets"
PROFILE_FILES = sorted(TARGETS_DIR.glob("*.toml"))

# name -> backend, as the design fixes it. intel-npu is optional (only if the facts ground it).
REQUIRED_BACKENDS = {
    "host": "onnxruntime",
    "rpi4": "tflite",
    "rpi5": "tflite",
    "coral-usb": "edgetpu",
    "coral-devboard": "edgetpu",
    "jetson-nano": "tensorrt",
    "jetson-orin-nano": "tensorrt",
    "ncs2": "openvino",
    "intel-cpu": "openvino",
}
OPTIONAL_BACKENDS = {"intel-npu": "openvino"}
PLATFORM_FOR_ARCH = {"aarch64": "linux/arm64", "x86_64": "linux/amd64", "armv7l": "linux/arm/v7"}


def _profiles() -> dict[str, TargetProfile]:
    return {p.stem: load_profile(p) for p in PROFILE_FILES}


def _requirement(line: str):
    requirements = pytest.importorskip("packaging.requirements")
    try:
        return requirements.Requirement(line)
    except requirements.InvalidRequirement as e:  # pragma: no cover - only on a bad profile
        pytest.fail(f"not a PEP 508 requirement: {line!r} ({e})")


# --- the shipped profiles -------------------------------------------------------------------------


def test_targets_folder_has_profiles():
    assert PROFILE_FILES, f"no *.toml in {TARGETS_DIR}"


@pytest.mark.parametrize("path", PROFILE_FILES, ids=lambda p: p.stem)
def test_profile_loads_and_is_named_after_its_file(path: Path):
    profile = load_profile(path)
    assert profile.name == path.stem
    assert profile.source == path.name


def test_all_profiles_load_from_dir_with_unique_names():
    names = [p.name for p in load_profiles_from_dir(TARGETS_DIR)]
    assert len(names) == len(set(names)), names


def test_required_targets_exist_with_their_backends():
    profiles = _profiles()
    missing = sorted(set(REQUIRED_BACKENDS) - set(profiles))
    assert not missing, f"missing target profiles: {missing}"
    expected = {**REQUIRED_BACKENDS, **{k: v for k, v in OPTIONAL_BACKENDS.items() if k in profiles}}
    for name, backend in expected.items():
        assert profiles[name].backend == backend, name


@pytest.mark.parametrize("path", PROFILE_FILES, ids=lambda p: p.stem)
def test_precisions_are_valid(path: Path):
    profile = load_profile(path)
    assert profile.default_precision in PRECISIONS
    assert profile.default_precision in profile.precisions
    assert len(set(profile.precisions)) == len(profile.precisions), "duplicate precision"


@pytest.mark.parametrize("path", PROFILE_FILES, ids=lambda p: p.stem)
def test_docker_image_is_pinned_by_tag_and_platform_matches_arch(path: Path):
    profile = load_profile(path)
    image = profile.docker_base_image
    last = image.rsplit("/", 1)[-1]
    assert ":" in last, f"{image!r} has no explicit tag"
    tag = last.split(":", 1)[1]
    assert tag and tag != "latest", f"{image!r} must be pinned by a tag other than 'latest'"
    assert profile.arch in ARCHES
    assert profile.docker_platform == PLATFORM_FOR_ARCH[profile.arch]


@pytest.mark.parametrize("path", PROFILE_FILES, ids=lambda p: p.stem)
def test_requirements_are_pep508_and_bounded(path: Path):
    profile = load_profile(path)
    names = []
    for line in profile.requirements:
        req = _requirement(line)
        assert str(req.specifier), f"{line!r}: give a version pin or range"
        names.append(req.name.lower())
    assert "numpy" in names, "the generated runner needs numpy"
    assert len(names) == len(set(names)), "a package is listed twice"


@pytest.mark.parametrize("path", PROFILE_FILES, ids=lambda p: p.stem)
def test_device_facts_are_plausible(path: Path):
    profile = load_profile(path)
    assert re.fullmatch(r"3\.\d+", profile.python), profile.python
    assert 0 < profile.threads <= profile.cores
    assert profile.memory_mb >= 512
    assert profile.runtime_version and profile.cpu and profile.os


def test_tflite_runtime_is_paired_with_numpy_below_2():
    """tflite-runtime wheels are built against NumPy 1.x (facts/tflite-xnnpack.md §5)."""
    for profile in _profiles().values():
        reqs = {r.name.lower(): r for r in map(_requirement, profile.requirements)}
        if "tflite-runtime" in reqs:
            assert not reqs["numpy"].specifier.contains("2.0.0"), profile.name


def test_device_specific_precision_rules():
    profiles = _profiles()
    assert profiles["ncs2"].precisions == ("fp16",)  # MYRIAD: FP16 only
    assert profiles["coral-usb"].precisions == ("int8",)
    assert profiles["coral-devboard"].precisions == ("int8",)
    nano = profiles["jetson-nano"]
    assert "int8" not in nano.precisions and nano.default_precision == "fp16"
    assert nano.options["has_fast_int8"] is False
    assert profiles["jetson-orin-nano"].default_precision == "int8"
    assert profiles["host"].default_precision == "fp32"
    assert set(profiles["host"].precisions) == set(PRECISIONS)


def test_backend_options():
    profiles = _profiles()
    for profile in profiles.values():
        opts = profile.options
        if profile.backend == "tensorrt":
            for key in ("jetpack", "l4t", "tensorrt_version", "cuda_version", "workspace_mb", "dla_cores", "has_fast_int8"):
                assert key in opts, f"{profile.name}: options.{key}"
            assert profile.runtime_version == opts["tensorrt_version"]
            assert opts["l4t"].replace(".", "") in profile.docker_base_image.replace(".", "")
            assert opts["jetpack"] in profile.description
        elif profile.backend == "edgetpu":
            assert profile.accelerator == "edgetpu"
            assert opts["libedgetpu"]["linux"] == "libedgetpu.so.1"
            for key in ("edgetpu_compiler_version", "runtime_version"):
                assert key in opts, f"{profile.name}: options.{key}"
        elif profile.backend == "openvino":
            assert opts["device"] in ("MYRIAD", "CPU", "NPU")
            assert opts["openvino_version"] == profile.runtime_version
            assert "performance_hint" in opts
        elif profile.backend == "tflite":
            assert opts["xnnpack"] is True
    ncs2 = profiles["ncs2"]
    assert ncs2.options["device"] == "MYRIAD" and ncs2.runtime_version.startswith("2022.3")
    # openvino 2022.3 has wheels / archives for CPython 3.7-3.10 only (facts/openvino.md §0)
    assert tuple(map(int, ncs2.python.split("."))) <= (3, 10)


# --- the validator's errors name the file and the field ---------------------------------------------

VALID = """\
[target]
name = "demo"
description = "demo board"
backend = "tflite"
default_precision = "int8"
precisions = ["fp32", "int8"]

[device]
arch = "aarch64"
cpu = "Cortex-A72"
cores = 4
memory_mb = 4096
os = "Debian 12"
python = "3.11"
accelerator = "none"

[runtime]
name = "ai-edge-litert"
version = "2.3.0"
threads = 4
requirements = ["ai-edge-litert==2.3.0", "numpy>=1.23.2"]

[docker]
base_image = "python:3.11-slim-bookworm"
platform = "linux/arm64"

[options]
xnnpack = true
"""


def _write(tmp_path: Path, text: str, name: str = "demo.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _drop_section(text: str, section: str) -> str:
    out, skip = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("["):
            skip = line.strip() == f"[{section}]"
        if not skip:
            out.append(line)
    return "".join(out)


def test_valid_template_loads(tmp_path: Path):
    profile = load_profile(_write(tmp_path, VALID))
    assert profile.name == "demo" and profile.options == {"xnnpack": True}


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("cores = 4", 'cores = "four"', "device.cores"),                 # wrong type
        ("memory_mb = 4096", "memory_mb = 4096.0", "device.memory_mb"),  # float for int
        ("threads = 4", "threads = true", "runtime.threads"),            # bool is not an int
        ('precisions = ["fp32", "int8"]', 'precisions = "int8"', "target.precisions"),
        ('python = "3.11"', 'python = "3.11"\ngpu = "none"', "device.gpu"),  # unknown key
        ('default_precision = "int8"', 'default_precision = "int4"', "target.default_precision"),
        ('default_precision = "int8"', 'default_precision = "fp16"', "target.default_precision"),
        ('precisions = ["fp32", "int8"]', 'precisions = ["fp32", "int8", "bf16"]', "target.precisions"),
        ('precisions = ["fp32", "int8"]', "precisions = []", "target.precisions"),
        ('arch = "aarch64"', 'arch = "arm64"', "device.arch"),
        ('accelerator = "none"', 'accelerator = "tpu"', "device.accelerator"),
        ('name = "demo"', 'name = "Demo_Board"', "target.name"),
        ("cores = 4", "cores = 0", "device.cores"),
        ("threads = 4", "threads = -1", "runtime.threads"),
        ('requirements = ["ai-edge-litert==2.3.0", "numpy>=1.23.2"]', "requirements = [1, 2]", "runtime.requirements"),
        ('version = "2.3.0"\n', "", "runtime.version"),                 # missing required key
        ("[options]\nxnnpack = true\n", "[extras]\nx = 1\n", "extras"),  # unknown section
    ],
)
def test_bad_field_names_file_and_field(tmp_path: Path, old: str, new: str, field: str):
    assert old in VALID
    path = _write(tmp_path, VALID.replace(old, new, 1), name="broken-board.toml")
    with pytest.raises(TargetError) as info:
        load_profile(path)
    message = str(info.value)
    assert "broken-board.toml" in message
    assert field in message


@pytest.mark.parametrize("section", ["target", "device", "runtime", "docker"])
def test_missing_section_names_file_and_section(tmp_path: Path, section: str):
    path = _write(tmp_path, _drop_section(VALID, section), name="no-section.toml")
    with pytest.raises(TargetError) as info:
        load_profile(path)
    assert "no-section.toml" in str(info.value)
    assert f"'{section}'" in str(info.value)


def test_options_section_is_optional(tmp_path: Path):
    profile = load_profile(_write(tmp_path, _drop_section(VALID, "options")))
    assert profile.options == {}


def test_section_that_is_not_a_table(tmp_path: Path):
    text = 'docker = "python:3.11"\n' + _drop_section(VALID, "docker")
    with pytest.raises(TargetError, match=r"demo\.toml.*'docker'"):
        load_profile(_write(tmp_path, text))


def test_invalid_toml_names_the_file(tmp_path: Path):
    with pytest.raises(TargetError, match=r"bad-syntax\.toml"):
        load_profile(_write(tmp_path, VALID.replace("cores = 4", "cores = = 4"), name="bad-syntax.toml"))


def test_unreadable_file_names_the_file(tmp_path: Path):
    with pytest.raises(TargetError, match=r"absent\.toml"):
        load_profile(tmp_path / "absent.toml")
