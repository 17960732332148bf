"""7-bit weights: int8 that CPU runtimes cannot saturate on x86 CPUs without VNNI.

ONNX Runtime's and OpenVINO's u8 x s8 kernels sum pairs of products in int16 there
(``vpmaddubsw``): |a0*w0 + a1*w1| <= 255 * (|w0| + |w1|) must stay <= 32767, i.e. |w| <= 64.
"""

from __future__ import annotations

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
    assert OPENVINO_SCHEME.weight_bits == 7
    assert XNNPACK_SCHEME.weight_bits == EDGETPU_SCHEME.weight_bits == TensorRtBackend.quant_scheme.weight_bits == 8


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
