"""The ACME backend: which ops the ACME NPU runs, and how a model becomes an ACME artifact.

Everything deploykit needs to know is declared as class attributes; the only code that runs at
build time is :meth:`AcmeBackend.lower` (plus the op-table ``check`` callbacks). Heavy imports
(onnxruntime) happen inside methods, never at module import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import onnx_ir as ir

from deploykit.backend import SUPPORTED, Artifact, Backend, BuildContext, OpRule
from deploykit.errors import DeployError
from deploykit.ir.export import save_model, to_proto

MODEL_FILE = "model.onnx"
DEFAULT_DEVICE_ENV = "ACME_DEVICE"


def _ints(node: ir.Node, name: str, default: list[int]) -> list[int]:
    attr = node.attributes.get(name)
    return list(attr.value) if attr is not None else default


def check_conv(node: ir.Node) -> str | None:
    """The ACME NPU's convolution engine: 2-D, dense (group=1), no dilation."""
    attr = node.attributes.get("group")
    group = int(attr.value) if attr is not None else 1
    if group != 1:
        return f"ACME NPU runs dense Conv only (group=1), got group={group}; replace grouped/depthwise Conv"
    dilations = _ints(node, "dilations", [])
    if any(d != 1 for d in dilations):
        return f"ACME NPU runs Conv without dilation only, got dilations={dilations}"
    weight = node.inputs[1] if len(node.inputs) > 1 else None
    if weight is not None and weight.shape is not None and len(weight.shape) != 4:
        return f"ACME NPU runs 2-D Conv only, got a {len(weight.shape) - 2}-D Conv"
    return None


# op type -> rule. Ops not listed are unsupported, and the build stops with a clear error naming
# each offending node. Keep this table greppable: one op per line.
ACME_OPS: Mapping[str, OpRule] = {
    "Conv": OpRule(note="NPU conv engine (2-D, group=1, no dilation)", check=check_conv),
    "Relu": SUPPORTED,
    "Clip": OpRule(note="fused into the preceding Conv as ReLU6/clamp"),
    "LeakyRelu": SUPPORTED,
    "Sigmoid": SUPPORTED,
    "HardSigmoid": SUPPORTED,
    "HardSwish": SUPPORTED,
    "Add": SUPPORTED,
    "Sub": SUPPORTED,
    "Mul": SUPPORTED,
    "MaxPool": SUPPORTED,
    "AveragePool": SUPPORTED,
    "GlobalAveragePool": SUPPORTED,
    "Flatten": SUPPORTED,
    "Reshape": SUPPORTED,
    "Concat": SUPPORTED,
    "Gemm": SUPPORTED,
    "MatMul": SUPPORTED,
    "Softmax": OpRule(note="runs on the CPU cores, not the NPU"),
}


class AcmeBackend(Backend):
    """ONNX Runtime on the ACME board; fp32 or fp16 ONNX artifacts, checked against the NPU op table."""

    name = "acme"
    description = "ACME NPU via ONNX Runtime (fp32 / fp16)"
    precisions = ("fp32", "fp16")
    runtime = "onnxruntime"
    host_modules = ("onnxruntime",)  # lowering (fp16) and host-side verification need it
    op_support: ClassVar[Mapping[str, OpRule]] = ACME_OPS
    quant_scheme = None  # no int8 on this board (yet)
    min_opset = 13
    runner_template = "runner_acme.py.j2"
    template_package = "deploykit_acme"

    def lower(self, ctx: BuildContext) -> Artifact:
        out = ctx.workdir / MODEL_FILE
        precision = ctx.options.precision
        if precision == "fp32":
            written = save_model(ctx.model, out)
        elif precision == "fp16":
            written = [_save_fp16(ctx.model, out)]
        else:  # pragma: no cover - check_precision ran before lower()
            raise DeployError(f"the acme backend cannot build {precision}")
        ops = sorted({n.op_type for n in ir.traversal.RecursiveGraphIterator(ctx.model.graph)})
        cpu_ops = [op for op in ops if "CPU" in ACME_OPS[op].note]
        if cpu_ops:
            ctx.note(f"{', '.join(cpu_ops)} run(s) on the CPU cores of the ACME board, not the NPU")
        return Artifact(
            files=[p.name for p in written],
            inputs=ctx.inputs,
            outputs=ctx.outputs,
            runner_context={
                "model_file": MODEL_FILE,
                "device_env": str(self.profile.options.get("device_env", DEFAULT_DEVICE_ENV)),
                # ACME's NPU execution provider when the board image has it, else the CPU
                "providers": {"npu": ["AcmeNpuExecutionProvider", "CPUExecutionProvider"],
                              "cpu": ["CPUExecutionProvider"]},
            },
            report={"ops": ops, "cpu_ops": cpu_ops},
        )

    def runner_requirements(self, precision: str) -> list[str]:
        reqs = list(self.profile.requirements)
        if not any(r.lower().startswith("onnxruntime") for r in reqs):
            reqs.append("onnxruntime>=1.18")
        if not any(r.lower().startswith("numpy") for r in reqs):
            reqs.append("numpy")
        return reqs


def _save_fp16(model: ir.Model, out):
    """fp16 weights and compute; the graph keeps float32 inputs/outputs (Casts at the edges)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    converted = convert_float_to_float16(to_proto(model), keep_io_types=True)
    out.write_bytes(converted.SerializeToString(deterministic=True))
    return out
