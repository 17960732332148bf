"""The node-test corpus cache is built once when several pytest-xdist workers collect at the same time.

Two workers used to build the same ``.tmp`` folder: one failed with FileExistsError and xdist
reported "Different tests were collected between gw0 and gw1"."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import corpus

pytestmark = pytest.mark.unit

HERE = Path(__file__).resolve().parent


def test_concurrent_collection_builds_the_corpus_once(tmp_path):
    if corpus.corpus_dir().name == "node" and "backend" in corpus.corpus_dir().parts:
        pytest.skip("this onnx wheel ships the node-test data: no cache is built")
    cache = tmp_path / "onnx-node"
    env = {**os.environ, "DEPLOYKIT_CORPUS_DIR": str(cache), "PYTHONPATH": str(HERE)}
    code = "import corpus; print(len(corpus.case_names()))"
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    results = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-500:] for _, err in results]
    counts = {out.strip() for out, _ in results}
    assert len(counts) == 1 and int(counts.pop()) > 1000
    assert (cache / ".complete").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["onnx-node"], \
        "a temporary generation folder was left behind"
