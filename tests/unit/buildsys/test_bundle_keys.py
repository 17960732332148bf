"""Bundle keys: every ingredient that decides a bundle's bytes changes the key; nothing else does."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import onnx
import pytest

import modelzoo
from deploykit.buildsys.fingerprint import Fingerprinter, HashMemo, external_data_files
from deploykit.buildsys.project import load_project

pytestmark = pytest.mark.unit


@pytest.fixture
def project_dir(tmp_path) -> Path:
    modelzoo.small_cnn(tmp_path / "a.onnx")
    modelzoo.small_cnn(tmp_path / "b.onnx", input_name="x")
    np.save(tmp_path / "calib.npy", np.ones((4, 3, 16, 16), np.float32))
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "1.png").write_bytes(b"one")
    (tmp_path / "eval.npz").write_bytes(b"eval")
    (tmp_path / "deploykit.toml").write_text(
        '[models.a]\npath = "a.onnx"\ncalibration = "calib.npy"\ntargets = { host = ["fp32", "int8"] }\n'
        '[models.b]\npath = "b.onnx"\ncalibration = "images"\ntargets = { host = ["fp32", "int8"] }\n', encoding="utf-8")
    return tmp_path


def keys(project_dir, registry, memo=None, patch=None) -> dict[str, str]:
    project = load_project(project_dir / "deploykit.toml", registry.targets)
    if patch:
        patch(project)
    fp = Fingerprinter(registry, memo or HashMemo())
    return {j.id: fp.key(project.models[j.model], registry.targets[j.target], j.precision)[0] for j in project.jobs()}


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {k for k in before if before[k] != after[k]}


def _rewrite_model(path: Path, value: float) -> None:
    m = onnx.load(str(path))
    w = next(i for i in m.graph.initializer if i.name == "bfc")
    arr = onnx.numpy_helper.to_array(w).copy()
    arr[0] = value
    w.CopyFrom(onnx.numpy_helper.from_array(arr, "bfc"))
    onnx.save(m, str(path))


def test_model_bytes_change_only_that_models_keys(project_dir, registry):
    before = keys(project_dir, registry)
    assert len(set(before.values())) == 4
    _rewrite_model(project_dir / "a.onnx", 5.0)
    assert changed(before, keys(project_dir, registry)) == {"a:host:fp32", "a:host:int8"}


def test_touching_without_changing_content_keeps_keys(project_dir, registry):
    memo = HashMemo(project_dir / "memo.json")
    before = keys(project_dir, registry, memo)
    memo.save()
    os.utime(project_dir / "a.onnx", (1, 1))
    assert keys(project_dir, registry, HashMemo(project_dir / "memo.json")) == before


def test_calibration_file_and_folder_content(project_dir, registry):
    before = keys(project_dir, registry)
    np.save(project_dir / "calib.npy", np.zeros((4, 3, 16, 16), np.float32))
    assert changed(before, keys(project_dir, registry)) == {"a:host:fp32", "a:host:int8"}
    before = keys(project_dir, registry)
    (project_dir / "images" / "2.png").write_bytes(b"two")
    assert changed(before, keys(project_dir, registry)) == {"b:host:fp32", "b:host:int8"}


def test_eval_data_and_options(project_dir, registry):
    before = keys(project_dir, registry)

    def with_eval(p):
        p.models["a"].eval_data, p.models["a"].metric = project_dir / "eval.npz", "top1"

    assert changed(before, keys(project_dir, registry, patch=with_eval)) == {"a:host:fp32", "a:host:int8"}
    with_eval_keys = keys(project_dir, registry, patch=with_eval)
    (project_dir / "eval.npz").write_bytes(b"other")
    assert changed(with_eval_keys, keys(project_dir, registry, patch=with_eval)) == {"a:host:fp32", "a:host:int8"}

    def budget(p):
        p.models["b"].accuracy_budget = "sqnr=30"

    assert changed(before, keys(project_dir, registry, patch=budget)) == {"b:host:int8"}  # int8 only option


def test_target_profile(project_dir, registry):
    before = keys(project_dir, registry)
    host = registry.targets["host"]
    registry.targets["host"] = dataclasses.replace(host, threads=host.threads + 1)
    try:
        assert changed(before, keys(project_dir, registry)) == set(before)
    finally:
        registry.targets["host"] = host


def test_deploykit_plugin_and_toolchain_versions(project_dir, registry, monkeypatch):
    before = keys(project_dir, registry)
    from deploykit.buildsys import fingerprint

    monkeypatch.setattr(fingerprint, "__version__", "9.9.9")
    assert changed(before, keys(project_dir, registry)) == set(before)
    monkeypatch.undo()
    monkeypatch.setattr(fingerprint, "_dist_version", lambda name: "0.0-test" if name == "onnxruntime" else None)
    assert changed(before, keys(project_dir, registry)) == set(before)
    monkeypatch.undo()
    monkeypatch.setitem(registry.plugins, "onnxruntime", "7.7.7")
    assert changed(before, keys(project_dir, registry)) == set(before)


def test_host_int8_keys_follow_the_build_machines_int8_accumulator(project_dir, registry, monkeypatch):
    """host int8 keeps 8-bit weights only where this CPU sums int8 in int32: a bundle built on a VNNI
    machine is not reused on one without (nor fp32 bundles rebuilt)."""
    import deploykit.cpu as cpu

    monkeypatch.setattr(cpu, "cpu_class", lambda: cpu.CpuClass("x86-64", "avx512", vnni=True))
    before = keys(project_dir, registry)
    monkeypatch.setattr(cpu, "cpu_class", lambda: cpu.CpuClass("x86-64", "avx2", vnni=False))
    assert changed(before, keys(project_dir, registry)) == {"a:host:int8", "b:host:int8"}


def test_external_data_is_part_of_the_model(tmp_path, registry):
    model = onnx.load(str(modelzoo.small_cnn(tmp_path / "m.onnx")))
    onnx.save(model, str(tmp_path / "ext.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.data", size_threshold=0)
    assert external_data_files(tmp_path / "ext.onnx") == ["ext.data"]
    fp = Fingerprinter(registry, HashMemo())
    assert set(fp.model_files(tmp_path / "ext.onnx")) == {"ext.onnx", "ext.data"}
    (tmp_path / "deploykit.toml").write_text('[models.e]\npath = "ext.onnx"\ntargets = ["host"]\n', encoding="utf-8")
    before = keys(tmp_path, registry)
    data = bytearray((tmp_path / "ext.data").read_bytes())
    data[0] ^= 1
    (tmp_path / "ext.data").write_bytes(bytes(data))
    assert changed(before, keys(tmp_path, registry)) == set(before)
