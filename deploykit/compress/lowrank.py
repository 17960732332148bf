"""Low-rank (SVD) factorization of Gemm / MatMul with constant weights and of convolutions.

``W ≈ A B`` with ``A = U_r sqrt(S_r)``, ``B = sqrt(S_r) V_r^T``:

- ``MatMul(x, W[K, N])``       -> ``MatMul(MatMul(x, A[K, r]), B[r, N])``
- ``Gemm(x, W, C)``            -> ``Gemm(MatMul(x, A), B, C)`` (alpha and transB folded into A, B)
- ``Conv(x, W[O, I, k..])``    -> ``Conv(Conv(x, B[r, I, k..]), A[O, r, 1..], bias)``: the first conv
  keeps the strides/pads/dilations (for 1x1 convs both are 1x1), the second is pointwise.

A layer is factorized only when ``r (in + out) <= MIN_GAIN * in * out``: then its parameters and
MACs both shrink (the two products run at the original output resolution). Grouped and transposed
convolutions, shared weights and ``transA`` Gemms are skipped. The rank comes from an energy
threshold (share of the squared singular values kept) or, for ``auto``, from the accuracy budget.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from deploykit.compress._graph import GraphIndex, attr, copy_model, refresh_shapes
from deploykit.compress.weights import weight_layers

MIN_GAIN = 0.8
MIN_DIM = 16  # smaller matrices do not pay for the extra op (per-op overhead beats the MACs saved)
AUTO_ENERGIES = (0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)


class Factorizable:
    """One layer's weight as a matrix ``M[out, in]`` (so that ``y = M x``) and its SVD."""

    def __init__(self, node: onnx.NodeProto, matrix: np.ndarray):
        self.node = node
        self.matrix = matrix
        self.out_dim, self.in_dim = matrix.shape
        self._svd = None

    @property
    def u(self) -> np.ndarray:
        return self.svd()[0]

    @property
    def s(self) -> np.ndarray:
        return self.svd()[1]

    @property
    def vt(self) -> np.ndarray:
        return self.svd()[2]

    def svd(self):
        """Computed on first use and kept (the budget search factorizes the same layer many times)."""
        if self._svd is None:
            self._svd = np.linalg.svd(self.matrix.astype(np.float64), full_matrices=False)
        return self._svd

    def rank_for_energy(self, energy: float) -> int:
        e = np.cumsum(self.s ** 2)
        total = e[-1] if e[-1] > 0 else 1.0
        return int(min(np.searchsorted(e / total, energy - 1e-12) + 1, len(self.s)))

    def params(self, rank: int | None) -> int:
        return self.out_dim * self.in_dim if rank is None else rank * (self.out_dim + self.in_dim)

    def worthwhile(self, rank: int) -> bool:
        return self.params(rank) <= MIN_GAIN * self.params(None)

    def factors(self, rank: int) -> tuple[np.ndarray, np.ndarray]:
        root = np.sqrt(self.s[:rank])
        return self.u[:, :rank] * root, root[:, None] * self.vt[:rank]  # [out, r], [r, in]


def find_layers(model: onnx.ModelProto) -> tuple[dict[str, Factorizable], list[dict]]:
    """Factorizable layers by node name, and the skipped ones with reasons."""
    index = GraphIndex(model)
    found, skipped = {}, []
    for layer in weight_layers(index, min_size=256):
        node = next(n for n in model.graph.node if (n.name or n.input[1]) == layer.node)
        w = index.const(layer.weight)
        if node.op_type == "ConvTranspose":
            skipped.append({"layer": layer.node, "reason": "transposed convolution"})
        elif node.op_type == "Conv":
            if attr(node, "group", 1) != 1:
                skipped.append({"layer": layer.node, "reason": "grouped/depthwise convolution"})
                continue
            matrix = w.reshape(w.shape[0], -1)
        elif node.op_type == "MatMul":
            if w.ndim != 2:
                skipped.append({"layer": layer.node, "reason": f"batched weight of rank {w.ndim}"})
                continue
            matrix = w.T
        else:  # Gemm
            if attr(node, "transA", 0):
                skipped.append({"layer": layer.node, "reason": "Gemm with transA"})
                continue
            wk = (w.T if attr(node, "transB", 0) else w) * float(attr(node, "alpha", 1.0))
            matrix = wk.T
        if min(matrix.shape) < MIN_DIM:
            skipped.append({"layer": layer.node, "reason": f"weight matrix {matrix.shape[0]}x{matrix.shape[1]} too small to pay "
                                                           "for an extra op"})
            continue
        found[layer.node] = Factorizable(node, matrix)
    return found, skipped


def factorize(model: onnx.ModelProto, ranks: dict[str, int],
              layers: dict[str, Factorizable] | None = None) -> onnx.ModelProto:
    """A copy of ``model`` with the layers in ``ranks`` (node name -> rank) factorized.

    :param layers: :func:`find_layers` of ``model``, to reuse their SVDs.
    """
    out = copy_model(model)
    if not ranks:
        return out
    if layers is None:
        layers, _ = find_layers(out)
    index = GraphIndex(out)
    new_nodes = []
    for node in out.graph.node:
        key = node.name or (node.input[1] if len(node.input) > 1 else "")
        if key not in ranks or key not in layers:
            new_nodes.append(node)
            continue
        f = layers[key]
        a, b = f.factors(ranks[key])  # [out, r], [r, in]
        w = index.const(node.input[1])
        dtype = w.dtype
        mid = index.fresh(f"{key}_lowrank")
        first_w, second_w = index.fresh(f"{node.input[1]}_lr_a"), index.fresh(f"{node.input[1]}_lr_b")
        if node.op_type == "Conv":
            index.set_init(first_w, b.reshape((b.shape[0],) + w.shape[1:]).astype(dtype))
            index.set_init(second_w, a.reshape(a.shape + (1,) * (w.ndim - 2)).astype(dtype))
            attrs = {x.name: helper.get_attribute_value(x) for x in node.attribute}
            if "kernel_shape" in attrs:
                attrs["kernel_shape"] = list(w.shape[2:])
            first = helper.make_node("Conv", [node.input[0], first_w], [mid], name=index.fresh(f"{key}_lr1"), **attrs)
            second = helper.make_node("Conv", [mid, second_w, *node.input[2:3]], list(node.output), name=key,
                                      kernel_shape=[1] * (w.ndim - 2))
        elif node.op_type == "MatMul":
            index.set_init(first_w, b.T.astype(dtype))
            index.set_init(second_w, a.T.astype(dtype))
            first = helper.make_node("MatMul", [node.input[0], first_w], [mid], name=index.fresh(f"{key}_lr1"))
            second = helper.make_node("MatMul", [mid, second_w], list(node.output), name=key)
        else:
            index.set_init(first_w, b.T.astype(dtype))
            index.set_init(second_w, a.T.astype(dtype))
            first = helper.make_node("MatMul", [node.input[0], first_w], [mid], name=index.fresh(f"{key}_lr1"))
            second = helper.make_node("Gemm", [mid, second_w, *node.input[2:3]], list(node.output), name=key,
                                      beta=float(attr(node, "beta", 1.0)))
        new_nodes += [first, second]
    del out.graph.node[:]
    out.graph.node.extend(new_nodes)
    _drop_unused(out)
    return refresh_shapes(out)


def _drop_unused(model: onnx.ModelProto) -> None:
    used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    keep = [t for t in model.graph.initializer if t.name in used]
    if len(keep) != len(model.graph.initializer):
        del model.graph.initializer[:]
        model.graph.initializer.extend(keep)


def energy_ranks(layers: dict[str, Factorizable], energy: float) -> tuple[dict[str, int], list[dict]]:
    """Ranks at an energy threshold; layers where that rank saves too little are skipped."""
    ranks, skipped = {}, []
    for key, f in layers.items():
        r = f.rank_for_energy(energy)
        if f.worthwhile(r):
            ranks[key] = r
        else:
            skipped.append({"layer": key, "reason": f"rank {r} of {min(f.matrix.shape)} for energy {energy} "
                                                    f"saves < {1 - MIN_GAIN:.0%} of the MACs"})
    return ranks, skipped


def auto_options(layers: dict[str, Factorizable]) -> dict[str, list[tuple[int, float]]]:
    """For the budget search: per layer, (rank, params saved) from high to low energy (mild first)."""
    options = {}
    for key, f in layers.items():
        seen, opts = set(), []
        for energy in sorted(AUTO_ENERGIES, reverse=True):
            r = f.rank_for_energy(energy)
            if r in seen or not f.worthwhile(r):
                continue
            seen.add(r)
            opts.append((r, float(f.params(None) - f.params(r))))
        if opts:
            options[key] = opts
    return options
