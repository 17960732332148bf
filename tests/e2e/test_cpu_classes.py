"""int8 bundles give the same results on every x86 CPU class.

x86 CPUs without VNNI run ONNX Runtime's (and OpenVINO's) u8 x s8 int8 kernels with
``vpmaddubsw``, which sums pairs of products into a saturating int16. These tests build bundles on
this machine, then run them here and on an emulated AVX2 CPU without VNNI (QEMU user mode,
``-cpu Haswell``; QEMU's TCG has no AVX-512, so VNNI is only ever this machine's own) and compare.
A control case shows the emulator reproduces the saturation (an 8-bit-weight model goes wrong on
the emulated AVX2 CPU), so a pass means something. Needs ``qemu-x86_64-static`` (Debian:
qemu-user-static) on an x86-64 host.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

pytestmark = pytest.mark.e2e

QEMU = shutil.which("qemu-x86_64-static") or shutil.which("qemu-x86_64")
AVX2_ONLY = "Haswell"

# runs a bundle's runner on inputs.npz and writes outputs.npz: the same code natively and emulated
RUN_BUNDLE = """
import sys, numpy as np
sys.path.insert(0, sys.argv[1])
from runner import Runner
r = Runner(sys.argv[1], num_threads=1)
x = np.load(sys.argv[2])
outs = [r.run({"x": x[i:i + 1]})["y"] for i in range(len(x))]
np.save(sys.argv[3], np.concatenate(outs))
print(r.runtime)
"""

RUN_ORT = """
import sys, numpy as np, onnxruntime as ort
so = ort.SessionOptions(); so.intra_op_num_threads = 1
s = ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
x = np.load(sys.argv[2])
np.save(sys.argv[3], np.concatenate([s.run(None, {"x": x[i:i + 1]})[0] for i in range(len(x))]))
"""


def _needs_qemu():
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("x86-64 host needed to emulate x86 CPU classes")
    if QEMU is None:
        pytest.skip("qemu-x86_64-static not installed (Debian package qemu-user-static)")


def _run(code: str, args: list, cpu: str | None, timeout: int = 900) -> str:
    cmd = [sys.executable, "-c", code, *map(str, args)]
    if cpu:
        cmd = [QEMU, "-cpu", cpu, *cmd]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout + p.stderr


def saturating_model(path: Path) -> Path:
    """A 1x1 Conv over 64 non-negative channels with large same-sign weights: with 8-bit weights,
    two u8 x s8 products (255 x 127) already overflow int16."""
    rng = np.random.default_rng(7)
    w = rng.uniform(0.5, 1.0, (16, 64, 1, 1)).astype(np.float32)
    w[:, ::7] *= -1
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Conv", ["r", "w", "b"], ["y"])], "sat",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 8, 8])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.zeros(16, np.float32), "b")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


@pytest.fixture(scope="module")
def host_int8(tmp_path_factory):
    _needs_qemu()
    from clirun import run_cli

    d = tmp_path_factory.mktemp("cpu")
    model = saturating_model(d / "sat.onnx")
    rng = np.random.default_rng(0)
    np.save(d / "calib.npy", rng.uniform(0, 1, (32, 64, 8, 8)).astype(np.float32))
    x = rng.uniform(0, 1, (6, 64, 8, 8)).astype(np.float32)
    np.save(d / "x.npy", x)
    r = run_cli("build", model, "--target", "host", "-p", "int8", "--calibration", d / "calib.npy", "-o", d / "b")
    assert r.returncode == 0, r.stderr
    return d, x, _fp32(model, x)


def _fp32(model: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"x": x[i:i + 1]})[0] for i in range(len(x))])


def _sqnr(ref, got) -> float:
    noise = float(np.mean((ref.astype(np.float64) - got) ** 2))
    return 10 * np.log10(float(np.mean(ref.astype(np.float64) ** 2)) / max(noise, 1e-30))


def test_host_int8_same_on_every_x86_class(host_int8):
    d, x, ref = host_int8
    from deploykit.cpu import cpu_class

    bits = _weight_bits(d / "b")
    # host bundles are built for the machine building them: 7-bit weights where it saturates,
    # 8-bit ones where it sums in int32 and they are clearly more accurate (this model: they are)
    assert bits == (7 if cpu_class().int8_saturates else 8)
    readme = (d / "b" / "README.md").read_text()
    assert ("int8 weights use 8 bits" in readme) == (bits == 8)  # and what that means elsewhere
    results = {}
    for cpu in (None, AVX2_ONLY):
        out = d / f"y_{cpu or 'native'}.npy"
        log = _run(RUN_BUNDLE, [d / "b", d / "x.npy", out], cpu)
        assert ("float kernels" in log) == (bits == 8 and cpu == AVX2_ONLY), log  # the runner's guard
        results[cpu or "native"] = np.load(out)
    step = float(np.max(np.abs(ref))) / 127  # at most one output quantization step apart
    for cpu, y in results.items():
        assert _sqnr(ref, y) > 30, cpu
        np.testing.assert_allclose(y, results["native"], atol=1.01 * step, err_msg=cpu)


def test_emulated_avx2_reproduces_saturation_of_8bit_weights(host_int8, tmp_path):
    """Control: the same QDQ model with 8-bit weights goes wrong on the emulated AVX2 CPU through
    ONNX Runtime's int8 kernels, and the runner guards against it by running float kernels."""
    d, x, ref = host_int8
    seven = _weight_bits(d / "b") == 7
    m = onnx.load(str(d / "b" / "model.onnx"))
    inits = {t.name: t for t in m.graph.initializer}
    for node in m.graph.node if seven else ():  # widen weights to 8 bits (2x levels, half the scale); the int32 bias follows
        if node.op_type != "DequantizeLinear" or node.input[0] not in inits:
            continue
        q = numpy_helper.to_array(inits[node.input[0]])
        if q.ndim == 4 or q.dtype == np.int32:  # ORT fuses only when bias scale = input scale x weight scale
            s = numpy_helper.to_array(inits[node.input[1]])
            q2 = np.clip(q * 2, -127, 127).astype(np.int8) if q.ndim == 4 else (q * 2).astype(np.int32)
            inits[node.input[0]].CopyFrom(numpy_helper.from_array(q2, node.input[0]))
            inits[node.input[1]].CopyFrom(numpy_helper.from_array((s / 2).astype(np.float32), node.input[1]))
    eight = tmp_path / "b8"
    shutil.copytree(d / "b", eight)
    onnx.save(m, str(eight / "model.onnx"))
    _run(RUN_ORT, [eight / "model.onnx", d / "x.npy", tmp_path / "fused.npy"], AVX2_ONLY)
    fused = np.load(tmp_path / "fused.npy")
    if _sqnr(ref, fused) > 30:
        pytest.skip("this QEMU does not reproduce vpmaddubsw saturation (the other tests prove nothing more)")
    # the runner of an 8-bit-weight bundle notices the CPU and stays exact
    runner = (eight / "runner.py").read_text()
    assert f'"int8_weight_bits": {7 if seven else 8}' in runner
    (eight / "runner.py").write_text(runner.replace('"int8_weight_bits": 7', '"int8_weight_bits": 8'))
    log = _run(RUN_BUNDLE, [eight, d / "x.npy", tmp_path / "guarded.npy"], AVX2_ONLY)
    assert "float kernels" in log
    assert _sqnr(ref, np.load(tmp_path / "guarded.npy")) > 30
    # ... and keeps the fast int8 kernels where they are exact (this machine, if it has VNNI)
    from deploykit.cpu import cpu_class

    log = _run(RUN_BUNDLE, [eight, d / "x.npy", tmp_path / "here.npy"], None)
    assert ("float kernels" in log) == cpu_class().int8_saturates
    assert _sqnr(ref, np.load(tmp_path / "here.npy")) > 30


def _weight_bits(bundle: Path) -> int:
    return json.loads((bundle / "manifest.json").read_text())["quantization"]["weight_bits"]


def test_engine_simulation_independent_of_cpu(host_int8, tmp_path):
    """The engine simulates int8 the way an int32-accumulating device computes it, whatever CPU
    the build runs on: its session gives the same result emulated on AVX2 as on this machine."""
    d, x, ref = host_int8
    code = """
import sys, numpy as np, onnx
from deploykit.quant.engine import simulation_session
m = onnx.load(sys.argv[1]); x = np.load(sys.argv[2])
np.save(sys.argv[3], simulation_session(m).run(None, {"x": x[:1]})[0])
"""
    repo = Path(__file__).resolve().parents[2]
    env_code = f"import sys; sys.path.insert(0, {str(repo)!r})\n" + code
    for cpu in (None, AVX2_ONLY):
        _run(env_code, [d / "b" / "model.onnx", d / "x.npy", tmp_path / f"{cpu}.npy"], cpu)
    np.testing.assert_allclose(np.load(tmp_path / "None.npy"), np.load(tmp_path / f"{AVX2_ONLY}.npy"), rtol=1e-5, atol=1e-5)


def _build_and_run_everywhere(tmp_path, target: str, plugins: str) -> tuple[np.ndarray, dict]:
    """The saturating model built int8 for ``target`` here; fp32 outputs and the bundle's outputs
    here (``None``) and on the emulated AVX2 CPU."""
    from clirun import run_cli

    model = saturating_model(tmp_path / "sat.onnx")
    rng = np.random.default_rng(0)
    np.save(tmp_path / "calib.npy", rng.uniform(0, 1, (32, 64, 8, 8)).astype(np.float32))
    x = rng.uniform(0, 1, (4, 64, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    r = run_cli("build", model, "--target", target, "-p", "int8", "--calibration", tmp_path / "calib.npy",
                "-o", tmp_path / "b", env={"DEPLOYKIT_PLUGINS": plugins})
    assert r.returncode == 0, r.stderr
    outs = {}
    for cpu in (None, AVX2_ONLY):
        _run(RUN_BUNDLE, [tmp_path / "b", tmp_path / "x.npy", tmp_path / f"{cpu}.npy"], cpu)
        outs[cpu] = np.load(tmp_path / f"{cpu}.npy")
    return _fp32(model, x), outs


@pytest.mark.plugin
def test_tflite_int8_has_no_x86_saturation(tmp_path):
    """XNNPACK's x86 int8 kernels widen to int16 before multiplying (vpmaddwd): an 8-bit-weight
    TFLite model gives the same result on an emulated AVX2 CPU as here."""
    _needs_qemu()
    pytest.importorskip("ai_edge_litert")
    _, outs = _build_and_run_everywhere(tmp_path, "rpi4", "profiles,tflite")
    np.testing.assert_array_equal(outs[None], outs[AVX2_ONLY])


@pytest.mark.plugin
def test_openvino_int8_same_on_avx2(tmp_path):
    """OpenVINO's CPU plugin has the same saturation; intel-cpu int8 uses 7-bit weights, so an
    emulated AVX2 CPU gives the result this machine gives."""
    _needs_qemu()
    pytest.importorskip("openvino")
    ref, outs = _build_and_run_everywhere(tmp_path, "intel-cpu", "profiles,openvino")
    for cpu, y in outs.items():
        assert _sqnr(ref, y) > 30, cpu
