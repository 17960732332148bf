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
