"""Shared fixtures. Tests never autoload plugins: registries are built from explicit modules, and
CLI subprocesses get DEPLOYKIT_PLUGINS limited to the in-repo plugins they need."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import modelzoo
from clirun import BUILTIN_PLUGINS, EMULATE_CPU, python_command, run_cli  # noqa: F401

os.environ.setdefault("DEPLOYKIT_PLUGINS", BUILTIN_PLUGINS)


@pytest.fixture
def registry():
    import deploykit_onnxruntime
    import deploykit_profiles

    from deploykit.plugins import Registry

    return Registry.from_plugins([deploykit_profiles, deploykit_onnxruntime])


@pytest.fixture
def cnn(tmp_path) -> Path:
    return modelzoo.small_cnn(tmp_path / "cnn.onnx")


@pytest.fixture
def ppocr_cls() -> Path:
    p = modelzoo.ppocr_cls_path()
    if p is None:
        pytest.skip("rapidocr-onnxruntime (PP-OCR cls model) not installed")
    return p


@pytest.fixture
def cli():
    return run_cli
