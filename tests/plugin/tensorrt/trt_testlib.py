"""Helpers for the tensorrt plugin tests: CLI builds with the in-repo plugins, cache parsing."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

PLUGINS = "profiles,onnxruntime,tensorrt"
REPO = Path(__file__).resolve().parents[3]


def cli(*args, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, DEPLOYKIT_PLUGINS=PLUGINS)
    return subprocess.run([sys.executable, "-m", "deploykit.cli.app", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=str(REPO))


def build(model, out, target, precision, *extra) -> Path:
    res = cli("build", model, "--target", target, "--precision", precision, "-o", out, "--force", *extra)
    assert res.returncode == 0, res.stderr[-3000:]
    return Path(out)


def manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def report(bundle: Path) -> dict:
    return json.loads((bundle / "report.json").read_text())


def parse_calibration_cache(text: str) -> tuple[str, dict[str, float]]:
    """Independent parser of TensorRT's calibration cache, the way trtexec 8.2 reads it
    (facts §3): header ``TRT-<version>-<algorithm>``; then per line split at the LAST colon and
    read exactly 8 hex characters starting two characters after it; big-endian float32 bits."""
    lines = text.split("\n")
    assert lines[-1] == "", "cache must end with a newline"
    head, body = lines[0], lines[1:-1]
    parts = head.split("-")
    assert parts[0] == "TRT" and parts[1].isdigit() and parts[2] in (
        "EntropyCalibration2", "EntropyCalibration", "MinMaxCalibration", "LegacyCalibration"), head
    scales = {}
    for line in body:
        cut = line.rfind(":")
        assert cut > 0 and line[cut + 1] == " ", line
        hexpart = line[cut + 2:cut + 10]
        assert len(hexpart) == 8 and len(line) == cut + 10 and all(c in "0123456789abcdef" for c in hexpart), line
        scales[line[:cut]] = struct.unpack(">f", bytes.fromhex(hexpart))[0]
    return head, scales
