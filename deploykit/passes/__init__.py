"""Canonicalization passes: one :class:`onnx_ir.passes.InPlacePass` per module.

:data:`CANONICAL_PASSES` is the ordered pipeline that :func:`canonicalize` runs to a fixed point
(bounded) with :class:`onnx_ir.passes.PassManager`, followed by a topological sort, name fixing
and shape inference. :data:`PASS_REGISTRY` maps the CLI names (``constant-folding``, ...) to the
classes. The graph's input/output names, dtypes and shapes are the user's contract and never
change: :func:`canonicalize` checks them and restores them if a pass got them wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import onnx_ir as ir
from onnx_ir.passes.common import NameFixPass, ShapeInferencePass, TopologicalSortPass

from deploykit.passes.batchnorm_folding import BatchNormFoldingPass
from deploykit.passes.constant_folding import ConstantFoldingPass
from deploykit.passes.conv_affine_folding import ConvAffineFoldingPass
from deploykit.passes.dead_code import DeadCodeEliminationPass
from deploykit.passes.gelu_fusion import GeluFusionPass
from deploykit.passes.hardsigmoid_fusion import HardSigmoidFusionPass
from deploykit.passes.hardswish_fusion import HardSwishFusionPass
from deploykit.passes.identity_elimination import IdentityEliminationPass
from deploykit.passes.if_condition_scalar import IfConditionScalarPass
from deploykit.passes.layernorm_fusion import LayerNormFusionPass
from deploykit.passes.pad_folding import PadFoldingPass
from deploykit.passes.reshape_collapse import ReshapeCollapsePass
from deploykit.passes.transpose_cancellation import TransposeCancellationPass

logger = logging.getLogger(__name__)

CANONICAL_PASSES: list[type[ir.passes.PassBase]] = [
    ConstantFoldingPass,
    IdentityEliminationPass,
    BatchNormFoldingPass,
    ConvAffineFoldingPass,
    PadFoldingPass,
    TransposeCancellationPass,
    ReshapeCollapsePass,
    HardSigmoidFusionPass,
    HardSwishFusionPass,
    GeluFusionPass,
    LayerNormFusionPass,
    IfConditionScalarPass,
    DeadCodeEliminationPass,
]

PASS_REGISTRY: dict[str, type[ir.passes.PassBase]] = {
    "constant-folding": ConstantFoldingPass,
    "identity-elimination": IdentityEliminationPass,
    "batchnorm-folding": BatchNormFoldingPass,
    "conv-affine-folding": ConvAffineFoldingPass,
    "pad-folding": PadFoldingPass,
    "transpose-cancellation": TransposeCancellationPass,
    "reshape-collapse": ReshapeCollapsePass,
    "hardsigmoid-fusion": HardSigmoidFusionPass,
    "hardswish-fusion": HardSwishFusionPass,
    "gelu-fusion": GeluFusionPass,
    "layernorm-fusion": LayerNormFusionPass,
    "if-condition-scalar": IfConditionScalarPass,
    "dead-code-elimination": DeadCodeEliminationPass,
}

MAX_STEPS = 8


def _signature(values: Sequence[ir.Value]) -> list[tuple[str | None, ir.TypeProtocol | None, ir.Shape | None]]:
    return [(v.name, v.type, v.shape) for v in values]


def _restore_outputs(graph: ir.Graph, signature) -> None:
    """Give every graph output back its original name, type and shape."""
    for i, (name, type_, shape) in enumerate(signature):
        value = graph.outputs[i]
        if value.name != name:
            logger.warning("canonicalize: output %d renamed %r -> %r; restoring", i, name, value.name)
            if value.producer() is not None and not value.is_graph_input() and not value.is_initializer() and graph.outputs.count(value) == 1:
                value.name = name
            else:  # shared / input / initializer value: route it through an Identity
                node = ir.node("Identity", [value], name=f"{name}_identity")
                node.outputs[0].name = name
                graph.append(node)
                graph.outputs[i] = value = node.outputs[0]
        value.type, value.shape = type_, _keep_static(shape, value.shape)


def _keep_static(original: ir.Shape | None, inferred: ir.Shape | None) -> ir.Shape | None:
    """The inferred shape when it is fully static and agrees with the original's static dims
    (pinned inputs make dynamic output dims concrete), else the original."""
    if original is None or inferred is None or len(original) != len(inferred):
        return original if original is not None else inferred
    dims = list(inferred)
    if not all(isinstance(d, int) and d >= 0 for d in dims):
        return original
    for o, d in zip(original, dims):
        if isinstance(o, int) and o != d:
            return original
    return ir.Shape(dims)


def canonicalize(
    model: ir.Model,
    *,
    passes: Sequence[type[ir.passes.PassBase] | ir.passes.PassBase] | None = None,
    max_steps: int = MAX_STEPS,
) -> ir.Model:
    """Run the canonicalization passes on ``model`` in place (to a fixed point) and return it.

    :param passes: pass classes or instances to run instead of :data:`CANONICAL_PASSES`.
    :param max_steps: at most this many sweeps over the pass list.
    """
    selected = CANONICAL_PASSES if passes is None else passes
    instances = [p() if isinstance(p, type) else p for p in selected]
    inputs = _signature(model.graph.inputs)
    outputs = _signature(model.graph.outputs)
    if instances:
        ir.passes.PassManager(instances, steps=max_steps, early_stop=True)(model)
    TopologicalSortPass()(model)
    NameFixPass()(model)
    ShapeInferencePass(check_type=False, strict_mode=False, data_prop=True)(model)
    for value, (name, type_, shape) in zip(model.graph.inputs, inputs):
        if value.name != name:
            raise AssertionError(f"canonicalize renamed graph input {name!r} to {value.name!r}")
        value.type, value.shape = type_, shape
    _restore_outputs(model.graph, outputs)
    if model.ir_version < 4:  # IR 3 requires every initializer to be a graph input; ours are not
        model.ir_version = 4
    return model


__all__ = ["CANONICAL_PASSES", "PASS_REGISTRY", "canonicalize", *(c.__name__ for c in CANONICAL_PASSES)]
