"""What the NCS2 / Myriad X (``MYRIAD`` plugin of OpenVINO 2022.3) lacks, as data.

Two tables, both from ``facts/openvino.md`` §1 (VPU column of the 2022.x supported-layers table
[SUPDEV] and the VPU guide's restrictions [VPU-MD]):

* :data:`MYRIAD_ONNX_RULES` -- ONNX op type -> :class:`OpRule`, consulted by
  ``OpenVinoBackend.analyze`` for MYRIAD profiles (``deploykit inspect --target ncs2``). Ops not
  listed are converted by OpenVINO's ONNX frontend to layers the table lists as supported.
* :data:`MYRIAD_UNSUPPORTED_IR` -- OpenVINO op types that must not appear in the final IR; the
  lowering checks the converted model against it (the ONNX frontend may create layers the ONNX
  graph did not name).

The docs table is known to be incomplete (the plugin front-end parses more ops [MYR-FE]); real
support can only be probed on a device with ``core.query_model(model, "MYRIAD")``.
"""

from __future__ import annotations

import onnx_ir as ir

from deploykit.backend import OpRule, Support

_TRIG = ("Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "Cos", "Cosh", "Sin", "Sinh", "Tan")


def _rank(value: ir.Value | None) -> int | None:
    return len(value.shape) if value is not None and value.shape is not None else None


def _no_3d(node: ir.Node) -> str | None:
    rank = _rank(node.inputs[0] if node.inputs else None)
    if rank is not None and rank > 4:
        return f"MYRIAD has no 3D {node.op_type} (input rank {rank}); only 2D layers"
    return None


def _pad_4d(node: ir.Node) -> str | None:
    rank = _rank(node.inputs[0] if node.inputs else None)
    if rank is not None and rank != 4:
        return f"MYRIAD Pad supports 4D tensors only (input rank {rank})"
    return None


def _gather_elements_axis(node: ir.Node) -> str | None:
    a = node.attributes.get("axis")
    if a is not None and not a.is_ref() and int(a.value) < 0:
        return "MYRIAD GatherElements does not accept a negative axis"
    return None


def _unsupported(reason: str) -> OpRule:
    return OpRule(Support.UNSUPPORTED, reason)


_QUANT_REASON = "FakeQuantize (int8) is not supported on MYRIAD; NCS2 runs FP16 only"

MYRIAD_ONNX_RULES: dict[str, OpRule] = {
    **{op: _unsupported(f"MYRIAD has no {op} layer") for op in _TRIG},
    "DepthToSpace": _unsupported("MYRIAD has no DepthToSpace layer"),
    "SpaceToDepth": _unsupported("MYRIAD has no SpaceToDepth layer"),
    "DeformConv": _unsupported("MYRIAD has no DeformableConvolution layer"),
    "GRU": _unsupported("MYRIAD has no GRUSequence layer (LSTM is supported)"),
    "RNN": _unsupported("MYRIAD has no RNNSequence layer (LSTM is supported)"),
    "ReduceL1": _unsupported("MYRIAD has no ReduceL1"),
    "ReduceL2": _unsupported("MYRIAD has no ReduceL2"),
    "ReduceLogSum": _unsupported("MYRIAD has no ReduceLogSum"),
    "ReduceLogSumExp": _unsupported("MYRIAD has no ReduceLogSumExp"),
    "ReduceProd": _unsupported("MYRIAD has no ReduceProd"),
    "ReduceSumSquare": _unsupported("MYRIAD has no ReduceSumSquare"),
    "Selu": _unsupported("MYRIAD has no Selu layer"),
    "Softsign": _unsupported("MYRIAD has no Softsign layer"),
    "MaxUnpool": _unsupported("MYRIAD has no Unpooling layer"),
    "Range": _unsupported("MYRIAD has no Range layer (needs static shapes so it folds away)"),
    "QuantizeLinear": _unsupported(_QUANT_REASON),
    "DequantizeLinear": _unsupported(_QUANT_REASON),
    "DynamicQuantizeLinear": _unsupported(_QUANT_REASON),
    "QLinearConv": _unsupported(_QUANT_REASON),
    "QLinearMatMul": _unsupported(_QUANT_REASON),
    "ConvInteger": _unsupported(_QUANT_REASON),
    "MatMulInteger": _unsupported(_QUANT_REASON),
    "If": _unsupported("MYRIAD needs a static graph (If is not resolved by the plugin)"),
    "Loop": _unsupported("MYRIAD needs a static graph (Loop is not supported)"),
    "Scan": _unsupported("MYRIAD needs a static graph (Scan is not supported)"),
    "NonZero": OpRule(Support.SUPPORTED, "dynamic output shape: MYRIAD resolves it only in a few patterns"),
    "Conv": OpRule(check=_no_3d),
    "ConvTranspose": OpRule(Support.SUPPORTED, "Deconvolution: supported per the device table; the VPU guide "
                            "says ConvTranspose is not -- check on a stick", _no_3d),
    "MaxPool": OpRule(check=_no_3d),
    "AveragePool": OpRule(check=_no_3d),
    "LpPool": _unsupported("MYRIAD has no LpPool"),
    "Pad": OpRule(Support.SUPPORTED, "Pad: 4D only on MYRIAD", _pad_4d),
    "GatherElements": OpRule(check=_gather_elements_axis),
    # rewritten into supported layers by deploykit_openvino.downgrade before saving the IR
    "HardSigmoid": OpRule(Support.REWRITE, "lowered as Multiply+Add+Clamp (MYRIAD has no HardSigmoid)"),
    "Neg": OpRule(Support.REWRITE, "lowered as Multiply by -1 (MYRIAD has no Negative)"),
    "LogSoftmax": OpRule(Support.REWRITE, "lowered as Log(SoftMax) (MYRIAD has no LogSoftmax)"),
}

# OpenVINO layer types the MYRIAD plugin cannot run ([SUPDEV] VPU column: "Not Supported").
MYRIAD_UNSUPPORTED_IR = frozenset({
    *_TRIG, "BinaryConvolution", "DeformableConvolution", "DepthToSpace", "SpaceToDepth", "FakeQuantize",
    "GatherTree", "HardSigmoid", "GRUCell", "GRUSequence", "RNNCell", "RNNSequence", "LogSoftmax", "Negative",
    "Range", "ReduceL1", "ReduceL2", "ReduceLogicalOr", "ReduceProd", "Selu", "ShuffleChannels", "SoftSign",
})

# Layers whose 3D (5D tensor) form MYRIAD lacks.
MYRIAD_2D_ONLY_IR = frozenset({"Convolution", "GroupConvolution", "ConvolutionBackpropData",
                               "GroupConvolutionBackpropData", "MaxPool", "AvgPool"})
