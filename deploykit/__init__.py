"""deploykit: build verified, ready-to-run bundles of ONNX models for named edge devices."""

import os as _os
import sys as _sys


def offline_runtimes() -> None:
    """deploykit runs offline and writes only where it is told to; two runtimes it drives do neither
    by default. onnxruntime >= 1.2x on Linux writes a telemetry device id under ~/.cache and may
    upload events (off with ORT_DISABLE_TELEMETRY, read when onnxruntime loads). ``import openvino``
    writes ~/intel/openvino_ga_cid and its converter reports to Google Analytics; with the telemetry
    module unimportable it uses its own no-op stub. Both only work before those runtimes are
    imported, so this runs when deploykit is imported."""
    _os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    if "openvino" not in _sys.modules:
        _sys.modules.setdefault("openvino_telemetry", None)


offline_runtimes()

__version__ = "0.1.0"
