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
