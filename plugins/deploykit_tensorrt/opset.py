"""Bring a model to the opset (and IR version) the device's TensorRT parser and onnxruntime read.

TensorRT 8.2 parses ONNX opset <= 13 and the Jetson Nano's last onnxruntime (1.10) reads opset
<= 15 / IR <= 8 (facts §2, §7). ``onnx.version_converter`` has no down-adapters for most ops, so
this module does it directly on the proto:

* ops whose newer versions only widened types or added an attribute we can check is unused are
  relabelled (the ``_COMPATIBLE`` table, each with its condition);
* ops newer than the target are decomposed into older ones (``_DECOMPOSE``: HardSwish, Gelu,
  LayerNormalization);
* anything else is reported as a problem (node name -> reason) for support analysis.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from deploykit.ir.names import fresh_name

# op -> condition(node, graph_consts) under which the op at any version > 13 means the same at 13
_Cond = Callable[[onnx.NodeProto, dict], bool]


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            v = helper.get_attribute_value(a)
            return v.decode() if isinstance(v, bytes) else v
    return default


def _always(node, consts) -> bool:
    return True


_TYPE_ONLY = """Add Sub Mul Div Relu Identity CumSum Pow LeakyRelu PRelu Where GreaterOrEqual LessOrEqual
If Loop Scan Cast CastLike Equal Constant Size Flatten Transpose Squeeze Unsqueeze Less Greater
Max Min Mean Sum Clip Gather Concat Expand Tile Sigmoid Tanh Softmax Abs Neg Exp Log Sqrt Erf
Floor Ceil Round Not And Or Range ConstantOfShape DepthToSpace SpaceToDepth""".split()

_COMPATIBLE: dict[str, _Cond] = {op: _always for op in _TYPE_ONLY}
_COMPATIBLE.update({
    "Reshape": lambda n, c: not _attr(n, "allowzero", 0),
    "Shape": lambda n, c: _attr(n, "start") is None and _attr(n, "end") is None,
    "BatchNormalization": lambda n, c: not _attr(n, "training_mode", 0) and len([o for o in n.output if o]) == 1,
    "ScatterND": lambda n, c: _attr(n, "reduction", "none") == "none",
    "ScatterElements": lambda n, c: _attr(n, "reduction", "none") == "none",
    "Resize": lambda n, c: not _attr(n, "antialias", 0) and _attr(n, "axes") is None
    and _attr(n, "keep_aspect_ratio_policy", "stretch") == "stretch"
    and _attr(n, "coordinate_transformation_mode", "half_pixel") != "half_pixel_symmetric",
    "Pad": lambda n, c: len(n.input) < 4 and _attr(n, "mode", "constant") != "wrap",
    "Split": lambda n, c: _attr(n, "num_outputs") is None,
    "AveragePool": lambda n, c: not _attr(n, "dilations"),
    "MaxPool": _always,
    # opset 14 only added ``layout`` (0: [seq, batch, ...], the only layout of LSTM-7/GRU-7/RNN-7)
    "LSTM": lambda n, c: not _attr(n, "layout", 0),
    "GRU": lambda n, c: not _attr(n, "layout", 0),
    "RNN": lambda n, c: not _attr(n, "layout", 0),
    "ReduceSum": _always,
    "GlobalAveragePool": _always,
    "GlobalMaxPool": _always,
    "Conv": _always,
    "ConvTranspose": _always,
    "Gemm": _always,
    "MatMul": _always,
})
_REDUCE_AXES_INPUT = {"ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                      "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"}


class _Rewriter:
    def __init__(self, graph: onnx.GraphProto):
        self.graph = graph
        self.taken = {t.name for t in graph.initializer} | {i.name for i in graph.input}
        for n in graph.node:
            self.taken.update(n.output)
            self.taken.add(n.name)

    def fresh(self, base: str) -> str:
        return fresh_name(self.taken, base)

    def const(self, base: str, value) -> str:
        name = self.fresh(base)
        self.graph.initializer.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], base: str, out: str | None = None, **attrs) -> str:
        out = out or self.fresh(base)
        self.new.append(helper.make_node(op, inputs, [out], name=self.fresh(base), **attrs))
        return out


def _hardswish(rw: _Rewriter, n: onnx.NodeProto, rank: int | None) -> bool:
    x, base = n.input[0], n.name or n.output[0]
    hs = rw.node("HardSigmoid", [x], base + "/hardsigmoid", alpha=1.0 / 6.0, beta=0.5)
    rw.node("Mul", [x, hs], base + "/mul", out=n.output[0])
    return True


def _gelu(rw: _Rewriter, n: onnx.NodeProto, rank: int | None) -> bool:
    x, base = n.input[0], n.name or n.output[0]
    if _attr(n, "approximate", "none") == "tanh":
        c = rw.const(base + "/c", math.sqrt(2.0 / math.pi))
        k = rw.const(base + "/k", 0.044715)
        x3 = rw.node("Mul", [rw.node("Mul", [x, x], base + "/x2"), x], base + "/x3")
        inner = rw.node("Mul", [rw.node("Add", [x, rw.node("Mul", [x3, k], base + "/kx3")], base + "/sum"), c], base + "/inner")
        t = rw.node("Tanh", [inner], base + "/tanh")
    else:
        t = rw.node("Erf", [rw.node("Div", [x, rw.const(base + "/sqrt2", math.sqrt(2.0))], base + "/div")], base + "/erf")
    one, half = rw.const(base + "/one", 1.0), rw.const(base + "/half", 0.5)
    rw.node("Mul", [rw.node("Mul", [x, half], base + "/halfx"), rw.node("Add", [t, one], base + "/onep")],
            base + "/mul", out=n.output[0])
    return True


def _layernorm(rw: _Rewriter, n: onnx.NodeProto, rank: int | None) -> bool:
    if len([o for o in n.output if o]) != 1:
        return False
    axis = int(_attr(n, "axis", -1))
    if axis >= 0:
        if rank is None:
            return False
        axis -= rank
    axes = list(range(axis, 0))
    x, base = n.input[0], n.name or n.output[0]
    eps = rw.const(base + "/eps", float(_attr(n, "epsilon", 1e-5)))
    if rw.goal >= 18:  # axes became an input of ReduceMean in opset 18
        axes_name = rw.fresh(base + "/axes")
        rw.graph.initializer.append(numpy_helper.from_array(np.asarray(axes, np.int64), axes_name))
        mean = rw.node("ReduceMean", [x, axes_name], base + "/mean", keepdims=1)
        d = rw.node("Sub", [x, mean], base + "/centered")
        var = rw.node("ReduceMean", [rw.node("Mul", [d, d], base + "/sq"), axes_name], base + "/var", keepdims=1)
    else:
        mean = rw.node("ReduceMean", [x], base + "/mean", axes=axes, keepdims=1)
        d = rw.node("Sub", [x, mean], base + "/centered")
        var = rw.node("ReduceMean", [rw.node("Mul", [d, d], base + "/sq")], base + "/var", axes=axes, keepdims=1)
    std = rw.node("Sqrt", [rw.node("Add", [var, eps], base + "/var_eps")], base + "/std")
    y = rw.node("Mul", [rw.node("Div", [d, std], base + "/norm"), n.input[1]], base + "/scaled",
                out=None if len(n.input) > 2 and n.input[2] else n.output[0])
    if len(n.input) > 2 and n.input[2]:
        rw.node("Add", [y, n.input[2]], base + "/shifted", out=n.output[0])
    return True


def _reduce_axes_to_attr(rw: _Rewriter, n: onnx.NodeProto, consts: dict) -> bool:
    if len(n.input) < 2 or not n.input[1]:
        return not _attr(n, "noop_with_empty_axes", 0)
    if n.input[1] not in consts:
        return False
    attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute if a.name != "noop_with_empty_axes"}
    rw.new.append(helper.make_node(n.op_type, [n.input[0]], list(n.output), name=n.name,
                                   axes=[int(a) for a in consts[n.input[1]].reshape(-1)], **attrs))
    return True


# op -> decomposition into ops that exist at opset 13 (and that every TensorRT parser takes)
DECOMPOSE: dict[str, Callable] = {"HardSwish": _hardswish, "Gelu": _gelu, "LayerNormalization": _layernorm}


def _ranks(model: onnx.ModelProto) -> dict[str, int]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - ranks are optional
        return {}
    out = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        if vi.type.tensor_type.HasField("shape"):
            out[vi.name] = len(vi.type.tensor_type.shape.dim)
    return out


def _drop_newer_attributes(n: onnx.NodeProto, goal: int) -> None:
    """Remove attributes the op does not have at opset ``goal`` (the ``_COMPATIBLE`` conditions
    checked that they hold their defaults, e.g. Reshape-14 ``allowzero=0``): parsers of the older
    opset reject unknown attributes ("Unrecognized attribute: allowzero")."""
    try:
        known = set(onnx.defs.get_schema(n.op_type, goal, "").attributes)
    except Exception:  # noqa: BLE001 - no schema: leave the node as it is
        return
    keep = [a for a in n.attribute if a.name in known]
    if len(keep) != len(n.attribute):
        del n.attribute[:]
        n.attribute.extend(keep)


def opset_of(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def lower_opset(model: onnx.ModelProto, target: int, decompose: frozenset[str] | set[str] = frozenset(DECOMPOSE)
                ) -> tuple[onnx.ModelProto, dict[str, str]]:
    """Return (model at opset ``min(current, target)`` with ops in ``decompose`` rewritten, problems).

    ``problems`` maps node names to reasons for nodes that cannot be expressed at ``target``.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    current = opset_of(out)
    goal = min(current, target)
    g = out.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    ranks = _ranks(out)
    rw = _Rewriter(g)
    rw.goal = goal
    problems: dict[str, str] = {}
    nodes = []
    for k, n in enumerate(g.node):
        rw.new = []
        label = n.name or f"{n.op_type}#{k}"
        if n.domain not in ("", "ai.onnx"):
            nodes.append(n)
            continue
        try:
            since = onnx.defs.get_schema(n.op_type, current, "").since_version
        except Exception:  # noqa: BLE001 - unknown op: leave it to support analysis
            nodes.append(n)
            continue
        if n.op_type in decompose and n.op_type in DECOMPOSE and DECOMPOSE[n.op_type](rw, n, ranks.get(n.input[0])):
            nodes.extend(rw.new)
            continue
        if since <= goal:
            nodes.append(n)
        elif n.op_type in _REDUCE_AXES_INPUT and since >= 18 and goal < 18 and _reduce_axes_to_attr(rw, n, consts):
            nodes.extend(rw.new)
        elif n.op_type in _COMPATIBLE and _COMPATIBLE[n.op_type](n, consts):
            _drop_newer_attributes(n, goal)
            nodes.append(n)
        else:
            problems[label] = (f"{n.op_type}-{since} has no equivalent at opset {goal} "
                               f"(the device's TensorRT parses ONNX opset <= {target})")
            nodes.append(n)
    del g.node[:]
    g.node.extend(nodes)
    if goal < current and not problems:
        for o in out.opset_import:
            if o.domain in ("", "ai.onnx"):
                o.version = goal
    return out, problems


def ir_version_for(opset: int) -> int:
    """The IR version of the ONNX release that introduced ``opset`` (opset 13 -> IR 7, 17 -> IR 8)."""
    best = None
    for _release, ir_version, ai_onnx, *_ in onnx.helper.VERSION_TABLE:
        if ai_onnx >= opset and (best is None or ir_version < best):
            best = ir_version
    return best or onnx.IR_VERSION


def set_ir_version(model: onnx.ModelProto) -> None:
    """Set the IR version of the ONNX release that introduced the model's opset (opset 13 -> IR 7):
    the lowest that carries it, so older parsers and runtimes (onnxruntime 1.10: IR <= 8) read it.
    At least IR 4 when an initializer is not also a graph input (IR 3 requires that; opset <= 8
    models imported by deploykit no longer list them)."""
    version = ir_version_for(opset_of(model))
    if version < 4 and {t.name for t in model.graph.initializer} - {i.name for i in model.graph.input}:
        version = 4
    model.ir_version = version
