"""Fold inference-mode BatchNormalization into the Conv / ConvTranspose / Gemm before it.

``BN(x) = x * s + t`` with ``s = scale / sqrt(var + eps)`` and ``t = bias - mean * s``, per
channel (axis 1). When ``x`` comes from a Conv, ConvTranspose or Gemm with constant weights and
BN is its only user, the weights are scaled by ``s`` and the bias becomes ``b * s + t``; the BN
disappears. The folded tensors are new initializers (shared weights are never mutated).

A *standalone* BN (no foldable producer, e.g. after a Concat or a graph input) with constant
parameters becomes ``Mul(x, s) + t`` with per-channel constants: every backend has Mul/Add,
quantizers handle them, and a following pass may still fold them into a Conv. BN in training
mode (more than one output used) or with non-constant parameters is left alone.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from deploykit.passes._common import FLOAT_TYPES, NameGen, add_initializer, attr, const_array, is_onnx, sole_consumer


def _bn_affine(node: ir.Node) -> tuple[np.ndarray, np.ndarray] | None:
    if len(node.inputs) != 5 or any(o.uses() or o.is_graph_output() for o in node.outputs[1:]):
        return None
    if attr(node, "training_mode", 0) or attr(node, "is_test", 1) == 0:
        return None
    params = [const_array(v) for v in node.inputs[1:]]
    if any(p is None for p in params):
        return None
    scale, bias, mean, var = (p.astype(np.float64) for p in params)
    s = scale / np.sqrt(var + float(attr(node, "epsilon", 1e-5)))
    return s, bias - mean * s


def _fold_into_producer(node: ir.Node, s: np.ndarray, t: np.ndarray, names: NameGen) -> bool:
    x = node.inputs[0]
    prod = x.producer()
    if prod is None or sole_consumer(x) is not node or len(prod.outputs) != 1:
        return False
    if not is_onnx(prod, "Conv", "ConvTranspose", "Gemm") or len(prod.inputs) < 2:
        return False
    w = const_array(prod.inputs[1])
    b = const_array(prod.inputs[2]) if len(prod.inputs) > 2 else None
    if w is None or (len(prod.inputs) > 2 and prod.inputs[2] is not None and b is None):
        return False
    wd = w.astype(np.float64)
    if prod.op_type == "Conv":
        if w.shape[0] != s.size:
            return False
        w_new = wd * s.reshape((-1,) + (1,) * (w.ndim - 1))
        b_new = (b.astype(np.float64) if b is not None else 0.0) * s + t
    elif prod.op_type == "ConvTranspose":
        g = int(attr(prod, "group", 1))
        c, m = w.shape[0], w.shape[1]
        if g * m != s.size:
            return False
        w_new = (wd.reshape((g, c // g, m) + w.shape[2:]) * s.reshape((g, 1, m) + (1,) * (w.ndim - 2))).reshape(w.shape)
        b_new = (b.astype(np.float64) if b is not None else 0.0) * s + t
    else:  # Gemm: Y = alpha * A' B' + beta * C ; channels are the columns of Y
        if w.ndim != 2:
            return False
        trans_b = int(attr(prod, "transB", 0))
        alpha, beta = float(attr(prod, "alpha", 1.0)), float(attr(prod, "beta", 1.0))
        if (w.shape[0] if trans_b else w.shape[1]) != s.size:
            return False
        w_new = wd * alpha * (s[:, None] if trans_b else s[None, :])
        b_new = (beta * b.astype(np.float64) if b is not None else 0.0) * s + t
        prod.attributes["alpha"] = ir.AttrFloat32("alpha", 1.0)
        prod.attributes["beta"] = ir.AttrFloat32("beta", 1.0)
    graph = node.graph
    w_val = add_initializer(graph, names, f"{prod.inputs[1].name}_bnfold", w_new.astype(w.dtype))
    b_val = add_initializer(graph, names, f"{node.name or 'bn'}_bias", np.asarray(b_new).astype(w.dtype))
    prod.replace_input_with(1, w_val)
    if len(prod.inputs) > 2:
        prod.replace_input_with(2, b_val)
    else:
        prod.resize_inputs(3)
        prod.replace_input_with(2, b_val)
    prod.outputs[0].shape = node.outputs[0].shape or prod.outputs[0].shape
    ir.convenience.replace_nodes_and_values(graph, node, [node], [], [node.outputs[0]], [prod.outputs[0]])
    return True


def _to_mul_add(node: ir.Node, s: np.ndarray, t: np.ndarray, names: NameGen) -> bool:
    x = node.inputs[0]
    if x.shape is None or x.dtype not in FLOAT_TYPES or len(x.shape) < 2:
        return False
    shape = (-1,) + (1,) * (len(x.shape) - 2)
    dt = x.dtype.numpy()
    s_val = add_initializer(node.graph, names, f"{node.name or 'bn'}_scale", s.reshape(shape).astype(dt))
    t_val = add_initializer(node.graph, names, f"{node.name or 'bn'}_shift", t.reshape(shape).astype(dt))
    mul = ir.node("Mul", [x, s_val], name=names(f"{node.name or 'bn'}_mul"))
    add = ir.node("Add", [mul.outputs[0], t_val], name=names(f"{node.name or 'bn'}_add"))
    mul.outputs[0].name = names(f"{node.name or 'bn'}_scaled")
    mul.outputs[0].dtype, mul.outputs[0].shape = x.dtype, x.shape
    ir.convenience.replace_nodes_and_values(node.graph, node, [node], [mul, add], [node.outputs[0]], [add.outputs[0]])
    return True


class BatchNormFoldingPass(ir.passes.InPlacePass):
    """Fold BatchNormalization into its producer, or lower it to Mul+Add (see module doc)."""

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        names = NameGen(graph)
        modified = False
        for node in list(graph):
            if not is_onnx(node, "BatchNormalization"):
                continue
            affine = _bn_affine(node)
            if affine is None:
                continue
            if _fold_into_producer(node, *affine, names) or _to_mul_add(node, *affine, names):
                modified = True
        return ir.passes.PassResult(model, modified=modified)
