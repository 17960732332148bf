"""fp32 reference runs of the *source* model in ONNX Runtime.

Every build needs them, so :func:`check_loadable` runs at import: a model that passes the ONNX
checker but that ONNX Runtime refuses (opset it does not know, duplicate names, an op no kernel
implements, type errors) fails there with ONNX Runtime's own reason, before any work.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from deploykit.errors import ModelError, explain

_ORT_NOISE = (
    re.compile(r"\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*\w+\s*:\s*"),
    re.compile(r"Load model from \S+ failed:\s*"),
    re.compile(r"\S*onnxruntime_src/\S+:\d+\s+(?:[\w:<>,&*~ ]+?\([^()]*\)(?:\s*const)?\s*)?"),  # C++ file:line function(...)
    re.compile(r"(?:Non-zero status code returned while running \w+ node\. )"),
)


def ort_reason(e: BaseException, limit: int = 300) -> str:
    """ONNX Runtime's message without error codes, temp paths and C++ source locations."""
    text = " ".join(str(e).split())
    for pattern in _ORT_NOISE:
        text = pattern.sub("", text)
    text = text.strip(" :.") or type(e).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_loadable(model_path: str | Path) -> None:
    """Raise :class:`ModelError` when ONNX Runtime cannot load the source model."""
    try:
        reference_session(model_path)
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - ORT raises its own exception types
        if explain(e) is not None:
            raise
        raise ModelError(f"ONNX Runtime cannot load {Path(model_path).name!r}: {ort_reason(e)}; deploykit computes the "
                         "fp32 reference with it: fix or re-export the model") from e


def reference_session(model_path: str | Path, threads: int = 1):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 4  # fatal only: a failing run is reported as one error line, not ORT's log
    return ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])


def run_reference(
    model_path: str | Path, feeds: Iterable[Mapping[str, np.ndarray]], output_names: list[str], threads: int = 1
) -> list[dict[str, np.ndarray]]:
    """Outputs of the source model for each feed (one sample per feed)."""
    sess = reference_session(model_path, threads)
    wanted = {i.name for i in sess.get_inputs()}
    results = []
    with ort_run_failures(f"{Path(model_path).name!r} on sample inputs"):
        for feed in feeds:
            values = sess.run(output_names, {k: v for k, v in feed.items() if k in wanted})
            results.append(dict(zip(output_names, values)))
    return results


CONTROL_FLOW = ("If", "Loop", "Scan")


def check_pinned_model_loads(model) -> None:
    """Refuse, before any calibration, a model with control flow that ONNX Runtime cannot load once
    its input shapes are pinned (ORT type-checks every branch; a branch for other input sizes,
    e.g. silero-vad's 8 kHz path, can be invalid for the pinned ones). Without control flow the
    canonical model always loads, so nothing is checked (no cost)."""
    import onnx_ir as ir

    from deploykit.errors import ModelError

    if not any(n.op_type in CONTROL_FLOW for n in ir.traversal.RecursiveGraphIterator(model.graph)):
        return
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        ort.InferenceSession(ir.to_proto(model).SerializeToString(), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - ORT raises several types; all mean "cannot load"
        text = " ".join(str(e).split())
        reason = text.split("failed:", 1)[-1] if "failed:" in text else text.split(" : ")[-1]
        from deploykit.passes.if_to_select import condition_inputs, freeze_hint

        freeze = freeze_hint({n.name or "": condition_inputs(n) for n in model.graph if n.op_type == "If"})
        raise ModelError(f"ONNX Runtime cannot load the model with these input shapes: {reason.strip()[:400]}",
                         hint="a control-flow branch not taken at these shapes may still be type-checked; "
                              + (f"{freeze}, so that only the branch taken is kept" if freeze else
                                 "try other --input-shape values or export the model for one input size")) from None


FP16_MAX = 65504.0


def fp16_overflows(model, feeds: Iterable[Mapping[str, np.ndarray]], limit: float = FP16_MAX,
                   max_samples: int = 8) -> dict[str, float]:
    """``{node name: max |value|}`` of the float tensors of ``model`` (an onnx_ir model) that leave
    the fp16 range on ``feeds`` when computed in fp32: an fp16 engine turns them into inf/NaN (a
    spectrogram's power, issue 19), which host verification in fp32 cannot see."""
    import onnx
    import onnx_ir as ir
    import onnxruntime as ort

    proto = ir.to_proto(model)
    producer = {}
    for node in proto.graph.node:
        for o in node.output:
            if o:
                producer[o] = node.name or o
    known = {vi.name: vi.type.tensor_type.elem_type for vi in list(proto.graph.value_info) + list(proto.graph.output)}
    wanted = [t for t in producer if known.get(t, onnx.TensorProto.FLOAT) == onnx.TensorProto.FLOAT]
    present = {o.name for o in proto.graph.output}
    for t in wanted:
        if t not in present:
            proto.graph.output.append(onnx.helper.make_empty_tensor_value_info(t))
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    inputs = {i.name for i in sess.get_inputs()}
    peak: dict[str, float] = {}
    for k, feed in enumerate(feeds):
        if k >= max_samples:
            break
        for name, value in zip(names, sess.run(None, {n: v for n, v in feed.items() if n in inputs})):
            a = np.asarray(value)
            if name in producer and a.dtype.kind == "f" and a.size:
                finite = np.abs(a[np.isfinite(a)])
                m = float(finite.max()) if finite.size else 0.0
                peak[name] = max(peak.get(name, 0.0), m)
    return {producer[t]: m for t, m in peak.items() if m > limit}
@contextlib.contextmanager
def ort_run_failures(what: str) -> Iterator[None]:
    """ONNX Runtime failing while it *runs* a model that loaded (an attribute out of range, a
    Reshape that does not fit, an index past the end) is the model's inconsistency: one line."""
    try:
        yield
    except Exception as e:  # noqa: BLE001 - ORT raises its own exception types
        if isinstance(e, ModelError) or explain(e) is not None or not type(e).__module__.startswith("onnxruntime"):
            raise
        raise ModelError(f"ONNX Runtime fails running {what}: {ort_reason(e)}; the model is inconsistent for these "
                         "inputs: fix or re-export it") from e


def fp16_overflow_of_build(ctx, report: dict | None = None) -> list[tuple[str, float]]:
    """:func:`fp16_overflows` of a build (``ctx``: a BuildContext) on its calibration samples, or on 4
    random ones without: ``[(node, max |value|)]``, worst first; also stored as ``report["fp16_overflow"]``."""
    from deploykit.quant.calibration import random_samples

    samples = ctx.calibration if ctx.calibration is not None else random_samples(ctx.inputs, 4, seed=0)
    over = fp16_overflows(ctx.model, (samples.feed(i) for i in range(len(samples))))
    worst = sorted(over.items(), key=lambda kv: -kv[1])
    if worst and report is not None:
        report["fp16_overflow"] = {k: float(f"{v:.4g}") for k, v in worst[:20]}
    return worst
