"""Quantization plan: parameters for every tensor of a graph under a backend's scheme.

Activations get per-tensor parameters from a range method; weights per-channel symmetric; biases
int32 (scale = input scale x weight scale); other float constants per-tensor. Tensors that must
share parameters (scheme.shared_scale_ops) are grouped and cover the union of their ranges; ops
with fixed output parameters (Softmax, Sigmoid, ...) get those. Bias correction shifts float
biases by the mean error that weight rounding introduces.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from deploykit.errors import CalibrationError
from deploykit.quant.collect import GraphIndex
from deploykit.quant.observers import TensorObserver
from deploykit.quant.params import QuantParams, params_from_range
from deploykit.quant.ranges import compute_range
from deploykit.quant.roles import WEIGHT_OPS, input_role, weight_axis
from deploykit.quant.scheme import QuantScheme


@dataclass
class QuantPlan:
    """Everything needed to build the quantized graph."""

    activations: dict[str, QuantParams] = field(default_factory=dict)
    weights: dict[str, QuantParams] = field(default_factory=dict)
    biases: dict[str, QuantParams] = field(default_factory=dict)
    constants: dict[str, QuantParams] = field(default_factory=dict)
    float_values: dict[str, np.ndarray] = field(default_factory=dict)  # corrected float weights/biases
    fallback: set[str] = field(default_factory=set)
    method: str = "minmax"
    scheme: QuantScheme | None = None

    def quantized(self, node: onnx.NodeProto, key: str) -> bool:
        """Whether ``node`` reads quantized inputs (not a fallback and allowed by the scheme)."""
        if key in self.fallback:
            return False
        return self.scheme is None or self.scheme.runs_quantized(node.op_type)

    def all_params(self) -> dict[str, QuantParams]:
        return {**self.constants, **self.activations, **self.weights, **self.biases}


class _Groups:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, a: str) -> str:
        self.parent.setdefault(a, a)
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)


def _node_key(node: onnx.NodeProto, i: int) -> str:
    return node.name or f"{node.op_type}#{i}"


def quantizable_inputs(index: GraphIndex, node: onnx.NodeProto) -> list[tuple[int, str, str]]:
    """(input index, tensor name, role) for inputs of ``node`` that get quantized."""
    result = []
    for i, name in enumerate(node.input):
        if not name or not index.is_float(name):
            continue
        role = input_role(node.op_type, i)
        if role is None:
            continue
        const = name in index.initializers
        if role == "weight" and not const:
            role = "data"
        if role == "bias" and (not const or len(index.initializers[name].dims) != 1):
            role = "const" if const else None
            if role is None:
                continue
        if role == "data" and const:
            role = "const"
        result.append((i, name, role))
    return result


def observed_tensors(index: GraphIndex, scheme: QuantScheme, fallback: set[str] | None = None) -> set[str] | None:
    """Activations whose statistics a plan under ``scheme`` can use, or ``None`` for all of them.

    Full-integer schemes (``quantize_ops`` unset) need parameters for every tensor. QDQ schemes
    quantize only the data inputs of the ops they run in int8 (and graph outputs those ops
    produce), so only these are observed.
    """
    if scheme.quantize_ops is None:
        return None
    names: set[str] = set()
    for k, node in enumerate(index.model.graph.node):
        key = _node_key(node, k)
        if key in (fallback or ()) or not scheme.runs_quantized(node.op_type):
            continue
        names.update(n for (_, n, role) in quantizable_inputs(index, node) if role == "data")
        names.update(o for o in node.output if o in index.graph_outputs)
    return names


def build_plan(
    index: GraphIndex,
    observers: dict[str, TensorObserver],
    scheme: QuantScheme,
    method: str,
    *,
    fallback: set[str] | None = None,
    bias_correction: bool = True,
    overrides: dict[str, str] | None = None,
    range_cache: dict[tuple[str, str], tuple[float, float]] | None = None,
) -> QuantPlan:
    """Compute parameters for every quantized tensor. ``overrides``: tensor -> range method.

    ``range_cache``: (tensor, method) -> range, shared by calls on the same observers (the engine
    builds a plan per method and per fallback trial; the mse search alone took 0.3 s a plan on a
    10 MB recognizer)."""
    plan = QuantPlan(fallback=set(fallback or ()), method=method, scheme=scheme)
    act_dtype = scheme.activation_dtype
    nodes = list(index.model.graph.node)
    if scheme.mixed_precision:  # e.g. a causal mask's -inf: that node stays float; full-integer schemes refuse below
        plan.fallback |= unquantizable_nodes(index, observers)
    # 1. raw activation ranges
    cache = {} if range_cache is None else range_cache
    ranges: dict[str, tuple[float, float]] = {}
    methods: dict[str, str] = {}
    for name, obs in observers.items():
        if obs.count == 0:
            continue
        m = (overrides or {}).get(name, method)
        ranges[name] = cached_range(cache, name, obs, scheme, m)
        methods[name] = m
        _require_finite(name, ranges[name], "calibration range")
    # 2. shared-scale groups
    groups = _Groups()
    for k, node in enumerate(nodes):
        if node.op_type not in scheme.shared_scale_ops or not node.output or node.output[0] not in ranges:
            continue
        if _node_key(node, k) in plan.fallback:  # a float node joins nothing: its inputs keep their own scales
            continue
        data_inputs = [n for (i, n, r) in quantizable_inputs(index, node) if r == "data" and n in ranges]
        if node.op_type != "Concat":
            data_inputs = data_inputs[:1]
        for n in data_inputs:
            groups.union(n, node.output[0])
    merged: dict[str, tuple[float, float]] = {}
    for name, (lo, hi) in ranges.items():
        root = groups.find(name)
        plo, phi = merged.get(root, (np.inf, -np.inf))
        merged[root] = (min(plo, lo), max(phi, hi))
    for name in ranges:
        lo, hi = merged[groups.find(name)]
        plan.activations[name] = params_from_range(lo, hi, act_dtype, scheme.activation_symmetric, method=methods[name])
    # 3. fixed output parameters
    for node in nodes:
        fixed = scheme.fixed_output_params.get(node.op_type) if scheme.fixed_output_params else None
        if fixed and node.output and node.output[0] in plan.activations:
            scale, zp = fixed
            plan.activations[node.output[0]] = QuantParams(np.asarray(scale, np.float32), np.asarray(zp), act_dtype,
                                                            method="fixed", range=None)
    # 3b. scalings by a constant: the output's grid is the input's, scaled (lossless requantization)
    _derive_scaled_params(index, plan, groups, nodes)
    # 4. weights, biases, constants
    for k, node in enumerate(nodes):
        if not plan.quantized(node, _node_key(node, k)):
            continue
        q_inputs = quantizable_inputs(index, node)
        w_params, w_name = None, None
        for i, name, role in q_inputs:
            if role == "weight" and name not in plan.weights:
                w = numpy_helper.to_array(index.initializers[name]).astype(np.float32)
                axis = weight_axis(node, w.shape) if scheme.per_channel_weights else None
                if axis is not None:
                    red = tuple(a for a in range(w.ndim) if a != axis)
                    lo, hi = w.min(axis=red), w.max(axis=red)
                else:
                    lo, hi = float(w.min()), float(w.max())
                plan.weights[name] = params_from_range(lo, hi, scheme.weight_dtype, scheme.weight_symmetric, axis=axis,
                                                       bits=scheme.weight_bits)
            if role == "weight":
                w_params, w_name = plan.weights[name], name
            if role == "const" and name not in plan.constants:
                c = numpy_helper.to_array(index.initializers[name]).astype(np.float32)
                if c.size:
                    _require_finite(name, (float(c.min()), float(c.max())), "constant")
                plan.constants[name] = params_from_range(float(c.min()) if c.size else 0.0, float(c.max()) if c.size else 0.0,
                                                         act_dtype, scheme.activation_symmetric)
        if node.op_type in WEIGHT_OPS and w_params is not None and scheme.bias_int32:
            x_params = plan.activations.get(node.input[0])
            b_name = node.input[2] if len(node.input) > 2 and node.input[2] else None
            if x_params is None:
                continue
            has_bias = bool(b_name and b_name in index.initializers and len(index.initializers[b_name].dims) == 1)
            if has_bias:
                w_params = _fit_weight_scale_to_bias(index, plan, w_name, b_name, x_params)
            if bias_correction:
                _correct_bias(index, node, plan, observers)
            if has_bias:
                scale = (np.asarray(x_params.scale, np.float64) * np.asarray(w_params.scale, np.float64)).astype(np.float32)
                plan.biases[b_name] = QuantParams(scale=scale.reshape(-1) if np.ndim(scale) else scale,
                                                  zero_point=np.zeros(np.shape(scale), np.int64), dtype="int32",
                                                  axis=0 if np.ndim(scale) else None, method="derived")
    return plan


# |int32 bias| a plan allows: half the int32 range, so bias correction and rounding stay inside it
BIAS_LIMIT = 2**30


def _fit_weight_scale_to_bias(index: GraphIndex, plan: QuantPlan, w_name: str, b_name: str,
                              x_params: QuantParams) -> QuantParams:
    """The weight parameters, with the scale of every channel whose bias would not fit int32 raised
    until it does (bias scale = input scale x weight scale).

    Channels a BatchNorm with gamma ~ 0 folded into a conv have (near-)zero weights and a bias: their
    output is that constant. From the weights alone their scale is tiny (down to denormals), the bias
    then needs more than int32 and was clipped to ~0 (PP-OCR rec: 58 channels in 10 layers, biases of
    -0.80 and 1.67 became ~0 and 0.26). Raised, such a channel's weights round to 0 and the bias
    keeps its value; every other channel is untouched."""
    p = plan.weights[w_name]
    b = plan.float_values.get(b_name)
    if b is None:
        b = numpy_helper.to_array(index.initializers[b_name])
    need = np.abs(np.asarray(b, np.float64)) / (float(np.max(x_params.scale)) * BIAS_LIMIT)
    scale = np.asarray(p.scale, np.float64)
    if scale.ndim and scale.shape != need.shape:
        return p
    if not np.any(need > scale):
        return p
    fitted = np.maximum(scale, need) if scale.ndim else np.float64(max(float(scale), float(need.max())))
    p = dataclasses.replace(p, scale=np.asarray(fitted, np.float32))
    plan.weights[w_name] = p
    return p


def cached_range(cache: dict[tuple[str, str], tuple[float, float]], name: str, obs: TensorObserver,
                 scheme: QuantScheme, method: str) -> tuple[float, float]:
    """The activation range of ``name`` under ``method``, computed once per (tensor, method)."""
    if (name, method) not in cache:
        cache[name, method] = compute_range(method, obs, dtype=scheme.activation_dtype,
                                            symmetric=scheme.activation_symmetric)
    return cache[name, method]


SCALING_OPS = ("Mul", "Div")


def _derive_scaled_params(index: GraphIndex, plan: QuantPlan, groups: _Groups, nodes) -> None:
    """``y = x * c`` or ``x / c`` with a positive scalar constant ``c``: ``y`` gets ``x``'s zero point
    and ``x``'s scale times (divided by) ``c``. Its calibrated range is ``c`` times ``x``'s anyway;
    with the exact ratio the int8 MUL requantizes ``x`` onto ``y``'s grid without rounding, where
    independently fitted scales round every element a second time. PP-LCNetV3 (PP-OCRv4 rec) ends
    each block with ``/ 6`` and a learnable ``* a``: two such re-roundings of every activation.
    Skipped when ``y`` shares its parameters with other tensors (Concat inputs, Reshape outputs
    joined to it): those would disagree."""
    members: dict[str, int] = {}
    for name in plan.activations:
        root = groups.find(name)
        members[root] = members.get(root, 0) + 1
    for node in nodes:
        if node.op_type not in SCALING_OPS or len(node.input) != 2 or not node.output:
            continue
        y = node.output[0]
        # Div scales by its divisor only; Mul by whichever input is the constant
        slots = (1,) if node.op_type == "Div" else (0, 1)
        found = next(((k, c) for k in slots if (c := index.const(node.input[k])) is not None), None)
        if found is None:
            continue
        k, c = found
        x = node.input[1 - k]
        if x not in plan.activations or y not in plan.activations or members.get(groups.find(y), 0) != 1:
            continue
        if np.size(c) != 1:
            continue
        c = float(np.ravel(c)[0])
        if not (np.isfinite(c) and c > 0):
            continue
        ratio = 1.0 / c if node.op_type == "Div" else c
        px, py = plan.activations[x], plan.activations[y]
        if px.per_channel or px.dtype != py.dtype or py.method == "fixed":
            continue
        scale = np.asarray(np.float64(px.scale) * ratio, np.float32)
        if not (np.isfinite(scale) and scale > 0):
            continue
        rng = None if px.range is None else (px.range[0] * ratio, px.range[1] * ratio)
        plan.activations[y] = QuantParams(scale=scale, zero_point=np.asarray(px.zero_point), dtype=py.dtype,
                                          method=py.method, range=rng, extra={**py.extra, "derived_from": x})


# Beyond this magnitude an int8 scale (range / 255) and the products of scales runtimes compute
# (input scale x weight scale, their ratio to the output scale) leave float32: LiteRT aborts.
HUGE_VALUE = 1e30


def unquantizable_nodes(index: GraphIndex, observers: dict[str, TensorObserver]) -> set[str]:
    """Keys of nodes that read, as quantizable data, a value no int8 scale holds: a constant with
    NaN/Inf (a ``Where(mask, -inf, x)`` or ``Add(x, mask)`` attention mask), or a constant or
    calibrated activation beyond :data:`HUGE_VALUE` (MiniLM's attention bias ``(1 - mask) *
    float32.min``: a scale of ~1e36, which OpenVINO's CPU plugin died on while compiling and LiteRT
    aborts on). The node runs in float; what it feeds (a Softmax over scores + mask) stays exact."""
    keys = set()
    for k, node in enumerate(index.model.graph.node):
        for _, name, role in quantizable_inputs(index, node):
            if role == "const":
                a = numpy_helper.to_array(index.initializers[name])
                bad = not np.all(np.isfinite(a)) or float(np.max(np.abs(a), initial=0.0)) > HUGE_VALUE
            elif role == "data" and name in observers and observers[name].count:
                bad = max(abs(observers[name].lo), abs(observers[name].hi)) > HUGE_VALUE
            else:
                continue
            if bad:
                keys.add(_node_key(node, k))
                break
    return keys


def _require_finite(name: str, bounds: tuple[float, float], what: str) -> None:
    """Guard: an int8 scale of a non-finite range is inf/NaN and turns every output into NaN."""
    if not (np.isfinite(bounds[0]) and np.isfinite(bounds[1])):
        raise CalibrationError(
            f"int8: {what} of tensor {name!r} is not finite ({bounds[0]:g} .. {bounds[1]:g}); it cannot be "
            "quantized. Fix the model (an infinite constant such as Max(-inf, x) or an overflowing activation) "
            "or build this target in fp32/fp16")


def _correct_bias(index: GraphIndex, node: onnx.NodeProto, plan: QuantPlan, observers: dict[str, TensorObserver]) -> None:
    """Subtract the expected output shift caused by weight rounding (analytic bias correction)."""
    obs = observers.get(node.input[0])
    mean = obs.channel_mean if obs is not None else None
    if mean is None or len(node.input) < 3 or not node.input[2] or node.input[2] not in index.initializers:
        return
    w_name, b_name = node.input[1], node.input[2]
    w = plan.float_values.get(w_name)
    if w is None:
        w = numpy_helper.to_array(index.initializers[w_name]).astype(np.float32)
    p = plan.weights[w_name]
    dw = p.dequantize(p.quantize(w)) - w
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type == "Conv":
        group = attrs.get("group", 1)
        cout, cpg = dw.shape[0], dw.shape[1]
        if mean.shape[0] != cpg * group:
            return
        per_in = dw.reshape(cout, cpg, -1).sum(axis=2)  # [Cout, Cin/g]
        opg = cout // group
        m = mean.reshape(group, cpg)[np.arange(cout) // opg]  # [Cout, Cin/g]
        shift = (per_in * m).sum(axis=1)
    elif node.op_type == "Gemm":
        if attrs.get("transA", 0):
            return
        shift = dw @ mean if attrs.get("transB", 0) else mean @ dw
        shift = shift * attrs.get("alpha", 1.0)
    else:
        return
    b = plan.float_values.get(b_name)
    if b is None:
        b = numpy_helper.to_array(index.initializers[b_name]).astype(np.float32)
    if b.shape != shift.shape:
        return
    plan.float_values[b_name] = (b - shift).astype(np.float32)
