"""The image tests can fail: a stop at any other step than the named one, or a build where a stop is named,
is a problem (no engine needed)."""

from __future__ import annotations

from cases import CORAL, DEVICE_CASES, TOOLCHAIN_CASES, _stop_check

from deploykit.docker.imagecheck import parse_build_log

EDGETPU = next(c for c in TOOLCHAIN_CASES if c.name == "edgetpu")
HOST = next(c for c in DEVICE_CASES if c.name == "host")


def _log(*steps: str) -> str:
    return "".join(f"STEP {i}/9: {s}\n" for i, s in enumerate(steps, 1)) + "Error: building at STEP\n"


def test_a_stop_before_the_named_step_is_a_failure():
    early = parse_build_log(_log("FROM python:3.11-slim-bookworm", "RUN apt-get update"), 100, 1.0)
    assert "expected to stop at" in _stop_check(EDGETPU, early)
    at_coral = parse_build_log(_log("FROM python:3.11-slim-bookworm", "RUN apt-get update && curl https://"
                                    "packages.cloud.google.com/apt/doc/apt-key.gpg"), 6, 1.0)
    assert _stop_check(EDGETPU, at_coral) == "" and CORAL[0] in EDGETPU.stops_at


def test_building_where_a_stop_is_named_or_stopping_where_none_is_are_failures():
    built = parse_build_log("STEP 1/2: FROM x\nSTEP 2/2: CMD y\n", 0, 1.0)
    assert "but it built" in _stop_check(EDGETPU, built)
    assert _stop_check(HOST, built) == ""
    assert "expected to build" in _stop_check(HOST, parse_build_log(_log("FROM python:3.11-slim-bookworm"), 125, 1.0))
