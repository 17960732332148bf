"""Fold a per-channel ``Mul`` / ``Add`` by a constant into the Conv that feeds it.

``Conv(x, W, b) * c  ->  Conv(x, W * c, b * c)`` and ``Conv(x, W, b) + c -> Conv(x, W, b + c)``
when ``c`` is a constant that is a scalar or broadcasts only along the output-channel axis
(shape ``[M, 1, 1]``, ``[1, M, 1, 1]``, ...) and the Conv output has no other user. This is
what is left of a BatchNorm that an exporter already decomposed (``light_*`` models,
standalone BN lowered by :mod:`batchnorm_folding` after a Conv with several users, ...).
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from deploykit.passes._common import NameGen, add_initializer, const_array, is_onnx, sole_consumer


def _channel_vector(c: np.ndarray, rank: int, channels: int) -> np.ndarray | None:
    """``c`` as a length-``channels`` vector when it broadcasts only along axis 1."""
    if c.ndim > rank:
        return None
    full = c.reshape((1,) * (rank - c.ndim) + c.shape)
    if any(d != 1 for i, d in enumerate(full.shape) if i != 1) or full.shape[1] not in (1, channels):
        return None
    return np.broadcast_to(full.reshape(-1), (channels,)).astype(np.float64)


class ConvAffineFoldingPass(ir.passes.InPlacePass):
    """Absorb per-channel constant Mul/Add after a Conv into its weights and bias."""

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        names = NameGen(graph)
        modified = False
        for node in list(graph):
            if node.graph is None or not is_onnx(node, "Mul", "Add") or len(node.inputs) != 2:
                continue
            for k in (0, 1):
                conv_out, other = node.inputs[k], node.inputs[1 - k]
                if conv_out is None or other is None:
                    continue
                conv = conv_out.producer()
                if conv is None or not is_onnx(conv, "Conv") or sole_consumer(conv_out) is not node:
                    continue
                if self._fold(graph, names, node, conv, const_array(other)):
                    modified = True
                    break
        return ir.passes.PassResult(model, modified=modified)

    @staticmethod
    def _fold(graph, names, node, conv, c) -> bool:
        w = const_array(conv.inputs[1]) if len(conv.inputs) > 1 else None
        has_b = len(conv.inputs) > 2 and conv.inputs[2] is not None
        b = const_array(conv.inputs[2]) if has_b else np.zeros(w.shape[0] if w is not None else 0, np.float64)
        if c is None or w is None or b is None or c.dtype != w.dtype:
            return False
        vec = _channel_vector(c, w.ndim, w.shape[0])
        if vec is None:
            return False
        b = b.astype(np.float64)
        if node.op_type == "Mul":
            w_new = w.astype(np.float64) * vec.reshape((-1,) + (1,) * (w.ndim - 1))
            b_new = b * vec
            w_val = add_initializer(graph, names, f"{conv.inputs[1].name}_scaled", w_new.astype(w.dtype))
            conv.replace_input_with(1, w_val)
        else:
            b_new = b + vec
        b_val = add_initializer(graph, names, f"{conv.name or 'conv'}_bias", b_new.astype(w.dtype))
        if len(conv.inputs) < 3:
            conv.resize_inputs(3)
        conv.replace_input_with(2, b_val)
        conv.outputs[0].shape = node.outputs[0].shape or conv.outputs[0].shape
        ir.convenience.replace_nodes_and_values(graph, node, [node], [], [node.outputs[0]], [conv.outputs[0]])
        return True
