"""Compile an OpenVINO IR in a child process: a native crash (SIGFPE, SIGSEGV) of the CPU plugin
becomes a clean error instead of killing the build (issue 19: ``compile_model`` of an INT8 ViT-S
died with SIGFPE inside the build process, no ``error:`` line, a ``.partial`` folder left).

The child also reports what precision each compute layer runs in (``runtimePrecision``), which
is why the build compiles the model at all. Once the child has compiled a model, compiling it
again in the build process (verification through the runner) is safe.

``python -m deploykit_openvino.probe MODEL.xml '{"INFERENCE_PRECISION_HINT": "f32"}'`` prints one
JSON line.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from deploykit.errors import DeployError

LAYER_TYPES = ("Convolution", "GroupConvolution", "MatMul", "FullyConnected")
TIMEOUT_S = 900


def runtime_precisions(compiled, layer_types=LAYER_TYPES) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        try:
            layer = str(info["layerType"].astype(str))
            prec = str(info["runtimePrecision"].astype(str))
        except Exception:  # noqa: BLE001 - rt_info keys differ between versions
            continue
        if layer in layer_types:
            counts.setdefault(layer, {})
            counts[layer][prec] = counts[layer].get(prec, 0) + 1
    return counts


def compile_in_child(xml: Path, config: dict[str, Any], device: str = "CPU") -> dict[str, dict[str, int]]:
    """Compile ``xml`` on ``device`` in a child process; the runtime precisions of its layers."""
    cmd = [sys.executable, "-m", "deploykit_openvino.probe", str(xml), json.dumps(config), device]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise DeployError(f"OpenVINO's {device} plugin did not finish compiling the model in {TIMEOUT_S} s") from None
    if proc.returncode < 0:
        try:
            name = signal.Signals(-proc.returncode).name
        except ValueError:
            name = f"signal {-proc.returncode}"
        raise DeployError(f"OpenVINO's {device} plugin crashed ({name}) compiling the model; this is a bug in "
                          "OpenVINO for this graph: try another --precision, or report it to OpenVINO")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        last = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        detail = last[-1].split(": ", 1)[-1] if last else f"exit code {proc.returncode}"
        raise DeployError(f"OpenVINO's {device} plugin could not compile the model: {detail[:400]}")
    return json.loads(lines[-1])


def main(argv: list[str]) -> int:
    import openvino as ov

    xml, config = argv[0], json.loads(argv[1])
    device = argv[2] if len(argv) > 2 else "CPU"
    compiled = ov.Core().compile_model(xml, device, config)
    print(json.dumps(runtime_precisions(compiled)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
