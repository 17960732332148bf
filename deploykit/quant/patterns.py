"""Spelled-out activations a backend runs as one op, recognised on the ONNX graph the engine sees.

Opset < 14 exports write h-swish as ``x * Clip(x + 3, 0, 6) / 6`` (ONNX HardSwish needs opset 14).
A backend that fuses the chain into one float HARD_SWISH (TFLite: XNNPACK has no int8 h-swish)
rounds once, at the output; simulating four int8 ops would rank layers and methods for a model
that is never built. The engine keeps such chains in float when the scheme lists ``HardSwish``
among its float ops.
"""

from __future__ import annotations

import onnx

from deploykit.quant.collect import GraphIndex


def _scalar(index: GraphIndex, name: str) -> float | None:
    a = index.const(name)
    return float(a.reshape(-1)[0]) if a is not None and a.size == 1 and a.dtype.kind in "fiu" else None


def _is(value: float | None, expected: float) -> bool:
    return value is not None and abs(value - expected) <= 1e-4 * abs(expected)


def _clip_bounds(index: GraphIndex, node: onnx.NodeProto) -> tuple[float | None, float | None]:
    attrs = {a.name: a.f for a in node.attribute}
    lo = _scalar(index, node.input[1]) if len(node.input) > 1 and node.input[1] else attrs.get("min")
    hi = _scalar(index, node.input[2]) if len(node.input) > 2 and node.input[2] else attrs.get("max")
    return lo, hi


def _sole_consumer(index: GraphIndex, name: str, node: onnx.NodeProto) -> bool:
    users = index.consumers.get(name, [])
    return name not in index.graph_outputs and bool(users) and all(u is node for u, _ in users)


def spelled_out_hardswish(index: GraphIndex) -> list[list[onnx.NodeProto]]:
    """``[Add, Clip, Mul, Div|Mul]`` node chains computing ``x * relu6(x + 3) / 6``."""
    chains = []
    for last in index.model.graph.node:
        if last.op_type not in ("Div", "Mul") or len(last.input) != 2:
            continue
        want = 6.0 if last.op_type == "Div" else 1.0 / 6.0
        sides = [(last.input[0], last.input[1])] + ([(last.input[1], last.input[0])] if last.op_type == "Mul" else [])
        for m_name, c_name in sides:
            mul = index.producer.get(m_name)
            if not _is(_scalar(index, c_name), want) or mul is None or mul.op_type != "Mul" \
                    or not _sole_consumer(index, m_name, last):
                continue
            found = None
            for x, r in ((mul.input[0], mul.input[1]), (mul.input[1], mul.input[0])):
                clip = index.producer.get(r)
                if clip is None or clip.op_type != "Clip" or not _sole_consumer(index, r, mul):
                    continue
                lo, hi = _clip_bounds(index, clip)
                add = index.producer.get(clip.input[0])
                if lo != 0.0 or not _is(hi, 6.0) or add is None \
                        or add.op_type != "Add" or not _sole_consumer(index, clip.input[0], clip):
                    continue
                if any(add.input[i] == x and _is(_scalar(index, add.input[1 - i]), 3.0) for i in (0, 1)):
                    found = [add, clip, mul, last]
                    break
            if found:
                chains.append(found)
                break
    return chains
