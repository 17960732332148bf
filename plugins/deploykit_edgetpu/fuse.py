"""Peephole fusions for the Edge TPU: the TFLite backend's, minus fusing activations into ops the
Edge TPU table forbids them on (CONCATENATION, MAX/AVERAGE_POOL_2D: "no fused activation",
facts/edgetpu.md §2) -- there a separate RELU/RELU6 (a TPU op) is kept instead."""

from __future__ import annotations

from deploykit_tflite.fuse import ACTIVATIONS, _sole_use, fold_fc_bias
from deploykit_tflite.graph import TFLGraph

FUSES_ACTIVATION = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL"})


def fuse_activations(graph: TFLGraph) -> int:
    users, producers = graph.consumers(), graph.producers()
    removed = set()
    for op in graph.ops:
        if op.code not in ACTIVATIONS:
            continue
        prod = producers.get(id(op.inputs[0]))
        if prod is None or id(prod) in removed or prod.code not in FUSES_ACTIVATION or prod.options is None:
            continue
        if getattr(prod.options, "fusedActivationFunction", 1) != 0 or not _sole_use(graph, users, op.inputs[0]):
            continue
        prod.options.fusedActivationFunction = ACTIVATIONS[op.code]
        prod.outputs[0] = op.outputs[0]
        producers[id(op.outputs[0])] = prod
        removed.add(id(op))
    graph.ops = [op for op in graph.ops if id(op) not in removed]
    return len(removed)


def optimize(graph: TFLGraph) -> TFLGraph:
    fold_fc_bias(graph)
    fuse_activations(graph)
    graph.remove_dead()
    return graph
