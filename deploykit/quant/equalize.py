"""Cross-layer equalization (Nagel et al., 2019) for Conv -> ReLU -> Conv pairs.

For a pair where the first conv's output channel ``c`` feeds only the second conv's input
channel(s) ``c`` through a positively homogeneous activation (Relu, LeakyRelu, PRelu-free
identity), scaling channel ``c`` of the first weight/bias by ``1/s`` and the second weight's input
channel by ``s`` leaves the function unchanged. Choosing ``s = sqrt(r1 / r2)`` (per-channel weight
ranges) evens out the per-channel ranges, which helps depthwise-heavy models whose depthwise
weights have wildly different channel ranges.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from deploykit.quant.collect import GraphIndex

_HOMOGENEOUS = ("Relu", "LeakyRelu")


def _attr(node: onnx.NodeProto, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _pairs(index: GraphIndex):
    for n1 in index.model.graph.node:
        if n1.op_type != "Conv" or len(n1.input) < 2 or n1.input[1] not in index.initializers:
            continue
        out = n1.output[0]
        users = index.consumers.get(out, [])
        act = None
        if len(users) == 1 and users[0][0].op_type in _HOMOGENEOUS:
            act = users[0][0]
            users = index.consumers.get(act.output[0], [])
        if len(users) != 1 or users[0][1] != 0:
            continue
        n2 = users[0][0]
        if n2.op_type != "Conv" or n2.input[1] not in index.initializers:
            continue
        if out in index.graph_outputs or (act is not None and act.output[0] in index.graph_outputs):
            continue
        yield n1, n2


def equalize_model(model: onnx.ModelProto, iterations: int = 2) -> tuple[onnx.ModelProto, list[tuple[str, str]]]:
    """Return an equalized copy of ``model`` and the (conv1, conv2) pairs changed."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    done: list[tuple[str, str]] = []
    for _ in range(iterations):
        index = GraphIndex(out)
        inits = {t.name: t for t in out.graph.initializer}
        uses = {}
        for n in out.graph.node:
            for i in n.input:
                uses[i] = uses.get(i, 0) + 1
        for n1, n2 in list(_pairs(index)):
            w1n, w2n = n1.input[1], n2.input[1]
            b1n = n1.input[2] if len(n1.input) > 2 and n1.input[2] else None
            if uses.get(w1n, 0) != 1 or uses.get(w2n, 0) != 1 or (b1n and (uses.get(b1n, 0) != 1 or b1n not in inits)):
                continue
            w1 = numpy_helper.to_array(inits[w1n]).astype(np.float64)
            w2 = numpy_helper.to_array(inits[w2n]).astype(np.float64)
            g1, g2 = _attr(n1, "group", 1), _attr(n2, "group", 1)
            c = w1.shape[0]
            if g1 != 1 and g1 != c:
                continue
            # input channel ranges of conv2 per channel c of conv1's output
            if g2 == 1 and w2.shape[1] == c:
                r2 = np.abs(w2).max(axis=tuple(a for a in range(w2.ndim) if a != 1))  # 1-D/2-D/3-D convs
                axis2 = 1
            elif g2 == c and w2.shape[0] == c and w2.shape[1] == 1:  # depthwise: channel c -> output c
                r2 = np.abs(w2.reshape(c, -1)).max(axis=1)
                axis2 = 0
            else:
                continue
            r1 = np.abs(w1.reshape(c, -1)).max(axis=1)
            ok = (r1 > 0) & (r2 > 0)
            s = np.ones(c)
            s[ok] = np.sqrt(r1[ok] / r2[ok])
            s = np.clip(s, 1e-4, 1e4)
            shape1 = [-1] + [1] * (w1.ndim - 1)
            w1 = w1 / s.reshape(shape1)
            shape2 = [1] * w2.ndim
            shape2[axis2] = -1
            w2 = w2 * s.reshape(shape2)
            inits[w1n].CopyFrom(numpy_helper.from_array(w1.astype(np.float32), w1n))
            inits[w2n].CopyFrom(numpy_helper.from_array(w2.astype(np.float32), w2n))
            if b1n:
                b = numpy_helper.to_array(inits[b1n]).astype(np.float64) / s
                inits[b1n].CopyFrom(numpy_helper.from_array(b.astype(np.float32), b1n))
            done.append((n1.name, n2.name))
    return out, sorted(set(done))
