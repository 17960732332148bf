"""Bundles verified on their emulated device (deploykit verify --emulate / build --verify-on emulated):
rpi4 fp32/fp16/int8 and rpi5 fp16 of two models, in an arm64 Debian root under QEMU with the device's
CPU, cpuinfo, Python and runtime wheels. Skips with the reason where this machine cannot emulate
(scripts/emulation-setup.sh prepares it); the root and its venvs are cached between runs."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

import modelzoo

pytestmark = [pytest.mark.e2e, pytest.mark.emulated]
pytest.importorskip("ai_edge_litert")

from deploykit.emulate.root import emulation_status  # noqa: E402

STATUS = emulation_status()
if not STATUS.available:
    pytest.skip(f"no emulated arm64 device here: {STATUS.reason}", allow_module_level=True)

ENV = {"DEPLOYKIT_PLUGINS": "profiles,onnxruntime,tflite"}
CASES = [("rpi4", "fp32"), ("rpi4", "fp16"), ("rpi4", "int8"), ("rpi5", "fp16")]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    out = {"cnn": (modelzoo.small_cnn(d / "cnn.onnx"), [], (3, 16, 16))}
    cls = modelzoo.ppocr_cls_path()
    if cls is not None:
        out["ppocr_cls"] = (cls, ["--input-shape", "x:1,3,48,192"], (3, 48, 192))
    return out


def _build(cli, models, tmp_path, name, target, precision, *extra):
    path, shape_args, shape = models[name]
    out = tmp_path / f"{name}-{target}-{precision}"
    args = ["build", path, "--target", target, "--precision", precision, "-o", out, *shape_args, *extra]
    if precision == "int8":
        calib = tmp_path / f"{name}-calib.npy"
        np.save(calib, np.random.default_rng(0).uniform(-1, 1, (16, *shape)).astype(np.float32))
        args += ["--calibration", calib]
    r = cli(*args, env=ENV, timeout=1200)
    assert r.returncode == 0, r.stderr[-2000:]
    return out


@pytest.mark.parametrize("name", ["cnn", "ppocr_cls"])
@pytest.mark.parametrize("target,precision", CASES, ids=[f"{t}-{p}" for t, p in CASES])
def test_verify_emulate(cli, models, tmp_path, name, target, precision):
    if name not in models:
        pytest.skip("rapidocr-onnxruntime (PP-OCR cls model) not installed")
    bundle = _build(cli, models, tmp_path, name, target, precision)
    r = cli("verify", bundle, "--emulate", env=ENV, timeout=1800)
    assert r.returncode == 0, r.stderr[-2000:] + r.stdout[-2000:]
    emulated = json.loads((bundle / "manifest.json").read_text())["verification"]["emulated"]
    cpu = {"rpi4": "cortex-a72", "rpi5": "cortex-a76"}[target]
    main, fallback = emulated["runs"]["bundle"], emulated["runs"]["fallback"]
    assert emulated["status"] == "passed" and emulated["cpu"] == cpu
    assert main["runtime"] == f"ai-edge-litert 2.3.0 (XNNPACK) on emulated {cpu}"
    assert main["xnnpack"] is True and main["packages"]["ai-edge-litert"] == "2.3.0" and main["debian"] == "bookworm"
    assert fallback["runtime"].startswith("tflite-runtime 2.14.0") and fallback["packages"]["numpy"].startswith("1.")
    assert f"emulated {cpu} [bundle] ai-edge-litert 2.3.0 (XNNPACK)" in r.stdout
    if target == "rpi5" and precision == "fp16":
        assert main["tolerance"] == {"rel_max_abs_error": 0.05}  # fp16 arithmetic, judged as the device computes
    # the stored figures are the ones `verify --json --emulate` prints again
    again = json.loads(cli("verify", bundle, "--emulate", "--runtime", "bundle", "--json", env=ENV, timeout=1800).stdout)
    assert again["runs"]["bundle"]["outputs"] == main["outputs"]


def _host_and_emulated(bundle: Path):
    """Outputs of the stored samples on this host and on the emulated device (bundle runtime)."""
    from deploykit.bundle.manifest import open_bundle, read_samples
    from deploykit.emulate.run import Emulator
    from deploykit.emulate.verify import environments, profile_for
    from deploykit.verification import run_bundle

    manifest = open_bundle(bundle)
    feeds, refs = read_samples(bundle, manifest)
    host, _ = run_bundle(bundle, feeds)
    profile = profile_for(manifest)
    names = ([s["name"] for s in manifest["inputs"]], [s["name"] for s in manifest["outputs"]])
    emulated, info = Emulator(environments(profile, bundle, ("bundle",))[0], cores=profile.cores).run_bundle(bundle, feeds, *names)
    return refs, host, emulated, info


def test_fp16_arithmetic_only_shows_on_the_a76(cli, models, tmp_path):
    """rpi5 fp16 bundles ask for fp16 arithmetic: x86 (fp32 compute) cannot show its error, the emulated
    Cortex-A76 does (facts/arm64-emulation.md: ~10x); on the A72 (no fp16 arithmetic) host and device agree."""
    name = "ppocr_cls" if "ppocr_cls" in models else "cnn"
    refs, host, emulated, info = _host_and_emulated(_build(cli, models, tmp_path, name, "rpi5", "fp16"))
    err = lambda outs: max(float(np.max(np.abs(o[k] - r[k]))) for o, r in zip(outs, refs) for k in r)  # noqa: E731
    assert "asimdhp" in info["cpu_features"]
    assert err(emulated) > 2 * err(host), (err(emulated), err(host))
    refs, host, emulated, _ = _host_and_emulated(_build(cli, models, tmp_path, name, "rpi4", "fp16"))
    assert err(emulated) < 2 * err(host) + 1e-6


def test_int8_layers_agree_between_x86_and_arm64(cli, models, tmp_path):
    refs, host, emulated, _ = _host_and_emulated(_build(cli, models, tmp_path, "cnn", "rpi4", "int8"))
    for h, e in zip(host, emulated):
        for k in h:
            assert np.array_equal(np.argmax(h[k], -1), np.argmax(e[k], -1))
            assert float(np.max(np.abs(h[k] - e[k]))) <= 1e-3 * float(np.ptp(h[k]) or 1.0)


def test_build_verify_on_emulated_and_the_fallback_warning(cli, models, tmp_path):
    bundle = _build(cli, models, tmp_path, "cnn", "rpi4", "int8", "--verify-on", "emulated")
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["build_options"]["verify_on"] == "emulated"
    assert set(manifest["verification"]["emulated"]["runs"]) == {"bundle", "fallback"}
    # on the device with only tflite-runtime, the runner says what that costs (as measured emulated)
    from deploykit.devenv import device_env
    from deploykit.emulate.root import root_env
    from deploykit.emulate.run import WORK_MOUNT, Emulator
    from deploykit.emulate.verify import profile_for

    profile = profile_for(manifest)
    emu = Emulator(device_env(profile, role="fallback"), cores=profile.cores)
    venv = emu.prepare()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["cp", "-r", str(bundle), f"{tmp}/bundle"], check=True)
        r = subprocess.run(emu.command([f"{venv}/bin/python", f"{WORK_MOUNT}/bundle/runner.py"], Path(tmp)),
                           capture_output=True, text=True, env=root_env(emu.env), timeout=600)
    assert r.returncode == 0, r.stderr
    assert "warning: using tflite_runtime" in r.stderr and "on the emulated cortex-a72, tflite-runtime 2.14.0" in r.stderr


def test_wrong_cpuinfo_is_refused_and_the_runner_says_no_xnnpack(cli, models, tmp_path):
    """Trap 3: QEMU shows the host's x86 cpuinfo; LiteRT then silently runs without XNNPACK. Emulated
    verification refuses such a run; the runner itself no longer claims XNNPACK in it."""
    from deploykit.bundle.manifest import open_bundle, read_samples
    from deploykit.emulate.root import root_env
    from deploykit.emulate.run import WORK_MOUNT, Emulator
    from deploykit.emulate.verify import environments, profile_for
    from deploykit.errors import DeployError

    bundle = _build(cli, models, tmp_path, "cnn", "rpi4", "fp32")
    manifest = open_bundle(bundle)
    feeds, _ = read_samples(bundle, manifest)
    profile = profile_for(manifest)
    emu = Emulator(environments(profile, bundle, ("bundle",))[0], cores=profile.cores, device_cpuinfo=False)
    with pytest.raises(DeployError, match=r"does not see the device's /proc/cpuinfo .* expected 0xd08 of the Cortex-A72.* "
                                          r"silently runs without XNNPACK"):
        emu.run_bundle(bundle, feeds, [s["name"] for s in manifest["inputs"]], [s["name"] for s in manifest["outputs"]])
    venv = emu.prepare()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["cp", "-r", str(bundle), f"{tmp}/bundle"], check=True)
        r = subprocess.run(emu.command([f"{venv}/bin/python", f"{WORK_MOUNT}/bundle/runner.py", "--benchmark", "2"],
                                       Path(tmp)), capture_output=True, text=True, env=root_env(emu.env), timeout=600)
    assert r.returncode == 0, r.stderr
    assert "ai-edge-litert 2.3.0 (no XNNPACK: built-in kernels)" in r.stdout
