"""OpenVINO 2022.3 on the build host: a Python <= 3.10 environment with ``openvino==2022.3.1``.

The NCS2 runtime is 2022.3 LTS, whose wheels exist only for CPython 3.7-3.10 [facts §0], so it
cannot live in deploykit's own interpreter. When such an environment exists, the ncs2 lowering
uses it to (1) prove the IR loads and runs under 2022.3 (CPU plugin; the wheel has no MYRIAD) and
compare against the current runtime, and (2) convert with 2022.3 (its Model Optimizer when
``openvino-dev`` is there, else its ONNX frontend) when the downgrade pass cannot handle a layer.

The environment is found through ``DEPLOYKIT_OV2022_PYTHON`` (a python executable) or the default
venv ``~/.cache/deploykit/venvs/ov2022``. Create it with :func:`setup_hint`'s commands.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from deploykit.errors import DeployError

ENV_VAR = "DEPLOYKIT_OV2022_PYTHON"
DEFAULT_VENV = Path.home() / ".cache" / "deploykit" / "venvs" / "ov2022"
TOOL = Path(__file__).with_name("ov2022_tool.py")
TIMEOUT = 300


def setup_hint() -> str:
    return (f"python3.10 -m venv {DEFAULT_VENV} && {DEFAULT_VENV}/bin/pip install 'openvino==2022.3.1' "
            f"'numpy<1.25'  (or set {ENV_VAR} to a python with openvino 2022.3)")


def find_python() -> Path | None:
    """The python of an OpenVINO 2022.3 environment, or ``None``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env) if Path(env).exists() else None
    p = DEFAULT_VENV / "bin" / "python"
    return p if p.exists() else None


def _call(python: Path, *args: str) -> dict:
    proc = subprocess.run([str(python), str(TOOL), *args], capture_output=True, text=True, timeout=TIMEOUT,
                          env={**os.environ, "PYTHONPATH": ""})
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        raise DeployError(f"OpenVINO 2022.3 ({python}) failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_ir(python: Path, xml: Path, feeds: Sequence[Sequence[np.ndarray]]) -> tuple[list[list[np.ndarray]], dict]:
    """Read, compile (CPU) and run ``xml`` under 2022.3. ``feeds``: per sample, arrays in IR input order."""
    with tempfile.TemporaryDirectory(prefix="deploykit-ov2022-") as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(src, **{f"{s}/{i}": np.asarray(a) for s, arrays in enumerate(feeds) for i, a in enumerate(arrays)})
        info = _call(python, "run", str(xml), str(src), str(dst))
        with np.load(dst) as out:
            n_out = len({k.split("/")[1] for k in out.files})
            results = [[out[f"{s}/{j}"] for j in range(n_out)] for s in range(len(feeds))]
    return results, info


def convert_with_mo(python: Path, onnx_path: Path, xml_out: Path) -> dict:
    """Convert with OpenVINO 2022.3: Model Optimizer (openvino-dev) if installed, else its ONNX frontend.
    Returns ``{"converter": ...}``."""
    return _call(python, "mo", str(onnx_path), str(xml_out))


def max_abs_diff(a: Sequence[Mapping[str, np.ndarray]] | Sequence[Sequence[np.ndarray]], b) -> float:
    worst = 0.0
    for xa, xb in zip(a, b):
        for ya, yb in zip(xa, xb):
            if np.asarray(ya).size:
                worst = max(worst, float(np.max(np.abs(np.asarray(ya, np.float64) - np.asarray(yb, np.float64)))))
    return worst
