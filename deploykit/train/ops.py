"""ONNX op -> PyTorch converters of the training executor: one greppable table, :data:`OPS`.

Each converter is ``fn(ex, node, args, attrs) -> tensor | list[tensor]``: ``ex`` is the running
:class:`~deploykit.train.executor.TorchGraph` (for the opset and the batch hint), ``args`` the input
tensors (``None`` for an omitted optional input), ``attrs`` the node's attributes as Python values.
This module imports torch: it is only imported by :mod:`deploykit.train.executor`, never by the core.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from deploykit.errors import UnsupportedError


def ints(v) -> list[int]:
    """A constant int tensor (shape, axes, pads, ...) as a Python list."""
    if v is None:
        return []
    if isinstance(v, torch.Tensor):
        return [int(i) for i in v.reshape(-1).tolist()]
    return [int(i) for i in v]


def floats(v) -> list[float]:
    return [float(i) for i in v.reshape(-1).tolist()] if isinstance(v, torch.Tensor) else [float(i) for i in v]


def _arg(args, i):
    return args[i] if len(args) > i else None


def _axes(ex, node, args, attrs, index: int, since: int):
    """Axes from input ``index`` (opset >= ``since``) or the ``axes`` attribute (older opsets)."""
    if ex.opset >= since:
        a = _arg(args, index)
        return None if a is None else ints(a)
    return attrs.get("axes")


def _pads_for(x, attrs, kernel, strides, dilations):
    """ONNX pads [b1, b2, .., e1, e2, ..] incl. auto_pad, as a list."""
    n = len(kernel)
    auto = attrs.get("auto_pad", "NOTSET")
    if isinstance(auto, bytes):
        auto = auto.decode()
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads_b, pads_e = [], []
        for i in range(n):
            size = x.shape[2 + i]
            out = math.ceil(size / strides[i])
            total = max((out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - size, 0)
            small, big = total // 2, total - total // 2
            pads_b.append(small if auto == "SAME_UPPER" else big)
            pads_e.append(big if auto == "SAME_UPPER" else small)
        return pads_b + pads_e
    if auto == "VALID":
        return [0] * (2 * n)
    return list(attrs.get("pads", [0] * (2 * n)))


def _torch_pad(pads: list[int]) -> list[int]:
    """ONNX [b1, .., bn, e1, .., en] over the last n dims -> F.pad order (last dim first)."""
    n = len(pads) // 2
    out = []
    for i in reversed(range(n)):
        out += [pads[i], pads[n + i]]
    return out


def _spatial(x, node, attrs, kernel):
    n = len(kernel)
    strides = list(attrs.get("strides", [1] * n))
    dilations = list(attrs.get("dilations", [1] * n))
    pads = _pads_for(x, attrs, kernel, strides, dilations)
    return strides, dilations, pads


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONVT = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def conv(ex, node, args, attrs):
    x, w, b = args[0], args[1], _arg(args, 2)
    kernel = list(w.shape[2:])
    strides, dilations, pads = _spatial(x, node, attrs, kernel)
    n = len(kernel)
    if pads[:n] == pads[n:]:
        padding = pads[:n]
    else:
        x, padding = F.pad(x, _torch_pad(pads)), [0] * n
    return _CONV[n](x, w, b, strides, padding, dilations, attrs.get("group", 1))


def conv_transpose(ex, node, args, attrs):
    x, w, b = args[0], args[1], _arg(args, 2)
    kernel = list(w.shape[2:])
    n = len(kernel)
    if "output_shape" in attrs:
        raise UnsupportedError(f"ConvTranspose {node.name!r}: the output_shape attribute is not supported for training")
    strides = list(attrs.get("strides", [1] * n))
    dilations = list(attrs.get("dilations", [1] * n))
    pads = list(attrs.get("pads", [0] * (2 * n)))
    out_pad = list(attrs.get("output_padding", [0] * n))
    y = _CONVT[n](x, w, b, strides, 0, out_pad, attrs.get("group", 1), dilations)
    idx = [slice(None), slice(None)] + [slice(pads[i], y.shape[2 + i] - pads[n + i]) for i in range(n)]
    return y[tuple(idx)]


def gemm(ex, node, args, attrs):
    a, b, c = args[0], args[1], _arg(args, 2)
    if attrs.get("transA", 0):
        a = a.t()
    if attrs.get("transB", 0):
        b = b.t()
    y = attrs.get("alpha", 1.0) * (a @ b)
    return y if c is None else y + attrs.get("beta", 1.0) * c


def clip(ex, node, args, attrs):
    if ex.opset >= 11:
        lo, hi = _arg(args, 1), _arg(args, 2)
        lo = None if lo is None else float(lo)
        hi = None if hi is None else float(hi)
    else:
        lo, hi = attrs.get("min"), attrs.get("max")
    return torch.clamp(args[0], lo, hi)


def softmax(ex, node, args, attrs):
    x = args[0]
    if ex.opset >= 13:
        return torch.softmax(x, attrs.get("axis", -1))
    axis = attrs.get("axis", 1) % x.dim()  # opsets < 13: softmax over the flattened trailing dims
    lead = x.shape[:axis]
    return torch.softmax(x.reshape(*lead, -1), -1).reshape(x.shape)


def batch_norm(ex, node, args, attrs):
    x, scale, bias, mean, var = args[:5]
    return F.batch_norm(x, mean, var, scale, bias, False, 0.0, attrs.get("epsilon", 1e-5))


def _pool_pads(x, node, attrs, fill: float):
    kernel = list(attrs["kernel_shape"])
    n = len(kernel)
    strides, dilations, pads = _spatial(x, node, attrs, kernel)
    if pads[:n] == pads[n:] and all(p <= k // 2 for p, k in zip(pads[:n], kernel)):
        return x, kernel, strides, dilations, pads[:n]
    return F.pad(x, _torch_pad(pads), value=fill), kernel, strides, dilations, [0] * n


_MAXPOOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVGPOOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def max_pool(ex, node, args, attrs):
    if len(node.output) > 1 and node.output[1]:
        raise UnsupportedError(f"MaxPool {node.name!r}: the Indices output is not supported for training")
    x, kernel, strides, dilations, padding = _pool_pads(args[0], node, attrs, float("-inf"))
    return _MAXPOOL[len(kernel)](x, kernel, strides, padding, dilations, bool(attrs.get("ceil_mode", 0)))


def avg_pool(ex, node, args, attrs):
    include = bool(attrs.get("count_include_pad", 0))
    kernel = list(attrs["kernel_shape"])
    strides, dilations, pads = _spatial(args[0], node, attrs, kernel)
    n = len(kernel)
    if any(d != 1 for d in dilations):
        raise UnsupportedError(f"AveragePool {node.name!r}: dilations are not supported for training")
    x, padding = args[0], pads[:n]
    if pads[:n] != pads[n:] or any(p > k // 2 for p, k in zip(pads[:n], kernel)):
        if not include and any(pads):
            raise UnsupportedError(f"AveragePool {node.name!r}: asymmetric pads without count_include_pad")
        x, padding = F.pad(x, _torch_pad(pads)), [0] * n
    return _AVGPOOL[n](x, kernel, strides, padding, bool(attrs.get("ceil_mode", 0)), include)


def flatten(ex, node, args, attrs):
    x = args[0]
    axis = attrs.get("axis", 1) % (x.dim() + 1) if x.dim() else 0
    lead = math.prod(x.shape[:axis])
    return x.reshape(lead, -1)


def reshape(ex, node, args, attrs):
    x, shape = args[0], ints(args[1])
    if not attrs.get("allowzero", 0):
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    if ex.batch > 1 and shape and shape[0] == 1 and x.dim() and x.shape[0] == ex.batch:
        shape[0] = ex.batch  # a batch of 1 baked into the graph: train on batches (checked by the executor)
    return x.reshape(shape)


def transpose(ex, node, args, attrs):
    x = args[0]
    return x.permute(attrs.get("perm", list(reversed(range(x.dim())))))


def split(ex, node, args, attrs):
    x = args[0]
    axis = attrs.get("axis", 0)
    sizes = ints(_arg(args, 1)) if ex.opset >= 13 and _arg(args, 1) is not None else attrs.get("split")
    if not sizes:
        n = len(node.output)
        dim = x.shape[axis]
        chunk = math.ceil(dim / n)
        sizes = [chunk] * (n - 1) + [dim - chunk * (n - 1)]
    return list(torch.split(x, list(sizes), axis))


def slice_(ex, node, args, attrs):
    x = args[0]
    if ex.opset >= 10:
        starts, ends = ints(args[1]), ints(args[2])
        axes = ints(_arg(args, 3)) or list(range(len(starts)))
        steps = ints(_arg(args, 4)) or [1] * len(starts)
    else:
        starts, ends = attrs["starts"], attrs["ends"]
        axes = attrs.get("axes", list(range(len(starts))))
        steps = [1] * len(starts)
    for s, e, a, st in zip(starts, ends, axes, steps):
        a %= x.dim()
        idx = range(*slice(s, e, st).indices(x.shape[a]))
        if st > 0:
            x = x.narrow(a, idx.start, len(idx)) if st == 1 else x[(slice(None),) * a + (slice(idx.start, idx.stop, st),)]
        else:
            x = x.index_select(a, torch.tensor(list(idx), dtype=torch.long, device=x.device))
    return x


def squeeze(ex, node, args, attrs):
    x = args[0]
    axes = _axes(ex, node, args, attrs, 1, 13)
    if not axes:
        return x.squeeze()
    keep = [d for i, d in enumerate(x.shape) if i not in {a % x.dim() for a in axes}]
    return x.reshape(keep)


def unsqueeze(ex, node, args, attrs):
    x = args[0]
    axes = _axes(ex, node, args, attrs, 1, 13)
    rank = x.dim() + len(axes)
    for a in sorted(a % rank for a in axes):
        x = x.unsqueeze(a)
    return x


def pad(ex, node, args, attrs):
    x = args[0]
    mode = attrs.get("mode", "constant")
    if ex.opset >= 11:
        pads = ints(args[1])
        value = _arg(args, 2)
        value = 0.0 if value is None or value.numel() == 0 else float(value)
        axes = ints(_arg(args, 3))
    else:
        pads, value, axes = list(attrs["pads"]), attrs.get("value", 0.0), []
    if axes:
        full = [0] * (2 * x.dim())
        for i, a in enumerate(axes):
            a %= x.dim()
            full[a], full[x.dim() + a] = pads[i], pads[len(axes) + i]
        pads = full
    n = len(pads) // 2
    first = next((i for i in range(n) if pads[i] or pads[n + i]), n)  # pad only the trailing dims that change
    tp = _torch_pad(pads[first:n] + pads[n + first:])
    if mode == "constant":
        return F.pad(x, tp, value=value)
    tmode = {"reflect": "reflect", "edge": "replicate", "wrap": "circular"}.get(mode)
    if tmode is None:
        raise UnsupportedError(f"Pad {node.name!r}: mode {mode!r} is not supported for training")
    return F.pad(x, tp, mode=tmode)


def resize(ex, node, args, attrs):
    x = args[0]
    if ex.opset >= 11:
        scales, sizes = _arg(args, 2), _arg(args, 3)
    else:
        scales, sizes = _arg(args, 1), None
    mode = attrs.get("mode", "nearest")
    ctm = attrs.get("coordinate_transformation_mode", "half_pixel" if ex.opset >= 11 else "asymmetric")
    nd = x.dim() - 2
    kw: dict = {}
    if sizes is not None and sizes.numel():
        s = ints(sizes)
        if s[:2] != list(x.shape[:2]):
            raise UnsupportedError(f"Resize {node.name!r}: only spatial dims can be resized for training")
        kw["size"] = s[2:]
    else:
        sc = floats(scales)
        if sc[:2] != [1.0, 1.0]:
            raise UnsupportedError(f"Resize {node.name!r}: only spatial dims can be resized for training")
        kw["scale_factor"] = sc[2:]
        kw["recompute_scale_factor"] = False
    if mode == "nearest":
        nearest = attrs.get("nearest_mode", "round_prefer_floor")
        if ctm == "asymmetric" and nearest == "floor":
            return F.interpolate(x, mode="nearest", **kw)
        if ctm in ("half_pixel", "pytorch_half_pixel") and nearest in ("round_prefer_floor", "round_prefer_ceil"):
            return F.interpolate(x, mode="nearest-exact", **kw)
    elif mode == "linear" and nd in (1, 2, 3):
        tmode = {1: "linear", 2: "bilinear", 3: "trilinear"}[nd]
        if ctm in ("half_pixel", "pytorch_half_pixel"):
            return F.interpolate(x, mode=tmode, align_corners=False, **kw)
        if ctm == "align_corners":
            return F.interpolate(x, mode=tmode, align_corners=True, **kw)
    raise UnsupportedError(f"Resize {node.name!r}: mode {mode!r} with coordinate_transformation_mode {ctm!r} "
                           f"(nearest_mode {attrs.get('nearest_mode')!r}) is not supported for training")


def reduce_mean(ex, node, args, attrs):
    x = args[0]
    axes = _axes(ex, node, args, attrs, 1, 18)
    keep = bool(attrs.get("keepdims", 1))
    if not axes:
        if attrs.get("noop_with_empty_axes", 0):
            return x
        axes = list(range(x.dim()))
    return x.mean(dim=[a % x.dim() for a in axes], keepdim=keep)


def constant(ex, node, args, attrs):
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if key in attrs:
            v = attrs[key]
            return v if isinstance(v, torch.Tensor) else torch.tensor(v)
    raise UnsupportedError(f"Constant {node.name!r}: only value/value_float(s)/value_int(s) are supported")


def gather(ex, node, args, attrs):
    x, idx = args[0], args[1].long()
    axis = attrs.get("axis", 0) % x.dim()
    idx = torch.where(idx < 0, idx + x.shape[axis], idx)
    out = x.index_select(axis, idx.reshape(-1))
    return out.reshape(*x.shape[:axis], *idx.shape, *x.shape[axis + 1:])


_ONNX_TO_TORCH_DTYPE = {1: torch.float32, 6: torch.int32, 7: torch.int64, 9: torch.bool, 10: torch.float16, 11: torch.float64}


def cast(ex, node, args, attrs):
    to = _ONNX_TO_TORCH_DTYPE.get(attrs["to"])
    if to is None:
        raise UnsupportedError(f"Cast {node.name!r}: target type {attrs['to']} is not supported for training")
    return args[0].to(to)


def _div(ex, node, args, attrs):
    a, b = args
    if not a.is_floating_point() and not b.is_floating_point():
        return torch.div(a, b, rounding_mode="trunc")
    return a / b


# ONNX op type -> converter. Grep here for what the training executor runs.
OPS = {
    "Conv": conv,
    "ConvTranspose": conv_transpose,
    "Gemm": gemm,
    "MatMul": lambda ex, n, a, at: torch.matmul(a[0], a[1]),
    "Add": lambda ex, n, a, at: a[0] + a[1],
    "Sub": lambda ex, n, a, at: a[0] - a[1],
    "Mul": lambda ex, n, a, at: a[0] * a[1],
    "Div": _div,
    "Relu": lambda ex, n, a, at: torch.relu(a[0]),
    "Clip": clip,
    "LeakyRelu": lambda ex, n, a, at: F.leaky_relu(a[0], at.get("alpha", 0.01)),
    "Sigmoid": lambda ex, n, a, at: torch.sigmoid(a[0]),
    "Tanh": lambda ex, n, a, at: torch.tanh(a[0]),
    "HardSigmoid": lambda ex, n, a, at: torch.clamp(at.get("alpha", 0.2) * a[0] + at.get("beta", 0.5), 0.0, 1.0),
    "HardSwish": lambda ex, n, a, at: F.hardswish(a[0]),
    "Softmax": softmax,
    "BatchNormalization": batch_norm,
    "MaxPool": max_pool,
    "AveragePool": avg_pool,
    "GlobalAveragePool": lambda ex, n, a, at: a[0].mean(dim=list(range(2, a[0].dim())), keepdim=True),
    "GlobalMaxPool": lambda ex, n, a, at: a[0].amax(dim=list(range(2, a[0].dim())), keepdim=True),
    "Flatten": flatten,
    "Reshape": reshape,
    "Transpose": transpose,
    "Concat": lambda ex, n, a, at: torch.cat([t for t in a if t is not None], at["axis"]),
    "Split": split,
    "Slice": slice_,
    "Squeeze": squeeze,
    "Unsqueeze": unsqueeze,
    "Pad": pad,
    "Resize": resize,
    "ReduceMean": reduce_mean,
    "Identity": lambda ex, n, a, at: a[0],
    "Dropout": lambda ex, n, a, at: a[0],  # inference semantics: the mask output is not supported
    "Constant": constant,
    "Shape": lambda ex, n, a, at: torch.tensor(list(a[0].shape)[at.get("start", 0):at.get("end")], dtype=torch.long),
    "Gather": gather,
    "Cast": cast,
}
