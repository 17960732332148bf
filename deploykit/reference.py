"""fp32 reference runs of the *source* model in ONNX Runtime."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np


def reference_session(model_path: str | Path, threads: int = 1):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    return ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])


def run_reference(
    model_path: str | Path, feeds: Iterable[Mapping[str, np.ndarray]], output_names: list[str], threads: int = 1
) -> list[dict[str, np.ndarray]]:
    """Outputs of the source model for each feed (one sample per feed)."""
    sess = reference_session(model_path, threads)
    wanted = {i.name for i in sess.get_inputs()}
    results = []
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
        raise ModelError(f"ONNX Runtime cannot load the model with these input shapes: {reason.strip()[:400]}",
                         hint="a control-flow branch not taken at these shapes may still be type-checked; "
                              "try other --input-shape values or export the model for one input size") from None
