"""Peephole rewrites on the TFLite graph: fuse RELU/RELU6/RELU_N1_TO_1 into their producer's
``fusedActivationFunction`` (XNNPACK delegates no lone int8 RELU, facts §4.2), fold a
constant ADD into the bias of the FULLY_CONNECTED before it, and turn the decomposed
``x * relu6(x + 3) / 6`` of opset < 14 exports into one HARD_SWISH."""

from __future__ import annotations

import numpy as np

from deploykit_tflite.graph import TFLGraph

ACTIVATIONS = {"RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}
# not CONCATENATION: LiteRT's kernel refuses a fused activation ("params->activation != kTfLiteActNone")
# and XNNPACK's ignores it (a Concat -> Relu model returned negative values on rpi4)
FUSES_ACTIVATION = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL",
                              "MAX_POOL_2D", "AVERAGE_POOL_2D"})


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


def _scalar_const(t, value: float) -> bool:
    return t is not None and t.is_const and t.data.size == 1 and abs(float(t.data.reshape(-1)[0]) - value) < 1e-5


def fuse_hard_swish(graph: TFLGraph, only: set[str] | None = None) -> int:
    """ADD(x, 3, RELU6) -> MUL(x, .) -> MUL(., 1/6) becomes HARD_SWISH(x); returns how many.

    Opset < 14 exports (PaddlePaddle's PP-LCNet, old PyTorch) spell h-swish out, and ONNX HardSwish
    needs opset 14. One op is faster in fp32; in int8 the HARD_SWISH runs in float between
    DEQUANTIZE/QUANTIZE (XNNPACK has no int8 h-swish, facts §2) with one rounding instead of three,
    so an int8 build fuses only the chains the engine keeps in float (``only``: ONNX node names of
    the chains' last ops); the rest stay three int8 ops."""
    users, producers = graph.consumers(), graph.producers()
    removed: set[int] = set()
    for op in graph.ops:  # the final MUL by 1/6
        if op.code != "MUL" or getattr(op.options, "fusedActivationFunction", 0) != 0:
            continue
        k = next((i for i in (0, 1) if _scalar_const(op.inputs[i], 1.0 / 6.0)), None)
        if k is None:
            continue
        mul = producers.get(id(op.inputs[1 - k]))
        if mul is None or mul.code != "MUL" or getattr(mul.options, "fusedActivationFunction", 0) != 0 \
                or not _sole_use(graph, users, mul.outputs[0]) or id(mul) in removed:
            continue
        for j in (0, 1):
            x, gate = mul.inputs[j], mul.inputs[1 - j]
            add = producers.get(id(gate))
            if add is None or add.code != "ADD" or getattr(add.options, "fusedActivationFunction", 0) != 3 \
                    or not _sole_use(graph, users, gate) or x.is_const:
                continue
            if not any(add.inputs[i] is x and _scalar_const(add.inputs[1 - i], 3.0) for i in (0, 1)):
                continue
            if list(x.shape) != list(op.outputs[0].shape) or (only is not None and op.node not in only):
                continue
            op.code, op.inputs, op.options = "HARD_SWISH", [x], None
            removed |= {id(add), id(mul)}
            break
    graph.ops = [op for op in graph.ops if id(op) not in removed]
    return len(removed) // 2


def optimize(graph: TFLGraph, float_nodes: set[str] | None = None) -> TFLGraph:
    """``float_nodes``: for int8, the ONNX nodes kept float (None: a float build, fuse everything)."""
    fold_fc_bias(graph)
    fuse_activations(graph)
    fuse_hard_swish(graph, float_nodes)
    graph.remove_dead()
    return graph
