"""The three ONNX Runtime lowerings. onnxruntime is imported here only (lazily)."""

from __future__ import annotations

import logging
from pathlib import Path

import onnx

from deploykit.quant.calibration import SampleSet
from deploykit.quant.scheme import QuantScheme


def optimize_fp32(src: Path, dst: Path) -> None:
    """Apply ONNX Runtime's portable (basic) graph optimizations offline and save the result.

    Basic optimizations keep standard ONNX ops only, so the file runs on any ORT version the
    device has; the runner enables the hardware-specific levels at load time.
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = str(dst)
    so.intra_op_num_threads = 1
    ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"])
    model = onnx.load(str(dst))
    dst.write_bytes(model.SerializeToString(deterministic=True))


def convert_fp16(src: Path, dst: Path) -> None:
    """fp16 weights and compute, float32 inputs/outputs (Cast at the edges)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    converted = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
    dst.write_bytes(converted.SerializeToString(deterministic=True))


class _Reader:
    """onnxruntime.quantization CalibrationDataReader over a SampleSet."""

    def __init__(self, samples: SampleSet):
        self._it = samples.feeds()

    def get_next(self):
        return next(self._it, None)


def quantize_qdq(src: Path, dst: Path, samples: SampleSet, scheme: QuantScheme, tmp: Path) -> None:
    """Static int8 QDQ with min/max calibration (the foundation engine)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static as _quantize_static

    qtype = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_static logs advice on the root logger
    try:
        _quantize_static(
            str(src),
            str(dst),
            _Reader(samples),
            quant_format=QuantFormat.QDQ,
            activation_type=qtype[scheme.activation_dtype],
            weight_type=qtype[scheme.weight_dtype],
            per_channel=scheme.per_channel_weights,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"ActivationSymmetric": scheme.activation_symmetric, "WeightSymmetric": scheme.weight_symmetric},
        )
    finally:
        root.setLevel(level)
    model = onnx.load(str(dst))
    dst.write_bytes(model.SerializeToString(deterministic=True))
