"""The Edge TPU backend: full-integer TFLite (via the TFLite lowering) + Edge TPU compiler.

Steps of :meth:`EdgeTpuBackend.lower`: the TFLite backend's lowering and peephole fusions, then
:func:`~deploykit_edgetpu.int8.quantize_full_int8` (every op int8, int8 I/O), a check that no float
op remains, serialization, the TPU/CPU prediction on the final graph, and the compiler step
(``compiler.py``): run ``edgetpu_compiler`` when present, else ship ``compile.sh`` and say so.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import onnx_ir as ir

from deploykit.backend import Artifact, BuildContext, BuildOptions, NodeSupport, OpRule, Support
from deploykit.errors import DeployError
from deploykit.quant.scheme import SCALE_PRESERVING_OPS, QuantScheme
from deploykit_tflite.backend import MODEL_FILE, TFLiteBackend, tflite_io_specs

EDGETPU_MODEL_FILE = "model_edgetpu.tflite"
COMPILER_LOG_FILE = "model_edgetpu.log"
DEFAULT_RUNTIME = 14  # compiler 16.0 output needs runtime >= 14 (facts/edgetpu.md §4)

# The Edge TPU's int8 scheme (facts/edgetpu.md §0, §1): int8 everywhere (uint8 I/O would add
# QUANTIZE ops the compiler often leaves on the CPU; int8 I/O compiles with 16.0), weights symmetric
# per-axis in [-127, 127] (accepted: TF's PTQ route, §1), int32 bias, activations asymmetric per
# tensor, in == out params for pooling/reshape/concat/..., fixed Softmax/Logistic/Tanh outputs, and
# NO float op anywhere: mixed_precision=False, so the engine searches ranges instead of falling back.
EDGETPU_SCHEME = QuantScheme(
    weight_dtype="int8",
    activation_dtype="int8",
    weight_symmetric=True,
    activation_symmetric=False,
    per_channel_weights=True,
    shared_scale_ops=SCALE_PRESERVING_OPS | {"Concat", "AveragePool", "GlobalAveragePool", "Max", "Min"},
    float_ops=frozenset(),
    mixed_precision=False,
    fallback_dtype="float32",
    bias_int32=True,
    io_dtype="int8",
    fixed_output_params={"Softmax": (1.0 / 256, -128), "Sigmoid": (1.0 / 256, -128), "Tanh": (1.0 / 128, 0)},
    # a concatenated output whose branches' ranges differ by orders of magnitude (boxes in pixels +
    # class scores) ends the model at the branches; the runner joins them in float on the CPU
    join_outputs=True,
)


# what to do about an op without an int8 kernel, when there is something (shown by `deploykit inspect`)
NO_INT8_HINTS = {
    "POW": "only x**2 (MUL) and x**-0.5 (RSQRT) have int8 forms; the lrn rewrite uses RSQRT chains for beta a "
           "multiple of 1/16 up to 2, any other LRN beta keeps this POW",
    "LOCAL_RESPONSE_NORMALIZATION": "the lrn rewrite decomposes LRN of 4-D static tensors; this one was not",
}


# The TFLite lowering unrolls recurrent ops into gate arithmetic whose intermediate tensors have no
# calibrated range (no ONNX value): they stay float, which the Edge TPU compiler rejects. Refused in
# the support analysis, before calibration (ddddocr's OCR LSTM failed after it: 642 float operators).
RECURRENT_OPS = frozenset({"LSTM", "GRU", "RNN"})
RECURRENT_REASON = ("recurrent layers are unrolled into float gate arithmetic (no calibrated ranges inside), and "
                    "the Edge TPU needs every op int8: build for rpi4 instead (int8 with the recurrent layers in float)")


def _constants_to_initializers(model: ir.Model) -> None:
    """Constant nodes (from the rewrite rules) become initializers, as in a canonical model."""
    graph = model.graph
    for node in list(graph):
        value = node.attributes.get("value")
        if node.op_type != "Constant" or node.domain not in ("", "ai.onnx") or value is None or node.outputs[0].is_graph_output():
            continue
        out = node.outputs[0]
        tensor = value.as_tensor()
        init = ir.Value(name=out.name, type=ir.TensorType(tensor.dtype), shape=ir.Shape(tensor.shape),
                        const_value=tensor)
        ir.convenience.replace_all_uses_with(out, init)
        graph.remove(node, safe=True)
        graph.register_initializer(init)


def _name_nodes(model: ir.Model) -> None:
    """Every node gets a unique name: the TPU/CPU prediction maps operators back by node name."""
    used = {n.name for n in model.graph if n.name}
    seen: set[str] = set()
    for i, node in enumerate(model.graph):
        if not node.name or node.name in seen:
            name = f"{node.op_type}_{i}"
            while name in used or name in seen:
                name += "_"
            node.name = name
        seen.add(node.name)


class EdgeTpuBackend(TFLiteBackend):
    """Coral Edge TPU (USB Accelerator / Dev Board): full-int8 TFLite for edgetpu_compiler."""

    int8_hardswish_rewrite = False  # rewrites.RULES has its own (counted in the report)
    name = "edgetpu"
    description = "Coral Edge TPU: full-integer TFLite (int8 I/O), TPU/CPU split prediction, edgetpu_compiler"
    precisions = ("int8",)
    runtime = "tflite-runtime + libedgetpu"
    host_modules = ("ai_edge_litert",)
    op_support: ClassVar[dict[str, OpRule]] = TFLiteBackend.op_support
    quant_scheme: ClassVar[QuantScheme] = EDGETPU_SCHEME
    min_opset = 13  # the int8 pipeline upgrades to 13 anyway; the rewrite rules emit opset-13 forms (Pad, Split)
    runner_template = "runner_edgetpu.py.j2"
    template_package = "deploykit_edgetpu"

    # -- profile facts ------------------------------------------------------------------------
    @property
    def min_runtime(self) -> int:
        return int(self._option("min_runtime_version", DEFAULT_RUNTIME))

    def _option(self, key: str, default: Any = None) -> Any:
        return (getattr(self.profile, "options", None) or {}).get(key, default)

    def check_precision(self, precision: str) -> None:
        if precision != "int8":
            raise DeployError(f"target {self.profile.name!r} runs only full-integer models on the Edge TPU: "
                              f"use --precision int8 (with --calibration samples.npy); {precision} is not supported")
        super().check_precision(precision)

    # -- prepare: batch/shape checks, then the TPU rewrite rules --------------------------------
    def prepare(self, model: ir.Model, options: BuildOptions) -> ir.Model:
        from deploykit.passes import canonicalize
        from deploykit_edgetpu import rewrites

        model = super().prepare(model, options)
        for v in model.graph.inputs:
            if v.name in model.graph.initializers or v.shape is None:
                continue
            dims = list(v.shape)
            if len(dims) >= 1 and isinstance(dims[0], int) and dims[0] > 1:
                raise DeployError(f"edgetpu: input {v.name!r} has batch {dims[0]}; the Edge TPU runs batch 1 only "
                                  f"(facts: tensors may have only the 3 innermost dims > 1); pass "
                                  f"--input-shape {v.name}:1,{','.join(str(d) for d in dims[1:])}")
        static = all(v.shape is not None and v.shape.is_static() and all(int(d) >= 0 for d in v.shape)
                     for v in model.graph.inputs)
        self.rewrites = rewrites.apply(model, runtime=self.min_runtime) if static else {}
        self.rewrites = {**getattr(self, "lowering_rewrites", {}), **self.rewrites}
        if static:
            _constants_to_initializers(model)
            stale = [v for n in model.graph for v in n.outputs
                     if v.shape is not None and not v.is_graph_output()
                     and (not v.shape.is_static() or any(int(d) < 0 for d in v.shape))]
            for v in stale:  # e.g. [-1, C, 1, 1] left from a dynamic-batch export: re-infer from the pinned inputs
                v.shape = None
            if self.rewrites or stale:
                model = canonicalize(model, passes=[])  # topological order, names, shapes of new values
        _name_nodes(model)
        return model

    # -- support analysis ---------------------------------------------------------------------
    def predict(self, model: ir.Model):
        """Lower ``model`` (fp32, no quantization) and predict each operator's device."""
        from deploykit_edgetpu.support import predict
        from deploykit_edgetpu.fuse import optimize
        from deploykit_edgetpu.converters import CONVERTERS

        graph = optimize(_tpu_lowering(model).run(CONVERTERS), self.min_runtime)
        return graph, predict(graph, self.min_runtime, check_dtypes=False)

    def analyze(self, model: ir.Model) -> list[NodeSupport]:
        """TFLite lowering support, then per node: can it be int8 at all (the compiler rejects any
        float op), and does it land on the TPU or the CPU (first-unsupported-op split)."""
        from deploykit_edgetpu.int8 import INT8_OPS
        from deploykit_edgetpu.support import headline, node_macs_by_name, summary

        base = [NodeSupport(s.node, s.op_type, Support.UNSUPPORTED, RECURRENT_REASON, "cpu")
                if s.op_type in RECURRENT_OPS and s.status is not Support.UNSUPPORTED else s
                for s in super().analyze(model)]
        if any(s.status is Support.UNSUPPORTED for s in base):
            return base
        try:
            graph, pred = self.predict(model)
        except DeployError as e:  # dynamic shapes etc.: the op table only, with the reason
            base[0] = dataclasses.replace(base[0], reason=(base[0].reason + "; " if base[0].reason else "")
                                          + f"no Edge TPU prediction: {e}")
            return base
        no_int8: dict[str, str] = {}
        for op in graph.ops:
            if op.code not in INT8_OPS and op.code not in ("QUANTIZE", "DEQUANTIZE") and op.node:
                no_int8.setdefault(op.node, op.code)
        devices = pred.node_device()
        reasons: dict[str, str] = {}
        for p in pred.ops:
            if p.reason and p.node not in reasons:
                reasons[p.node] = f"{p.code}: {p.reason}"
        self.last_summary = summary(pred, node_macs_by_name(model), self._cache_mib())
        split_node = pred.split.node if pred.split else None
        result, after_split = [], False
        for s, node in zip(base, model.graph):
            name = node.name
            if name in no_int8:
                hint = NO_INT8_HINTS.get(no_int8[name], "")
                result.append(NodeSupport(s.node, s.op_type, Support.UNSUPPORTED,
                                          f"lowered to {no_int8[name]}, which has no int8 TFLite kernel: the Edge TPU "
                                          "compiler rejects models with any float op ('Model not quantized')"
                                          + (f"; {hint}" if hint else ""), "cpu"))
                continue
            if name == split_node:
                after_split = True
                reason = f"first op the Edge TPU cannot map ({reasons.get(name, '')}); " + headline(self.last_summary)
                result.append(NodeSupport(s.node, s.op_type, s.status, reason, "cpu"))
                continue
            device = devices.get(name) or ("cpu" if after_split else "tpu")
            reason = reasons.get(name) or s.reason or ("" if name in devices else "no operator of its own (fused, folded or layout only)")
            result.append(NodeSupport(s.node, s.op_type, s.status, reason, device))
        if split_node is None and result:
            last = result[-1]
            result[-1] = dataclasses.replace(last, reason=(last.reason + "; " if last.reason else "") + headline(self.last_summary))
        return result

    def _cache_mib(self) -> float:
        return float(self._option("on_chip_param_cache_mib", 7.5))

    # -- lowering -----------------------------------------------------------------------------
    def lower(self, ctx: BuildContext) -> Artifact:
        from deploykit_edgetpu import compiler
        from deploykit_edgetpu.int8 import float_operators, quantize_full_int8
        from deploykit_edgetpu.support import headline, node_macs_by_name, predict, summary
        from deploykit_tflite.emitter import SIGNATURE_KEY, build_model
        from deploykit_edgetpu.fuse import optimize
        from deploykit_tflite.int8 import resolve_params
        from deploykit_edgetpu.converters import CONVERTERS
        from deploykit_tflite.lowering import UnsupportedNode

        overrides = getattr(getattr(ctx.quant, "plan", None), "float_values", None) if ctx.quant is not None else None
        joins = dict(getattr(ctx.quant, "joins", None) or {})
        model, outputs = ctx.model, ctx.outputs
        if joins:  # the model ends at the branches; the runner joins them in float (deploykit.quant.mixed_ranges)
            from deploykit.ir import graph_outputs
            from deploykit.quant.parts import cut_joined_outputs

            model = cut_joined_outputs(ctx.model, joins)
            outputs = graph_outputs(model)
            ctx.note(f"{len(joins)} output(s) joined by the runner from separately quantized branches: "
                     + ", ".join(repr(o) for o in joins))
        lowering = _tpu_lowering(model, overrides)
        try:
            graph = lowering.run(CONVERTERS)
        except UnsupportedNode as e:
            raise DeployError(str(e)) from e
        optimize(graph, self.min_runtime)
        params, fallback, source = resolve_params(ctx, self.quant_scheme)
        if fallback:  # cannot happen with mixed_precision=False; refuse rather than emit float ops
            raise DeployError(f"edgetpu: the quantization engine kept {sorted(fallback)} in float; the Edge TPU needs all int8")
        ctx.note(f"int8 parameters from {source}")
        qreport = quantize_full_int8(graph, params)
        io_quant = qreport.pop("_io")
        bad = float_operators(graph)
        if bad:
            listed = "; ".join(f"{code} (node {node!r})" for code, node in bad[:12])
            raise DeployError(f"edgetpu: {len(bad)} operator(s) could not be made integer: {listed}. The Edge TPU "
                              "compiler rejects models with float ops; replace these ops or see 'deploykit inspect "
                              f"MODEL --target {self.profile.name}'")
        data = build_model(graph, description="deploykit int8 (Edge TPU)")
        (ctx.workdir / MODEL_FILE).write_bytes(data)

        pred = predict(graph, self.min_runtime)
        tpu = summary(pred, node_macs_by_name(ctx.model), self._cache_mib())
        ctx.note(headline(tpu))
        report: dict[str, Any] = {
            "int8": qreport, "operators": graph.op_counts(), "model_bytes": len(data),
            "rewrites": dict(getattr(self, "rewrites", {}) or {}),
            "edgetpu": {**tpu, "min_runtime_version": self.min_runtime,
                        "per_operator": [p.to_json() for p in pred.ops]},
        }
        files = [MODEL_FILE]
        files += self._compile(ctx, report["edgetpu"], compiler)

        inputs, outputs = tflite_io_specs(dataclasses.replace(ctx, outputs=outputs), graph, lowering, io_quant)
        if joins:
            outputs = joined_output_specs(ctx.outputs, outputs, joins)
        libs = self._option("libedgetpu", {}) or {}
        return Artifact(
            files=files, inputs=inputs, outputs=outputs, report=report,
            requirements=self.runner_requirements("int8"),
            runner_context={
                "model_file": MODEL_FILE, "signature_key": SIGNATURE_KEY,
                "edgetpu_model_file": EDGETPU_MODEL_FILE,  # used when present (built here or by compile.sh)
                "libedgetpu": {"linux": libs.get("linux", "libedgetpu.so.1"),
                               "macos": libs.get("macos", "libedgetpu.1.dylib"),
                               "windows": libs.get("windows", "edgetpu.dll")},
                "delegate_device": self._option("delegate_device", ""),
                "tpu_mac_share": tpu["tpu_mac_share"],
            },
        )

    def _compile(self, ctx: BuildContext, report: dict[str, Any], compiler) -> list[str]:
        """Run the compiler when present; always ship compile.sh. Returns extra artifact files."""
        script = compiler.compile_script(MODEL_FILE, self.min_runtime,
                                         self._option("apt_source", "deb https://packages.cloud.google.com/apt coral-edgetpu-stable main"),
                                         self._option("edgetpu_compiler_version", "16.0.384591198"))
        path = ctx.workdir / compiler.COMPILE_SCRIPT
        path.write_text(script, encoding="utf-8")
        path.chmod(0o755)
        binary = compiler.find_compiler()
        if binary is None:
            report["compiler"] = {"status": "not_found",
                                  "note": "edgetpu_compiler is not on PATH: the bundle holds the CPU-runnable full-int8 "
                                          "model.tflite; run ./compile.sh on an x86-64 Linux machine (native or Docker) "
                                          "to produce model_edgetpu.tflite"}
            ctx.note("warning: edgetpu_compiler not found on PATH: shipped the full-int8 model.tflite (runs on the CPU) "
                     "and compile.sh; run it on x86-64 Linux to get model_edgetpu.tflite for the Edge TPU")
            return [compiler.COMPILE_SCRIPT]
        parsed, data, log = compiler.run_compiler(binary, ctx.workdir / MODEL_FILE, self.min_runtime)
        report["compiler"] = parsed
        if data is None:
            ctx.note(f"warning: edgetpu_compiler failed ({parsed.get('error', 'see report')}): shipped the CPU "
                     "int8 model.tflite and compile.sh only")
            return [compiler.COMPILE_SCRIPT]
        (ctx.workdir / EDGETPU_MODEL_FILE).write_bytes(data)
        (ctx.workdir / COMPILER_LOG_FILE).write_text(log, encoding="utf-8")
        frac = parsed.get("mapped_fraction")
        ctx.note(f"edgetpu_compiler {parsed.get('compiler_version', '?')}: {parsed.get('edgetpu_subgraphs', '?')} Edge TPU "
                 f"subgraph(s), {parsed.get('tpu_operations', parsed.get('total_operations', '?'))} ops on the TPU"
                 + (f" ({100 * frac:.1f}% of ops mapped)" if frac is not None else ""))
        return [compiler.COMPILE_SCRIPT, EDGETPU_MODEL_FILE, COMPILER_LOG_FILE]

    def runner_requirements(self, precision: str) -> list[str]:
        reqs = list(self.profile.requirements)
        index = self._option("pip_extra_index_url")
        return ([f"--extra-index-url {index}"] if index else []) + reqs


def joined_output_specs(source_outputs, artifact_outputs, joins) -> list:
    """The source model's output specs; joined outputs carry their branches' artifact specs."""
    by_name = {o.name: o for o in artifact_outputs}
    result = []
    for o in source_outputs:
        t = joins.get(o.name)
        if t is None:
            result.append(by_name[o.name])
            continue
        parts = [dict(by_name[src].artifact or {"name": src}) for src in t.sources]
        join = {"axis": t.axis, "tail": [list(x) for x in t.tail], "branch_ops": [list(b) for b in t.branch_ops],
                "parts": parts}
        result.append(dataclasses.replace(o, artifact={"join": join}))
    return result


def _tpu_lowering(model, overrides=None):
    """The TFLite lowering with the Edge TPU's choices: nearest upsampling stays
    RESIZE_NEAREST_NEIGHBOR (an Edge TPU op), not CONCATENATION + DEPTH_TO_SPACE (no Edge TPU op:
    the TPU segment of a detector's FPN stopped there, 39-52 % of MACs on the TPU); a matrix product
    with several rows is a 1x1 CONV_2D (FULLY_CONNECTED maps only with one output row: a ViT's
    token-wise linear layers ended the TPU segment at the first attention projection)."""
    from deploykit_tflite.lowering import Lowering

    lowering = Lowering(model, overrides)
    lowering.nearest_as_depth_to_space = False
    lowering.rows_as_conv = True  # FULLY_CONNECTED maps only with one output row (facts §2)
    return lowering
