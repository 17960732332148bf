"""ONNX Runtime backend: fp32 (ORT-optimized graph), fp16 (float16 weights and compute, float I/O),
int8 (QDQ ONNX)."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import ClassVar

from deploykit.backend import Artifact, Backend, BuildContext
from deploykit.errors import DeployError
from deploykit.ir.export import save_model
from deploykit.quant.scheme import COMPUTE_OPS, QuantScheme

MODEL_FILE = "model.onnx"


@functools.lru_cache(maxsize=1)
def _ort_kernels() -> frozenset[tuple[str, str]]:
    """(domain, op type) of every kernel of the installed ONNX Runtime."""
    try:
        from onnxruntime.capi import _pybind_state as C

        return frozenset((k.domain, k.op_name) for k in C.get_all_opkernel_def())
    except Exception:  # noqa: BLE001 - private API: without it only ONNX schemas count
        return frozenset()


class OnnxRuntimeBackend(Backend):
    """Runs any standard ONNX op through ONNX Runtime's CPU provider (or others the device has)."""

    name = "onnxruntime"
    description = "ONNX Runtime (CPU; any x86-64 / ARM64 Linux board)"
    precisions = ("fp32", "fp16", "int8")
    runtime = "onnxruntime"
    host_modules = ("onnxruntime",)
    op_support = None  # every standard op ONNX Runtime implements
    quant_scheme: ClassVar[QuantScheme] = QuantScheme(
        weight_dtype="int8",
        activation_dtype="int8",
        weight_symmetric=True,
        activation_symmetric=False,
        per_channel_weights=True,
        mixed_precision=True,
        # Add/Mul stay float: their inputs (residual streams, gates) lose the most to int8 and ONNX
        # Runtime gains little from running them quantized (as its own quantize_static does).
        quantize_ops=COMPUTE_OPS - {"Add", "Mul"},
        # A host bundle runs on any x86-64/ARM64 CPU: ORT's int8 kernels on x86 without VNNI sum
        # u8 x s8 pairs in saturating int16, which 7-bit weights cannot overflow (facts: x86 int8).
        weight_bits=7,
        # ... and 8-bit ones where the device sums in int32 and they are clearly more accurate: the
        # runner turns ONNX Runtime's int8 kernels off on a CPU that would saturate them
        int32_weight_bits=8,
    )
    min_opset = 7
    int8_min_opset = 13  # per-channel QuantizeLinear/DequantizeLinear (axis attribute)
    runner_template = "runner_onnxruntime.py.j2"
    template_package = "deploykit_onnxruntime"

    def knows_op(self, domain: str, op_type: str) -> bool:
        """ONNX schemas plus the kernels this ONNX Runtime registers (com.microsoft contrib ops)."""
        return super().knows_op(domain, op_type) or (domain, op_type) in _ort_kernels()

    def prepare(self, model, options):
        from deploykit.ir.opset import upgrade_opset

        model = super().prepare(model, options)
        if options is not None and options.precision == "int8":
            model = upgrade_opset(model, self.int8_min_opset)
        return model

    def lower(self, ctx: BuildContext) -> Artifact:
        out = ctx.workdir / MODEL_FILE
        precision = ctx.options.precision
        with tempfile.TemporaryDirectory(prefix="deploykit-ort-") as tmp:
            src = Path(tmp) / "canonical.onnx"
            save_model(ctx.model, src)
            if precision == "fp32":
                from deploykit_onnxruntime.lowering import optimize_fp32

                optimize_fp32(src, out)
            elif precision == "fp16":
                from deploykit_onnxruntime.lowering import convert_fp16

                convert_fp16(src, out)
            elif precision == "int8":
                if ctx.quant is None:
                    raise DeployError("int8 needs calibration data; pass --calibration samples.npy")
                out.write_bytes(ctx.quant.qdq_model.SerializeToString(deterministic=True))
            else:  # pragma: no cover - check_precision ran before
                raise DeployError(f"unsupported precision {precision}")
        files = [MODEL_FILE] + [p.name for p in sorted(ctx.workdir.glob(MODEL_FILE + ".data"))]
        return Artifact(
            files=files,
            inputs=ctx.inputs,
            outputs=ctx.outputs,
            runner_context={"model_file": MODEL_FILE, "providers": ["CPUExecutionProvider"]},
        )

    def runner_requirements(self, precision: str) -> list[str]:
        reqs = list(self.profile.requirements)
        if not any(r.replace("_", "-").lower().startswith("onnxruntime") for r in reqs):
            reqs.append("onnxruntime>=1.16")
        if not any(r.lower().startswith("numpy") for r in reqs):
            reqs.append("numpy")
        return reqs
