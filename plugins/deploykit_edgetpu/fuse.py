"""Peephole fusions for the Edge TPU: the TFLite backend's, minus fusing activations into ops the
Edge TPU table forbids them on (CONCATENATION, MAX/AVERAGE_POOL_2D: "no fused activation",
facts/edgetpu.md §2) -- there a separate RELU/RELU6 (a TPU op) is kept instead."""

from __future__ import annotations

from deploykit_tflite.fuse import fold_fc_bias
from deploykit_tflite.fuse import fuse_activations as base_fuse_activations
from deploykit_tflite.graph import TFLGraph

FUSES_ACTIVATION = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL"})


def fuse_activations(graph: TFLGraph) -> int:
    return base_fuse_activations(graph, FUSES_ACTIVATION)


def optimize(graph: TFLGraph, runtime: int | None = None) -> TFLGraph:
    """Fusions, then (given the Edge TPU runtime version) CPU-only operators as late as possible."""
    fold_fc_bias(graph)
    fuse_activations(graph)
    graph.remove_dead()
    if runtime is not None:
        from deploykit_edgetpu.support import schedule_tpu_first

        schedule_tpu_first(graph, runtime)
    return graph
