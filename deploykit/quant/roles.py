"""Which inputs of an op are data (quantized activations), weights, biases, or left alone.

One greppable table: op type -> roles by input index. Ops not listed treat every float input as
data. ``None`` in a role list means "not quantized" (shapes, scales, indices, exponents, ...).
"""

from __future__ import annotations

import onnx

# op -> tuple of roles per input index: "data" | "weight" | "bias" | None
INPUT_ROLES: dict[str, tuple[str | None, ...]] = {
    "Conv": ("data", "weight", "bias"),
    "ConvTranspose": ("data", "weight", "bias"),
    "Gemm": ("data", "weight", "bias"),
    "MatMul": ("data", "weight"),
    "Resize": ("data", None, None, None),
    "Upsample": ("data", None),
    "Clip": ("data", None, None),
    "Pad": ("data", None, None, None),
    "Slice": ("data", None, None, None, None),
    "Reshape": ("data", None),
    "Expand": ("data", None),
    "Tile": ("data", None),
    "Gather": ("data", None),
    "GatherElements": ("data", None),
    "GatherND": ("data", None),
    "Split": ("data", None),
    "Squeeze": ("data", None),
    "Unsqueeze": ("data", None),
    "TopK": ("data", None),
    "ReduceMean": ("data", None),
    "ReduceMax": ("data", None),
    "ReduceMin": ("data", None),
    "ReduceSum": ("data", None),
    "Pow": ("data", None),
    "Where": (None, "data", "data"),
    "LayerNormalization": ("data", None, None),
    "BatchNormalization": ("data", None, None, None, None),
    "InstanceNormalization": ("data", None, None),
    "GroupNormalization": ("data", None, None),
    "CumSum": ("data", None),
    "Dropout": ("data", None, None),
    "ScatterND": ("data", None, "data"),
}

# ops whose inputs are never quantized (their outputs are shapes, indices or types)
NOT_QUANTIZED = frozenset({
    "Shape", "Size", "ConstantOfShape", "NonZero", "Range", "Cast", "CastLike", "ArgMax", "ArgMin",
    "QuantizeLinear", "DequantizeLinear", "If", "Loop", "Scan", "NonMaxSuppression", "RandomNormalLike",
    "RandomUniformLike", "EyeLike", "OneHot",
})

# ops with a weight whose output channels are on this axis (per-channel quantization)
WEIGHT_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})

FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}


def input_role(op_type: str, index: int) -> str | None:
    """Role of input ``index`` of ``op_type`` (before checking constness)."""
    if op_type in NOT_QUANTIZED:
        return None
    roles = INPUT_ROLES.get(op_type)
    if roles is None:
        return "data"
    return roles[index] if index < len(roles) else None


def weight_axis(node: onnx.NodeProto, weight_shape: tuple[int, ...]) -> int | None:
    """Output-channel axis of a node's weight for per-channel quantization (``None``: per-tensor)."""
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type == "Conv":
        return 0
    if node.op_type == "ConvTranspose":
        return 1 if attrs.get("group", 1) == 1 else None
    if node.op_type == "Gemm":
        return 0 if attrs.get("transB", 0) else 1
    if node.op_type == "MatMul":
        return len(weight_shape) - 1 if len(weight_shape) == 2 else None
    return None
