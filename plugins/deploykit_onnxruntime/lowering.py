"""ONNX Runtime lowerings for fp32 and fp16 (int8 is the engine's QDQ model). onnxruntime is imported lazily."""

from __future__ import annotations

from pathlib import Path

import onnx



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
    so.log_severity_level = 4  # failures surface as exceptions (one error line), not as ORT log lines
    ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"])
    model = onnx.load(str(dst))
    dst.write_bytes(model.SerializeToString(deterministic=True))


def convert_fp16(src: Path, dst: Path) -> None:
    """fp16 weights and compute, float32 inputs/outputs (Cast at the edges)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    converted = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
    data = converted.SerializeToString(deterministic=True)
    _check_loads(data, "float16")
    dst.write_bytes(data)


def _check_loads(data: bytes, what: str) -> None:
    """onnxruntime's converters can emit graphs onnxruntime refuses (e.g. the float16 converter on a
    graph input that is also an output): say so in one line, with the way out, instead of failing
    later in verification."""
    import onnxruntime as ort

    from deploykit.errors import UnsupportedError, explain
    from deploykit.reference import ort_reason

    so = ort.SessionOptions()
    so.log_severity_level = 4
    try:
        ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - ORT raises its own types
        if explain(e) is not None:
            raise
        raise UnsupportedError(f"onnxruntime's {what} conversion of this model gives a graph onnxruntime cannot load "
                               f"({ort_reason(e)}); build it with --precision fp32") from e
