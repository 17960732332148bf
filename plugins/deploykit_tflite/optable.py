"""THE op table: ONNX op type -> converter (+ optional support check and inspect note).

``TFLiteBackend.op_support`` is derived from it, so ``deploykit inspect --target rpi4`` and the
lowering can never disagree. Nodes whose inputs are all constant (or ``Shape`` of a static
value) are folded at build time whatever their op type (``fold.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import onnx_ir as ir

from deploykit_tflite import ops_math as m
from deploykit_tflite import ops_extra as x
from deploykit_tflite import ops_nn as nn
from deploykit_tflite import ops_rnn as rnn
from deploykit_tflite import ops_tensor as t


@dataclass(frozen=True)
class Converter:
    fn: Callable
    check: Callable[[ir.Node], str | None] | None = None
    note: str = ""


def _needs_const(*indices: int, what: str = "input"):
    def check(node: ir.Node) -> str | None:
        for i in indices:
            if len(node.inputs) > i and node.inputs[i] is not None:
                v = node.inputs[i]
                if v.const_value is None and (v.producer() is None or v.producer().op_type not in ("Constant", "Shape")):
                    return f"{node.op_type} {what} {i} must be constant"
        return None
    return check


def _all(*checks):
    def check(node):
        for c in checks:
            r = c(node)
            if r:
                return r
        return None
    return check


CONVERTERS: dict[str, Converter] = {
    # convolutions / matmuls
    "Conv": Converter(nn.conv, nn.check_conv, "3-D: CONV_3D (built-in kernel, not XNNPACK)"),
    "ConvTranspose": Converter(nn.conv_transpose, nn.check_conv_transpose),
    "Gemm": Converter(nn.gemm),
    "MatMul": Converter(nn.matmul),
    # pooling
    "MaxPool": Converter(nn.pool, nn.check_pool),
    "AveragePool": Converter(nn.pool, nn.check_pool),
    "GlobalAveragePool": Converter(nn.global_pool, note="MEAN over H, W"),
    "GlobalMaxPool": Converter(nn.global_pool, note="REDUCE_MAX over H, W"),
    # normalization
    "BatchNormalization": Converter(nn.batchnorm, _needs_const(1, 2, 3, 4), "MUL + ADD"),
    "LayerNormalization": Converter(nn.layernorm, note="decomposed: MEAN, SUB, MUL, RSQRT"),
    "InstanceNormalization": Converter(nn.instancenorm, _needs_const(1, 2), "decomposed"),
    "LRN": Converter(nn.lrn, nn.check_lrn),
    "GroupNormalization": Converter(x.group_norm, _needs_const(1, 2), "decomposed: RESHAPE, MEAN, RSQRT"),
    "Softmax": Converter(nn.softmax),
    "LogSoftmax": Converter(nn.softmax),
    # elementwise binary (numpy broadcasting)
    **{op: Converter(m.elementwise) for op in ("Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Mean",
                                               "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual",
                                               "And", "Or", "Pow")},
    # activations / unary
    **{op: Converter(m.unary) for op in m.UNARY},
    "Reciprocal": Converter(m.reciprocal),
    "Clip": Converter(m.clip, m.check_clip),
    "LeakyRelu": Converter(m.leaky_relu),
    "PRelu": Converter(m.prelu),
    "Elu": Converter(m.elu, m.check_elu),
    "HardSigmoid": Converter(m.hard_sigmoid, note="MUL, ADD+RELU6, MUL"),
    "Gelu": Converter(m.gelu),
    "Erf": Converter(m.erf, note="polynomial (|err| < 2e-7)"),
    "Softplus": Converter(x.softplus, note="RELU(x) + LOG(1 + EXP(-|x|))"),
    "Mish": Converter(x.mish, note="x * TANH(softplus(x))"),
    "Softsign": Converter(x.softsign, note="x / (1 + |x|)"),
    # recurrent: unrolled over the static sequence length (FULLY_CONNECTED + gate ops)
    "LSTM": Converter(rnn.lstm, rnn.check_rnn, "unrolled: FULLY_CONNECTED, SPLIT, LOGISTIC, TANH, MUL, ADD"),
    "GRU": Converter(rnn.gru, rnn.check_rnn, "unrolled: FULLY_CONNECTED, SPLIT, LOGISTIC, TANH, MUL, ADD"),
    "Einsum": Converter(x.einsum, x.check_einsum, "TRANSPOSE/RESHAPE + BATCH_MATMUL or FULLY_CONNECTED"),
    "TopK": Converter(x.topk, x.check_topk, "TOPK_V2 (built-in kernel)"),
    "CumSum": Converter(x.cumsum, _needs_const(1), "CUMSUM (built-in kernel)"),
    "ReduceLogSumExp": Converter(x.reduce_log_sum_exp, _needs_const(1), "REDUCE_MAX, SUB, EXP, SUM, LOG, ADD"),
    # reductions
    **{op: Converter(m.reduce, _needs_const(1)) for op in m.REDUCE},
    "ArgMax": Converter(m.argmax, m.check_argmax),
    "ArgMin": Converter(m.argmax, m.check_argmax),
    # types / selection
    "Cast": Converter(m.cast),
    "Where": Converter(m.where),
    "Identity": Converter(m.identity),
    "Dropout": Converter(m.identity),
    # shape and data movement
    "Reshape": Converter(t.reshape, _needs_const(1)),
    "Flatten": Converter(t.reshape),
    "Squeeze": Converter(t.reshape),
    "Unsqueeze": Converter(t.reshape),
    "Transpose": Converter(t.transpose, note="layout change only (no operator unless needed)"),
    "Concat": Converter(t.concat),
    "Split": Converter(t.split, _needs_const(1)),
    "Slice": Converter(t.slice_, _needs_const(1, 2, 3, 4)),
    "Gather": Converter(t.gather),
    "Pad": Converter(t.pad, _all(t.check_pad, _needs_const(1, 2, 3))),
    "Resize": Converter(t.resize, t.check_resize, "cubic/antialias/other roundings: two constant matrices (FULLY_CONNECTED)"),
    "Upsample": Converter(t.resize, t.check_resize),
    "DepthToSpace": Converter(t.depth_space, note="CRD: channel permutation + DEPTH_TO_SPACE"),
    "SpaceToDepth": Converter(t.depth_space),
    "Expand": Converter(t.expand, _needs_const(1)),
    "Tile": Converter(t.tile, _needs_const(1)),
}
