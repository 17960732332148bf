"""Edge TPU support analysis: which TFLite operators the compiler maps, where the graph splits,
and the share of MACs on the TPU.

Prediction works on the TFLite graph the backend would emit (the TFLite lowering, run without
quantization for ``deploykit inspect``; the final int8 graph for the build report), so the op
table (``optable.py``) judges real operators with NHWC shapes and options. The compiler maps one
segment: every operator before the first one it cannot map; that one and everything after it run
on the CPU even when supported ("More than one subgraph is not supported", facts/edgetpu.md §3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deploykit_edgetpu.optable import tpu_reason
from deploykit_tflite.graph import Op, TFLGraph

CPU_AFTER_SPLIT = "More than one subgraph is not supported"


@dataclass
class OpPrediction:
    index: int
    code: str
    node: str
    device: str  # "tpu" | "cpu"
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "op": self.code, "node": self.node, "device": self.device, "reason": self.reason}


@dataclass
class TpuPrediction:
    ops: list[OpPrediction] = field(default_factory=list)
    split: OpPrediction | None = None  # the first operator the compiler cannot map
    param_bytes: int = 0  # constant data of TPU operators (int8 weights, int32 bias)

    @property
    def tpu_ops(self) -> int:
        return sum(p.device == "tpu" for p in self.ops)

    def node_device(self) -> dict[str, str]:
        """ONNX node name -> "cpu" when any of its operators runs on the CPU, else "tpu"."""
        out: dict[str, str] = {}
        for p in self.ops:
            if p.node and out.get(p.node) != "cpu":
                out[p.node] = p.device
        return out


def predict(graph: TFLGraph, runtime: int, check_dtypes: bool = True) -> TpuPrediction:
    """Per-operator TPU/CPU prediction for ``graph`` (topological order = the compiler's order)."""
    pred = TpuPrediction()
    seen: set[int] = set()
    for i, op in enumerate(graph.ops):
        if pred.split is not None:
            pred.ops.append(OpPrediction(i, op.code, op.node, "cpu",
                                         f"{CPU_AFTER_SPLIT}: after the first unmapped op "
                                         f"{pred.split.code} (node {pred.split.node!r})"))
            continue
        reason = tpu_reason(op, runtime, check_dtypes)
        p = OpPrediction(i, op.code, op.node, "cpu" if reason else "tpu", reason or "")
        pred.ops.append(p)
        if reason:
            pred.split = p
        else:
            pred.param_bytes += _const_bytes(op, seen)
    return pred


def schedule_tpu_first(graph: TFLGraph, runtime: int) -> int:
    """Reorder ``graph.ops`` (still topologically) so that operators the Edge TPU cannot map come as
    late as their consumers allow: the compiler's one segment ends at the first unmapped operator,
    so a CPU-only op placed early (openWakeWord's ``score >= 0.5`` test, emitted before the verifier
    MLP it does not feed) pushes everything after it onto the CPU. Returns how many ops moved."""
    import heapq

    index = {id(op): i for i, op in enumerate(graph.ops)}
    producers = graph.producers()
    users: dict[int, list[int]] = {i: [] for i in range(len(graph.ops))}
    waiting = [0] * len(graph.ops)
    for i, op in enumerate(graph.ops):
        for p in {index[id(producers[id(t)])] for t in op.inputs if t is not None and id(t) in producers}:
            users[p].append(i)
            waiting[i] += 1
    cpu = [bool(tpu_reason(op, runtime, False)) for op in graph.ops]
    ready: tuple[list[int], list[int]] = ([], [])  # (TPU-mappable, CPU-only), by original position
    for i, n in enumerate(waiting):
        if not n:
            heapq.heappush(ready[cpu[i]], i)
    order: list[Op] = []
    while ready[0] or ready[1]:
        i = heapq.heappop(ready[0] if ready[0] else ready[1])
        order.append(graph.ops[i])
        for u in users[i]:
            waiting[u] -= 1
            if not waiting[u]:
                heapq.heappush(ready[cpu[u]], u)
    moved = sum(a is not b for a, b in zip(order, graph.ops))
    graph.ops = order
    return moved


def _const_bytes(op: Op, seen: set[int]) -> int:
    n = 0
    for t in op.inputs:
        if t is not None and t.is_const and id(t) not in seen and t.data.size > 4:
            seen.add(id(t))
            n += int(t.data.size) * (1 if t.data.dtype.kind == "f" else t.data.dtype.itemsize)  # float -> int8
    return n


def mac_share(node_macs: dict[str, int], devices: dict[str, str]) -> tuple[int, int, float]:
    """(MACs on TPU, total MACs, share) from ONNX node MACs and node devices."""
    total = sum(node_macs.values())
    tpu = sum(m for n, m in node_macs.items() if devices.get(n) == "tpu")
    return tpu, total, (tpu / total if total else 1.0)


def summary(pred: TpuPrediction, node_macs: dict[str, int], cache_mib: float) -> dict[str, Any]:
    """The report section: counts, split point, MAC share, parameter cache estimate."""
    devices = pred.node_device()
    tpu_macs, total_macs, share = mac_share(node_macs, devices)
    cache = cache_mib * 1024 * 1024
    out: dict[str, Any] = {
        "operators": len(pred.ops),
        "tpu_operators": pred.tpu_ops,
        "cpu_operators": len(pred.ops) - pred.tpu_ops,
        "edgetpu_subgraphs": 1 if pred.tpu_ops else 0,
        "first_cpu_op": None if pred.split is None else pred.split.to_json(),
        "tpu_macs": tpu_macs,
        "total_macs": total_macs,
        "tpu_mac_share": round(share, 6),
        "tpu_param_bytes": pred.param_bytes,
        "on_chip_param_cache_bytes": int(cache),
        "predicted_streamed_param_bytes": max(0, pred.param_bytes - int(cache)),
    }
    return out


def headline(s: dict[str, Any]) -> str:
    """One line for the CLI and the report notes."""
    line = (f"Edge TPU prediction: {s['tpu_operators']}/{s['operators']} operators on the TPU, "
            f"{100 * s['tpu_mac_share']:.1f}% of MACs")
    first = s.get("first_cpu_op")
    if first:
        line += (f"; the TPU segment ends at {first['op']} (node {first['node']!r}: {first['reason']}), "
                 f"it and the {s['cpu_operators'] - 1} operators after it run on the CPU")
    else:
        line += "; the whole graph is one Edge TPU segment"
    if s.get("predicted_streamed_param_bytes"):
        line += (f"; ~{s['predicted_streamed_param_bytes'] / 2**20:.2f} MiB of parameters exceed the on-chip cache "
                 "and would be streamed from the host on every inference")
    return line


def node_macs_by_name(model) -> dict[str, int]:
    from deploykit.ir.stats import node_macs

    return {n.name: int(node_macs(n)) for n in model.graph if n.name and node_macs(n)}

