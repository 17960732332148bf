"""deploykit: build verified, ready-to-run bundles of ONNX models for named edge devices."""

__version__ = "0.1.0"
