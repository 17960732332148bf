"""Run an ONNX graph as a ``torch.nn.Module`` so its weights can be trained.

The float initializers that weighted ops consume (Conv/ConvTranspose/Gemm/MatMul weights and biases,
BatchNormalization scale and bias, a bias added to a Conv/Gemm/MatMul output) become
``nn.Parameter``s; every other initializer is a constant. Nodes run in graph order through the
converters of :data:`deploykit.train.ops.OPS`. Imports torch: only :mod:`deploykit.train` imports
this module, and only when training is asked for.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

from deploykit.errors import UnsupportedError
from deploykit.train.ops import OPS

# op type -> input positions that hold trainable weights when they are float initializers
WEIGHT_INPUTS = {
    "Conv": (1, 2),
    "ConvTranspose": (1, 2),
    "Gemm": (0, 1, 2),
    "MatMul": (0, 1),
    "BatchNormalization": (1, 2),
}
_BIAS_PRODUCERS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def unsupported_ops(model: onnx.ModelProto) -> list[str]:
    """Op types of ``model`` the executor cannot run (sorted, unique)."""
    return sorted({n.op_type for n in model.graph.node if n.domain not in ("", "ai.onnx") or n.op_type not in OPS})


def check_supported(model: onnx.ModelProto) -> None:
    bad = unsupported_ops(model)
    if bad:
        raise UnsupportedError(f"the training executor cannot run op(s) {', '.join(bad)}; it runs "
                               f"{', '.join(sorted(OPS))}")


def trainable_initializers(model: onnx.ModelProto) -> list[str]:
    """Names of the float initializers that become parameters, in initializer order."""
    inits = {t.name: t for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    chosen: set[str] = set()
    for node in model.graph.node:
        for i in WEIGHT_INPUTS.get(node.op_type, ()):
            if i < len(node.input) and node.input[i] in inits:
                chosen.add(node.input[i])
        if node.op_type == "Add" and len(node.input) == 2:
            for i, j in ((0, 1), (1, 0)):
                src = producer.get(node.input[j])
                t = inits.get(node.input[i])
                if t is not None and src is not None and src.op_type in _BIAS_PRODUCERS and int(np.prod(t.dims)) > 1:
                    chosen.add(node.input[i])
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16)
    return [t.name for t in model.graph.initializer if t.name in chosen and t.data_type in floats]


def _attrs(node: onnx.NodeProto) -> dict:
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if a.type == onnx.AttributeProto.TENSOR:
            v = _tensor(numpy_helper.to_array(v))
        elif a.type == onnx.AttributeProto.STRING:
            v = v.decode()
        elif a.type in (onnx.AttributeProto.INTS, onnx.AttributeProto.FLOATS):
            v = list(v)
        out[a.name] = v
    return out


def _tensor(arr: np.ndarray) -> torch.Tensor:
    arr = np.asarray(arr)
    if arr.dtype in (np.float16, np.float64):
        arr = arr.astype(np.float32)  # computed in float32; written back in the initializer's dtype
    return torch.from_numpy(np.array(arr, copy=True))


class TorchGraph(torch.nn.Module):
    """``module(feeds, outputs=None) -> dict[name, tensor]`` for an ONNX model.

    ``feeds``: input name -> tensor (batch on axis 0). ``outputs``: the tensor names to return
    (default: the graph outputs); any intermediate tensor may be asked for. ``batch`` > 1 lets a
    graph with a batch of 1 baked into a Reshape run on batches (:meth:`fits_batches` checks it).
    """

    def __init__(self, model: onnx.ModelProto):
        super().__init__()
        check_supported(model)
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
        self.batch = 1
        self.param_names = trainable_initializers(model)
        self.params = torch.nn.ParameterList()
        self._param_index: dict[str, int] = {}
        self.consts: dict[str, torch.Tensor] = {}
        trainable = set(self.param_names)
        for t in model.graph.initializer:
            value = _tensor(numpy_helper.to_array(t))
            if t.name in trainable:
                self._param_index[t.name] = len(self.params)
                self.params.append(torch.nn.Parameter(value))
            else:
                self.consts[t.name] = value
        self.nodes = [(n, _attrs(n)) for n in model.graph.node]
        self.output_names = [o.name for o in model.graph.output]
        self.input_names = [i.name for i in model.graph.input if i.name not in self.consts and i.name not in trainable]

    def parameter(self, name: str) -> torch.nn.Parameter:
        return self.params[self._param_index[name]]

    def forward(self, feeds: dict[str, torch.Tensor], outputs: list[str] | None = None) -> dict[str, torch.Tensor]:
        want = list(outputs or self.output_names)
        env: dict[str, torch.Tensor] = dict(self.consts)
        env.update({n: self.params[i] for n, i in self._param_index.items()})
        env.update(feeds)
        missing = set(want) - set(env)
        for node, attrs in self.nodes:
            if not missing:
                break
            args = [env[i] if i else None for i in node.input]
            try:
                result = OPS[node.op_type](self, node, args, attrs)
            except UnsupportedError:
                raise
            except Exception as e:  # noqa: BLE001 - name the node that failed
                raise RuntimeError(f"{node.op_type} node {node.name!r}: {e}") from e
            outs = result if isinstance(result, (list, tuple)) else [result]
            for name, value in zip(node.output, outs):
                if name:
                    env[name] = value
                    missing.discard(name)
        return {n: env[n] for n in want}

    def fits_batches(self, feeds: list[dict[str, np.ndarray]], outputs: list[str], tol: float = 1e-4) -> bool:
        """Whether running ``feeds`` (>= 2 single samples) as one batch gives the per-sample results."""
        single = [self(_to_torch(f), outputs) for f in feeds]
        self.batch = len(feeds)
        try:
            batched = self(_to_torch(stack(feeds)), outputs)
            ok = all(batched[o].shape[0] == len(feeds)
                     and torch.allclose(batched[o], torch.cat([s[o] for s in single]), atol=tol, rtol=tol)
                     for o in outputs)
        except Exception:  # noqa: BLE001 - a graph that cannot batch is trained one sample at a time
            ok = False
        finally:
            self.batch = 1
        return ok

    def weights(self) -> dict[str, np.ndarray]:
        """Current parameter values by initializer name (float32 numpy)."""
        return {n: self.params[i].detach().cpu().numpy().copy() for n, i in self._param_index.items()}


def stack(feeds: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Single-sample feeds (batch 1 on axis 0) -> one batched feed."""
    return {k: np.concatenate([f[k] for f in feeds], axis=0) for k in feeds[0]}


def _to_torch(feed: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32) if np.asarray(v).dtype.kind == "f"
                                else np.ascontiguousarray(v)) for k, v in feed.items()}


def write_weights(model: onnx.ModelProto, weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """A copy of ``model`` with the initializers named in ``weights`` replaced (same names, dtypes, shapes)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for i, t in enumerate(out.graph.initializer):
        if t.name in weights:
            dtype = helper.tensor_dtype_to_np_dtype(t.data_type)
            arr = np.asarray(weights[t.name]).astype(dtype).reshape(tuple(t.dims))
            out.graph.initializer[i].CopyFrom(numpy_helper.from_array(arr, t.name))
    return out
