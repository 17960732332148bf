"""THE Edge TPU op table: TFLite builtin op -> minimum Edge TPU runtime + constraint check.

Source: /work/shared/facts/edgetpu.md §2 (the coral.ai supported-ops table as copied in [OLD] and
[A7]; runtime column "All" = 0), §0/§1 (8-bit tensors, batch 1, only the 3 innermost dims > 1),
§6 (op versions compiler 16.0 rejects). Ops absent here always run on the CPU (§2: "Ops absent from
the table ... always run on CPU"). Entries marked ``unconfirmed`` follow the facts sheet's word.

Checks see the final (or to-be) TFLite operator, NHWC, static shapes: ``check(op) -> reason | None``.
The compiler maps one segment: everything from the first op that fails here runs on the CPU
(``support.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from deploykit_tflite.emitter import op_version
from deploykit_tflite.graph import Op, Tensor

Check = Callable[[Op], "str | None"]


@dataclass(frozen=True)
class TpuOp:
    """One row: ``runtime`` = oldest Edge TPU runtime with the op (0 = all); ``max_version`` = the
    highest TFLite op version compiler 16.0 is known to accept (None: no known limit)."""

    runtime: int = 0
    check: Check | None = None
    constraints: str = ""
    max_version: int | None = None
    confirmed: bool = True


def _act(op: Op) -> int:
    return int(getattr(op.options, "fusedActivationFunction", 0) or 0) if op.options is not None else 0


def no_fused_activation(op: Op) -> str | None:
    return "fused activation not supported on this op" if _act(op) else None


def same_dilation(op: Op) -> str | None:
    o = op.options
    if o is not None and getattr(o, "dilationHFactor", 1) != getattr(o, "dilationWFactor", 1):
        return "different dilation in x and y"
    return None


def concat_check(op: Op) -> str | None:
    if _act(op):
        return "fused activation not supported on CONCATENATION"
    consts = [t for t in op.inputs if t is not None and t.is_const]
    if consts and (len(op.inputs) != 2 or any(np.any(_real(t) != 0) for t in consts)):
        return "constant input allowed only as the all-zero 2nd of exactly 2 inputs"
    return None


def _real(t: Tensor) -> np.ndarray:
    if t.quant is None or t.data.dtype.kind == "f":
        return t.data
    return (t.data.astype(np.float64) - t.quant.zero_point[0]) * t.quant.scale[0]


def fc_check(op: Op) -> str | None:
    out = op.outputs[0].shape
    if int(np.prod(out[:-1])) != 1:
        return f"FULLY_CONNECTED output {out} is not 1-D (rows must be 1)"
    return None


def _axes(op: Op) -> list[int]:
    rank = len(op.inputs[0].shape)
    a = op.inputs[1]
    if a is None or not a.is_const:
        return []
    return sorted({int(v) % rank for v in np.ravel(a.data)})


def mean_check(op: Op) -> str | None:
    shape = op.inputs[0].shape
    axes = _axes(op)
    if len(shape) == 4 and 0 in axes and shape[0] != 1:
        return "reduction over the batch dimension"
    if len(shape) == 4 and 3 in axes and shape[3] % 4:
        return f"reduction over channels needs a multiple of 4 channels (has {shape[3]})"
    return None


def no_batch_axis(op: Op) -> str | None:
    shape = op.inputs[0].shape
    if len(shape) == 4 and 0 in _axes(op) and shape[0] != 1:
        return "operates on the batch dimension"
    return None


def pad_check(op: Op) -> str | None:
    p = op.inputs[1]
    if p is not None and p.is_const and p.data.ndim == 2 and len(op.inputs[0].shape) == 4 and np.any(p.data[0] != 0):
        return "padding of the batch dimension"
    return None


def resize_check(op: Op) -> str | None:
    o = op.options
    if o is not None and getattr(o, "halfPixelCenters", False):
        return "half_pixel_centers makes the op version 3: 'Operation version not supported'"
    if op.code == "RESIZE_NEAREST_NEIGHBOR" and o is not None and getattr(o, "alignCorners", False):
        return "align_corners on nearest neighbor makes the op version 3"
    return None


def softmax_check(op: Op) -> str | None:
    shape = op.inputs[0].shape
    if int(np.prod(shape[:-1])) != 1:
        return f"SOFTMAX input {shape} is not 1-D"
    if shape[-1] > 16000:
        return f"SOFTMAX input has {shape[-1]} > 16,000 elements"
    return None


def strided_slice_check(op: Op) -> str | None:
    o = op.options
    strides = op.inputs[3] if len(op.inputs) > 3 else None
    if strides is not None and strides.is_const and np.any(strides.data != 1):
        return "strides other than 1"
    if o is not None and (getattr(o, "ellipsisMask", 0) or getattr(o, "newAxisMask", 0)):
        return "ellipsis or new-axis mask"
    return None


def prelu_check(op: Op) -> str | None:
    alpha = op.inputs[1].shape
    if sum(1 for d in alpha if d > 1) > 1 or (alpha and int(np.prod(alpha)) != alpha[-1]):
        return f"PRELU alpha {alpha} must vary along the innermost dimension only"
    return None


def conv_check(op: Op) -> str | None:
    if op_version(op) >= 6:
        return "grouped convolution (CONV_2D version 6) is rejected by compiler 16.0"
    return same_dilation(op)


def transpose_conv_check(op: Op) -> str | None:
    return "TRANSPOSE_CONV with a fused activation (op version 4) is rejected by compiler 16.0" if _act(op) else None


TPU_OPS: dict[str, TpuOp] = {
    **{c: TpuOp() for c in ("ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM")},
    **{c: TpuOp() for c in ("LOGISTIC", "TANH", "RELU", "RELU6", "RELU_N1_TO_1")},
    "AVERAGE_POOL_2D": TpuOp(check=no_fused_activation, constraints="no fused activation"),
    "MAX_POOL_2D": TpuOp(check=no_fused_activation, constraints="no fused activation"),
    "CONCATENATION": TpuOp(check=concat_check, constraints="no fused activation; constant input only as zero pad"),
    "CONV_2D": TpuOp(check=conv_check, constraints="same dilation in x and y; no grouped conv (v6)", max_version=5),
    "DEPTHWISE_CONV_2D": TpuOp(check=same_dilation, constraints="same dilation in x and y"),
    "FULLY_CONNECTED": TpuOp(check=fc_check, constraints="default weight format; output 1-D"),
    "L2_NORMALIZATION": TpuOp(),
    "MEAN": TpuOp(check=mean_check, constraints="no batch reduction; channel reduction needs C % 4 == 0"),
    "PAD": TpuOp(check=pad_check, constraints="no batch padding"),
    "RESHAPE": TpuOp(constraints="some reshapes of large tensors not mapped"),
    "RESIZE_BILINEAR": TpuOp(check=resize_check, constraints="no half_pixel_centers (v3)", max_version=2),
    "RESIZE_NEAREST_NEIGHBOR": TpuOp(check=resize_check, constraints="no half_pixel_centers / align_corners (v3)",
                                     max_version=2),
    "SLICE": TpuOp(),
    "SPACE_TO_DEPTH": TpuOp(),
    "SOFTMAX": TpuOp(check=softmax_check, constraints="1-D input, <= 16,000 elements"),
    "SPLIT": TpuOp(check=no_batch_axis, constraints="not on the batch dim (unconfirmed)"),
    "SQUEEZE": TpuOp(constraints="only leading 1s on runtime <= 12"),
    "STRIDED_SLICE": TpuOp(check=strided_slice_check, constraints="strides 1, no ellipsis/new-axis mask"),
    "EXPAND_DIMS": TpuOp(runtime=13),
    "PACK": TpuOp(runtime=13, check=no_batch_axis, constraints="not along batch"),
    "QUANTIZE": TpuOp(runtime=13, constraints="int8 -> int8 requantize"),
    "SUM": TpuOp(runtime=13, check=no_batch_axis, constraints="not on batch dim (unconfirmed)"),
    "TRANSPOSE_CONV": TpuOp(runtime=13, check=transpose_conv_check, constraints="no fused activation (v4)"),
    "PRELU": TpuOp(runtime=13, check=prelu_check, constraints="alpha varies along innermost dim only",
                   confirmed=False),
    "LSTM": TpuOp(runtime=14, constraints="unidirectional only"),
    "REDUCE_MAX": TpuOp(runtime=14, check=no_batch_axis, constraints="not on batch dim"),
    "REDUCE_MIN": TpuOp(runtime=14, check=no_batch_axis, constraints="not on batch dim"),
    "TRANSPOSE": TpuOp(runtime=14, confirmed=False, constraints="seen mapped with 16.0"),
    "RSQRT": TpuOp(runtime=14, confirmed=False),
    "SQUARED_DIFFERENCE": TpuOp(runtime=14, confirmed=False),
}


def tensor_rank_reason(op: Op) -> str | None:
    """§0.3/§1: rank > 3 only when all but the innermost 3 dims are 1 (so batch 1)."""
    for t in list(op.inputs) + list(op.outputs):
        if t is None or t.is_const:
            continue
        if len(t.shape) > 3 and any(d != 1 for d in t.shape[:-3]):
            return f"tensor {t.shape} has more than the 3 innermost dims > 1 (batch must be 1)"
    return None


def tpu_reason(op: Op, runtime: int, check_dtypes: bool = True) -> str | None:
    """Why the compiler would not map ``op`` to the Edge TPU (``None``: it would). ``check_dtypes``
    off: the op is judged as it will be after int8 quantization (support analysis on fp32)."""
    row = TPU_OPS.get(op.code)
    if row is None:
        return f"{op.code} is not an Edge TPU op (runs on the CPU)"
    if row.runtime > runtime:
        return f"{op.code} needs Edge TPU runtime >= {row.runtime} (target has {runtime})"
    for t in (list(op.inputs) + list(op.outputs)) if check_dtypes else ():
        if t is not None and not t.is_const and t.dtype not in ("int8", "uint8", "int32"):
            return f"{op.code} works on {t.dtype} (the Edge TPU needs 8-bit tensors)"
    reason = tensor_rank_reason(op) or (row.check(op) if row.check else None)
    if reason:
        return reason
    if row.max_version is not None and op_version(op) > row.max_version:
        return f"{op.code} version {op_version(op)} is rejected by compiler 16.0"
    return None


def table_rows() -> list[dict]:
    """The table as data (for the report and docs)."""
    return [{"op": k, "min_runtime": v.runtime or "all", "constraints": v.constraints, "confirmed": v.confirmed}
            for k, v in sorted(TPU_OPS.items())]
