"""Peephole rewrites on the TFLite graph: fuse RELU/RELU6/RELU_N1_TO_1 into their producer's
``fusedActivationFunction`` (XNNPACK delegates no lone int8 RELU, facts §4.2) and fold a
constant ADD into the bias of the FULLY_CONNECTED before it."""

from __future__ import annotations

import numpy as np

from deploykit_tflite.graph import TFLGraph

ACTIVATIONS = {"RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}
FUSES_ACTIVATION = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL",
                              "MAX_POOL_2D", "AVERAGE_POOL_2D", "CONCATENATION"})


def _sole_use(graph: TFLGraph, users, t) -> bool:
    return len(users.get(id(t), [])) == 1 and all(t is not o for o in graph.outputs)


def fuse_activations(graph: TFLGraph, fuses_activation: frozenset[str] = FUSES_ACTIVATION) -> int:
    """Fuse lone activations into producers of ``fuses_activation`` ops; returns how many."""
    users, producers = graph.consumers(), graph.producers()
    removed = set()
    for op in graph.ops:
        if op.code not in ACTIVATIONS:
            continue
        prod = producers.get(id(op.inputs[0]))
        if prod is None or id(prod) in removed or prod.code not in fuses_activation or prod.options is None:
            continue
        if getattr(prod.options, "fusedActivationFunction", 1) != 0 or not _sole_use(graph, users, op.inputs[0]):
            continue
        prod.options.fusedActivationFunction = ACTIVATIONS[op.code]
        prod.outputs[0] = op.outputs[0]
        producers[id(op.outputs[0])] = prod
        removed.add(id(op))
    graph.ops = [op for op in graph.ops if id(op) not in removed]
    return len(removed)


def fold_fc_bias(graph: TFLGraph) -> int:
    users, producers = graph.consumers(), graph.producers()
    removed = set()
    for op in graph.ops:
        if op.code != "ADD" or op.options is None or op.options.fusedActivationFunction != 0:
            continue
        for i in (0, 1):
            x, c = op.inputs[i], op.inputs[1 - i]
            prod = producers.get(id(x))
            if prod is None or prod.code != "FULLY_CONNECTED" or not c.is_const or id(prod) in removed:
                continue
            if prod.options.fusedActivationFunction != 0 or not _sole_use(graph, users, x):
                continue
            n = prod.inputs[1].shape[0]
            if c.data.size not in (1, n) or list(op.outputs[0].shape) != list(x.shape):
                continue
            bias = prod.inputs[2]
            new = graph.const(bias.data + np.broadcast_to(c.data.reshape(-1), (n,)).astype(np.float32), hint="bias")
            prod.inputs[2] = new
            prod.outputs[0] = op.outputs[0]
            producers[id(op.outputs[0])] = prod
            removed.add(id(op))
            break
    graph.ops = [op for op in graph.ops if id(op) not in removed]
    return len(removed)


def optimize(graph: TFLGraph) -> TFLGraph:
    fold_fc_bias(graph)
    fuse_activations(graph)
    graph.remove_dead()
    return graph
