"""Make an OpenVINO model readable by OpenVINO 2022.3 (opset1..opset10) and runnable on MYRIAD.

Why: 2022.3 rejects any layer of an opset it does not know ("unsupported opset: opset11"), while
the current ``convert_model`` emits Interpolate-11 (ONNX Resize), TopK-11 and a fused
ScaledDotProductAttention-13 [facts §2, EXP-2]. The C++ downgrade passes are not exposed in
Python, so the rewrites live here as one table: ``(type name, opset) -> rewrite(node) -> Output``.
Each rewrite builds the replacement from ``openvino.opsetN`` factories (N <= 10) -- no IR XML is
written by hand. Shapes are static for every target that needs this (NCS2), which keeps the
rewrites simple (scales and causal masks become constants).

MYRIAD-only rewrites (HardSigmoid, Negative, LogSoftmax, ShuffleChannels: layers the VPU column
lists as unsupported [SUPDEV]) use the same mechanism.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from deploykit.errors import DeployError

NEG = -65504.0  # largest-magnitude fp16 value: a mask value that survives FP16 compression


def _ops():
    import openvino as ov

    return ov


def _const(value, dtype=np.float32):
    return _ops().opset1.constant(np.asarray(value, dtype=dtype))


def _static(shape) -> list[int]:
    if not shape.is_static:
        raise DeployError("the downgrade to OpenVINO 2022.3 needs static shapes: pass --input-shape NAME:d0,d1,...")
    return [int(d) for d in shape.to_shape()]


def _const_value(output) -> np.ndarray | None:
    node = output.get_node()
    if node.get_type_name() == "Constant":
        return np.asarray(node.get_data())
    return None


# -- opset >= 11 -> opset <= 10 ------------------------------------------------------------

def _interpolate11(node) -> Any:
    ov = _ops()
    attrs = node.get_attributes()
    mode = attrs["mode"]
    if mode in ("bilinear_pillow", "bicubic_pillow"):
        raise DeployError(f"Interpolate mode {mode!r} has no OpenVINO 2022.3 equivalent")
    in_shape = _static(node.get_input_partial_shape(0))
    out_shape = _static(node.get_output_partial_shape(0))
    axes = list(range(len(in_shape)))
    if node.get_input_size() > 2:
        a = _const_value(node.input_value(2))
        if a is None:
            raise DeployError("Interpolate with non-constant axes cannot be downgraded")
        axes = [int(x) % len(in_shape) for x in a.reshape(-1)]
    sizes = [out_shape[a] for a in axes]
    scales = [out_shape[a] / in_shape[a] for a in axes]
    v4 = {
        "mode": mode,
        "shape_calculation_mode": attrs.get("shape_calculation_mode", "sizes"),
        "coordinate_transformation_mode": attrs.get("coordinate_transformation_mode", "half_pixel"),
        "nearest_mode": attrs.get("nearest_mode", "round_prefer_floor"),
        "antialias": bool(attrs.get("antialias", False)),
        "pads_begin": list(attrs.get("pads_begin", [0] * len(in_shape))),
        "pads_end": list(attrs.get("pads_end", [0] * len(in_shape))),
        "cube_coeff": float(attrs.get("cube_coeff", -0.75)),
    }
    if v4["shape_calculation_mode"] == "scales":  # exact ONNX scales, not out/in ratios of rounded sizes
        s = _const_value(node.input_value(1))
        if s is not None:
            scales = [float(x) for x in s.reshape(-1)]
    # opset10.interpolate is the Python factory of Interpolate-4 (opset4.interpolate is v1's)
    return ov.opset10.interpolate(node.input_value(0), _const(sizes, np.int64), _const(scales, np.float32),
                                  axes=_const(axes, np.int64), **v4).output(0)


def _topk11(node) -> Any:
    ov = _ops()
    attrs = node.get_attributes()
    new = ov.opset3.topk(node.input_value(0), node.input_value(1), int(attrs["axis"]), attrs["mode"], attrs["sort"],
                         attrs.get("index_element_type", "i32"))
    return [new.output(0), new.output(1)]


def _identity(node) -> Any:
    return node.input_value(0)


def _sdpa13(node) -> Any:
    """ScaledDotProductAttention-13 -> MatMul, Multiply, (mask), SoftMax-1, MatMul."""
    ov = _ops()
    q, k, v = node.input_value(0), node.input_value(1), node.input_value(2)
    q_shape = _static(q.get_partial_shape())
    k_shape = _static(k.get_partial_shape())
    causal = bool(node.get_attributes().get("causal", False))
    n = node.get_input_size()
    if n > 4:
        scale = node.input_value(4)
    else:
        scale = _const(1.0 / math.sqrt(q_shape[-1]))
    scores = ov.opset1.matmul(ov.opset1.multiply(q, scale), k, False, True)
    if causal:
        L, S = q_shape[-2], k_shape[-2]
        mask = np.where(np.tril(np.ones((L, S), dtype=bool)), 0.0, NEG).astype(np.float32)
        scores = ov.opset1.add(scores, _const(mask))
    elif n > 3:
        m = node.input_value(3)
        if m.get_element_type().get_type_name() == "boolean":
            m = ov.opset1.select(m, _const(0.0), _const(NEG))
        scores = ov.opset1.add(scores, m)
    rank = len(_static(node.get_output_partial_shape(0)))
    probs = ov.opset1.softmax(scores, rank - 1)
    return ov.opset1.matmul(probs, v, False, False).output(0)


def _pool14(factory: str) -> Callable:
    def rewrite(node) -> Any:
        ov = _ops()
        a = dict(node.get_attributes())
        if a.get("rounding_type") == "ceil_torch":
            raise DeployError(f"{node.get_type_name()}-14 with rounding_type ceil_torch has no opset<=10 form")
        if factory == "max_pool":
            new = ov.opset8.max_pool(node.input_value(0), a["strides"], a["dilations"], a["pads_begin"], a["pads_end"],
                                     a["kernel"], a["rounding_type"], a["auto_pad"], a.get("index_element_type", "i64"),
                                     int(a.get("axis", 0)))
            return [new.output(0), new.output(1)]
        return ov.opset1.avg_pool(node.input_value(0), a["strides"], a["pads_begin"], a["pads_end"], a["kernel"],
                                  bool(a["exclude-pad"]), a["rounding_type"], a["auto_pad"]).output(0)

    return rewrite


def _pad12(node) -> Any:
    """Pad-12 -> Pad-1 (ONNX Pad converts to Pad-12, which only adds negative pads = crops): the
    non-negative part pads, a StridedSlice crops the negative part."""
    ov = _ops()
    begin, end = _const_value(node.input_value(1)), _const_value(node.input_value(2))
    if begin is None or end is None:
        raise DeployError(f"Pad-12 ({node.get_friendly_name()}) with run-time pads has no opset<=10 form")
    begin, end = begin.astype(np.int64).reshape(-1), end.astype(np.int64).reshape(-1)
    mode = node.get_attributes()["pad_mode"]
    value = node.input_value(3) if node.get_input_size() > 3 else None
    x = ov.opset1.pad(node.input_value(0), _const(np.maximum(begin, 0), np.int64), _const(np.maximum(end, 0), np.int64),
                      mode, value)
    if (begin >= 0).all() and (end >= 0).all():
        return x.output(0)
    shape = _static(x.get_output_partial_shape(0))
    crop_begin = np.maximum(-begin, 0)
    crop_end = np.array(shape, np.int64) - np.maximum(-end, 0)
    n = len(shape)
    return ov.opset1.strided_slice(x, _const(crop_begin, np.int64), _const(crop_end, np.int64),
                                   _const(np.ones(n), np.int64), [0] * n, [0] * n).output(0)


DOWNGRADES: dict[tuple[str, int], Callable] = {
    ("Pad", 12): _pad12,
    ("Interpolate", 11): _interpolate11,
    ("TopK", 11): _topk11,
    ("ScaledDotProductAttention", 13): _sdpa13,
    ("MaxPool", 14): _pool14("max_pool"),
    ("AvgPool", 14): _pool14("avg_pool"),
    ("Identity", 16): _identity,
}


# -- MYRIAD: layers the VPU lacks -> supported layers ---------------------------------------

def _hard_sigmoid(node) -> Any:
    ov = _ops()
    x, alpha, beta = node.input_value(0), node.input_value(1), node.input_value(2)
    y = ov.opset1.add(ov.opset1.multiply(x, alpha), beta)
    return ov.opset1.clamp(y, 0.0, 1.0).output(0)


def _negative(node) -> Any:
    ov = _ops()
    return ov.opset1.multiply(node.input_value(0), _const(-1.0)).output(0)


def _log_softmax(node) -> Any:
    ov = _ops()
    rank = len(_static(node.get_input_partial_shape(0)))
    axis = int(node.get_attributes()["axis"]) % rank
    return ov.opset1.log(ov.opset1.softmax(node.input_value(0), axis)).output(0)


def _softmax8(node) -> Any:
    """SoftMax-8 -> SoftMax-1 (positive axis): a third-party Myriad exporter did this (unconfirmed need)."""
    ov = _ops()
    rank = len(_static(node.get_input_partial_shape(0)))
    return ov.opset1.softmax(node.input_value(0), int(node.get_attributes()["axis"]) % rank).output(0)


def _shuffle_channels(node) -> Any:
    """ShuffleChannels (fused by the converter from Reshape-Transpose-Reshape) -> that sequence again."""
    ov = _ops()
    shape = _static(node.get_input_partial_shape(0))
    attrs = node.get_attributes()
    axis, group = int(attrs["axis"]) % len(shape), int(attrs["group"])
    split = shape[:axis] + [group, shape[axis] // group] + shape[axis + 1:]
    perm = list(range(len(split)))
    perm[axis], perm[axis + 1] = perm[axis + 1], perm[axis]
    x = ov.opset1.reshape(node.input_value(0), _const(split, np.int64), False)
    x = ov.opset1.transpose(x, _const(perm, np.int64))
    return ov.opset1.reshape(x, _const(shape, np.int64), False).output(0)


MYRIAD_REWRITES: dict[str, Callable] = {
    "ShuffleChannels": _shuffle_channels,
    "HardSigmoid": _hard_sigmoid,
    "Negative": _negative,
    "LogSoftmax": _log_softmax,
    "SoftMax8": _softmax8,
}


FLOAT_MAX = float(np.finfo(np.float32).max)


def _finite_clamp(node) -> Any:
    """Clamp with an infinite bound (ONNX ``Clip(x, 1e-10, +inf)`` of a log-mel front-end): the IR
    stores the bound as text and OpenVINO 2022.3 reads ``inf`` back as 0 ("Attribute 'min' must be
    less or equal than 'max'. Got: 1e-10 and 0"). The largest float32 clamps nothing a finite
    input can reach."""
    ov = _ops()
    attrs = node.get_attributes()
    lo, hi = (float(np.clip(float(attrs[k]), -FLOAT_MAX, FLOAT_MAX)) for k in ("min", "max"))
    return ov.opset1.clamp(node.input_value(0), lo, hi).output(0)


def _infinite_clamp(node) -> bool:
    if node.get_type_name() != "Clamp":
        return False
    attrs = node.get_attributes()
    return any(math.isinf(float(attrs[k])) for k in ("min", "max"))


def opset_number(node) -> int:
    version = node.get_type_info().version_id  # "opset11", "extension", ...
    m = re.fullmatch(r"opset(\d+)", version or "")
    return int(m.group(1)) if m else 0


def _replace(node, new_outputs) -> None:
    if not isinstance(new_outputs, list):
        new_outputs = [new_outputs]
    for old, new in zip(node.outputs(), new_outputs):
        names = set(old.get_names())
        if names:
            new.add_names(names)  # keep graph output names (and their order) intact
        old.replace(new)
    if len(new_outputs) == 1 and new_outputs[0].get_node() is not node:
        new_outputs[0].get_node().set_friendly_name(node.get_friendly_name())


def downgrade(model, max_opset: int = 10, myriad: bool = False) -> dict[str, int]:
    """Rewrite ``model`` in place so every layer is of opset <= ``max_opset``; returns rewrite counts.

    Raises :class:`DeployError` naming every layer that has no known downgrade.
    """
    counts: dict[str, int] = {}
    for node in list(model.get_ordered_ops()):
        name, version = node.get_type_name(), opset_number(node)
        rewrite = None
        if myriad:
            key = "SoftMax8" if (name, version) == ("Softmax", 8) else name
            rewrite = MYRIAD_REWRITES.get(key)
        if rewrite is None and version > max_opset:
            rewrite = DOWNGRADES.get((name, version))
        if rewrite is None and _infinite_clamp(node):
            rewrite = _finite_clamp
        if rewrite is None:
            continue
        _replace(node, rewrite(node))
        label = f"{name}-{version}"
        counts[label] = counts.get(label, 0) + 1
    model.validate_nodes_and_infer_types()
    left = sorted({f"{n.get_type_name()}-opset{opset_number(n)} ({n.get_friendly_name()})"
                   for n in model.get_ordered_ops() if opset_number(n) > max_opset})
    if left:
        raise DeployError(f"{len(left)} layer(s) have no opset<={max_opset} form for OpenVINO 2022.3: "
                          + "; ".join(left[:10]))
    return counts


def ir_opsets(xml_path: Path) -> dict[str, list[str]]:
    """``{"opsetN": [layer types]}`` read from an IR's XML ``version`` attributes."""
    found: dict[str, set[str]] = {}
    for layer in ET.parse(xml_path).getroot().iter("layer"):
        found.setdefault(layer.get("version", ""), set()).add(layer.get("type", ""))
    return {k: sorted(v) for k, v in sorted(found.items())}


def check_ir_opsets(xml_path: Path, max_opset: int) -> None:
    """Raise when the saved IR names an opset above ``max_opset`` (the gate before bundling)."""
    bad = {k: v for k, v in ir_opsets(xml_path).items()
           if re.fullmatch(r"opset(\d+)", k) and int(k[5:]) > max_opset}
    if bad:
        raise DeployError(f"IR still has layers above opset{max_opset}: "
                          + "; ".join(f"{k}: {', '.join(v)}" for k, v in bad.items()))
