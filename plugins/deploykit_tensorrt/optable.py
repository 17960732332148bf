"""Which ONNX ops TensorRT's ONNX parser (onnx-tensorrt) takes, per TensorRT version.

One greppable table. Source: onnx/onnx-tensorrt ``docs/operators.md`` (8.2-GA … 10.0-GA) as
summarized in ``shared/facts/tensorrt.md`` §7, corrected where the parser's source disagrees with
its docs: ``builtin_op_importers.cpp`` on the release/8.2-GA branch registers a ``Reciprocal``
importer (a ``kRECIP`` unary layer; the 8.0 and 8.2 docs tables say "N"), and ``Xor`` first appears
on release/8.4-GA. ``since`` is the first TensorRT (major, minor) whose parser imports the op; ops
absent here are rejected with a reason.
"""

from __future__ import annotations

from collections.abc import Callable

import onnx_ir as ir

from deploykit.backend import OpRule

# supported by the TensorRT 8.2 parser (operators.md 8.2/8.4 "Y" rows, plus Reciprocal: see above)
_BASE_OPS = """
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast Ceil
Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace
DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather
GatherElements GatherND Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GRU
HardSigmoid Identity If ImageScaler InstanceNormalization IsNaN LeakyRelu Less LessOrEqual Log
LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean Min Mul Neg
NonMaxSuppression Not Or Pad ParametricSoftplus Pow PRelu QuantizeLinear RandomUniform
RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin
ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence RNN Round ScaledTanh Scan
Scatter ScatterElements ScatterND Selu Shape Sigmoid Sign Sin Sinh Size Slice Softmax Softplus
Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK Transpose
Unsqueeze Upsample Where
""".split()

# op -> first TensorRT (major, minor) whose parser takes it (facts §7)
_LATER_OPS: dict[str, tuple[int, int]] = {
    "NonZero": (8, 5), "OneHot": (8, 5), "Mod": (8, 5), "RoiAlign": (8, 5), "Trilu": (8, 5),
    "Xor": (8, 4), "GridSample": (8, 5),
    "LayerNormalization": (8, 6), "IsInf": (8, 6),
}

# never imported (8.2 … 10.1 docs): quantized-operator formats must be QDQ instead
NEVER = {
    "ConvInteger": "QOperator format: re-export as QDQ (QuantizeLinear/DequantizeLinear)",
    "MatMulInteger": "QOperator format: re-export as QDQ (QuantizeLinear/DequantizeLinear)",
    "QLinearConv": "QOperator format: re-export as QDQ (QuantizeLinear/DequantizeLinear)",
    "QLinearMatMul": "QOperator format: re-export as QDQ (QuantizeLinear/DequantizeLinear)",
    "DynamicQuantizeLinear": "dynamic quantization is not supported by TensorRT",
    "Unique": "not supported by TensorRT's ONNX parser",
    "StringNormalizer": "string tensors are not supported by TensorRT",
}

_INPUT_MUST_BE_CONSTANT: dict[str, tuple[int, str]] = {
    # op -> (input index, what) that TensorRT 8.2 needs as an initializer (facts §7)
    "Slice": (3, "axes"),
    "Squeeze": (1, "axes"),
    "TopK": (1, "K"),
}


def _const_input(op: str, index: int, what: str, version: tuple[int, int]) -> Callable[[ir.Node], str | None]:
    def check(node: ir.Node) -> str | None:
        if op == "TopK" and version >= (8, 6):  # K relaxed in 8.6
            return None
        if len(node.inputs) > index and node.inputs[index] is not None:
            v = node.inputs[index]
            producer = v.producer()
            if v.const_value is None and not v.is_initializer() and not (producer and producer.op_type == "Constant"):
                return f"TensorRT {version[0]}.{version[1]} needs {op} input {what!r} to be a constant"
        return None

    return check


def _resize_check(version: tuple[int, int]) -> Callable[[ir.Node], str | None]:
    def check(node: ir.Node) -> str | None:
        mode = _attr(node, "mode", "nearest")
        if mode not in ("nearest", "linear"):
            return f"TensorRT {version[0]}.{version[1]} Resize supports modes nearest/linear, not {mode!r}"
        ctm = _attr(node, "coordinate_transformation_mode", "half_pixel")
        if ctm not in ("half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"):
            return f"TensorRT Resize does not support coordinate_transformation_mode {ctm!r}"
        if _attr(node, "antialias", 0):
            return "TensorRT Resize does not support antialias"
        return None

    return check


def _qdq_check(node: ir.Node) -> str | None:
    if len(node.inputs) > 2 and node.inputs[2] is not None:
        zp = node.inputs[2].const_value
        if zp is not None and bool((zp.numpy() != 0).any()):
            return "TensorRT only supports symmetric quantization - the zero point must be all zeros"
    return None


def _attr(node: ir.Node, name: str, default):
    a = node.attributes.get(name)
    if a is None:
        return default
    value = a.value
    return value.decode() if isinstance(value, bytes) else value


def parse_version(text: str) -> tuple[int, int]:
    parts = [int(p) for p in str(text).split(".")[:2] if p.isdigit()]
    return (parts + [0, 0])[0], (parts + [0, 0])[1]


def op_table(trt_version: str) -> dict[str, OpRule]:
    """The op table for one TensorRT version (e.g. ``"8.2.1"``)."""
    version = parse_version(trt_version)
    label = f"TensorRT {version[0]}.{version[1]}"
    table: dict[str, OpRule] = {op: OpRule() for op in _BASE_OPS}
    for op, since in _LATER_OPS.items():
        if version >= since:
            table[op] = OpRule()
        else:
            table[op] = OpRule(check=lambda n, op=op, since=since: f"{label}'s ONNX parser has no {op} "
                               f"(from TensorRT {since[0]}.{since[1]})")
    for op, reason in NEVER.items():
        table[op] = OpRule(check=lambda n, reason=reason: reason)
    if version < (8, 6):
        for op, (index, what) in _INPUT_MUST_BE_CONSTANT.items():
            table[op] = OpRule(check=_const_input(op, index, what, version))
    table["Resize"] = OpRule(check=_resize_check(version))
    table["QuantizeLinear"] = OpRule(check=_qdq_check)
    table["DequantizeLinear"] = OpRule(check=_qdq_check)
    return table
