"""ONNX -> OpenVINO IR through OpenVINO's own Python API (``convert_model`` / ``save_model``).

``openvino`` is imported inside the functions. Nothing here writes IR XML by hand: the model is
converted, optionally rewritten with ``openvino.opsetN`` factories (:mod:`.downgrade`), and saved
by ``openvino.save_model``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deploykit.errors import DeployError
from deploykit.ir.info import TensorSpec


def convert(onnx_path: Path):
    """``openvino.convert_model`` of an ONNX file (an in-memory ModelProto is rejected by 2026 [facts §3])."""
    import openvino as ov

    try:
        return ov.convert_model(str(onnx_path))
    except Exception as e:  # noqa: BLE001 - the converter raises many types; one clear line
        raise DeployError(f"OpenVINO could not convert the model: {conversion_failure(str(e))}") from e


def failed_ops(message: str) -> dict[str, str]:
    """``{ONNX op type: reason}`` from an OpConversionFailure report ("-- Loop-13 with a message:"
    followed by the frontend's lines); empty when the message is not such a report."""
    failed: dict[str, str] = {}
    op, lines = None, []
    for raw in message.splitlines() + ["Summary:"]:
        line = raw.strip()
        m = re.match(r"-- (\w+)-\d+ with a message:", line)
        if m or line.startswith("Summary:"):
            if op:
                detail = [ln for ln in lines if ln and not ln.startswith(("[ONNX Frontend]", "Check ", "While validating"))]
                failed[op] = (detail[-1] if detail else lines[-1] if lines else "no detail")[:200]
            op, lines = (m.group(1) if m else None), []
        elif op:
            lines.append(line)
        rule = re.match(r"-- No conversion rule found for operations: (.*)", line)
        if rule:
            for name in rule.group(1).split(","):
                failed.setdefault(name.strip().rsplit("-", 1)[0], "no conversion rule for this op")
    return failed


def conversion_failure(message: str) -> str:
    """One line from OpenVINO's multi-line conversion error: every failed op with its reason."""
    failed = failed_ops(message)
    if failed:
        return "; ".join(f"{op}: {why}" for op, why in failed.items())
    lines = [ln.strip() for ln in message.splitlines() if ln.strip() and not ln.strip().startswith("Check '")]
    return (lines[-1] if lines else "no detail")[:400]


def save(model, xml: Path, compress_to_fp16: bool) -> None:
    import openvino as ov

    ov.save_model(model, str(xml), compress_to_fp16=compress_to_fp16)


def port_order(ports, specs: Sequence[TensorSpec], kind: str) -> list[str]:
    """Source tensor name of each IR port, in port order (the runner feeds/reads ports by index)."""
    names = [s.name for s in specs]
    if len(ports) != len(names):
        raise DeployError(f"the IR has {len(ports)} {kind}s but the model has {len(names)}")
    order = []
    for i, port in enumerate(ports):
        found = [n for n in names if n in port.get_names()]
        order.append(found[0] if found else names[i])
    if sorted(order) != sorted(names):  # a name matched twice: trust the positions
        order = list(names)
    return order


def ops_of(model) -> dict[str, int]:
    """``{"Type-opsetN": count}`` of a model (for the report)."""
    from deploykit_openvino.downgrade import opset_number

    counts: dict[str, int] = {}
    for node in model.get_ordered_ops():
        if node.get_type_name() in ("Parameter", "Result", "Constant"):
            continue
        key = f"{node.get_type_name()}-{opset_number(node)}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def layers_on_2d_only(model, types: frozenset[str]) -> list[str]:
    """Layers of ``types`` whose data input has rank > 4 (3D conv/pool)."""
    bad = []
    for node in model.get_ordered_ops():
        if node.get_type_name() in types and node.get_input_partial_shape(0).rank.is_static \
                and node.get_input_partial_shape(0).rank.get_length() > 4:
            bad.append(f"{node.get_type_name()} ({node.get_friendly_name()})")
    return bad


def run_current(xml: Path, feeds: Sequence[Sequence[np.ndarray]], config: dict[str, Any] | None = None) -> list[list[np.ndarray]]:
    """Run an IR with the current runtime on CPU; ``feeds`` per sample, arrays in IR input order."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(xml), "CPU", config or {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    results = []
    for arrays in feeds:
        request.infer({i: a for i, a in enumerate(arrays)})
        results.append([np.array(request.get_output_tensor(j).data) for j in range(len(compiled.outputs))])
    return results


def runtime_precisions(xml: Path) -> dict[str, dict[str, int]]:
    """What precision the CPU plugin runs each compute layer in [facts §3, EXP-7], compiled in a
    child process (:mod:`.probe`) so that a native crash of the plugin is a clean error."""
    from deploykit_openvino.probe import compile_in_child

    return compile_in_child(xml, {"INFERENCE_PRECISION_HINT": "f32"})


def random_feeds(specs: Sequence[TensorSpec], n: int, seed: int = 0) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    feeds = []
    for _ in range(n):
        arrays = []
        for s in specs:
            dtype = np.dtype(s.dtype)
            if dtype.kind == "f":
                arrays.append(rng.standard_normal(s.shape).astype(dtype))
            else:
                arrays.append(rng.integers(0, 2, size=s.shape).astype(dtype))
        feeds.append(arrays)
    return feeds
