"""Fold a zero constant ``Pad`` into the ``pads`` of the Conv / AveragePool that follows it.

Applies when the Pad is ``mode="constant"`` with value 0 (or no value), pads only spatial axes
(N and C untouched), all pads are non-negative constants, no ``axes`` input is given, its output
has that single user, and the user has ``auto_pad`` NOTSET. AveragePool only accepts it with
``count_include_pad=1`` (padded zeros must count). MaxPool is not a target (it pads with -inf).
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from deploykit.passes._common import attr, const_array, is_onnx, sole_consumer


def _pad_amounts(pad: ir.Node) -> np.ndarray | None:
    if attr(pad, "mode", "constant") != "constant":
        return None
    if "pads" in pad.attributes:  # opset < 11
        pads = np.asarray(attr(pad, "pads"), dtype=np.int64)
        value = float(attr(pad, "value", 0.0))
    else:
        pads = const_array(pad.inputs[1]) if len(pad.inputs) > 1 else None
        if pads is None:
            return None
        cval = const_array(pad.inputs[2]) if len(pad.inputs) > 2 and pad.inputs[2] is not None else np.zeros(1)
        if cval is None or cval.size != 1:
            return None
        value = float(cval.reshape(-1)[0])
        if len(pad.inputs) > 3 and pad.inputs[3] is not None:
            return None
    if value != 0.0 or (pads < 0).any() or pads.size % 2:
        return None
    return pads.astype(np.int64)


class PadFoldingPass(ir.passes.InPlacePass):
    """Merge explicit zero padding into the following Conv / AveragePool."""

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        modified = False
        for pad in list(model.graph):
            if not is_onnx(pad, "Pad") or pad.inputs[0] is None:
                continue
            user = sole_consumer(pad.outputs[0])
            if user is None or not is_onnx(user, "Conv", "AveragePool") or user.inputs[0] is not pad.outputs[0]:
                continue
            if attr(user, "auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET"):
                continue
            if user.op_type == "AveragePool" and attr(user, "count_include_pad", 0) != 1:
                continue
            pads = _pad_amounts(pad)
            if pads is None:
                continue
            rank = pads.size // 2
            begin, end = pads[:rank], pads[rank:]
            if rank < 3 or begin[:2].any() or end[:2].any():
                continue
            old = np.asarray(attr(user, "pads", [0] * (2 * (rank - 2))), dtype=np.int64)
            if old.size != 2 * (rank - 2):
                continue
            new = old + np.concatenate([begin[2:], end[2:]])
            user.attributes["pads"] = ir.AttrInt64s("pads", [int(p) for p in new])
            user.replace_input_with(0, pad.inputs[0])
            model.graph.remove(pad, safe=True)
            modified = True
        return ir.passes.PassResult(model, modified=modified)
