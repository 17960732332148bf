"""Quantization schemes: what a backend's integer kernels accept, declared as data.

A backend sets ``Backend.quant_scheme`` to a :class:`QuantScheme`; the core engine computes
parameters that obey it. Nothing here depends on a backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# ops whose output must reuse the input's scale/zero point in most integer runtimes
SCALE_PRESERVING_OPS = frozenset(
    {
        "MaxPool", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose",
        "Slice", "Gather", "Split", "Pad", "Resize", "DepthToSpace", "SpaceToDepth",
        "GlobalMaxPool", "Identity",
    }
)


@dataclass(frozen=True, eq=False)
class QuantScheme:
    """How a backend wants int8 tensors.

    :ivar weight_dtype: ``"int8"`` or ``"uint8"``.
    :ivar activation_dtype: ``"int8"`` or ``"uint8"``.
    :ivar weight_symmetric: weights use zero point 0.
    :ivar activation_symmetric: activations use zero point 0.
    :ivar per_channel_weights: per-output-channel weight scales allowed.
    :ivar shared_scale_ops: ops whose inputs and output must share one scale (e.g. Concat).
    :ivar float_ops: ops that may stay in float inside an int8 model.
    :ivar mixed_precision: float fallback of single layers is allowed (False for Edge TPU).
    :ivar fallback_dtype: dtype a fallen-back layer runs in (``"float32"`` or ``"float16"``).
    :ivar bias_int32: biases are int32 with scale = input_scale * weight_scale.
    :ivar io_dtype: dtype of the artifact's I/O (``"float32"`` means (de)quantize inside).
    :ivar fixed_output_params: op -> (scale, zero point) its output must use (e.g. TFLite's
        Softmax/Logistic output scale 1/256, zero point -128).
    :ivar quantize_ops: if set, only nodes of these ops read quantized inputs (Q/DQ placement of
        QDQ backends); ``None`` quantizes every op (full-integer backends like TFLite).
        ``float_ops`` always run in float. Only tensors these ops read get parameters (and
        graph outputs they produce), unless ``cache_every_tensor``.
    :ivar cache_every_tensor: also observe every other activation and return a range for it
        beside the plan (``QuantResult.params``), for a backend whose calibration cache needs one
        per tensor (TensorRT's implicit path); they never enter the plan or its simulation.
    :ivar weight_bits: levels the weight operand of dot products (Conv, ConvTranspose, Gemm,
        MatMul) may use: 8, or 7 for runtimes that execute int8 on x86 CPUs without VNNI. There
        ``vpmaddubsw`` sums pairs of u8 x s8 products into a saturating int16, which 8-bit weights
        overflow (255 x 127 x 2 > 32767) and 7-bit weights cannot (255 x 63 x 2 < 32767). With
        7 bits, a dot product whose second operand is not a constant stays in float: its values
        cannot be bounded at build time.
    :ivar int32_weight_bits: weight levels the engine also tries when the device sums int8 dot
        products in int32 (``QuantConfig.int32_accumulation``: ARM, x86 with VNNI), for runtimes
        whose runner falls back to exact float kernels on a CPU that would saturate them. The wider
        grid is kept only when it is clearly more accurate on the held-out samples: on PP-OCR rec
        8-bit weights scored worse than 7-bit ones, on the openWakeWord embedding 4 dB better.
    :ivar join_outputs: for targets without float ops: the runner may join the separately
        quantized branches of a concatenated graph output in float (see
        :mod:`deploykit.quant.mixed_ranges`); the backend then ends the model at the branches.
    """

    weight_dtype: str = "int8"
    activation_dtype: str = "int8"
    weight_symmetric: bool = True
    activation_symmetric: bool = False
    per_channel_weights: bool = True
    shared_scale_ops: frozenset[str] = field(default_factory=lambda: SCALE_PRESERVING_OPS | {"Concat"})
    float_ops: frozenset[str] = frozenset()
    mixed_precision: bool = True
    fallback_dtype: str = "float32"
    bias_int32: bool = True
    io_dtype: str = "float32"
    fixed_output_params: dict[str, tuple[float, int]] = field(default_factory=dict)
    quantize_ops: frozenset[str] | None = None
    weight_bits: int = 8
    int32_weight_bits: int | None = None
    join_outputs: bool = False
    cache_every_tensor: bool = False

    def runs_quantized(self, op_type: str) -> bool:
        """Whether nodes of ``op_type`` read quantized inputs (else they run in float)."""
        if op_type in self.float_ops:
            return False
        return self.quantize_ops is None or op_type in self.quantize_ops


# Ops whose int8 kernels pay off on CPU runtimes that fuse QDQ (ONNX Runtime, OpenVINO): quantizing
# only these inputs avoids Q/DQ churn around element-wise and data-movement ops.
COMPUTE_OPS = frozenset({
    "Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Mul", "Concat",
    "AveragePool", "GlobalAveragePool", "MaxPool",
})
