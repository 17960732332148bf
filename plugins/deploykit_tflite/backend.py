"""The TFLite backend: ONNX -> .tflite for LiteRT with the XNNPACK delegate (no TensorFlow).

Steps of :meth:`TFLiteBackend.lower`: lower the canonical ONNX graph into a TFLite graph with
NHWC layout (``lowering.py`` + the converters of ``optable.py``), peephole fusions (``fuse.py``),
the precision pass (``fp16.py`` or ``int8.py``), then serialize (``emitter.py``).
"""

from __future__ import annotations

import dataclasses

from typing import Any, ClassVar

import onnx_ir as ir

from deploykit.backend import Artifact, Backend, BuildContext, NodeSupport, OpRule, Support
from deploykit.errors import DeployError
from deploykit.ir.info import TensorSpec
from deploykit.quant.scheme import SCALE_PRESERVING_OPS, QuantScheme
from deploykit_tflite.optable import CONVERTERS

MODEL_FILE = "model.tflite"

# XNNPACK's int8 scheme (facts §1): int8 asymmetric per-tensor activations, symmetric per-channel
# int8 weights in [-127, 127], int32 bias at input_scale * weight_scale; ops whose output must
# reuse the input's (scale, zero point) -- XNNPACK fails the whole load otherwise -- and Concat,
# whose inputs must all share the output's params.
XNNPACK_SCHEME = QuantScheme(
    weight_dtype="int8",
    activation_dtype="int8",
    weight_symmetric=True,
    activation_symmetric=False,
    per_channel_weights=True,
    shared_scale_ops=SCALE_PRESERVING_OPS | {"Concat", "AveragePool", "Max", "Min"},
    # no int8 kernel XNNPACK delegates (facts §2): kept float between DEQUANTIZE / QUANTIZE
    float_ops=frozenset({"Softmax", "LogSoftmax", "Div", "Pow", "Sqrt", "Exp", "Log", "Erf", "Gelu",
                         "LayerNormalization", "InstanceNormalization", "LRN", "Reciprocal", "HardSwish"}),
    mixed_precision=True,
    fallback_dtype="float32",
    bias_int32=True,
    io_dtype="float32",
)


def TFLiteSpec(base: TensorSpec, artifact: dict[str, Any], quantization: dict[str, Any] | None = None) -> TensorSpec:
    """The source model's spec plus how the .tflite tensor differs (layout, dtype, quantization)."""
    return dataclasses.replace(base, shape=list(base.shape), quantization=quantization, artifact=dict(artifact),
                               extra=dict(base.extra))


def tflite_io_specs(ctx, graph, lowering, io_quant: dict[int, Any]) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Runner specs of the graph's inputs/outputs: source names and layout, plus how each .tflite
    tensor differs (transpose, dtype, int8 quantization of integer I/O)."""

    def spec(base: TensorSpec, t, perm) -> TensorSpec:
        art: dict[str, Any] = {"name": base.name, "dtype": t.dtype}
        if list(perm) != list(range(len(perm))):
            art["perm"] = [int(p) for p in perm]
        q = io_quant.get(id(t))
        quantization = None
        if q is not None:
            art["scale"], art["zero_point"] = float(q.scale[0]), int(q.zero_point[0])
            quantization = {"dtype": t.dtype, "scale": art["scale"], "zero_point": art["zero_point"]}
        return TFLiteSpec(base, art, quantization)

    in_perms = [lowering.env[s.name][1] for s in ctx.inputs]
    inputs = [spec(s, t, p) for s, t, p in zip(ctx.inputs, graph.inputs, in_perms)]
    outputs = [spec(s, t, p) for s, t, p in zip(ctx.outputs, graph.outputs, lowering.output_perms)]
    return inputs, outputs


class TFLiteBackend(Backend):
    """LiteRT (ai-edge-litert, or tflite-runtime) with XNNPACK on ARM CPUs."""

    name = "tflite"
    description = "LiteRT / TFLite with XNNPACK (Raspberry Pi and other ARM CPU boards); fp32, fp16, int8"
    precisions = ("fp32", "fp16", "int8")
    runtime = "ai-edge-litert"
    host_modules = ("ai_edge_litert",)
    op_support: ClassVar[dict[str, OpRule]] = {
        op: OpRule(Support.SUPPORTED, c.note, c.check) for op, c in CONVERTERS.items()
    }
    quant_scheme: ClassVar[QuantScheme] = XNNPACK_SCHEME
    min_opset = 7
    runner_template = "runner_tflite.py.j2"
    template_package = "deploykit_tflite"
    # int8: HardSwish decomposed before calibration (subclasses with their own rule set turn it off)
    int8_hardswish_rewrite: ClassVar[bool] = True

    def prepare(self, model: ir.Model, options) -> ir.Model:
        """Every precision: Focus (4 stride-2 slices + Concat) as SpaceToDepth (:mod:`.space_to_depth`).
        int8: LayerNorm/GELU fused (at opset 20 if need be), HardSwish as ADD(+RELU6)/MUL/MUL,
        before calibration (:mod:`.int8_rewrites`)."""
        from deploykit_tflite import space_to_depth

        model = super().prepare(model, options)
        focus = space_to_depth.apply(model)
        self.lowering_rewrites = {"focus_space_to_depth": focus} if focus else {}
        model = self._convert_ifs(model)
        if options is None or options.precision != "int8":
            return model
        from deploykit_tflite.int8_rewrites import decompose_hardswish, fuse_at_newer_opset

        model, _ = fuse_at_newer_opset(model)
        if self.int8_hardswish_rewrite and decompose_hardswish(model):
            from deploykit.passes import canonicalize

            model = canonicalize(model, passes=[])  # topological order, names, shapes of new values
        return model

    def _convert_ifs(self, model: ir.Model) -> ir.Model:
        """TFLite has no control flow: an ``If`` left after constant folding runs both branches and
        selects (:mod:`deploykit.passes.if_to_select`) when both can run at the pinned shapes."""
        from deploykit.passes.if_to_select import convert_for_target

        model, converted, self.if_refusals = convert_for_target(model, self.name, self.profile.name)
        if converted:
            self.lowering_rewrites["if_to_select"] = converted
        return model

    def analyze(self, model: ir.Model) -> list[NodeSupport]:
        """The op table, plus: nodes computable at build time are folded (supported whatever their type)."""
        from deploykit_tflite.fold import is_foldable

        const = set(model.graph.initializers)
        folded = set()
        for node in model.graph:
            if is_foldable(node, lambda v: v.name in const):
                const.update(v.name for v in node.outputs)
                folded.add(id(node))
        result, refusals = [], getattr(self, "if_refusals", {})
        for s, node in zip(super().analyze(model), ir.traversal.RecursiveGraphIterator(model.graph)):
            if id(node) in folded:
                s = NodeSupport(s.node, s.op_type, Support.SUPPORTED, "folded at build time")
            elif node.op_type == "If" and s.status is Support.UNSUPPORTED and (node.name or "") in refusals:
                s = NodeSupport(s.node, s.op_type, Support.UNSUPPORTED, refusals[node.name or ""])
            result.append(s)
        return result

    @staticmethod
    def _delegation(ctx: BuildContext) -> dict[str, Any] | None:
        """How XNNPACK partitions the written model (LiteRT on this host); a note when it splits."""
        from deploykit_tflite.delegation import checked_delegation

        try:  # in a child process: a LiteRT abort raises DeployError here instead of killing the build
            d = checked_delegation(ctx.workdir / MODEL_FILE)
        except DeployError:
            raise
        except Exception as e:  # noqa: BLE001 - the verify step reports load failures in full
            ctx.note(f"XNNPACK delegation not checked: {type(e).__name__}: {e}"[:300])
            return None
        ctx.note(("" if not d.undelegated else "warning: ") + d.summary())
        return d.as_dict()

    @staticmethod
    def _fp16_fits(ctx: BuildContext, report: dict[str, Any]) -> bool:
        """Whether every value of the model stays within fp16's range on the calibration (or random)
        samples. A device with fp16 arithmetic computes the whole delegated graph in fp16 when asked to;
        values beyond 65504 become inf/NaN there, which x86 verification cannot see (emulated A76: magika,
        a MiniLM's -3.4e38 attention mask and an audio front-end's power spectrum turned NaN)."""
        from deploykit.reference import FP16_MAX, fp16_overflow_of_build

        worst = fp16_overflow_of_build(ctx, report)
        if not worst:
            return True
        example = ", ".join(f"{k!r} {v:.3g}" for k, v in worst[:3])
        ctx.note(f"warning: fp16: {len(worst)} layer(s) exceed {FP16_MAX:g} in fp32 ({example}): the bundle does not "
                 f"ask {ctx.profile.name} for fp16 arithmetic (it would give inf/NaN there); fp16 weights, fp32 compute")
        return False

    def lower(self, ctx: BuildContext) -> Artifact:
        from deploykit_tflite.emitter import SIGNATURE_KEY, write_model
        from deploykit_tflite.fuse import optimize
        from deploykit_tflite.lowering import Lowering, UnsupportedNode

        precision = ctx.options.precision
        overrides = None
        if precision == "int8" and ctx.quant is not None and getattr(ctx.quant, "plan", None) is not None:
            overrides = getattr(ctx.quant.plan, "float_values", None)
        lowering = Lowering(ctx.model, overrides)
        try:
            graph = lowering.run(CONVERTERS)
        except UnsupportedNode as e:
            raise DeployError(str(e)) from e
        optimize(graph, set(getattr(ctx.quant, "fallback", ()) or ()) if precision == "int8" else None)
        report: dict[str, Any] = {}
        io_quant: dict[int, Any] = {}
        if precision == "fp16":
            from deploykit_tflite.fp16 import to_fp16_weights

            # fp16 arithmetic on the device (Pi 5) only with LiteRT's reduced_precision_support metadata,
            # and only for models whose values stay in fp16's range: the metadata is model-wide
            fp16_arithmetic = bool(ctx.profile.options.get("fp16_arithmetic", False)) and self._fp16_fits(ctx, report)
            report["fp16_constants"] = to_fp16_weights(graph, reduced_precision=fp16_arithmetic)
            report["fp16_arithmetic"] = fp16_arithmetic
        elif precision == "int8":
            from deploykit_tflite.int8 import quantize_graph, resolve_params

            params, fallback, source = resolve_params(ctx, self.quant_scheme)
            ctx.note(f"int8 parameters from {source}")
            qreport = quantize_graph(graph, params, fallback, int8_io=ctx.options.io == "int8")
            report["int8"] = qreport
            io_quant = qreport.pop("_io", {})
        elif precision != "fp32":  # pragma: no cover - check_precision ran before
            raise DeployError(f"unsupported precision {precision}")
        # straight to the file, handing constant data over as it is written (memory: see emitter)
        model_bytes = write_model(graph, ctx.workdir / MODEL_FILE, description=f"deploykit {precision}", release=True)
        if getattr(self, "lowering_rewrites", None):
            report["rewrites"] = dict(self.lowering_rewrites)
            ifs = self.lowering_rewrites.get("if_to_select")
            if ifs:
                ctx.note(f"{len(ifs)} If node(s) run both branches and select the result (TFLite has no control "
                         f"flow): {', '.join(map(repr, ifs))}")
        report["operators"] = graph.op_counts()
        report["transposes"] = report["operators"].get("TRANSPOSE", 0)
        report["model_bytes"] = model_bytes
        report["xnnpack"] = self._delegation(ctx)

        inputs, outputs = tflite_io_specs(ctx, graph, lowering, io_quant)
        return Artifact(
            files=[MODEL_FILE],
            inputs=inputs,
            outputs=outputs,
            runner_context={"model_file": MODEL_FILE, "signature_key": SIGNATURE_KEY},
            report=report,
        )
