"""Shared helpers of the compression techniques (not a technique itself): constant weights of an
``onnx.ModelProto``, consumers/producers, model statistics, and an accuracy evaluator that runs
candidate models in ONNX Runtime against the fp32 outputs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from deploykit.ir.names import fresh_name
from deploykit.quant.collect import constant_value

Feed = dict[str, np.ndarray]


class GraphIndex:
    """Producers, consumers and initializers of the main graph, by tensor name."""

    def __init__(self, model: onnx.ModelProto):
        g = model.graph
        self.model = model
        self.inits = {t.name: t for t in g.initializer}
        self.producer: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for node in g.node:
            for o in node.output:
                if o:
                    self.producer[o] = node
            for i in node.input:
                if i:
                    self.consumers[i].append(node)
        for node in g.node:  # constants used inside subgraphs count as consumers of the outer name
            for a in node.attribute:
                for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                    for name in _subgraph_inputs(sub):
                        self.consumers[name].append(node)
        self.graph_outputs = {o.name for o in g.output}
        self.graph_inputs = {i.name for i in g.input}
        self._used = set(self.inits) | set(self.producer) | self.graph_inputs | {n.name for n in g.node}

    def const(self, name: str) -> np.ndarray | None:
        """The value of an initializer or a Constant node's output, else ``None``."""
        return constant_value(name, self.inits, self.producer, self.graph_inputs)

    def is_param(self, name: str) -> bool:
        """A constant that only this graph's nodes read (safe to replace)."""
        return name in self.inits and name not in self.graph_inputs and name not in self.graph_outputs

    def fresh(self, hint: str) -> str:
        return fresh_name(self._used, hint)

    def set_init(self, name: str, array: np.ndarray) -> None:
        """Replace (or add) initializer ``name`` with ``array``."""
        tensor = numpy_helper.from_array(np.ascontiguousarray(array), name)
        if name in self.inits:
            self.inits[name].CopyFrom(tensor)
        else:
            self.model.graph.initializer.append(tensor)
            self.inits[name] = self.model.graph.initializer[-1]
            self._used.add(name)


def _subgraph_inputs(graph: onnx.GraphProto) -> set[str]:
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    used = set()
    for node in graph.node:
        used.update(i for i in node.input if i)
        defined.update(node.output)
        for a in node.attribute:
            for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                used.update(_subgraph_inputs(sub))
    return used - defined


def attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def set_attr(node: onnx.NodeProto, name: str, value) -> None:
    for i, a in enumerate(node.attribute):
        if a.name == name:
            del node.attribute[i]
            break
    node.attribute.append(helper.make_attribute(name, value))


def is_onnx(node: onnx.NodeProto, *ops: str) -> bool:
    return node.domain in ("", "ai.onnx") and node.op_type in ops


def refresh_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop intermediate shapes (channel counts changed) and infer them again."""
    del model.graph.value_info[:]
    try:
        return onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 - best effort; ORT validation decides
        return model


def weight_stats(model: onnx.ModelProto) -> dict[str, int]:
    """Parameters (elements of float initializers/Constants), their bytes, and MACs."""
    import onnx_ir as ir

    from deploykit.ir.stats import model_stats

    inferred = refresh_shapes(onnx.ModelProto.FromString(model.SerializeToString()))
    stats = model_stats(ir.from_proto(inferred))
    return {"params": int(stats.params), "param_bytes": int(stats.param_bytes), "macs": int(stats.macs)}


def model_session(model: onnx.ModelProto, threads: int = 1):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.enable_cpu_mem_arena = False
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def run_model(model: onnx.ModelProto, feeds: Sequence[Feed]) -> list[list[np.ndarray]]:
    sess = model_session(model)
    names = [o.name for o in sess.get_outputs()]
    wanted = {i.name for i in sess.get_inputs()}
    return [sess.run(names, {k: v for k, v in f.items() if k in wanted}) for f in feeds]


SHIFT_INVARIANT = ("Softmax", "LogSoftmax")
SQUASHING = SHIFT_INVARIANT + ("Sigmoid",)


def monitored_tensors(model: onnx.ModelProto) -> list[tuple[str, bool]]:
    """What the evaluator compares: (tensor, centre per sample) for each float graph output.

    An output made by Softmax / LogSoftmax / Sigmoid is judged on that op's *input* (the logits) too:
    saturated probabilities hide errors until a sample flips class, logits show them early and
    continuously, so a choice made on a few samples holds on unseen ones. Softmax logits are
    compared after removing each sample's mean along the softmax axis (softmax ignores it).
    """
    index = GraphIndex(model)
    found = []
    for out in model.graph.output:
        node = index.producer.get(out.name)
        while node is not None and node.op_type == "Identity" and node.input[0] not in index.graph_inputs:
            node = index.producer.get(node.input[0])
        if node is not None and node.op_type in SQUASHING and node.input[0] not in index.graph_inputs:
            found.append((node.input[0], node.op_type in SHIFT_INVARIANT))
        found.append((out.name, False))  # and the output itself: a peaked softmax amplifies logit errors
    return found


def with_outputs(model: onnx.ModelProto, names: Sequence[str]) -> onnx.ModelProto:
    """A shallow variant of ``model`` whose graph outputs are ``names`` (float tensors)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    types = {vi.name: vi for vi in [*out.graph.value_info, *out.graph.output]}
    del out.graph.output[:]
    for name in names:
        if name in types:
            out.graph.output.append(types[name])
        else:
            out.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return out


def equivalent_cosine(ref: np.ndarray, out: np.ndarray) -> float:
    """``1 - r^2 / 2`` with ``r = ||out - ref|| / ||ref||`` over all samples: a continuous,
    scale-sensitive stand-in for the cosine (equal to it for small errors orthogonal to ``ref``,
    lower otherwise)."""
    ref = np.asarray(ref, np.float64)
    out = np.asarray(out, np.float64)
    if ref.shape != out.shape or not np.isfinite(out).all():
        return 0.0
    norm = np.linalg.norm(ref)
    err = np.linalg.norm(out - ref)
    if norm == 0:
        return 1.0 if err == 0 else 0.0
    return max(0.0, 1.0 - 0.5 * (err / norm) ** 2)


class Evaluator:
    """Scores candidate models against the fp32 outputs of ``reference`` on ``feeds``.

    The score (1 = identical) is the lowest :func:`equivalent_cosine` over the monitored tensors
    (:func:`monitored_tensors`), measured over all samples together; integer outputs score the
    fraction of equal elements.
    """

    def __init__(self, reference: onnx.ModelProto, feeds: Sequence[Feed]):
        self.feeds = list(feeds)
        self.monitored = monitored_tensors(reference)
        self.refs = run_model(reference, self.feeds)  # the real outputs (shapes, validation)
        self.mon_refs = self._run(reference)
        self.runs = 0

    def _run(self, model: onnx.ModelProto) -> list[np.ndarray]:
        outs = run_model(with_outputs(model, [n for n, _ in self.monitored]), self.feeds)
        stacked = []
        for i, (_, centre) in enumerate(self.monitored):
            y = np.stack([np.asarray(o[i]) for o in outs])
            if centre and y.dtype.kind == "f" and y.ndim >= 2:
                y = y - y.mean(axis=-1, keepdims=True)
            stacked.append(y)
        return stacked

    def output_cosine(self, model: onnx.ModelProto) -> float:
        """Plain cosine of each float graph output vs fp32 over all samples (lowest over outputs)."""
        outs = run_model(model, self.feeds)
        worst = 1.0
        for i, ref0 in enumerate(self.refs[0]):
            if np.asarray(ref0).dtype.kind != "f":
                continue
            a = np.concatenate([np.asarray(r[i], np.float64).ravel() for r in self.refs])
            b = np.concatenate([np.asarray(o[i], np.float64).ravel() for o in outs])
            na, nb = np.linalg.norm(a), np.linalg.norm(b)
            cos = 1.0 if na == nb == 0 else (0.0 if na == 0 or nb == 0 or not np.isfinite(b).all() else float(a @ b / (na * nb)))
            worst = min(worst, cos)
        return worst

    def score(self, model: onnx.ModelProto) -> float:
        self.runs += 1
        try:
            outs = self._run(model)
        except Exception:  # noqa: BLE001 - a candidate that does not run scores zero
            return 0.0
        worst = 1.0
        for ref, out in zip(self.mon_refs, outs):
            if ref.dtype.kind == "f":
                worst = min(worst, equivalent_cosine(ref, out))
            elif ref.shape != out.shape:
                worst = 0.0
            else:
                worst = min(worst, float(np.mean(ref == out)) if ref.size else 1.0)
        return worst


def copy_model(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def allocate(curves: dict[str, list[tuple[object, float, float]]], allowance: float) -> list[tuple[str, object]]:
    """Greedy order of per-layer choices: the largest saving per unit of accuracy loss first,
    while the summed losses fit ``allowance``.

    :param curves: layer -> [(option, loss, saving)], option ``None`` (loss 0, saving 0) implied.
    :returns: [(layer, option)] in the order picked; a later pick of a layer replaces its earlier
        one (use :func:`choice_prefix` to turn the first ``n`` picks into a choice).
    """
    picks: list[tuple[str, object]] = []
    spent = 0.0
    state = {k: (None, 0.0, 0.0) for k in curves}
    while True:
        best = None
        for layer, options in curves.items():
            _, cur_loss, cur_save = state[layer]
            for opt, loss, save in options:
                d_save, d_loss = save - cur_save, max(loss - cur_loss, 0.0)
                if d_save <= 0 or spent + d_loss > allowance:
                    continue
                value = d_save / (d_loss + 1e-6 * allowance + 1e-12)
                if best is None or value > best[0]:
                    best = (value, layer, (opt, loss, save), d_loss)
        if best is None:
            break
        _, layer, option, d_loss = best
        state[layer] = (option[0], max(option[1], state[layer][1]), option[2])
        spent += d_loss
        picks.append((layer, option[0]))
    return picks


def choice_prefix(picks: list[tuple[str, object]], n: int) -> dict[str, object]:
    choice: dict[str, object] = {}
    for layer, option in picks[:n]:
        choice[layer] = option
    return choice


LogFn = Callable[[str], None]
