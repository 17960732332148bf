"""Every onnx backend node test case ORT can run survives load_model -> canonicalize -> to_proto.

The reference is onnxruntime on the original model; cases ORT cannot run are skipped ("not
counted"). ``python benchmarks/roundtrip_corpus.py`` runs the same corpus in parallel and writes
the pass-rate report.
"""

from __future__ import annotations

import pytest

pytest.importorskip("onnxruntime")

import corpus  # noqa: E402  (tests/roundtrip/corpus.py, put on sys.path by conftest.py)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", corpus.case_names())
def test_roundtrip(name: str) -> None:
    result = corpus.run_case(name)
    if result.status == corpus.NOT_COUNTED:
        pytest.skip(result.reason)
    assert result.status == corpus.PASS, result.reason
