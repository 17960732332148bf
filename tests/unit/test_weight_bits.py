"""7-bit weights: int8 that CPU runtimes cannot saturate on x86 CPUs without VNNI.

ONNX Runtime's and OpenVINO's u8 x s8 kernels sum pairs of products in int16 there
(``vpmaddubsw``): |a0*w0 + a1*w1| <= 255 * (|w0| + |w1|) must stay <= 32767, i.e. |w| <= 64.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx_ir as ir
import pytest

import modelzoo
from deploykit.cpu import CpuClass, cpu_class
from deploykit.ir import graph_inputs, load_model
from deploykit.passes import canonicalize
from deploykit.quant.calibration import random_samples
from deploykit.quant.engine import QuantConfig, quantize_model
from deploykit.quant.params import narrowed_range, params_from_range
from deploykit.quant.scheme import COMPUTE_OPS, QuantScheme

pytestmark = pytest.mark.unit

INT16_MAX = 32767


def _worst_pair_sum(q: np.ndarray) -> int:
    """Worst |u8 * w0 + u8 * w1| over any two weights of one output channel (the pairing of a
    kernel's packing is an implementation detail: take the two largest magnitudes)."""
    flat = np.sort(np.abs(q.reshape(q.shape[0], -1).astype(np.int64)), axis=1)
    return int(255 * (flat[:, -1] + flat[:, -2]).max())


def test_narrowed_ranges():
    assert narrowed_range("int8", 8) == (-128, 127)
    assert narrowed_range("int8", 7) == (-64, 63)
    assert narrowed_range("uint8", 7) == (0, 127)
    assert narrowed_range("int32", 7) == (-(2**31), 2**31 - 1)


@pytest.mark.parametrize("bits,limit", [(8, 127), (7, 63)])
def test_symmetric_weights_use_the_narrow_range(bits, limit):
    w = np.random.default_rng(0).standard_normal((8, 32)).astype(np.float32)
    p = params_from_range(w.min(axis=1), w.max(axis=1), "int8", symmetric=True, axis=0, bits=bits)
    q = p.quantize(w)
    assert np.abs(q).max() == limit
    err = np.abs(p.dequantize(q) - w).max(axis=1)
    assert np.all(err <= np.asarray(p.scale) / 2 + 1e-7)


def test_asymmetric_7bit_activation_range():
    p = params_from_range(-1.0, 3.0, "int8", bits=7)
    q = p.quantize(np.linspace(-1, 3, 101, dtype=np.float32))
    assert q.min() == -64 and q.max() == 63


def _scheme(bits: int) -> QuantScheme:
    return QuantScheme(weight_bits=bits, quantize_ops=COMPUTE_OPS - {"Add", "Mul"})


def test_7bit_scheme_cannot_saturate_int16_pairs(tmp_path):
    model = canonicalize(load_model(modelzoo.small_cnn(tmp_path / "m.onnx")))
    samples = random_samples(graph_inputs(model), 12, seed=1)
    eight = quantize_model(model, samples, _scheme(8), QuantConfig(method="minmax"))
    seven = quantize_model(model, samples, _scheme(7), QuantConfig(method="minmax"))
    worst8 = max(_worst_pair_sum(p.quantize(_value(eight, n))) for n, p in eight.plan.weights.items())
    worst7 = max(_worst_pair_sum(p.quantize(_value(seven, n))) for n, p in seven.plan.weights.items())
    assert worst8 > INT16_MAX >= worst7  # 8-bit weights can overflow; 7-bit ones cannot
    assert seven.report["weight_bits"] == 7
    for name, p in seven.plan.weights.items():
        assert np.abs(p.quantize(_value(seven, name))).max() <= 63, name


def _value(result, name):
    from onnx import numpy_helper

    v = result.plan.float_values.get(name)
    if v is not None:
        return v
    return next(numpy_helper.to_array(t) for t in ir.to_proto(result.model).graph.initializer if t.name == name)


def test_7bit_scheme_keeps_products_of_two_activations_in_float(tmp_path):
    model = canonicalize(load_model(modelzoo.small_transformer(tmp_path / "t.onnx")))
    samples = random_samples(graph_inputs(model), 8, seed=2)
    logs: list[str] = []
    seven = quantize_model(model, samples, _scheme(7), QuantConfig(method="minmax"), log=logs.append)
    eight = quantize_model(model, samples, _scheme(8), QuantConfig(method="minmax"))
    assert {"qk", "pv"} <= set(seven.fallback)  # q x k^T and p x v: operands known only at run time
    assert not {"qk", "pv"} & set(eight.fallback)
    assert "q_proj" not in seven.fallback  # constant weights are quantized as usual
    assert any("two activations stay in float" in m for m in logs)


def test_backend_schemes_state_their_weight_bits():
    """CPU runtimes that can run on x86 without VNNI get 7 bits; devices that accumulate int8 in int32
    (XNNPACK on ARM, Edge TPU, TensorRT) keep 8."""
    from deploykit_edgetpu.backend import EDGETPU_SCHEME
    from deploykit_onnxruntime.backend import OnnxRuntimeBackend
    from deploykit_openvino.backend import OPENVINO_SCHEME
    from deploykit_tensorrt.backend import TensorRtBackend
    from deploykit_tflite.backend import XNNPACK_SCHEME

    assert OnnxRuntimeBackend.quant_scheme.weight_bits == 7
    assert OnnxRuntimeBackend.quant_scheme.int32_weight_bits == 8  # its runner guards 8-bit weights
    assert OPENVINO_SCHEME.weight_bits == 7
    assert OPENVINO_SCHEME.int32_weight_bits is None  # no exact fallback in OpenVINO's runner
    assert XNNPACK_SCHEME.weight_bits == EDGETPU_SCHEME.weight_bits == TensorRtBackend.quant_scheme.weight_bits == 8


_PROFILES = Path(__file__).resolve().parents[2] / "targets"


def builtin_profile(name: str):
    from deploykit.targets import load_profile

    return load_profile(_PROFILES / f"{name}.toml")


def _wide_scheme() -> QuantScheme:
    return QuantScheme(weight_bits=7, int32_weight_bits=8, quantize_ops=COMPUTE_OPS - {"Add", "Mul"})


def test_wider_weights_only_where_the_device_sums_in_int32(tmp_path):
    """A 7-bit scheme that allows 8 bits on int32-accumulating devices: the engine tries them
    there, keeps them when clearly more accurate, and never tries them elsewhere."""
    model = canonicalize(load_model(modelzoo.small_cnn(tmp_path / "m.onnx")))
    samples = random_samples(graph_inputs(model), 24, seed=3)
    logs: list[str] = []
    wide = quantize_model(model, samples, _wide_scheme(), QuantConfig(method="minmax", int32_accumulation=True),
                          log=logs.append)
    narrow = quantize_model(model, samples, _wide_scheme(), QuantConfig(method="minmax"))
    assert narrow.report["weight_bits"] == 7
    assert wide.report["weight_bits"] == 8, logs
    assert any(m.startswith("8-bit weights (the device sums int8 in int32)") for m in logs), logs
    for name, p in wide.plan.weights.items():  # the plan really uses the full grid
        assert np.abs(p.quantize(_value(wide, name))).max() == 127, name
    assert wide.metrics != narrow.metrics


def test_wider_weights_stay_out_when_they_gain_nothing(tmp_path):
    """Weights already on a 7-bit grid gain nothing from 8 bits: the portable 7-bit plan stays."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(4)
    w = rng.integers(-63, 64, (8, 16, 3, 3)).astype(np.float32) * np.float32(0.01)
    w[:, 0, 0, 0] = 0.63  # every channel reaches the 7-bit maximum: its grid is exactly the weights'
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 8])],
        [numpy_helper.from_array(w, "w")])
    path = tmp_path / "grid.onnx"
    import onnx

    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    model = canonicalize(load_model(path))
    logs: list[str] = []
    r = quantize_model(model, random_samples(graph_inputs(model), 24, seed=5), _wide_scheme(),
                       QuantConfig(method="minmax", int32_accumulation=True), log=logs.append)
    assert r.report["weight_bits"] == 7
    assert any(m.startswith("7-bit weights stay") for m in logs), logs


@pytest.mark.parametrize("arch,declared,saturates,expected", [
    ("aarch64", "", True, True),            # ARM sums in int32 whatever this machine is
    ("x86_64", "", False, False),           # an x86 device that does not say: assume no VNNI
    ("x86_64", "int32", True, True),
    ("x86_64", "int16", False, False),
    ("x86_64", "build-machine", False, True),
    ("x86_64", "build-machine", True, False),
])
def test_profile_says_where_int8_sums_in_int32(monkeypatch, arch, declared, saturates, expected):
    import dataclasses

    import deploykit.cpu as cpu

    monkeypatch.setattr(cpu, "cpu_class", lambda: CpuClass("x86-64", "avx2", vnni=not saturates))
    profile = dataclasses.replace(builtin_profile("host"), arch=arch, int8_accumulator=declared)
    assert profile.int8_sums_in_int32 is expected


def test_profile_int8_accumulator_is_validated():
    import tomllib

    from deploykit.errors import TargetError
    from deploykit.targets import profile_from_dict

    assert builtin_profile("host").int8_accumulator == "build-machine"
    assert builtin_profile("intel-cpu").int8_sums_in_int32 is False  # AVX2 baseline: 7-bit weights
    data = tomllib.loads((_PROFILES / "host.toml").read_text())
    data["device"]["int8_accumulator"] = "int12"
    with pytest.raises(TargetError, match="int8_accumulator"):
        profile_from_dict(data)


@pytest.mark.parametrize("flags,machine,label,saturates", [
    ({"avx2", "avx512f", "avx512_vnni"}, "x86_64", "x86-64 AVX-512 + VNNI", False),
    ({"avx2", "avx_vnni"}, "x86_64", "x86-64 AVX2 + AVX-VNNI", False),
    ({"avx2", "avx512f"}, "x86_64", "x86-64 AVX-512 (no VNNI)", True),
    ({"avx2"}, "x86_64", "x86-64 AVX2 (no VNNI)", True),
    (set(), "x86_64", "x86-64 SSE (no VNNI)", True),
    ({"asimd", "asimddp"}, "aarch64", "arm64 + dotprod", False),
    ({"asimd"}, "aarch64", "arm64 (no dotprod)", False),
])
def test_cpu_class(monkeypatch, flags, machine, label, saturates):
    import deploykit.cpu as cpu

    cpu.cpu_class.cache_clear()
    monkeypatch.setattr(cpu, "_flags", lambda: set(flags))
    monkeypatch.setattr(cpu, "_numpy_flags", lambda: set())
    monkeypatch.setattr(cpu.platform, "machine", lambda: machine)
    try:
        c = cpu.cpu_class()
        assert c.label == label and c.int8_saturates is saturates
        assert c.to_json()["int8_saturates"] is saturates and c.int8_note
    finally:
        cpu.cpu_class.cache_clear()


def test_this_machine_has_a_class():
    c = cpu_class()
    assert isinstance(c, CpuClass) and c.label
