"""If-conversion: an ``If`` whose condition is only known at run time becomes both branches plus a
``Where`` per output, for runtimes without control flow (TFLite, MYRIAD).

openWakeWord's wake-word models test ``score >= 0.5`` and then run a small verifier MLP or return
the score: TFLite has no lowering for ``If``, so rpi4 and Coral refused the whole model. Computing
both branches and selecting is exact whenever both branches *can* run on the pinned input shapes,
and costs the extra branch's compute. ``If`` nodes with a constant condition are never seen here:
constant folding already inlined the taken branch.

A branch that cannot run on these shapes (silero-vad's 8 kHz branch on a 512-sample chunk at
16 kHz) makes the conversion wrong, not slow: :func:`convert` checks that every pair of branch
outputs has the same dtype and the same static shape, and the caller checks that ONNX Runtime runs
the converted model (:func:`runs_in_onnxruntime`) before it is used. Otherwise the build refuses
the ``If`` in one line, naming the input to freeze (``--freeze-input``) when the condition depends
on a graph input.

Not in :data:`deploykit.passes.CANONICAL_PASSES`: backends with control flow keep the ``If``
(one branch runs). A backend without it calls :func:`convert` from its ``prepare``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from deploykit.passes._common import is_onnx, static_shape
from deploykit.passes.if_condition_scalar import as_scalar

# ops whose result differs between two evaluations, or that loop: a branch holding one is not converted
_NOT_SPECULATABLE = ("Loop", "Scan", "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                     "Multinomial", "Bernoulli")


@dataclass
class IfConversion:
    """What :func:`convert` did: converted If names and, per refused If, why."""

    converted: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    conditions: dict[str, list[str]] = field(default_factory=dict)  # If name -> graph inputs of its condition


def condition_inputs(node: ir.Node) -> list[str]:
    """Names of the graph inputs the condition of ``node`` is computed from."""
    seen, stack, found = set(), [node.inputs[0]], []
    while stack:
        value = stack.pop()
        if value is None or id(value) in seen:
            continue
        seen.add(id(value))
        if value.is_graph_input():
            found.append(value.name or "")
            continue
        producer = value.producer()
        if producer is not None:
            stack.extend(producer.inputs)
    return sorted(found)


def _branch_problem(node: ir.Node) -> str | None:
    then_g, else_g = (node.attributes.get(k) for k in ("then_branch", "else_branch"))
    if then_g is None or else_g is None:
        return "a branch is missing"
    for branch in (then_g.value, else_g.value):
        for inner in ir.traversal.RecursiveGraphIterator(branch):
            if inner.domain in ("", "ai.onnx") and inner.op_type in _NOT_SPECULATABLE:
                return f"a branch holds {inner.op_type}, which cannot run speculatively"
    for i, (a, b) in enumerate(zip(then_g.value.outputs, else_g.value.outputs)):
        if not isinstance(a.type, ir.TensorType) or not isinstance(b.type, ir.TensorType):
            return f"output {i} is not a tensor"
        if a.dtype != b.dtype:
            return f"the branches return different dtypes for output {i} ({a.dtype} vs {b.dtype})"
        sa, sb = static_shape(a), static_shape(b)
        if sa is None or sb is None or sa != sb:
            return (f"the branches return different or unknown shapes for output {i} "
                    f"({list(sa) if sa is not None else '?'} vs {list(sb) if sb is not None else '?'})")
    return None


def _inline(graph: ir.Graph, node: ir.Node, branch: ir.Graph, tag: str) -> list[ir.Value]:
    """Move ``branch``'s nodes and initializers in front of ``node``; return its output values."""
    prefix = f"{node.name or 'If'}/{tag}/"
    for init in list(branch.initializers.values()):
        branch.initializers.pop(init.name)
        init.name = prefix + (init.name or "init")
        graph.register_initializer(init)
    nodes = list(branch)
    branch.remove(nodes, safe=False)
    for inner in nodes:
        inner.name = prefix + (inner.name or inner.op_type)
        for out in inner.outputs:
            if out.name:
                out.name = prefix + out.name
    graph.insert_before(node, nodes)
    return list(branch.outputs)


def _convert_one(graph: ir.Graph, node: ir.Node) -> None:
    cond = node.inputs[0]
    then_outs = _inline(graph, node, node.attributes["then_branch"].value, "then")
    else_outs = _inline(graph, node, node.attributes["else_branch"].value, "else")
    new_nodes: list[ir.Node] = []
    if static_shape(cond) != ():
        new_nodes += as_scalar(cond)
        cond = new_nodes[-1].outputs[0]
    selects = []
    for old, a, b in zip(node.outputs, then_outs, else_outs):
        where = ir.node("Where", [cond, a, b], name=f"{node.name or 'If'}/select")
        where.outputs[0].shape, where.outputs[0].type = a.shape, a.type
        new_nodes.append(where)
        selects.append(where.outputs[0])
    ir.convenience.replace_nodes_and_values(graph, node, [node], new_nodes, list(node.outputs), selects)


def convert(model: ir.Model) -> IfConversion:
    """Convert every ``If`` of the main graph (and those its branches bring in) that can be."""
    result = IfConversion()
    while True:
        pending = [n for n in model.graph if is_onnx(n, "If") and (n.name or "") not in result.refused]
        if not pending:
            return result
        node = pending[0]
        result.conditions[node.name or ""] = condition_inputs(node)
        problem = _branch_problem(node)
        if problem:
            result.refused[node.name or ""] = problem
            continue
        _convert_one(model.graph, node)
        result.converted.append(node.name or "")


def convert_for_target(model: ir.Model, backend: str, target: str) -> tuple[ir.Model, list[str], dict[str, str]]:
    """What a backend without control flow calls from ``prepare``: (model, converted If names,
    {If name: why it stays, with the freeze advice}). Raises :class:`UnsupportedError` when the
    converted model does not run (a branch invalid at these shapes that the shape check missed)."""
    from deploykit.errors import UnsupportedError
    from deploykit.passes import canonicalize

    ifs = convert(model)
    refusals = {name: "; ".join(filter(None, (f"{backend} has no control flow and both branches cannot be run and "
                                              f"selected: {why}", freeze_hint({name: ifs.conditions[name]}))))
                for name, why in ifs.refused.items()}
    if not ifs.converted:
        return model, [], refusals
    model = canonicalize(model, passes=[])  # topological order, names, shapes of the new values
    problem = runs_in_onnxruntime(model)
    if problem:
        raise UnsupportedError(
            f"If node(s) {', '.join(map(repr, ifs.converted))} cannot run on target {target!r}: {backend} has no "
            f"control flow and running both branches fails at these shapes ({problem})",
            hint=freeze_hint({n: ifs.conditions[n] for n in ifs.converted}))
    return model, ifs.converted, refusals


def freeze_hint(conditions: dict[str, list[str]]) -> str | None:
    """"freeze ..." advice when conditions depend on graph inputs (a configuration input such as a
    sample rate): with the value frozen, constant folding keeps only the branch taken."""
    names = sorted({n for inputs in conditions.values() for n in inputs})
    if not names:
        return None
    flags = " ".join(f"--freeze-input {n}=VALUE" for n in names)
    return f"the condition depends on input(s) {', '.join(map(repr, names))}: fix them at build time with {flags}"


def runs_in_onnxruntime(model: ir.Model) -> str | None:
    """``None`` when ONNX Runtime runs ``model`` on zero inputs, else its first error line."""
    import onnxruntime as ort

    from deploykit.ir.export import model_bytes
    from deploykit.ir.info import graph_inputs

    try:
        session = ort.InferenceSession(model_bytes(model), providers=["CPUExecutionProvider"])
        session.run(None, {s.name: np.zeros([max(d, 1) for d in s.shape], s.dtype) for s in graph_inputs(model)})
    except Exception as e:  # noqa: BLE001 - any failure means the conversion is not valid
        return str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
    return None
