"""Small helpers shared by the canonicalization passes (not a pass itself)."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from deploykit.ir.names import fresh_name

FLOAT_TYPES = (ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.DOUBLE, ir.DataType.BFLOAT16)


def opset_version(model: ir.Model, domain: str = "") -> int:
    """The model's opset version for ``domain`` (0 when not imported)."""
    if domain == "":
        return model.opset_imports.get("", model.opset_imports.get("ai.onnx", 0))
    return model.opset_imports.get(domain, 0)


def is_onnx(node: ir.Node, *op_types: str) -> bool:
    return node.domain in ("", "ai.onnx") and node.op_type in op_types


def const_array(value: ir.Value | None) -> np.ndarray | None:
    """The numpy value of a constant (initializer or Constant output), else ``None``."""
    if value is None or value.is_graph_input():
        return None
    tensor = value.const_value
    if tensor is None:
        try:
            tensor = ir.convenience.get_const_tensor(value)
        except Exception:  # noqa: BLE001 - odd Constant encodings are simply "not constant"
            return None
    if tensor is None:
        return None
    try:
        return tensor.numpy()
    except Exception:  # noqa: BLE001
        return None


def attr(node: ir.Node, name: str, default=None):
    """An attribute's Python value, or ``default``."""
    a = node.attributes.get(name)
    if a is None or a.is_ref():
        return default
    return a.value


def sole_consumer(value: ir.Value) -> ir.Node | None:
    """The only node using ``value`` when it has exactly one use and is no graph output."""
    if value.is_graph_output():
        return None
    users = value.uses()
    if len(users) != 1:
        return None
    return users[0].node


def static_shape(value: ir.Value | None) -> tuple[int, ...] | None:
    if value is None or value.shape is None or not value.shape.is_static():
        return None
    return tuple(int(d) for d in value.shape)


class NameGen:
    """Fresh value names that do not clash with any name already used in ``graph``."""

    def __init__(self, graph: ir.Graph) -> None:
        self._used = set(graph.initializers)
        self._used.update(v.name for v in graph.inputs if v.name)
        for node in ir.traversal.RecursiveGraphIterator(graph):
            self._used.update(v.name for v in node.outputs if v.name)
            self._used.update(v.name for v in node.inputs if v is not None and v.name)

    def __call__(self, hint: str) -> str:
        return fresh_name(self._used, hint)


def add_initializer(graph: ir.Graph, names: NameGen, hint: str, array: np.ndarray) -> ir.Value:
    """Register ``array`` as a new initializer of ``graph`` and return its value."""
    name = names(hint)
    tensor = ir.tensor(np.ascontiguousarray(array), name=name)
    value = ir.Value(name=name, type=ir.TensorType(tensor.dtype), shape=ir.Shape(array.shape), const_value=tensor)
    graph.register_initializer(value)
    return value


def bypass(node: ir.Node, src: ir.Value, dst: ir.Value) -> bool:
    """Make every user of ``dst`` (an output of ``node``) use ``src`` and drop ``node``.

    Graph output names never change: when ``dst`` is a graph output, ``src`` takes its name;
    that is impossible (and the node stays) when ``src`` is a graph input, initializer or
    already a graph output.
    """
    if dst.is_graph_output():
        if src.is_graph_input() or src.is_initializer() or src.is_graph_output() or src.producer() is None:
            return False
        if src.producer().graph is not node.graph:
            # an If/Loop/Scan body may not return an outer-scope value directly (ONNX Runtime
            # and onnx.checker reject it): the Identity is what makes the body valid
            return False
    if src.type is None:
        src.type = dst.type
    if src.shape is None:
        src.shape = dst.shape
    was_output = dst.is_graph_output()
    name = dst.name
    ir.convenience.replace_all_uses_with(dst, src, replace_graph_outputs=True)
    if was_output:
        dst.name = None
        src.name = name
    if all(not o.uses() and not o.is_graph_output() for o in node.outputs) and node.graph is not None:
        node.graph.remove(node, safe=True)
    return True


def scalar_is(value: ir.Value | None, expected: float, x: ir.Value | None = None, rtol: float = 1e-4) -> bool:
    """``value`` is a one-element constant close to ``expected`` that does not broadcast ``x`` up.

    Scalars and one-element tensors of any rank count (exporters differ); a rank-k one-element
    constant is only accepted when ``x`` has known rank >= k (else the op would change its shape).
    """
    a = const_array(value)
    if a is None or a.size != 1 or a.dtype.kind not in "fiu":
        return False
    if a.ndim > 0 and (x is None or x.shape is None or len(x.shape) < a.ndim):
        return False
    v = float(a.reshape(-1)[0])
    return abs(v - expected) <= rtol * max(abs(expected), 1e-12)


def clip_bounds(node: ir.Node | None) -> tuple[float, float] | None:
    """``(min, max)`` of a Clip node, from attributes (opset < 11) or constant inputs."""
    if node is None or not is_onnx(node, "Clip"):
        return None
    if "min" in node.attributes or "max" in node.attributes or len(node.inputs) == 1:
        return float(attr(node, "min", -np.inf)), float(attr(node, "max", np.inf))
    bounds = []
    for i, default in ((1, -np.inf), (2, np.inf)):
        v = node.inputs[i] if len(node.inputs) > i else None
        a = const_array(v) if v is not None else np.array(default)
        if a is None or a.size != 1:
            return None
        bounds.append(float(a.reshape(-1)[0]))
    return bounds[0], bounds[1]


def is_float(value: ir.Value | None) -> bool:
    return value is not None and value.dtype in FLOAT_TYPES


_RULESETS: dict = {}


def apply_rules(model: ir.Model, make_rules, *, needs: tuple[str, ...] = ()) -> int:
    """Apply onnxscript rewrite rules (with commuted Add/Mul variants); number of rewrites.

    ``make_rules()`` builds the rule list once per process (commuted variants are costly to
    build). Matching is skipped when the model has none of the op types in ``needs``.
    """
    from onnxscript.rewriter import pattern

    if needs:
        present = {n.op_type for n in ir.traversal.RecursiveGraphIterator(model.graph)}
        if not present.intersection(needs):
            return 0
    if make_rules not in _RULESETS:
        _RULESETS[make_rules] = pattern.RewriteRuleSet(make_rules(), commute=True)
    return _RULESETS[make_rules].apply_to_model(model)


def const_non_negative(v: ir.Value) -> bool:
    a = const_array(v)
    return a is not None and a.size > 0 and bool(np.all(a >= 0))


def non_negative(v: ir.Value, depth: int = 0) -> bool:
    """``v`` is >= 0 by construction (Relu, Sigmoid, a Clip with min >= 0, and what keeps the sign).

    Backends use it where padding a max pooling with zeros instead of -inf is exact (zero PAD runs
    in XNNPACK and on the Edge TPU, PADV2 does not)."""
    node = v.producer()
    if node is None or depth > 8:
        return False
    if node.op_type in ("Relu", "Sigmoid"):
        return True
    if node.op_type == "Pow" and len(node.inputs) > 1:  # y ** e >= 0 (or NaN) unless e is an odd integer
        e = const_array(node.inputs[1])
        if e is not None and e.size == 1 and not (float(e.ravel()[0]).is_integer() and int(e.ravel()[0]) % 2):
            return True
    if node.op_type == "Conv" and len(node.inputs) > 1:  # non-negative weights/bias on a non-negative input
        consts = [c for c in node.inputs[1:] if c is not None]
        if not all(const_non_negative(c) for c in consts):
            return False
    if node.op_type in ("Concat", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Reshape",
                        "Transpose", "Flatten", "LRN", "Mul", "Pow", "Conv"):
        # LRN keeps the sign of x; a product of values >= 0 is >= 0; y ** e is >= 0 for y >= 0
        data = node.inputs if node.op_type in ("Concat", "Mul") else node.inputs[:1]
        return all(x is not None and (const_non_negative(x) or non_negative(x, depth + 1)) for x in data)
    bounds = clip_bounds(node) if node.op_type == "Clip" else None
    return bounds is not None and bounds[0] >= 0.0
