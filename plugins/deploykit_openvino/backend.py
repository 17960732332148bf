"""The OpenVINO backend: ONNX -> OpenVINO IR (model.xml + model.bin).

Targets (profiles in ``targets/``): ``intel-cpu`` (fp32, fp16, int8), ``intel-npu`` (fp16, int8) on
the current runtime, and ``ncs2`` (Myriad X, fp16 only) on the OpenVINO 2022.3 LTS archive.

Steps of :meth:`OpenVinoBackend.lower`:

1. the canonical fp32 model -- or, for int8, the engine's QDQ model (``ctx.quant.qdq_model``, made
   under :data:`OPENVINO_SCHEME`) -- is written to ONNX and converted with ``openvino.convert_model``
   (each activation Q/DQ pair becomes a FakeQuantize, int8 weights stay int8 constants [facts §3]);
2. ncs2 only: layers of opset >= 11 are rewritten to opset <= 10 and MYRIAD-less layers to
   supported ones (:mod:`.downgrade`); the result is checked against the MYRIAD table
   (:mod:`.myriad`) and against the XML's opset versions after saving;
3. ``openvino.save_model`` (FP16-compressed weights for fp16);
4. ncs2 only: when an OpenVINO 2022.3 environment exists (:mod:`.legacy`), the IR is loaded and
   run under 2022.3 and compared with the current runtime -- the proof the device can read it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnx_ir as ir

from deploykit.backend import Artifact, Backend, BuildContext, NodeSupport, OpRule, Support
from deploykit.errors import DeployError
from deploykit.ir.export import save_model
from deploykit.quant.scheme import COMPUTE_OPS, SCALE_PRESERVING_OPS, QuantScheme

MODEL_FILE = "model.xml"
WEIGHTS_FILE = "model.bin"

# OpenVINO CPU int8 [facts §3]: symmetric per-channel int8 weights with zero point 0 (a non-zero
# weight zero point made Convolution fall back to f32 [EXP-7]); asymmetric u8 activations (the u8
# kernels the CPU plugin picks; int8 activations ran as u8 anyway). Ops outside the LPT list run in
# float whatever their inputs are, so the engine may leave them float.
OPENVINO_SCHEME = QuantScheme(
    weight_dtype="int8",
    activation_dtype="uint8",
    weight_symmetric=True,
    activation_symmetric=False,
    per_channel_weights=True,
    shared_scale_ops=SCALE_PRESERVING_OPS | {"Concat"},
    quantize_ops=COMPUTE_OPS,  # FakeQuantize only where the CPU plugin runs int8 kernels (as NNCF places them)
    float_ops=frozenset({"Softmax", "LogSoftmax", "Sigmoid", "Tanh", "Exp", "Log", "Div", "Pow", "Sqrt", "Erf",
                         "Gelu", "HardSigmoid", "HardSwish", "LayerNormalization", "InstanceNormalization",
                         "LRN", "Reciprocal", "Sub"}),
    mixed_precision=True,
    fallback_dtype="float32",
    bias_int32=True,
    io_dtype="float32",
    # The CPU plugin's u8 x s8 kernels saturate on x86 without VNNI (OpenVINO's "saturation issue";
    # NNCF's overflow fix): 7-bit weights cannot overflow there.
    weight_bits=7,
)


class OpenVinoBackend(Backend):
    """OpenVINO IR for Intel CPUs / NPUs (current runtime) and the NCS2 (2022.3 LTS, MYRIAD)."""

    name = "openvino"
    description = "OpenVINO IR (Intel CPU/NPU on current OpenVINO; NCS2 Myriad X on 2022.3 LTS); fp32, fp16, int8"
    precisions = ("fp32", "fp16", "int8")
    runtime = "openvino"
    host_modules = ("openvino",)
    op_support: ClassVar[dict[str, OpRule] | None] = None  # the ONNX frontend converts the standard op set
    quant_scheme: ClassVar[QuantScheme] = OPENVINO_SCHEME
    min_opset = 7
    runner_template = "runner_openvino.py.j2"
    template_package = "deploykit_openvino"

    # -- profile facts ------------------------------------------------------------------
    @property
    def device(self) -> str:
        return str(self.profile.options.get("device", "CPU"))

    @property
    def is_myriad(self) -> bool:
        return self.device.upper().startswith("MYRIAD")

    @property
    def max_opset(self) -> int | None:
        v = self.profile.options.get("max_opset")
        return int(v) if v is not None else None

    @property
    def static_shapes(self) -> bool:
        return bool(self.profile.options.get("static_shapes", False)) or self.is_myriad

    # -- build steps --------------------------------------------------------------------
    def check_precision(self, precision: str) -> None:
        if self.is_myriad and precision in ("int8", "fp32"):
            why = ("FakeQuantize/INT8 is not supported by the MYRIAD plugin" if precision == "int8"
                   else "the Myriad X VPU computes in FP16 only")
            raise DeployError(f"target {self.profile.name!r} runs FP16 only ({why}); use --precision fp16, "
                              f"or --target intel-cpu for {precision.upper()}")
        super().check_precision(precision)

    def prepare(self, model: ir.Model, options) -> ir.Model:
        """The opset upgrade; on MYRIAD (no control flow) an ``If`` runs both branches and selects
        where both can run (:mod:`deploykit.passes.if_to_select`)."""
        model = super().prepare(model, options)
        self.if_refusals: dict[str, str] = {}
        self.if_converted: list[str] = []
        if self.is_myriad:
            from deploykit.passes.if_to_select import convert_for_target

            model, self.if_converted, self.if_refusals = convert_for_target(model, "MYRIAD", self.profile.name)
        return model

    def analyze(self, model: ir.Model) -> list[NodeSupport]:
        if not self.is_myriad:
            return self._analyze_by_conversion(model, super().analyze(model))
        from deploykit_openvino.myriad import MYRIAD_ONNX_RULES

        result = []
        functions = {(f.domain, f.name) for f in model.functions.values()}
        for node in ir.traversal.RecursiveGraphIterator(model.graph):
            op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
            rule = MYRIAD_ONNX_RULES.get(op, OpRule())
            reason = self.unknown_op_reason(node, functions) or (rule.check(node) if rule.check else None)
            if op == "If" and (node.name or "") in getattr(self, "if_refusals", {}):
                reason = self.if_refusals[node.name or ""]
            if reason:
                result.append(NodeSupport(node.name or "", op, Support.UNSUPPORTED, reason, device="vpu"))
            else:
                result.append(NodeSupport(node.name or "", op, rule.status, rule.note, device="vpu"))
        return result

    def _analyze_by_conversion(self, model: ir.Model, result: list[NodeSupport]) -> list[NodeSupport]:
        """Convert the fp32 model once before any calibration: ops OpenVINO's ONNX frontend cannot
        convert are refused here, by name, not after minutes of calibration in ``lower``."""
        from deploykit_openvino import lowering

        with tempfile.TemporaryDirectory(prefix="deploykit-ov-") as tmp:
            src = Path(tmp) / "model.onnx"
            save_model(model, src)
            try:
                import openvino as ov

                ov.convert_model(str(src))
                return result
            except Exception as e:  # noqa: BLE001 - the converter raises many types
                message = str(e)
        failed = lowering.failed_ops(message)
        if not failed:
            raise DeployError(f"OpenVINO could not convert the model: {lowering.conversion_failure(message)}")
        version = _ov_version().split("-")[0]
        why = {op: f"OpenVINO {version} cannot convert it: {reason}" for op, reason in failed.items()}
        return [NodeSupport(s.node, s.op_type, Support.UNSUPPORTED, why[s.op_type]) if s.op_type in why else s
                for s in result]

    def lower(self, ctx: BuildContext) -> Artifact:
        from deploykit_openvino import lowering

        precision = ctx.options.precision
        self._check_shapes(ctx)
        report: dict[str, Any] = {"device": self.device, "openvino_build": _ov_version()}
        xml = ctx.workdir / MODEL_FILE
        with tempfile.TemporaryDirectory(prefix="deploykit-ov-") as tmp:
            src = Path(tmp) / "model.onnx"
            if precision == "int8":
                if ctx.quant is None:
                    raise DeployError("int8 needs calibration data; pass --calibration samples.npy")
                src.write_bytes(ctx.quant.qdq_model.SerializeToString(deterministic=True))
            else:
                save_model(ctx.model, src)
            if lowering.xml_safe_names(src):
                ctx.note("names with control characters are stored escaped in the IR (XML cannot hold them); "
                         "the runner keeps the model's names")
            model = lowering.convert(src)
            converter = "openvino.convert_model"
            if self.max_opset is not None or self.is_myriad:
                converter = self._downgrade(ctx, model, src, xml, report)
            else:
                lowering.save(model, xml, compress_to_fp16=precision == "fp16")
        report["converter"] = converter
        if getattr(self, "if_converted", None):
            report["if_to_select"] = list(self.if_converted)
            ctx.note(f"{len(self.if_converted)} If node(s) run both branches and select the result "
                     f"(MYRIAD has no control flow): {', '.join(map(repr, self.if_converted))}")
        if self.max_opset is not None:
            from deploykit_openvino.downgrade import check_ir_opsets, ir_opsets

            check_ir_opsets(xml, self.max_opset)
            report["ir_opsets"] = ir_opsets(xml)
        import openvino as ov

        saved = ov.Core().read_model(str(xml))
        report["layers"] = lowering.ops_of(saved)
        input_order = lowering.port_order(saved.inputs, ctx.inputs, "input")
        output_order = lowering.port_order(saved.outputs, ctx.outputs, "output")
        if self.is_myriad:
            self._check_myriad_layers(saved)
            self._check_with_2022(ctx, xml, input_order, report)
        if not self.is_myriad:  # compiled in a child process: a native crash is a clean error
            precisions = lowering.runtime_precisions(xml)
        if precision == "int8":
            report["int8_runtime_precision"] = precisions
            f32 = sum(v.get("f32", 0) for v in report["int8_runtime_precision"].values())
            if f32:
                ctx.note(f"{f32} compute layer(s) run in f32 on this host's CPU plugin (not quantized or fallback)")
        return Artifact(
            files=[MODEL_FILE, WEIGHTS_FILE],
            inputs=ctx.inputs,
            outputs=ctx.outputs,
            runner_context=self._runner_context(precision, input_order, output_order),
            report=report,
        )

    def runner_requirements(self, precision: str) -> list[str]:
        reqs = list(self.profile.requirements)
        if not self.is_myriad and not any(r.lower().startswith("openvino") for r in reqs):
            reqs.append("openvino>=2024.0")
        if not any(r.lower().startswith("numpy") for r in reqs):
            reqs.append("numpy")
        return reqs

    # -- helpers ------------------------------------------------------------------------
    def _check_shapes(self, ctx: BuildContext) -> None:
        if not self.static_shapes:
            return
        for s in ctx.inputs:
            if any(int(d) < 0 for d in s.shape):
                raise DeployError(f"target {self.profile.name!r} needs static shapes; input {s.name!r} has "
                                  f"shape {s.shape}: pass --input-shape NAME:1,... (see deploykit inspect)")
            if self.is_myriad and len(s.shape) >= 2 and s.shape[0] != 1:
                raise DeployError(f"target {self.profile.name!r} builds batch 1 (input {s.name!r} has batch "
                                  f"{s.shape[0]}); pass --input-shape with batch 1 and use several infer requests")

    def _downgrade(self, ctx: BuildContext, model, src: Path, xml: Path, report: dict[str, Any]) -> str:
        """opset <= max_opset (+ MYRIAD rewrites), then save; OpenVINO 2022.3 conversion as a fallback."""
        from deploykit_openvino import legacy, lowering
        from deploykit_openvino.downgrade import downgrade

        compress = ctx.options.precision == "fp16"
        lowering.fold_static_shapes(model)  # shape arithmetic the converter left (e.g. ReduceProd of a Flatten)
        try:
            report["rewrites"] = downgrade(model, self.max_opset or 10, myriad=self.is_myriad)
        except DeployError as e:
            python = legacy.find_python()
            if python is None:
                raise DeployError(f"{e}; an OpenVINO 2022.3 environment could convert it instead: "
                                  f"{legacy.setup_hint()}") from e
            ctx.note(f"downgrade pass failed ({e}); converting with OpenVINO 2022.3 instead")
            # next to the source, not at ``xml``: the runtime maps the weights of the IR it reads, and
            # saving over a mapped .bin kills the process (SIGBUS)
            legacy_xml = src.with_name("ov2022.xml")
            used = legacy.convert_with_mo(python, src, legacy_xml).get("converter", "openvino 2022.3")
            import openvino as ov

            model = ov.Core().read_model(str(legacy_xml))
            report["rewrites"] = downgrade(model, self.max_opset or 10, myriad=self.is_myriad)
            lowering.save(model, xml, compress_to_fp16=compress)
            return f"{used} + deploykit downgrade"
        lowering.save(model, xml, compress_to_fp16=compress)
        return "openvino.convert_model + deploykit downgrade"

    def _check_myriad_layers(self, model) -> None:
        from deploykit_openvino.lowering import layers_on_2d_only
        from deploykit_openvino.myriad import MYRIAD_2D_ONLY_IR, MYRIAD_UNSUPPORTED_IR

        bad = sorted({f"{n.get_type_name()} ({n.get_friendly_name()})" for n in model.get_ordered_ops()
                      if n.get_type_name() in MYRIAD_UNSUPPORTED_IR})
        bad += layers_on_2d_only(model, MYRIAD_2D_ONLY_IR)
        if bad:
            raise DeployError(f"{len(bad)} layer(s) of the IR cannot run on MYRIAD: {'; '.join(bad[:10])}")

    def _check_with_2022(self, ctx: BuildContext, xml: Path, input_order: list[str], report: dict[str, Any]) -> None:
        """Load + run the IR under OpenVINO 2022.3 (CPU) and compare with the current runtime."""
        from deploykit_openvino import legacy, lowering

        python = legacy.find_python()
        if python is None:
            report["ov2022_check"] = {"status": "skipped", "reason": "no OpenVINO 2022.3 environment"}
            ctx.note(f"OpenVINO 2022.3 compatibility not run (no 2022.3 environment): {legacy.setup_hint()}")
            return
        by_name = {s.name: s for s in ctx.inputs}
        feeds = lowering.random_feeds([by_name[n] for n in input_order], 2, seed=0)
        old, info = legacy.run_ir(python, xml, feeds)
        new = lowering.run_current(xml, feeds)
        diff = legacy.max_abs_diff(old, new)
        scale = max(1e-6, max(float(np.max(np.abs(y))) for ys in new for y in ys if np.asarray(y).size))
        status = "passed" if diff / scale <= 1e-2 else "failed"
        report["ov2022_check"] = {"status": status, "openvino": info.get("version"), "device": "CPU",
                                  "max_abs_diff_vs_current": round(diff, 8), "relative": round(diff / scale, 8)}
        if status != "passed":
            raise DeployError(f"the IR runs under OpenVINO {info.get('version')} but differs from the current "
                              f"runtime (max abs diff {diff:.3g}); the downgrade changed the model")
        ctx.log(f"OpenVINO {info.get('version')} reads and runs the IR (CPU), max abs diff {diff:.2g}")

    def _runner_context(self, precision: str, input_order: list[str], output_order: list[str]) -> dict[str, Any]:
        opts = self.profile.options
        hint = str(opts.get("performance_hint", "LATENCY")).upper()
        return {
            "model_file": MODEL_FILE,
            "device": self.device,
            "performance_hint": hint,
            # on CPU: compute float parts in f32 -- CPUs with AVX512-BF16/AMX default to bf16, which
            # costs ~1e-3 relative error; fp16 here means FP16-compressed weights (a half-size IR)
            "inference_precision": "f32",
            "input_order": input_order,
            "output_order": output_order,
            "openvino_version": str(opts.get("openvino_version", self.profile.runtime_version)),
            "legacy_api": self.is_myriad,
            "device_help": _device_help(self.profile.name, self.device),
        }


def _ov_version() -> str:
    import openvino as ov

    return str(ov.get_version())


def _device_help(target: str, device: str) -> str:
    if device.upper().startswith("MYRIAD"):
        return ("the MYRIAD plugin comes with the OpenVINO 2022.3.1 archive (not the pip wheel): install it, "
                "source setupvars.sh, run install_NCS_udev_rules.sh and plug in the stick (see README.md)")
    if device.upper().startswith("NPU"):
        return "the NPU needs the Intel NPU driver (Core Ultra host, Linux kernel 6.6+ or Windows 11)"
    return f"see README.md of this {target} bundle"
