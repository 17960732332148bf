"""Each device image built from its bundle's own Dockerfile (``deploykit package --docker --engine podman``),
and inside it the bundle's runner on the stored samples agrees with the fp32 reference (deploykit's tolerances).
arm64 images run emulated (qemu binfmt, the board's core and /proc/cpuinfo)."""

from __future__ import annotations

import pytest

from cases import DEVICE_CASES, run_device_case


@pytest.mark.parametrize("case", DEVICE_CASES, ids=lambda c: f"{c.name}-{c.arch}")
def test_device_image_builds_and_its_bundle_verifies_inside(case, tmp_path, request):
    request.getfixturevalue("arm64_bases" if case.arch == "arm64" else "amd64_bases")
    row = run_device_case(case, tmp_path, rebuild=False)
    assert not row["problem"], row["problem"]
    if case.stops_at:
        return
    v = row["verify"]
    assert v["status"] == "passed", v.get("problems")
    assert v["machine"] == ("aarch64" if case.arch == "arm64" else "x86_64")
