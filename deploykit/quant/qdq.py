"""Build a QDQ (QuantizeLinear/DequantizeLinear) ONNX model from an fp32 model and a plan.

The result is standard ONNX (opset >= 13): the fake-quant simulation used by the accuracy search,
and the int8 artifact of QDQ-consuming backends (ONNX Runtime, TensorRT, OpenVINO).
Fallback nodes read the float tensors; every other consumer reads the dequantized ones.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from deploykit.ir.names import fresh_name
from deploykit.quant.collect import GraphIndex
from deploykit.quant.params import QuantParams
from deploykit.quant.plan import QuantPlan, _node_key, quantizable_inputs

_NP_TO_ONNX = {"int8": onnx.TensorProto.INT8, "uint8": onnx.TensorProto.UINT8, "int32": onnx.TensorProto.INT32}


class _Builder:
    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.new_nodes: list[onnx.NodeProto] = []
        self.new_inits: list[onnx.TensorProto] = []
        self.taken = {t.name for t in model.graph.initializer}
        for n in model.graph.node:
            self.taken.update(n.output)
            self.taken.add(n.name)
        self.taken.update(i.name for i in model.graph.input)

    def fresh(self, base: str) -> str:
        return fresh_name(self.taken, base)

    def scale_zp(self, base: str, p: QuantParams) -> tuple[str, str]:
        s = self.fresh(base + "_scale")
        z = self.fresh(base + "_zero_point")
        self.new_inits.append(numpy_helper.from_array(np.asarray(p.scale, np.float32).reshape(np.shape(p.scale)), s))
        self.new_inits.append(numpy_helper.from_array(np.asarray(p.zero_point).astype(np.dtype(p.dtype)).reshape(np.shape(p.scale)), z))
        return s, z

    def dq(self, src: str, p: QuantParams, out: str) -> None:
        s, z = self.scale_zp(src, p)
        attrs = {"axis": int(p.axis)} if p.per_channel else {}
        self.new_nodes.append(helper.make_node("DequantizeLinear", [src, s, z], [out], name=self.fresh(out + "_DQ"), **attrs))

    def qdq(self, src: str, p: QuantParams, out: str) -> None:
        s, z = self.scale_zp(src, p)
        q = self.fresh(src + "_quantized")
        self.new_nodes.append(helper.make_node("QuantizeLinear", [src, s, z], [q], name=self.fresh(src + "_Q")))
        self.new_nodes.append(helper.make_node("DequantizeLinear", [q, s, z], [out], name=self.fresh(src + "_DQ")))

    def const_dq(self, name: str, value: np.ndarray, p: QuantParams) -> str:
        qname = self.fresh(name + "_quantized")
        self.new_inits.append(numpy_helper.from_array(p.quantize(value), qname))
        out = self.fresh(name + "_dequantized")
        self.dq(qname, p, out)
        return out


def build_qdq_model(model: onnx.ModelProto, plan: QuantPlan, index: GraphIndex | None = None) -> onnx.ModelProto:
    """Return a new QDQ model; ``model`` is not modified."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    index = index or GraphIndex(model)
    b = _Builder(out)
    g = out.graph
    # float values replaced by bias correction
    inits = {t.name: t for t in g.initializer}
    for name, value in plan.float_values.items():
        if name in inits:
            inits[name].CopyFrom(numpy_helper.from_array(value.astype(numpy_helper.to_array(inits[name]).dtype), name))
    # graph outputs produced by quantized nodes: rename the float tensor, DQ output keeps the name
    renamed: dict[str, str] = {}
    for k, node in enumerate(g.node):
        for j, o in enumerate(node.output):
            if o in index.graph_outputs and o in plan.activations and plan.quantized(node, _node_key(node, k)):
                fp = b.fresh(o + "_float")
                node.output[j] = fp
                renamed[o] = fp
    dq_of: dict[str, str] = {}
    for o, fp in renamed.items():
        b.qdq(fp, plan.activations[o], o)
        dq_of[fp] = o

    def dequantized(name: str, p: QuantParams) -> str:
        src = renamed.get(name, name)
        if src not in dq_of:
            dq_of[src] = b.fresh(name + "_dequantized")
            b.qdq(src, p, dq_of[src])
        return dq_of[src]

    stored_int8 = int8_outputs(g, plan)
    for k, node in enumerate(list(g.node)):
        if not plan.quantized(node, _node_key(node, k)):
            for i, name in enumerate(node.input):
                if name in stored_int8:
                    node.input[i] = dequantized(name, plan.activations[name])
                elif name in renamed:  # float nodes read float values: undo renames of graph outputs
                    node.input[i] = renamed[name]
            continue
        for i, name, role in quantizable_inputs(index, node):
            if role == "data":
                p = plan.activations.get(name)
                if p is None:
                    continue
                node.input[i] = dequantized(name, p)
            elif role in ("weight", "bias", "const"):
                p = {"weight": plan.weights, "bias": plan.biases, "const": plan.constants}[role].get(name)
                if p is None:
                    continue
                key = ("w", name)
                if key not in dq_of:
                    value = plan.float_values.get(name)
                    if value is None:
                        value = numpy_helper.to_array(index.initializers[name]).astype(np.float32)
                    dq_of[key] = b.const_dq(name, value, p)
                node.input[i] = dq_of[key]
    g.initializer.extend(b.new_inits)
    _drop_unused_initializers(g, b.new_nodes)
    nodes = list(g.node) + b.new_nodes
    del g.node[:]
    g.node.extend(toposort(nodes, {i.name for i in g.input} | {t.name for t in g.initializer}))
    _ensure_opset(out, 13)
    return out


def int8_outputs(graph: onnx.GraphProto, plan: QuantPlan) -> set[str]:
    """Tensors a full-integer runtime (TFLite, Edge TPU) stores as int8: every output with parameters
    of a quantized node. Float consumers (fallback layers, float-only ops) read them dequantized;
    QDQ runtimes (ONNX Runtime) hand them the float result of the fused op, so there: none.
    ``graph``: the fp32 graph the plan was made for (node keys follow its order)."""
    if plan.scheme is None or plan.scheme.quantize_ops is not None:
        return set()
    return {o for k, n in enumerate(graph.node) if plan.quantized(n, _node_key(n, k))
            for o in n.output if o in plan.activations}


def with_score_outputs(model: onnx.ModelProto, plan: QuantPlan, tensors: dict[str, str],
                       quantize: set[str]) -> onnx.ModelProto:
    """``model`` plus graph outputs for scoring: ``tensors`` maps a tensor to the output name to give it.

    Tensors in ``quantize`` are fake-quantized with their plan parameters first, as a full-integer
    runtime hands them to a float consumer (e.g. int8 logits dequantized into a float Softmax)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    b = _Builder(out)
    for name, as_name in tensors.items():
        p = plan.activations.get(name)
        if name in quantize and p is not None:
            b.qdq(name, p, as_name)
        else:
            b.new_nodes.append(helper.make_node("Identity", [name], [as_name], name=b.fresh(as_name + "_Identity")))
        out.graph.output.add().name = as_name
    out.graph.initializer.extend(b.new_inits)
    out.graph.node.extend(b.new_nodes)
    return out


def _referenced(nodes) -> set[str]:
    names: set[str] = set()
    for n in nodes:
        names.update(n.input)
        for a in n.attribute:
            for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                names |= _referenced(sub.node)
                names.update(o.name for o in sub.output)
    return names


def _drop_unused_initializers(g: onnx.GraphProto, extra_nodes) -> None:
    used = _referenced(list(g.node) + list(extra_nodes)) | {o.name for o in g.output}
    keep = [t for t in g.initializer if t.name in used]
    if len(keep) != len(g.initializer):
        del g.initializer[:]
        g.initializer.extend(keep)


def _ensure_opset(model: onnx.ModelProto, minimum: int) -> None:
    for op in model.opset_import:
        if op.domain in ("", "ai.onnx") and op.version < minimum:
            raise ValueError(f"QDQ needs opset >= {minimum}, model has {op.version}")


def toposort(nodes: list[onnx.NodeProto], available: set[str]) -> list[onnx.NodeProto]:
    """Kahn's algorithm, stable with respect to the given order."""
    import heapq

    producer = {o: k for k, n in enumerate(nodes) for o in n.output if o}
    deps = [{producer[i] for i in n.input if i in producer and i not in available} for n in nodes]
    users: dict[int, list[int]] = {}
    for k, d in enumerate(deps):
        for p in d:
            users.setdefault(p, []).append(k)
    missing = [len(d) for d in deps]
    heap = [k for k, m in enumerate(missing) if m == 0]
    heapq.heapify(heap)
    order = []
    while heap:
        k = heapq.heappop(heap)
        order.append(k)
        for u in users.get(k, []):
            missing[u] -= 1
            if missing[u] == 0:
                heapq.heappush(heap, u)
    if len(order) != len(nodes):  # a cycle (should not happen): keep the given order
        return nodes
    return [nodes[k] for k in order]
