"""TensorRT backend for NVIDIA Jetson: ONNX (fp32/fp16) or explicit-quantization QDQ ONNX (int8)
plus a calibration cache, an engine build script and a runner that builds the engine on the device.

Nothing here imports ``tensorrt``: lowering needs onnx only and host verification runs the
bundle's runner, which falls back to onnxruntime on a machine without TensorRT.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, ClassVar

import onnx
import onnx_ir as ir

from deploykit.backend import Artifact, Backend, BuildContext, BuildOptions, NodeSupport, Support
from deploykit.bundle.render import render
from deploykit.errors import DeployError
from deploykit.quant.scheme import QuantScheme

from deploykit_tensorrt.calib_cache import write_cache
from deploykit_tensorrt.opset import DECOMPOSE, lower_opset, opset_of, set_ir_version
from deploykit_tensorrt.optable import op_table
from deploykit_tensorrt.qdq import INT8_INPUTS, place_for_tensorrt, qdq_summary
from deploykit_tensorrt.trtexec import EngineSettings, trtexec_args

MODEL_FILE = "model.onnx"
FP32_FILE = "model_fp32.onnx"
CACHE_FILE = "calibration.cache"
SCRIPT_FILE = "build_engine.sh"
ENGINE_MODULE = "trt_engine.py"
FALLBACK_PROVIDERS = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
_ARCH = {"5": "Maxwell", "6": "Pascal", "7": "Volta", "8": "Ampere", "9": "Hopper"}


class TensorRtBackend(Backend):
    """ONNX -> TensorRT engine built on the Jetson; onnxruntime fallback and host verification."""

    name = "tensorrt"
    description = "NVIDIA TensorRT on Jetson (engine built on the device from ONNX / QDQ ONNX)"
    precisions = ("fp32", "fp16", "int8")
    runtime = "tensorrt"
    host_modules = ("onnxruntime",)  # lowering needs onnx only; verification runs the ORT fallback
    op_support = op_table("8.2.1")  # replaced per profile in __init__
    # TensorRT explicit quantization: symmetric INT8 (zero point 0) activations and weights,
    # per-channel weights, per-tensor activations; layers left out run in FP16 (facts §2).
    # bias_int32 stays on so the engine applies bias correction; lowering turns biases back to float.
    quant_scheme: ClassVar[QuantScheme] = QuantScheme(
        weight_dtype="int8",
        activation_dtype="int8",
        weight_symmetric=True,
        activation_symmetric=True,
        per_channel_weights=True,
        mixed_precision=True,
        fallback_dtype="float16",
        bias_int32=True,
        # The engine simulates (and its accuracy search judges) Q/DQ only where TensorRT consumes
        # INT8: the inputs of conv/gemm/pooling layers; pointwise ops fuse into the conv in higher
        # precision. (The lowering adds a residual Add's skip-branch pair from the same parameters.)
        # Simulating every op quantized had the search pay float layers for error the device never
        # makes: PP-OCR rec worst -0.89 -> -0.50 pt, NudeNet photo scores 14.1 -> 18.6 dB.
        quantize_ops=frozenset(INT8_INPUTS),
        cache_every_tensor=True,  # calibration.cache (implicit path) needs a range for every tensor
    )
    min_opset = 7
    runner_template = "runner_tensorrt.py.j2"
    template_package = "deploykit_tensorrt"

    def __init__(self, profile):
        super().__init__(profile)
        self.settings = EngineSettings.from_profile(profile, profile.default_precision)
        self.op_support = op_table(self.settings.trt_version)
        self.max_opset = int(profile.options.get("max_onnx_opset", 13))
        self._opset_problems: dict[str, str] = {}

    # -- checks ---------------------------------------------------------------------------
    def check_precision(self, precision: str) -> None:
        if precision == "int8" and not self.profile.options.get("has_fast_int8", True):
            cc = str(self.profile.options.get("compute_capability", "?"))
            arch = _ARCH.get(cc.split(".")[0], "its")
            raise DeployError(
                f"target {self.profile.name!r} cannot build --precision int8: its {arch} GPU (sm_{cc.replace('.', '')}) "
                f"has no fast INT8, and TensorRT refuses Q/DQ networks on GPUs without INT8 support; "
                f"use --precision fp16"
            )
        super().check_precision(precision)

    # -- build steps ----------------------------------------------------------------------
    def prepare(self, model: ir.Model, options: BuildOptions | None) -> ir.Model:
        """Opset within what the device's TensorRT parses (decompose HardSwish/Gelu, and
        LayerNormalization before TensorRT 8.6), lowest IR version for that opset."""
        model = super().prepare(model, options)
        decompose = set(DECOMPOSE)
        if self.settings.version >= (8, 6):
            decompose.discard("LayerNormalization")
        proto = ir.to_proto(model)
        lowered, self._opset_problems = lower_opset(proto, self.max_opset, decompose)
        set_ir_version(lowered)
        return ir.from_proto(lowered)

    def analyze(self, model: ir.Model) -> list[NodeSupport]:
        result = super().analyze(model)
        for s in result:
            reason = self._opset_problems.get(s.node)
            if reason:
                s.status, s.reason = Support.UNSUPPORTED, reason
            if s.status is not Support.UNSUPPORTED:
                s.device = "gpu"
        return result

    def lower(self, ctx: BuildContext) -> Artifact:
        precision = ctx.options.precision
        settings = EngineSettings.from_profile(ctx.profile, precision)
        work = ctx.workdir
        report: dict = {"tensorrt_version": settings.trt_version}
        files = [MODEL_FILE]
        implicit = None
        if precision == "int8":
            if ctx.quant is None:
                raise DeployError("int8 needs calibration data; pass --calibration samples.npy")
            weight_format = "int8" if settings.version >= (10, 0) else "float"
            placed, placement = place_for_tensorrt(ctx.quant.qdq_model, ctx.quant.params, ctx.quant.fallback,
                                                   weight_format=weight_format)
            fp32 = ir.to_proto(ctx.quant.model)
            for m in (placed, fp32):
                set_ir_version(m)
            _save(placed, work / MODEL_FILE)
            _save(fp32, work / FP32_FILE)
            activations = {v.name for v in fp32.graph.input} | {o for n in fp32.graph.node for o in n.output}
            cache = write_cache(ctx.quant.params, settings.trt_version, names=activations)
            (work / CACHE_FILE).write_text(cache, encoding="utf-8")
            files += [FP32_FILE, CACHE_FILE]
            implicit = {"onnx": FP32_FILE, "cache": CACHE_FILE}
            report["qdq_placement"] = placement.to_json()
            report["qdq"] = {**qdq_summary(placed), "weight_format": weight_format}
            report["calibration_cache"] = {"file": CACHE_FILE, "header": cache.splitlines()[0],
                                           "tensors": len(cache.splitlines()) - 1}
            ctx.note(f"int8: explicit-quantization QDQ ONNX placed for TensorRT ({placement.to_json()['int8_layers']} "
                     f"INT8 conv/gemm layers, {placement.residual_adds and len(placement.residual_adds) or 0} residual Adds "
                     f"with a quantized skip branch) + {CACHE_FILE} for the implicit path")
            main = placed
        else:
            main = ir.to_proto(ctx.model)
            set_ir_version(main)
            _save(main, work / MODEL_FILE)
        report.update({"onnx_opset": opset_of(main), "onnx_ir_version": int(main.ir_version)})
        if self.max_opset < 17 or ctx.profile.python == "3.6":
            ctx.note(f"{MODEL_FILE}: opset {opset_of(main)}, IR version {main.ir_version} "
                     f"(TensorRT {settings.trt_version} parses opset <= {self.max_opset}; "
                     f"the device's onnxruntime fallback reads it too)")
        keep_fp32: list[str] = []
        if precision == "fp16":
            ctx.note("fp16: the ONNX stays float32 and TensorRT builds with FP16 enabled; host verification runs "
                     "it in onnxruntime CPU (fp32), fp16 rounding happens only in the engine on the device")
            keep_fp32 = self._fp16_range(ctx, settings, report)
        args = trtexec_args(settings, MODEL_FILE, f"engines/model.{precision}.trtexec.engine", "engines/timing.cache",
                            keep_fp32=keep_fp32)
        implicit_args = (trtexec_args(settings, FP32_FILE, f"engines/model.{precision}.trtexec.engine",
                                      "engines/timing.cache", implicit=True) if implicit else [])
        implicit_args = [a.replace("--calib=calibration.cache", "--calib=engines/calibration.cache") for a in implicit_args]
        report["trtexec"] = [settings.trtexec] + args
        report["engine_build"] = "on the device: ./build_engine.sh (trtexec) or on the runner's first run (TensorRT Python API)"
        context = {"deploykit_version": _version(), "profile": ctx.profile, "settings": settings, "precision": precision,
                   "args": args, "implicit_args": implicit_args, "implicit": bool(implicit)}
        script = work / SCRIPT_FILE
        script.write_text(render("build_engine.sh.j2", context, self.template_package), encoding="utf-8")
        os.chmod(script, 0o755)
        (work / ENGINE_MODULE).write_text(render("trt_engine.py.j2", context, self.template_package), encoding="utf-8")
        files += [SCRIPT_FILE, ENGINE_MODULE]
        o = ctx.profile.options
        engine = {"onnx_sha256": _sha256(work / MODEL_FILE), "workspace_mb": settings.workspace_mb,
                  "dla_cores": settings.dla_cores, "tensorrt_version": settings.trt_version,
                  "gpu_buffers": str(o.get("gpu_buffers", "cuda-python")), "implicit": implicit,
                  "calibration_cache_sha256": _sha256(work / CACHE_FILE) if implicit else None}
        return Artifact(
            files=files,
            inputs=ctx.inputs,
            outputs=ctx.outputs,
            runner_context={"model_file": MODEL_FILE, "precision": precision, "engine": engine,
                            "fallback_providers": FALLBACK_PROVIDERS},
            report=report,
        )

    @staticmethod
    def _fp16_range(ctx: BuildContext, settings, report: dict[str, Any]) -> list[str]:
        """Layers whose fp32 values leave the fp16 range on the calibration (or random) samples:
        kept fp32 with trtexec's layer precisions where TensorRT has them (>= 8.4), else a warning."""
        from deploykit.reference import FP16_MAX, fp16_overflow_of_build

        worst = fp16_overflow_of_build(ctx, report)
        if not worst:
            return []
        over = dict(worst)
        example = ", ".join(f"{k!r} {v:.3g}" for k, v in worst[:3])
        if settings.version >= (8, 4):
            report["fp16_kept_fp32"] = sorted(over)
            ctx.note(f"warning: fp16: {len(over)} layer(s) exceed {FP16_MAX:g} in fp32 ({example}); they are "
                     "built in fp32 (trtexec --layerPrecisions, --precisionConstraints=obey)")
            return sorted(over)
        ctx.note(f"warning: fp16: {len(over)} layer(s) exceed {FP16_MAX:g} in fp32 ({example}): TensorRT "
                 f"{settings.trt_version}'s trtexec cannot keep layers in fp32, so the fp16 engine will produce "
                 "inf/NaN there; use --precision fp32 or scale the model's inputs")
        return []

    def runner_requirements(self, precision: str) -> list[str]:
        reqs = list(self.profile.requirements)
        if not any(r.lower().startswith("numpy") for r in reqs):
            reqs.append("numpy")
        if not any(r.replace("_", "-").lower().startswith("onnxruntime") for r in reqs):
            reqs.append("onnxruntime")
        return reqs


def _save(model: onnx.ModelProto, path) -> None:
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString(deterministic=True))


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _version() -> str:
    from deploykit import __version__

    return __version__
