"""Each toolchain image built (podman, local bases), and ``deploykit build`` inside it writes the same bundle
bytes as the same build outside it (every file's sha256 and the manifest itself): the determinism promise
across environments. Images that need what this machine cannot reach must stop at exactly that step."""

from __future__ import annotations

import pytest

from cases import TOOLCHAIN_CASES, run_toolchain_case


@pytest.mark.parametrize("case", TOOLCHAIN_CASES, ids=lambda c: c.name)
def test_toolchain_image_builds_the_same_bundle_as_outside(case, tmp_path, amd64_bases):
    row = run_toolchain_case(case, tmp_path, rebuild=False)
    assert not row["problem"], row["problem"]
    if case.stops_at:
        return
    v = row["verify"]
    assert v["status"] == "passed", v
