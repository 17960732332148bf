"""End-to-end: the out-of-tree vendor plugin (examples/vendor_plugin) installs like a third-party
package, is found through the ``deploykit`` entry-point group, and builds bundles for its target.

The plugin is pip-installed into a temporary ``--target`` folder that only the subprocesses of this
test see (through PYTHONPATH), so the environment running the tests is never changed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

PLUGIN_SRC = Path(__file__).resolve().parents[2] / "examples" / "vendor_plugin"
CLI = [sys.executable, "-m", "deploykit.cli.app"]


def _can_build_wheels_offline() -> bool:
    """setuptools builds wheels without build isolation only with ``wheel`` (or setuptools >= 70.1)."""
    if importlib.util.find_spec("wheel") is not None:
        return True
    try:
        import setuptools

        return tuple(int(p) for p in setuptools.__version__.split(".")[:2]) >= (70, 1)
    except Exception:  # noqa: BLE001
        return False


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory) -> dict[str, str]:
    """Environment for subprocesses in which ``deploykit-acme`` is installed."""
    tmp = tmp_path_factory.mktemp("acme")
    src = tmp / "src"  # build from a copy: pip writes build/ and *.egg-info into the source tree
    shutil.copytree(PLUGIN_SRC, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache"))
    site = tmp / "site"
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "--target", str(site)]
    if _can_build_wheels_offline():
        cmd.append("--no-build-isolation")
    # else: pip fetches setuptools into an isolated build environment (the dev extra should carry `wheel`)
    proc = subprocess.run(cmd + [str(src)], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"pip install failed:\n{proc.stdout}\n{proc.stderr}"
    dist_infos = list(site.glob("deploykit_acme-*.dist-info"))
    assert len(dist_infos) == 1, sorted(p.name for p in site.iterdir())
    entry_points = (dist_infos[0] / "entry_points.txt").read_text()
    assert "[deploykit]" in entry_points and "acme = deploykit_acme" in entry_points
    # package data shipped in the wheel, not only in the source tree
    assert (site / "deploykit_acme" / "templates" / "runner_acme.py.j2").is_file()
    assert (site / "deploykit_acme" / "profiles" / "acme-board.toml").is_file()

    env = {k: v for k, v in os.environ.items() if k not in ("DEPLOYKIT_PLUGINS", "DEPLOYKIT_DEBUG")}
    env["PYTHONPATH"] = os.pathsep.join([str(site)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["ACME_DEVICE"] = "cpu"
    return env


def small_cnn(path: Path, *, group: int = 1, act: str = "Relu") -> Path:
    """Conv -> act -> GlobalAveragePool -> Flatten -> Gemm; input x[1,4,16,16], output y[1,5]."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = {
        "W": rng.standard_normal((8, 4 // group, 3, 3)).astype(np.float32) * 0.3,
        "B": rng.standard_normal(8).astype(np.float32) * 0.1,
        "G": rng.standard_normal((5, 8)).astype(np.float32),
        "C": rng.standard_normal(5).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], name="conv0", pads=[1, 1, 1, 1], group=group),
        helper.make_node(act, ["c"], ["r"], name="act0"),
        helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "G", "C"], ["y"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "small_cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _cli(env, *args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_targets_lists_the_vendor_target(plugin_env):
    proc = _cli(plugin_env, "targets", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert "acme-board" in rows, sorted(rows)
    row = rows["acme-board"]
    assert row["backend"] == "acme" and row["installed"] is True and row["status"] == "ready"
    assert row["precisions"] == ["fp16", "fp32"] and row["default_precision"] == "fp16"  # default first
    assert "host" in rows  # the built-in plugins still load beside it


def test_acme_board_is_absent_without_the_plugin(plugin_env):
    if importlib.util.find_spec("deploykit_acme") is not None:
        pytest.skip("deploykit-acme is installed in this environment itself")
    env = dict(plugin_env, PYTHONPATH=os.environ.get("PYTHONPATH", ""))
    proc = _cli(env, "targets", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "acme-board" not in {r["name"] for r in json.loads(proc.stdout)}


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_build_for_acme_board(plugin_env, tmp_path, precision):
    import onnx
    from onnx import TensorProto

    model = small_cnn(tmp_path / "cnn.onnx")
    out = tmp_path / f"bundle-{precision}"
    proc = _cli(plugin_env, "build", str(model), "--target", "acme-board", "--precision", precision,
                "-o", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["bundle"] == str(out.resolve())

    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["target"], manifest["backend"], manifest["precision"]) == ("acme-board", "acme", precision)
    assert manifest["runtime"] == "onnxruntime"
    assert manifest["plugins"].get("acme") == "0.1.0", manifest["plugins"]
    assert manifest["verification"]["status"] == "passed", manifest["verification"]
    assert "acme cpu" in manifest["verification"]["runtime"]
    assert [i["name"] for i in manifest["inputs"]] == ["x"] and manifest["inputs"][0]["shape"] == [1, 4, 16, 16]
    assert [o["name"] for o in manifest["outputs"]] == ["y"]
    for name in ("model.onnx", "runner.py", "requirements.txt", "README.md", "Dockerfile", "report.json"):
        digest = hashlib.sha256((out / name).read_bytes()).hexdigest()
        assert manifest["files"].get(name) == digest, name
    assert "onnxruntime==1.32.0" in (out / "requirements.txt").read_text().split()
    assert "linux/arm64" in (out / "Dockerfile").read_text()

    artifact = onnx.load(str(out / "model.onnx"))
    want = TensorProto.FLOAT16 if precision == "fp16" else TensorProto.FLOAT
    assert {t.data_type for t in artifact.graph.initializer} == {want}
    assert artifact.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT  # float I/O kept

    # the generated runner runs standalone, from its own folder (no deploykit import needed)
    run = subprocess.run([sys.executable, "runner.py", "--benchmark", "3"], cwd=out, env=plugin_env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert '"y": shape=[1, 5] dtype=float32' in run.stdout
    assert "latency over 3 runs, onnxruntime" in run.stdout and "acme cpu" in run.stdout
    bad = subprocess.run([sys.executable, "runner.py"], cwd=out, env=dict(plugin_env, ACME_DEVICE="gpu"),
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "ACME_DEVICE='gpu'" in bad.stderr


def test_int8_is_refused_for_acme_board(plugin_env, tmp_path):
    out = tmp_path / "b"
    proc = _cli(plugin_env, "build", str(small_cnn(tmp_path / "cnn.onnx")), "--target", "acme-board",
                "--precision", "int8", "--calibration", "unused.npy", "-o", str(out))
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "int8" in errors[0] and "fp32, fp16" in errors[0], proc.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("kwargs", "op", "node", "reason"),
    [
        ({"group": 2}, "Conv", "conv0", "group=2"),
        ({"act": "Tanh"}, "Tanh", "act0", "no lowering for Tanh"),
    ],
    ids=["grouped-conv", "op-not-in-table"],
)
def test_unsupported_op_is_a_clear_error(plugin_env, tmp_path, kwargs, op, node, reason):
    model = small_cnn(tmp_path / "bad.onnx", **kwargs)
    out = tmp_path / "bundle"
    proc = _cli(plugin_env, "build", str(model), "--target", "acme-board", "-o", str(out), cwd=tmp_path)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert f"{op} (node '{node}'" in errors[0] and reason in errors[0], errors[0]
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.onnx"]  # no temp/staging folder left either

    inspect = _cli(plugin_env, "inspect", str(model), "--target", "acme-board", "--json")
    assert inspect.returncode == 0, inspect.stderr
    target = json.loads(inspect.stdout)["target"]
    assert target["backend"] == "acme" and target["unsupported"] == 1
    (row,) = [s for s in target["support"] if s["status"] == "unsupported"]
    assert (row["op_type"], row["node"]) == (op, node) and reason in row["reason"]
