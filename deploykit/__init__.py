"""deploykit: build verified, ready-to-run bundles of ONNX models for named edge devices."""

import os as _os

# onnxruntime >= 1.2x on Linux writes a telemetry device id under ~/.cache and may upload events;
# deploykit runs offline and writes only where it is told to. Set before onnxruntime is imported.
_os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"
