"""The onnx backend *node* test corpus, run through deploykit's import -> canonicalize -> export.

Shared by ``tests/roundtrip/test_onnx_backend_corpus.py`` and ``benchmarks/roundtrip_corpus.py``.

The cases are ``onnx/backend/test/data/node/*/model.onnx`` + ``test_data_set_0/input_*.pb``.
Recent onnx wheels no longer ship that folder; then the same cases are generated (once) from
``onnx.backend.test.case.node`` -- the code the folder is generated from -- into a cache folder
(``$DEPLOYKIT_CORPUS_DIR`` or ``~/.cache/deploykit/onnx-node-<onnx version>``).

Reference = onnxruntime on the *original* model (not the stored outputs); a case ORT cannot run
(or whose ORT outputs are not reproducible, e.g. random ops) is "not counted".
"""

from __future__ import annotations

import glob
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

PASS, FAIL, NOT_COUNTED = "pass", "fail", "not_counted"


def corpus_dir() -> Path:
    shipped = Path(onnx.__file__).parent / "backend" / "test" / "data" / "node"
    if shipped.is_dir() and any(shipped.glob("*/model.onnx")):
        return shipped
    env = os.environ.get("DEPLOYKIT_CORPUS_DIR")
    cache = Path(env) if env else Path.home() / ".cache" / "deploykit" / f"onnx-node-{onnx.__version__}"
    if not (cache / ".complete").exists():
        # pytest-xdist workers collect at the same time: one generates, the others wait for it
        import fcntl

        cache.parent.mkdir(parents=True, exist_ok=True)
        with open(cache.with_name(cache.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (cache / ".complete").exists():
                _generate(cache)
    return cache


def _generate(out: Path) -> None:
    import tempfile

    import onnx.backend.test.case.node as node_cases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = node_cases.collect_testcases()
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".tmp-", dir=out.parent))
    try:
        for case in cases:
            if not case.model or not case.data_sets:
                continue
            d = tmp / case.name
            (d / "test_data_set_0").mkdir(parents=True)
            (d / "model.onnx").write_bytes(case.model.SerializeToString())
            inputs, _ = case.data_sets[0]
            for j, (vi, value) in enumerate(zip(case.model.graph.input, inputs)):
                (d / "test_data_set_0" / f"input_{j}.pb").write_bytes(_to_proto(vi, value).SerializeToString())
        (tmp / ".complete").write_text(str(len(cases)))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def _to_proto(vi: onnx.ValueInfoProto, value):
    if vi.type.HasField("sequence_type"):
        return numpy_helper.from_list(value, vi.name)
    if vi.type.HasField("optional_type"):
        return numpy_helper.from_optional(value, vi.name)
    if vi.type.HasField("map_type"):
        return numpy_helper.from_dict(value, vi.name)
    return value if isinstance(value, onnx.TensorProto) else numpy_helper.from_array(value, vi.name)


def case_names() -> list[str]:
    return sorted(Path(p).parent.name for p in glob.glob(str(corpus_dir() / "*" / "model.onnx")))


def _read_input(vi: onnx.ValueInfoProto, path: Path):
    data = path.read_bytes()
    if vi.type.HasField("sequence_type"):
        proto = onnx.SequenceProto()
        proto.ParseFromString(data)
        return numpy_helper.to_list(proto)
    if vi.type.HasField("optional_type"):
        proto = onnx.OptionalProto()
        proto.ParseFromString(data)
        return numpy_helper.to_optional(proto)
    if vi.type.HasField("map_type"):
        proto = onnx.MapProto()
        proto.ParseFromString(data)
        return numpy_helper.to_dict(proto)
    proto = onnx.TensorProto()
    proto.ParseFromString(data)
    return numpy_helper.to_array(proto)


def _run(model: onnx.ModelProto, feeds: dict):
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}
    return sess.run(None, {k: v for k, v in feeds.items() if k in names})


def _mismatch(ref, got, path: str = "output") -> str | None:
    """A one-line reason why ``got`` differs from ``ref``, or None."""
    if isinstance(ref, list) or isinstance(got, list):
        if not (isinstance(ref, list) and isinstance(got, list)) or len(ref) != len(got):
            return f"{path}: sequence structure differs"
        for i, (r, g) in enumerate(zip(ref, got)):
            if (reason := _mismatch(r, g, f"{path}[{i}]")) is not None:
                return reason
        return None
    if ref is None or got is None:
        return None if ref is None and got is None else f"{path}: optional presence differs"
    ref, got = np.asarray(ref), np.asarray(got)
    if ref.shape != got.shape:
        return f"{path}: shape {got.shape} != {ref.shape}"
    if ref.dtype != got.dtype:
        return f"{path}: dtype {got.dtype} != {ref.dtype}"
    if ref.dtype.kind not in "fc":
        return None if np.array_equal(ref, got) else f"{path}: values differ"
    finite = np.isfinite(ref)
    scale = float(np.abs(ref[finite]).max()) if finite.any() else 0.0
    if np.allclose(got, ref, rtol=1e-4, atol=1e-5 + 1e-4 * scale, equal_nan=True):
        return None
    err = float(np.nanmax(np.abs(got.astype(np.float64) - ref.astype(np.float64))))
    return f"{path}: max abs error {err:.3g} (output range {scale:.3g})"


@dataclass
class CaseResult:
    name: str
    status: str
    reason: str = ""


def run_case(name: str) -> CaseResult:
    """Run one case: ORT(original) vs ORT(load_model -> canonicalize -> to_proto)."""
    from deploykit.ir import load_model, to_proto
    from deploykit.passes import canonicalize

    d = corpus_dir() / name
    original = onnx.load(str(d / "model.onnx"))
    feeds = {}
    for j, vi in enumerate(original.graph.input):
        path = d / "test_data_set_0" / f"input_{j}.pb"
        if path.exists():
            feeds[vi.name] = _read_input(vi, path)
    try:
        ref = _run(original, feeds)
    except Exception as e:  # noqa: BLE001
        return CaseResult(name, NOT_COUNTED, f"ORT cannot run the original: {_first_line(e)}")
    try:
        model = canonicalize(load_model(d / "model.onnx", require_static=False, buildable=False))
        proto = to_proto(model)
    except Exception as e:  # noqa: BLE001
        return CaseResult(name, FAIL, f"deploykit raised {type(e).__name__}: {_first_line(e)}")
    try:
        got = _run(proto, feeds)
    except Exception as e:  # noqa: BLE001
        return CaseResult(name, FAIL, f"ORT cannot run the canonicalized model: {_first_line(e)}")
    names = [o.name for o in original.graph.output]
    if [o.name for o in proto.graph.output] != names:
        return CaseResult(name, FAIL, f"output names changed: {[o.name for o in proto.graph.output]}")
    for out_name, r, g in zip(names, ref, got):
        if (reason := _mismatch(r, g, out_name)) is not None:
            again = _run(original, feeds)
            if any(_mismatch(a, b) for a, b in zip(ref, again)):
                return CaseResult(name, NOT_COUNTED, "ORT outputs of the original are not reproducible")
            return CaseResult(name, FAIL, reason)
    return CaseResult(name, PASS)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]
