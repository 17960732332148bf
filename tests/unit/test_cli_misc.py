"""The small CLI commands (help, targets, inspect, doctor) through a real subprocess.

Builds and bad-input errors are covered by tests/e2e; these only check the contract of the
informational commands and their ``--json`` output.
"""

from __future__ import annotations

import json
import re

import pytest

import modelzoo

pytestmark = pytest.mark.unit

BUILTIN_TARGETS = {"host", "rpi4", "rpi5", "coral-usb", "coral-devboard", "jetson-nano", "jetson-orin-nano",
                   "ncs2", "intel-cpu", "intel-npu"}
CONTRACT_OPTIONS = ("--target", "-o", "--precision", "--input-shape", "--calibration", "--force", "--json")


def _ok(res):
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    return res


def test_help_lists_every_command(cli):
    out = _ok(cli("--help")).stdout
    for cmd in ("build", "targets", "inspect", "run", "verify", "doctor"):
        assert cmd in out
    assert "deploykit build model.onnx --target" in out


def test_no_arguments_shows_help(cli):
    res = cli()
    assert "build" in res.stdout + res.stderr and "Traceback" not in res.stderr


def test_version(cli):
    from deploykit import __version__

    assert _ok(cli("--version")).stdout.strip() == f"deploykit {__version__}"


def test_build_help_mentions_every_contract_option(cli):
    out = _ok(cli("build", "--help")).stdout
    for opt in CONTRACT_OPTIONS:
        assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", out), opt
    for precision in ("fp32", "fp16", "int8"):
        assert precision in out
    assert "NAME:D0,D1" in out


@pytest.mark.parametrize("cmd", ["targets", "inspect", "run", "verify", "doctor"])
def test_every_command_has_help(cli, cmd):
    out = _ok(cli(cmd, "--help")).stdout
    assert "Usage:" in out and "--help" in out


def test_targets_json(cli):
    rows = json.loads(_ok(cli("targets", "--json")).stdout)
    assert {r["name"] for r in rows} == BUILTIN_TARGETS and len(rows) == 10
    assert [r["name"] for r in rows] == sorted(r["name"] for r in rows)
    by_name = {r["name"]: r for r in rows}
    for r in rows:
        assert isinstance(r["backend"], str) and r["backend"]
        assert isinstance(r["installed"], bool)
        assert r["default_precision"] in r["precisions"]
    assert by_name["host"]["backend"] == "onnxruntime" and by_name["host"]["installed"] is True
    assert by_name["rpi4"]["backend"] == "tflite"
    # only profiles + onnxruntime are loaded (DEPLOYKIT_PLUGINS): every other backend is "not installed"
    for r in rows:
        if r["backend"] != "onnxruntime":
            assert r["installed"] is False and r["status"] == "backend not installed"


def test_targets_table(cli):
    out = _ok(cli("targets", env={"COLUMNS": "250"})).stdout
    for name in BUILTIN_TARGETS:
        assert name in out


def test_targets_with_no_plugins_is_empty(cli):
    assert json.loads(_ok(cli("targets", "--json", env={"DEPLOYKIT_PLUGINS": ""})).stdout) == []


def test_inspect_json_small_cnn(cli, cnn):
    info = json.loads(_ok(cli("inspect", cnn, "--json")).stdout)
    assert info["opset"] == 17 and info["canonicalized"] is True
    assert info["inputs"] == [{"name": "image", "shape": [1, 3, 16, 16], "dtype": "float32", "layout": "NCHW",
                               "quantization": None}]
    assert [o["name"] for o in info["outputs"]] == ["scores"]
    st = info["stats"]
    # after canonicalization (BatchNorm folded into conv1): conv1 216+8, dwconv 72+8, fc 80+10
    assert st["params"] == 394 and st["param_bytes"] == 394 * 4
    # conv1 2048*27 + dwconv 2048*9 + fc 10*8
    assert st["macs"] == 73808 and st["flops"] == 2 * 73808
    assert st["ops"]["Conv"] == 2 and st["ops"]["Gemm"] == 1 and st["ops"]["Softmax"] == 1
    assert "BatchNormalization" not in st["ops"]
    assert "target" not in info


def test_inspect_json_with_target_host(cli, cnn):
    info = json.loads(_ok(cli("inspect", cnn, "--target", "host", "--json")).stdout)
    t = info["target"]
    assert t["name"] == "host" and t["backend"] == "onnxruntime" and t["unsupported"] == 0
    assert len(t["support"]) == sum(info["stats"]["ops"].values())
    assert {s["status"] for s in t["support"]} == {"supported"}
    assert {"node", "op_type", "status", "reason", "device"} <= set(t["support"][0])


def test_inspect_table(cli, cnn):
    out = _ok(cli("inspect", cnn, "--target", "host")).stdout
    assert "image" in out and "scores" in out and "Conv" in out and "MACs" in out


def test_inspect_dynamic_model_is_not_an_error(cli, tmp_path):
    model = modelzoo.small_cnn(tmp_path / "dyn.onnx", batch="N")
    info = json.loads(_ok(cli("inspect", model, "--json")).stdout)
    assert info["inputs"][0]["shape"] == [-1, 3, 16, 16] and info["canonicalized"] is False
    pinned = json.loads(_ok(cli("inspect", model, "--json", "--input-shape", "image:1,3,16,16")).stdout)
    assert pinned["canonicalized"] is True and pinned["stats"]["macs"] == 73808


def test_inspect_unknown_target_is_one_line(cli, cnn):
    res = cli("inspect", cnn, "--target", "rpi", "--json")
    assert res.returncode != 0 and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown target 'rpi'") and "rpi4" in lines[0]


def test_doctor_json(cli):
    info = json.loads(_ok(cli("doctor", "--json")).stdout)
    assert {"packages", "tools", "backends"} <= set(info)
    for pkg in ("onnx", "onnxruntime", "numpy"):
        assert info["packages"][pkg]
    assert "docker" in info["tools"]
    assert info["backends"]["onnxruntime"] == {"installed": True, "missing": []}
    assert set(info["plugins"]) == {"profiles", "onnxruntime"}
    assert {r["name"] for r in info["targets"]} == BUILTIN_TARGETS


def test_doctor_table(cli):
    out = _ok(cli("doctor")).stdout
    assert "onnxruntime" in out and "host" in out


def test_doctor_names_the_cpu_class(cli):
    """The CPU class decides whether int8 kernels of CPU runtimes can saturate (x86 without VNNI)."""
    from deploykit.cpu import cpu_class

    here = cpu_class()
    info = json.loads(_ok(cli("doctor", "--json")).stdout)
    assert info["cpu"]["label"] == here.label and info["cpu"]["int8_saturates"] is here.int8_saturates
    line = next(ln for ln in _ok(cli("doctor")).stdout.splitlines() if ln.startswith("CPU class: "))
    assert here.label in line and ("saturating" in line) == here.int8_saturates
