"""The bundle's TensorRT path (trt_engine.py) against a fake ``tensorrt`` module and fake GPU
buffers that execute the ONNX with onnxruntime: 8.x bindings API vs 10.x tensor API chosen at
run time, engine built on first run, cached keyed by TensorRT version + GPU name, reused.
The real thing runs only where TensorRT and an NVIDIA GPU exist (``gpu`` marker)."""

from __future__ import annotations

import importlib.util
import types

import numpy as np
import onnx
import pytest

import modelzoo
from trt_testlib import build

pytestmark = pytest.mark.plugin
ort = pytest.importorskip("onnxruntime")


class FakeGpu:
    name = "fake-cuda"

    def __init__(self):
        self.mem, self.handle = {}, 7

    def device(self):
        return "Fake Orin (nvgpu)", "8.7"

    def host(self, shape, dtype):
        return np.zeros(shape, dtype)

    def alloc(self, nbytes):
        ptr = 0x1000 * (len(self.mem) + 1)
        self.mem[ptr] = bytearray(nbytes)
        return ptr

    def htod(self, ptr, host):
        self.mem[ptr][:] = host.tobytes()

    def dtoh(self, host, ptr):
        host[...] = np.frombuffer(bytes(self.mem[ptr]), host.dtype).reshape(host.shape)

    def sync(self):
        pass


def fake_tensorrt(version: str, gpu: FakeGpu, builds: list):
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    tensor_api = int(version.split(".")[0]) >= 10
    enum = lambda **kw: types.SimpleNamespace(**kw)  # noqa: E731
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})
    trt.NetworkDefinitionCreationFlag = enum(EXPLICIT_BATCH=0)
    trt.MemoryPoolType = enum(WORKSPACE=0)
    trt.BuilderFlag = enum(FP16="fp16", INT8="int8", GPU_FALLBACK="gpu_fallback")
    trt.TensorIOMode = enum(INPUT="in", OUTPUT="out")
    trt.init_libnvinfer_plugins = lambda logger, ns: True
    trt.nptype = lambda dt: np.float32
    trt.IInt8EntropyCalibrator2 = type("IInt8EntropyCalibrator2", (), {"__init__": lambda self: None})

    class Network:
        def __init__(self):
            self.inputs = []

        @property
        def num_inputs(self):
            return len(self.inputs)

        def get_input(self, i):
            return self.inputs[i]

    class Parser:
        def __init__(self, network, logger):
            self.network, self.num_errors = network, 0

        def parse_from_file(self, path):
            m = onnx.load(path)
            self.network.path = path
            self.network.inputs = [types.SimpleNamespace(name=i.name, shape=[d.dim_value for d in i.type.tensor_type.shape.dim])
                                   for i in m.graph.input]
            return True

    class Config:
        def __init__(self):
            self.flags, self.pool = set(), None

        def set_flag(self, f):
            self.flags.add(f)

        def create_timing_cache(self, data):
            return types.SimpleNamespace(serialize=lambda: b"timing")

        def set_timing_cache(self, cache, ignore):
            self.cache = cache

        def get_timing_cache(self):
            return self.cache

    if tensor_api:
        Config.set_memory_pool_limit = lambda self, pool, size: setattr(self, "pool", size)

    class Builder:
        platform_has_fast_fp16 = platform_has_fast_int8 = True
        num_DLA_cores = 0

        def __init__(self, logger):
            pass

        def create_network(self, flags):
            assert flags == (0 if tensor_api else 1)
            return Network()

        def create_builder_config(self):
            return Config()

        def build_serialized_network(self, network, config):
            builds.append((network.path, sorted(config.flags), config.pool or getattr(config, "max_workspace_size", None)))
            return ("FAKE:" + network.path).encode()

    class Context:
        def __init__(self, engine):
            self.engine, self.addr = engine, {}

        def _execute(self, addresses):
            feeds = {}
            for name, shape in self.engine.io["in"]:
                feeds[name] = np.frombuffer(bytes(gpu.mem[addresses[name]]), np.float32).reshape(shape)
            outs = self.engine.session.run([n for n, _ in self.engine.io["out"]], feeds)
            for (name, _), value in zip(self.engine.io["out"], outs):
                gpu.mem[addresses[name]][:] = np.ascontiguousarray(value, np.float32).tobytes()
            return True

        def set_tensor_address(self, name, ptr):
            self.addr[name] = ptr

        def get_tensor_shape(self, name):
            return self.engine.shapes[name]

        def execute_async_v3(self, handle):
            assert handle == gpu.handle
            return self._execute(self.addr)

        def get_binding_shape(self, i):
            return self.engine.shapes[self.engine.names[i]]

        def execute_async_v2(self, bindings, stream_handle):
            return self._execute(dict(zip(self.engine.names, bindings)))

    class Engine:
        def __init__(self, path):
            self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            self.io = {"in": [(i.name, i.shape) for i in self.session.get_inputs()],
                       "out": [(o.name, [d if isinstance(d, int) else 1 for d in o.shape]) for o in self.session.get_outputs()]}
            self.names = [n for n, _ in self.io["in"] + self.io["out"]]
            self.shapes = dict(self.io["in"] + self.io["out"])

        def create_execution_context(self):
            return Context(self)

    if tensor_api:
        Engine.num_io_tensors = property(lambda self: len(self.names))
        Engine.get_tensor_name = lambda self, i: self.names[i]
        Engine.get_tensor_mode = lambda self, n: "in" if n in dict(self.io["in"]) else "out"
        Engine.get_tensor_shape = lambda self, n: self.shapes[n]
        Engine.get_tensor_dtype = lambda self, n: "float"
    else:
        Engine.num_bindings = property(lambda self: len(self.names))
        Engine.get_binding_name = lambda self, i: self.names[i]
        Engine.binding_is_input = lambda self, i: self.names[i] in dict(self.io["in"])
        Engine.get_binding_shape = lambda self, i: self.shapes[self.names[i]]
        Engine.get_binding_dtype = lambda self, i: "float"

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            data = bytes(data)
            return Engine(data[5:].decode()) if data.startswith(b"FAKE:") else None

    trt.Builder, trt.OnnxParser, trt.Runtime = Builder, Parser, Runtime
    return trt


@pytest.fixture(scope="module")
def orin_int8(tmp_path_factory):
    work = tmp_path_factory.mktemp("fake-trt")
    np.save(work / "c.npy", np.random.default_rng(0).standard_normal((16, 3, 16, 16)).astype(np.float32))
    return build(modelzoo.small_cnn(work / "cnn.onnx"), work / "orin-int8", "jetson-orin-nano", "int8",
                 "--calibration", work / "c.npy")


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("version,api", [("10.3.0", "tensor"), ("8.2.1", "bindings")])
def test_engine_built_once_cached_and_reused(orin_int8, tmp_path, monkeypatch, version, api):
    monkeypatch.setenv("DEPLOYKIT_ENGINE_CACHE", str(tmp_path / "engines"))
    runner = _load(orin_int8 / "runner.py", f"runner_fake_{api}")
    engine_mod = _load(orin_int8 / "trt_engine.py", f"trt_engine_fake_{api}")
    gpu, builds = FakeGpu(), []
    trt = fake_tensorrt(version, gpu, builds)
    x = np.load(orin_int8 / "samples" / "inputs.npz")["in_0"][:1]
    eng = engine_mod.TensorRTEngine(str(orin_int8), runner.SPEC, log=lambda m: None, trt=trt, gpu=gpu)
    assert eng.tensor_api == (api == "tensor") and f"{api} API" in eng.description
    assert len(builds) == 1 and builds[0][0].endswith("model.onnx") and {"fp16", "int8"} <= set(builds[0][1])
    assert builds[0][2] == 1024 << 20  # workspace from the profile, through the version's API
    files = sorted(p.name for p in (tmp_path / "engines").glob("*.engine"))
    assert len(files) == 1 and f"trt{version}" in files[0] and "fake-orin-nvgpu" in files[0] and ".sm87." in files[0]
    out = eng.run({"image": x.astype(np.float32)})
    ref = ort.InferenceSession(str(orin_int8 / "model.onnx"), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    np.testing.assert_allclose(out["scores"], ref, rtol=1e-6)
    again = engine_mod.TensorRTEngine(str(orin_int8), runner.SPEC, log=lambda m: None, trt=trt, gpu=gpu)
    assert len(builds) == 1 and again.path == eng.path  # reused, not rebuilt
    other = fake_tensorrt("10.4.0" if api == "tensor" else "8.2.3", gpu, builds)
    engine_mod.TensorRTEngine(str(orin_int8), runner.SPEC, log=lambda m: None, trt=other, gpu=gpu)
    assert len(builds) == 2  # another TensorRT version gets its own engine
    implicit = engine_mod.TensorRTEngine(str(orin_int8), runner.SPEC, log=lambda m: None, trt=trt, gpu=gpu, implicit=True)
    assert builds[-1][0].endswith("model_fp32.onnx") and implicit.path != eng.path
    np.testing.assert_allclose(implicit.run({"image": x})["scores"], ref, atol=0.05)


def test_cache_header_retargeted_for_local_tensorrt(orin_int8):
    engine_mod = _load(orin_int8 / "trt_engine.py", "trt_engine_retarget")
    text = (orin_int8 / "calibration.cache").read_text()
    assert engine_mod.retarget_cache(text, "8.5.2.2").splitlines()[0] == "TRT-8502-EntropyCalibration2"
    assert engine_mod.retarget_cache(text, "10.3.0").splitlines()[1:] == text.splitlines()[1:]


def test_runner_falls_back_with_a_clear_message(orin_int8, capfd, monkeypatch):
    monkeypatch.delenv("DEPLOYKIT_RUNTIME", raising=False)
    runner = _load(orin_int8 / "runner.py", "runner_fallback")
    r = runner.Runner(str(orin_int8))
    err = capfd.readouterr().err
    assert "TensorRT unavailable" in err and "falling back to onnxruntime" in err
    assert r.runtime.startswith("onnxruntime") and "CPUExecutionProvider" in r.runtime
    monkeypatch.setenv("DEPLOYKIT_RUNTIME", "tensorrt")
    with pytest.raises(Exception):
        runner.Runner(str(orin_int8))


@pytest.mark.gpu
def test_real_tensorrt_engine(orin_int8, tmp_path, monkeypatch):
    import shutil

    trt = pytest.importorskip("tensorrt")
    if not hasattr(trt, "Logger") or shutil.which("nvidia-smi") is None:  # another test's stand-in module
        pytest.skip("needs the real TensorRT and an NVIDIA GPU")
    monkeypatch.setenv("DEPLOYKIT_ENGINE_CACHE", str(tmp_path))
    monkeypatch.setenv("DEPLOYKIT_RUNTIME", "tensorrt")
    runner = _load(orin_int8 / "runner.py", "runner_gpu")
    r = runner.Runner(str(orin_int8))
    assert r.runtime.startswith("TensorRT")
    x = np.load(orin_int8 / "samples" / "inputs.npz")["in_0"][:1]
    expected = np.load(orin_int8 / "samples" / "expected.npz")["out_0"][:1]
    out = r.run({"image": x})["scores"]
    assert np.abs(out - expected.reshape(out.shape)).max() < 0.05
