"""Stable calibration: the range method is chosen on samples the ranges were not fitted to, ranked by
its worse half, and the build says when the calibration set is too small or still growing."""

from __future__ import annotations

import numpy as np
import pytest

import modelzoo
from deploykit.ir import graph_inputs, load_model
from deploykit.passes import canonicalize
from deploykit.quant.calibration import SampleSet
from deploykit.quant.collect import collect_statistics, eval_indices, range_growth
from deploykit.quant.engine import QuantConfig, quantize_model
from deploykit.quant.scheme import QuantScheme
from deploykit.ir import to_proto

pytestmark = pytest.mark.unit


def _model(tmp_path):
    return canonicalize(load_model(modelzoo.small_cnn(tmp_path / "m.onnx")))


def _samples(model, x):
    return SampleSet({graph_inputs(model)[0].name: x.astype(np.float32)}, graph_inputs(model))


def test_eval_samples_are_spread_and_held_out(tmp_path):
    assert eval_indices(30, 8) == {0, 4, 8, 12, 17, 21, 25, 29}
    assert eval_indices(5, 8) == {0, 1, 2, 3, 4}
    model = _model(tmp_path)
    x = np.random.default_rng(0).normal(size=(30, 3, 16, 16))
    x[list(eval_indices(30, 8))] *= 100  # only the selection samples are huge
    observers, feeds, _ = collect_statistics(to_proto(model), _samples(model, x), eval_count=8)
    name = graph_inputs(model)[0].name
    assert len(feeds) == 8 and observers[name].count == 22 * 3 * 16 * 16
    assert observers[name].hi < 10  # their values never reached the ranges
    # a small set cannot spare them: then they are observed too
    observers, feeds, _ = collect_statistics(to_proto(model), _samples(model, x[:20]), eval_count=8)
    assert observers[name].count == 20 * 3 * 16 * 16


def test_growing_ranges_are_reported(tmp_path):
    model = _model(tmp_path)
    rng = np.random.default_rng(1)
    steady = rng.normal(size=(64, 3, 16, 16))
    growing = steady * np.linspace(1, 6, 64)[:, None, None, None]  # later samples ever larger
    name = graph_inputs(model)[0].name
    obs, _, _ = collect_statistics(to_proto(model), _samples(model, steady), eval_count=8)
    obs2, _, _ = collect_statistics(to_proto(model), _samples(model, growing), eval_count=8)
    g1, g2 = dict(range_growth(obs)), dict(range_growth(obs2))
    assert g1[name] < 0.2 < 0.5 < g2[name]
    logs: list[str] = []
    r = quantize_model(model, _samples(model, growing), QuantScheme(), QuantConfig(method="minmax"), log=logs.append)
    assert any("ranges are still growing" in m for m in logs), logs
    check = r.report["calibration_check"]
    assert check["held_out_for_method_choice"] == 8 and check["share_of_ranges_still_growing"] > 0.25
    logs.clear()
    quantize_model(model, _samples(model, steady), QuantScheme(), QuantConfig(method="minmax"), log=logs.append)
    assert not any("still growing" in m for m in logs), logs


def test_few_samples_are_reported(tmp_path):
    model = _model(tmp_path)
    logs: list[str] = []
    x = np.random.default_rng(2).normal(size=(12, 3, 16, 16))
    quantize_model(model, _samples(model, x), QuantScheme(), QuantConfig(method="minmax"), log=logs.append)
    assert any("12 calibration samples is few" in m for m in logs)
    assert any("chosen on 8 of the calibration samples themselves" in m for m in logs)


def test_method_ranked_by_its_worse_half(tmp_path):
    model = _model(tmp_path)
    x = np.random.default_rng(3).normal(size=(40, 3, 16, 16))
    r = quantize_model(model, _samples(model, x), QuantScheme(), QuantConfig())
    tried = r.report["methods_tried"]
    assert len(tried) == 3 and all("worst_half" in t and "spread" in t for t in tried)
    best = max(tried, key=lambda t: (t["worst_half"], t["score"]))
    assert r.report["range_method"] == best["method"]
    assert all(t["spread"] >= 0 for t in tried)


def _detector_samples(model, scale, n=40):
    x = np.random.default_rng(4).uniform(0, 1, size=(n, 3, 8, 8)) * scale
    return _samples(model, x)


def test_calibration_without_confident_predictions_is_reported(tmp_path):
    model = canonicalize(load_model(modelzoo.yolo_like_detector(tmp_path / "det.onnx")))
    logs: list[str] = []
    # faint inputs: the class logits stay near their bias (-2), no score reaches 0.5
    r = quantize_model(model, _detector_samples(model, 0.05), QuantScheme(), QuantConfig(method="minmax"),
                       log=logs.append)
    warned = [m for m in logs if "makes output" in m]
    assert len(warned) == 1 and "'y' part 2/2 (Sigmoid, probability)" in warned[0], logs
    highest = r.report["calibration_check"]["highest_probability"]
    assert list(highest) == ["scores"] and 0.1 < highest["scores"] < 0.5
    # a Q/DQ scheme that runs only convolutions in int8 observes the scores for the check alone:
    # they get no int8 parameters
    conv_only = QuantScheme(quantize_ops=frozenset({"Conv"}))
    r = quantize_model(model, _detector_samples(model, 0.05), conv_only, QuantConfig(method="minmax"))
    assert "scores" in r.report["calibration_check"]["highest_probability"]
    assert "scores" not in r.plan.activations and "f" in r.plan.activations
    logs.clear()
    r = quantize_model(model, _detector_samples(model, 6.0), QuantScheme(), QuantConfig(method="minmax"),
                       log=logs.append)
    assert not any("makes output" in m for m in logs), logs
    assert r.report["calibration_check"]["highest_probability"]["scores"] >= 0.5
