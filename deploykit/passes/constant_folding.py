"""Constant folding: every node whose inputs are all known becomes an initializer.

Built on onnxscript's optimizer (``FoldConstantsPass``), which evaluates nodes with the ONNX
reference implementation and also folds *shape-derived* values once shapes are static
(``Shape -> Gather -> Unsqueeze -> Concat -> Reshape`` chains, ``Size``, ...). On top of it:

* ``Constant`` nodes are lifted to initializers (so later passes see one kind of constant);
* ``ConstantOfShape`` is folded (onnxscript keeps it by default), which turns the weights of
  the onnx ``light_*`` models into real initializers that BatchNorm folding can use;
* folded tensors are capped at :attr:`max_bytes` (64 MB) unless folding does not grow the
  model (the consumed inputs were at least as large) or the tensor is *weights only* (every
  use is a weight/bias slot of Conv/Gemm/MatMul/BatchNormalization/...; capped at 1 GB), so a
  ``Tile``/``Expand`` of a small constant into a huge activation-sized tensor stays a node;
* Quantize/DequantizeLinear are never folded (they carry quantization parameters) and
  non-deterministic ops (``Random*``) never are.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir
from onnx_ir.passes.common import LiftConstantsToInitializersPass
from onnxscript.optimizer import _constant_folding as osf

from deploykit.passes._common import const_array, is_onnx

logger = logging.getLogger(__name__)

_NEVER_FOLD = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear")
# op type -> input slots that hold weights (a tensor used only there is "weights only")
_WEIGHT_SLOTS = {
    "Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (1, 2), "MatMul": (1,),
    "BatchNormalization": (1, 2, 3, 4), "InstanceNormalization": (1, 2),
    "LayerNormalization": (1, 2), "PRelu": (1,),
}
_WEIGHTS_MAX_BYTES = 1 << 30


def _weights_only(value: ir.Value) -> bool:
    uses = value.uses()
    return bool(uses) and not value.is_graph_output() and all(
        u.node.domain == "" and u.idx in _WEIGHT_SLOTS.get(u.node.op_type, ()) for u in uses
    )


class _Folder(osf.FoldConstantsPass):
    """onnxscript's folder with deploykit's size policy (bytes, weights-only exception)."""

    max_bytes: int = 64 * 1024 * 1024

    def _prepare_folded_tensor(self, node, output_name, output_array):
        if isinstance(output_array, np.ndarray) and output_array.nbytes > self.max_bytes:
            freed = sum(
                a.nbytes for v in node.inputs
                if v is not None and len(v.uses()) == 1 and (a := const_array(v)) is not None
            )
            weights = output_array.nbytes <= _WEIGHTS_MAX_BYTES and _weights_only(node.outputs[0])
            if not weights and output_array.nbytes > freed:
                logger.info("not folding %s: %d bytes", output_name, output_array.nbytes)
                return None
        return super()._prepare_folded_tensor(node, output_name, output_array)


class ConstantFoldingPass(ir.passes.InPlacePass):
    """Fold constant sub-graphs (incl. static shape arithmetic) into initializers."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        super().__init__()
        self.max_bytes = max_bytes

    def _should_fold(self, node: ir.Node) -> bool | None:
        if is_onnx(node, *_NEVER_FOLD):
            return False
        if is_onnx(node, "ConstantOfShape"):
            shape = const_array(node.inputs[0])
            if shape is None:
                return None
            value = node.attributes.get("value")
            itemsize = np.dtype(value.as_tensor().dtype.numpy()).itemsize if value is not None else 4
            nbytes = int(np.prod(shape, dtype=np.int64)) * itemsize
            if nbytes <= self.max_bytes:
                return True
            return nbytes <= _WEIGHTS_MAX_BYTES and _weights_only(node.outputs[0])
        return None

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        lifted = LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0)(model).modified
        folder = _Folder(
            shape_inference=True,
            input_size_limit=self.max_bytes // 4,  # elements; float32 is the common case
            output_size_limit=_WEIGHTS_MAX_BYTES,  # the real (byte) policy is in _Folder
            should_fold=self._should_fold,
        )
        folder.max_bytes = self.max_bytes
        try:
            folded = folder(model).modified
        except Exception as e:  # noqa: BLE001 - folding is an optimization, never fatal
            logger.warning("constant folding stopped early: %s", e)
            folded = False
        if folded:
            # Folding can create Constant nodes (e.g. for shape values); lift them too.
            LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0)(model)
        return ir.passes.PassResult(model, modified=lifted or folded)
