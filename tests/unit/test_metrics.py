"""deploykit.quant.metrics (verification numbers) and deploykit.quant.params (affine quantization)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from deploykit.quant.metrics import compare_arrays, compare_outputs, json_safe, top1_agreement
from deploykit.quant.params import INT_RANGES, QuantParams, params_from_range

pytestmark = pytest.mark.unit


# --------------------------------------------------------------------------- compare_arrays
def test_identical_arrays():
    x = np.random.default_rng(0).standard_normal((4, 10)).astype(np.float32)
    m = compare_arrays(x, x.copy())
    assert m == {"max_abs_error": 0.0, "rel_max_abs_error": 0.0, "cosine": pytest.approx(1.0), "sqnr_db": math.inf}


def test_scaled_output_has_known_sqnr_and_cosine():
    ref = np.array([1.0, -1.0] * 50, np.float32)
    out = ref * 1.1  # error = 0.1 * ref -> SQNR = 10 log10(1 / 0.01) = 20 dB
    m = compare_arrays(ref, out)
    assert m["sqnr_db"] == pytest.approx(20.0, abs=1e-4)
    assert m["cosine"] == pytest.approx(1.0)
    assert m["max_abs_error"] == pytest.approx(0.1, rel=1e-5)
    assert m["rel_max_abs_error"] == pytest.approx(0.05, rel=1e-5)  # range of ref is 2


@pytest.mark.parametrize("target_db", [10.0, 30.0, 60.0])
def test_noise_of_known_power(target_db):
    rng = np.random.default_rng(1)
    ref = rng.standard_normal(4096)
    noise = rng.standard_normal(4096)
    noise *= np.linalg.norm(ref) / np.linalg.norm(noise) * 10 ** (-target_db / 20)  # exact power ratio
    m = compare_arrays(ref, ref + noise)
    assert m["sqnr_db"] == pytest.approx(target_db, abs=1e-6)
    assert m["max_abs_error"] == pytest.approx(float(np.max(np.abs(noise))))


def test_sign_flip_has_cosine_minus_one():
    ref = np.arange(1, 6, dtype=np.float32)
    m = compare_arrays(ref, -ref)
    assert m["cosine"] == pytest.approx(-1.0)
    assert m["sqnr_db"] == pytest.approx(10 * math.log10(1 / 4))  # error = -2 ref


def test_zero_reference():
    z = np.zeros(5)
    assert compare_arrays(z, z)["sqnr_db"] == math.inf and compare_arrays(z, z)["cosine"] == 1.0
    m = compare_arrays(z, np.full(5, 0.5))
    assert m["sqnr_db"] == -math.inf and m["cosine"] == 0.0
    assert m["rel_max_abs_error"] == 0.5  # scale falls back to 1 for a flat zero reference


def test_constant_reference_uses_its_magnitude_as_scale():
    m = compare_arrays(np.full(4, 4.0), np.full(4, 5.0))
    assert m["rel_max_abs_error"] == pytest.approx(0.25)


def test_empty_arrays():
    m = compare_arrays(np.zeros((0, 3)), np.zeros((0, 3)))
    assert m["sqnr_db"] == math.inf and m["cosine"] == 1.0 and m["max_abs_error"] == 0.0


def test_size_mismatch_raises():
    with pytest.raises(ValueError, match="shape mismatch"):
        compare_arrays(np.zeros(4), np.zeros(5))


def test_non_finite_values_are_counted_not_propagated():
    ref = np.array([1.0, np.nan, np.inf, 2.0])
    out = np.array([1.0, np.nan, 3.0, 2.0])
    m = compare_arrays(ref, out)
    assert m["nonfinite_mismatches"] == 1.0
    assert m["max_abs_error"] == 0.0 and m["sqnr_db"] == math.inf
    assert "nonfinite_mismatches" not in compare_arrays(np.array([np.nan, 1.0]), np.array([np.nan, 1.0]))


def test_metrics_are_python_floats():
    m = compare_arrays(np.arange(4, dtype=np.float32), np.arange(4, dtype=np.float32) + 0.5)
    assert all(type(v) is float for v in m.values())
    json.dumps(json_safe(m))


# --------------------------------------------------------------------------- top1 / compare_outputs
def test_top1_agreement():
    ref = np.eye(4, 10)
    out = ref.copy()
    out[3] = np.eye(10)[7]
    assert top1_agreement(ref, out) == 0.75
    assert top1_agreement(ref, ref) == 1.0


@pytest.mark.parametrize("ref, out", [(np.zeros(10), np.zeros(10)), (np.zeros((4, 1)), np.zeros((4, 1))),
                                      (np.zeros((2, 5)), np.zeros((2, 6)))])
def test_top1_not_meaningful(ref, out):
    assert top1_agreement(ref, out) is None


def test_compare_outputs_per_name_with_top1_for_classifiers():
    rng = np.random.default_rng(2)
    refs = [{"scores": rng.standard_normal((1, 10)), "feat": rng.standard_normal((1, 3, 2, 2))} for _ in range(4)]
    outs = [{k: v.copy() for k, v in r.items()} for r in refs]
    outs[0]["scores"] = -outs[0]["scores"]
    m = compare_outputs(refs, outs)
    assert set(m) == {"scores", "feat"}
    assert m["scores"]["top1_agreement"] == 0.75
    assert "top1_agreement" not in m["feat"]
    assert m["feat"]["sqnr_db"] == math.inf
    assert compare_outputs([], []) == {}


# --------------------------------------------------------------------------- json_safe
def test_json_safe():
    value = {"a": math.inf, "b": [-math.inf, math.nan, 1.5, (2, math.inf)], "c": {"d": np.float64("nan")}, "e": "x",
             "f": 3, "g": None}
    safe = json_safe(value)
    assert safe == {"a": "inf", "b": ["-inf", "nan", 1.5, [2, "inf"]], "c": {"d": "nan"}, "e": "x", "f": 3, "g": None}
    json.loads(json.dumps(safe, allow_nan=False))


# --------------------------------------------------------------------------- QuantParams round trips
@pytest.mark.parametrize("dtype", ["int8", "uint8"])
@pytest.mark.parametrize("symmetric", [False, True])
def test_per_tensor_round_trip_error_is_at_most_half_a_step(dtype, symmetric):
    x = np.random.default_rng(3).uniform(-2.0, 3.0, 1000).astype(np.float32)
    p = params_from_range(float(x.min()), float(x.max()), dtype=dtype, symmetric=symmetric)
    q = p.quantize(x)
    assert q.dtype == np.dtype(dtype)
    assert q.min() >= p.qmin and q.max() <= p.qmax
    err = np.abs(p.dequantize(q) - x)
    assert err.max() <= float(p.scale) / 2 * (1 + 1e-4) + 1e-6


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_per_channel_round_trip(axis):
    rng = np.random.default_rng(4)
    w = rng.standard_normal((4, 3, 2, 5)).astype(np.float32)
    w *= np.arange(1, w.shape[axis] + 1).reshape([-1 if i == axis % 4 else 1 for i in range(4)])  # ranges differ
    reduce = tuple(i for i in range(4) if i != axis % 4)
    p = params_from_range(w.min(axis=reduce), w.max(axis=reduce), symmetric=True, axis=axis)
    assert p.per_channel and p.scale.shape == (w.shape[axis],)
    assert np.all(p.zero_point == 0)
    np.testing.assert_allclose(p.scale, np.maximum(np.abs(w.min(axis=reduce)), w.max(axis=reduce)) / 127, rtol=1e-6)
    err = np.abs(p.dequantize(p.quantize(w)) - w)
    bound = p._bcast(p.scale, 4) / 2 * (1 + 1e-4)
    assert np.all(err <= bound)


def test_values_outside_the_range_are_clipped():
    p = params_from_range(-1.0, 1.0, symmetric=True)
    q = p.quantize(np.array([-10.0, 10.0], np.float32))
    assert q.tolist() == [-128, 127]


def test_manual_params_quantize_exactly():
    p = QuantParams(scale=np.array(0.5, np.float32), zero_point=np.array(10), dtype="uint8")
    x = np.array([0.0, 0.5, -5.0, 1.24, 200.0], np.float32)
    assert p.quantize(x).tolist() == [10, 11, 0, 12, 255]
    np.testing.assert_allclose(p.dequantize(np.array([10, 11, 0], np.uint8)), [0.0, 0.5, -5.0])


# --------------------------------------------------------------------------- params_from_range
def test_asymmetric_int8_known_values():
    p = params_from_range(-1.0, 3.0)
    assert float(p.scale) == pytest.approx(4.0 / 255)
    assert int(p.zero_point) == round(-128 + 1.0 / (4.0 / 255))  # -64 (rounded -63.75)
    assert p.range == (-1.0, 3.0) and p.axis is None and not p.per_channel


def test_asymmetric_uint8_known_values():
    p = params_from_range(0.0, 255.0, dtype="uint8")
    assert float(p.scale) == 1.0 and int(p.zero_point) == 0
    p = params_from_range(-10.0, 0.0, dtype="uint8")
    assert int(p.zero_point) == 255


@pytest.mark.parametrize("dtype, zp", [("int8", 0), ("uint8", 128)])
def test_symmetric_known_values(dtype, zp):
    p = params_from_range(-0.5, 2.0, dtype=dtype, symmetric=True)
    half = 127.0 if dtype == "int8" else 127.5
    assert float(p.scale) == pytest.approx(2.0 / half)
    assert int(p.zero_point) == zp


@pytest.mark.parametrize("lo, hi", [(1.0, 5.0), (-5.0, -1.0), (0.0, 0.0), (2.0, 2.0), (-3.0, 4.0)])
@pytest.mark.parametrize("dtype", ["int8", "uint8"])
@pytest.mark.parametrize("symmetric", [False, True])
def test_range_always_includes_zero_exactly(lo, hi, dtype, symmetric):
    p = params_from_range(lo, hi, dtype=dtype, symmetric=symmetric)
    assert float(p.scale) > 0 and np.isfinite(p.scale)
    assert p.qmin <= int(p.zero_point) <= p.qmax
    assert p.range[0] <= 0.0 <= p.range[1]
    assert p.dequantize(p.quantize(np.zeros(3, np.float32))).tolist() == [0.0, 0.0, 0.0]
    for v in (lo, hi):
        err = abs(float(p.dequantize(p.quantize(np.array([v], np.float32)))[0]) - v)
        assert err <= float(p.scale) / 2 * (1 + 1e-4) + 1e-7


@pytest.mark.parametrize("symmetric", [False, True])
def test_degenerate_zero_range_per_tensor(symmetric):
    p = params_from_range(0.0, 0.0, symmetric=symmetric)
    assert float(p.scale) == 1.0
    assert p.range == (0.0, 0.0)
    assert p.quantize(np.zeros(2, np.float32)).tolist() == [int(p.zero_point)] * 2


@pytest.mark.parametrize("symmetric", [False, True])
def test_degenerate_channel_in_per_channel_params(symmetric):
    lo, hi = np.array([-1.0, 0.0, 0.0]), np.array([1.0, 0.0, 2.0])
    p = params_from_range(lo, hi, symmetric=symmetric, axis=0)
    assert p.scale.dtype == np.float32 and p.scale.shape == (3,)
    assert np.all(p.scale > 0) and np.all(np.isfinite(p.scale))
    assert p.range is None
    w = np.stack([np.linspace(-1, 1, 5), np.zeros(5), np.linspace(0, 2, 5)]).astype(np.float32)
    np.testing.assert_allclose(p.dequantize(p.quantize(w))[1], 0.0)
    err = np.abs(p.dequantize(p.quantize(w)) - w)
    assert np.all(err <= p.scale[:, None] / 2 * (1 + 1e-4) + 1e-7)


def test_to_json():
    t = params_from_range(-1.0, 1.0, symmetric=True, method="percentile").to_json()
    assert t == {"dtype": "int8", "method": "percentile", "scale": pytest.approx(1 / 127), "zero_point": 0,
                 "range": [-1.0, 1.0]}
    c = params_from_range(np.array([-1.0, -2.0]), np.array([1.0, 2.0]), symmetric=True, axis=0).to_json()
    assert c["axis"] == 0 and len(c["scale"]) == 2 and c["zero_point"] == [0, 0] and "range" not in c
    json.dumps(t), json.dumps(c)


def test_int_ranges():
    assert INT_RANGES["int8"] == (-128, 127) and INT_RANGES["uint8"] == (0, 255)
    assert QuantParams(np.array(1.0), np.array(0), dtype="int32").qmax == 2**31 - 1


def test_running_comparison_over_chunks_equals_whole():
    from deploykit.quant.metrics import RunningComparison

    rng = np.random.default_rng(5)
    ref = rng.normal(size=(6, 50)).astype(np.float32)
    out = ref + rng.normal(scale=0.05, size=ref.shape).astype(np.float32)
    out[2, 3] = np.nan
    ref[2, 3] = np.nan  # matching NaN: not a mismatch
    out[4, 1] = np.inf  # mismatch
    running = RunningComparison()
    for r, o in zip(ref, out):
        running.add(r, o)
    whole, chunked = compare_arrays(ref, out), running.result()
    assert set(whole) == set(chunked) and whole["nonfinite_mismatches"] == 1.0
    for k in whole:
        assert chunked[k] == pytest.approx(whole[k], rel=1e-9)


def test_per_position_top1_for_probability_outputs():
    """[positions, classes] probabilities (a recognizer's softmax per time step): agreement per position."""
    from deploykit.quant.metrics import is_distribution

    rng = np.random.default_rng(0)
    logits = rng.standard_normal((1, 40, 30)).astype(np.float32)
    ref = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    out = ref.copy()
    out[0, :4] = out[0, :4, ::-1]  # 4 of 40 steps pick another class
    assert is_distribution(ref) and not is_distribution(logits)
    m = compare_outputs([{"p": ref}], [{"p": out}])["p"]
    assert m["top1_agreement"] == pytest.approx(36 / 40)
    assert "top1_agreement" not in compare_outputs([{"l": logits}], [{"l": logits}])["l"]


@pytest.mark.parametrize("metrics, passed", [
    ({"cosine": 0.97}, True),
    ({"cosine": 0.86, "top1_agreement": 0.96}, True),   # probabilities: the arg-max agrees
    ({"cosine": 0.86, "top1_agreement": 0.5}, False),
    ({"cosine": 0.86}, False),                           # no class axis: cosine decides
])
def test_int8_verification_accepts_argmax_agreement_for_probability_outputs(metrics, passed):
    from deploykit.verification import judge

    ok, problems = judge({"out": metrics}, "int8")
    assert ok is passed and (not problems) is passed


@pytest.mark.parametrize("precision", ["int8", "fp16", "fp32"])
def test_verification_fails_non_finite_outputs_whatever_the_other_metrics(precision):
    """All-NaN int8 outputs used to pass on arg-max agreement (NaN cosine compared as 'not below'):
    issue 19, magika on jetson-orin-nano."""
    from deploykit.verification import judge, verify_outputs

    ref = np.zeros((1, 5), np.float32)
    ref[0, 0] = 1.0
    out = np.full((1, 5), np.nan, np.float32)  # arg-max of an all-NaN row is 0, like the reference's
    result = verify_outputs([{"p": ref}], [{"p": out}], precision, "test")
    assert result["status"] == "failed" and "non-finite" in result["problems"][0]
    ok, problems = judge({"out": {"cosine": float("nan"), "top1_agreement": 1.0}}, precision)
    assert not ok and "not finite" in problems[0]
# --------------------------------------------------------------------------- non-finite values fail verification
def test_nonfinite_mismatch_fails_verification():
    from deploykit.verification import verify_outputs

    ref = [{"y": np.array([[1.0, 2.0, 3.0]], np.float32)}]
    out = [{"y": np.array([[1.0, np.nan, 3.0]], np.float32)}]
    result = verify_outputs(ref, out, "fp32", "test")
    assert result["status"] == "failed" and "non-finite" in result["problems"][0]


def test_nonfinite_reference_is_reported_as_such():
    from deploykit.verification import verify_outputs

    ref = [{"y": np.full((1, 3), np.nan, np.float32)}]
    result = verify_outputs(ref, [{"y": np.full((1, 3), np.nan, np.float32)}], "int8", "test")
    assert result["status"] == "failed"
    assert any("fp32 reference itself is non-finite (3 NaN/Inf" in p for p in result["problems"])
    assert result["outputs"]["y"]["reference_nonfinite"] == 3.0


def test_finite_outputs_still_pass():
    from deploykit.verification import verify_outputs

    ref = [{"y": np.array([[1.0, 2.0, 3.0]], np.float32)}]
    assert verify_outputs(ref, ref, "fp32", "test")["status"] == "passed"


@pytest.mark.parametrize("decisions, passed", [(4, False), (19, False), (20, True), (160, True)])
def test_argmax_agreement_stands_in_for_cosine_only_over_enough_decisions(decisions, passed):
    """magika rpi4 int8 (issue 19): cosine 0.85 passed on 4 agreeing held-out samples; on 24 others
    the arg-max agreed on 75 % only. A handful of agreeing decisions proves nothing."""
    from deploykit.verification import judge

    ok, problems = judge({"out": {"cosine": 0.85, "top1_agreement": 1.0, "top1_decisions": decisions}}, "int8")
    assert ok is passed
    assert passed or any("arg-max decision" in p for p in problems)


def test_top1_decisions_count_samples_or_positions():
    ref = np.eye(5, dtype=np.float32)[None, :4]  # [1, 4, 5]: 4 probability rows
    samples = [{"p": ref[:, i]} for i in range(4)]  # 4 samples of [1, 5]
    assert compare_outputs(samples, samples)["p"]["top1_decisions"] == 4
    assert compare_outputs([{"p": ref}], [{"p": ref}])["p"]["top1_decisions"] == 4


def test_a_score_in_unit_range_is_judged_on_the_probability_scale():
    """A wake-word score of ~5e-6 (openWakeWord on speech without the word): an exact fp32 bundle
    failed on error / observed range (0.006 > 1e-4) and int8's exact zero had cosine 0. Both are
    judged by their absolute error on the [0, 1] scale instead; a score squashed from 0.3 to 0 fails."""
    from deploykit.verification import judge

    refs = [{"p": np.array([[v]], np.float32)} for v in (3.3e-6, 7.3e-6, 7.5e-6, 8.0e-6)]
    fp32 = [{"p": r["p"] + np.float32(2.7e-8)} for r in refs]
    zeros = [{"p": np.zeros((1, 1), np.float32)} for _ in refs]
    m32, m8 = compare_outputs(refs, fp32), compare_outputs(refs, zeros)
    assert m32["p"]["rel_max_abs_error"] > 1e-4 and m8["p"]["cosine"] == 0.0
    assert judge(m32, "fp32") == (True, []) and judge(m8, "int8") == (True, [])
    squashed = compare_outputs([{"p": np.array([[0.3]], np.float32)}] * 4, zeros)
    ok, problems = judge(squashed, "int8")
    assert not ok and any("score_abs_error 0.3 > 0.02" in p for p in problems)
    # not a score: values beyond [0, 1], or a class axis (judged by cosine / top-1 as before)
    assert "score_abs_error" not in compare_outputs([{"p": np.array([[2.0]], np.float32)}], [{"p": np.zeros((1, 1), np.float32)}])["p"]
    probs = [{"p": np.full((1, 10), 0.1, np.float32)}] * 4
    assert "score_abs_error" not in compare_outputs(probs, probs)["p"]
