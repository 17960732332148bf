"""Real-model int8 accuracy through the CLI contract (issue 4 acceptance).

The PP-OCR models shipped in the ``rapidocr_onnxruntime`` wheel are built for ``host`` at int8
with rendered calibration text lines (``benchmarks/datasets/textlines.py``: PIL + DejaVu fonts,
deterministic seeds, nothing downloaded), then scored through the bundle's generated runner on a
DISJOINT held-out set rendered from other seeds. The fp32 reference is measured here, on the same
held-out set, with onnxruntime on the source model; the int8 bundle must stay within 0.5 points.

* cls (0/180 degree direction classifier): 64 calibration / 1000 evaluation lines, top-1 accuracy
  (one line = 0.1 points). With 400 lines one line was 0.25 points, so two lines decided the
  0.5-point budget: the range methods the engine chooses between all land within +-0.5 points of
  fp32 on this model, and which of them a set of 400 lines favours is chance (measured: 7-bit
  weights, three methods, 97.25-98.0 % on 400 lines vs 98.3-98.6 % on 1000 lines, fp32 98.0 / 98.8 %).
* rec (PP-OCRv4 10.8 MB CTC recognizer, input pinned to 1x3x48x320): 48 calibration / 120
  evaluation lines, character accuracy (1 - edit distance / length, spaces ignored).

Runtime: the tests' own work (rendering, fp32 and int8 evaluation) is ~10 s each; the rest is
``deploykit build``. cls takes ~15 s. rec took ~20 s with the foundation's min/max engine but
~330 s with the accuracy-search engine of commit cd4272f (1 CPU, shared machine), far over the
120 s aimed for. It stays enabled (it is the acceptance gate for the second real model) and is
explicitly marked ``slow``; it gets fast again when the engine meets issue 4's time goal (build
<= ORT MinMax + 50%, about 10 s for this model). Deselect with ``-k "not rec"`` meanwhile.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from deploykit.verification import load_runner_module

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
MAX_DROP_POINTS = 0.5


def _textlines():
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    try:
        mod = importlib.import_module("datasets.textlines")
        if Path(mod.__file__).resolve().parent.parent == BENCH:
            return mod
    except ImportError:
        pass
    # another top-level ``datasets`` package (e.g. Hugging Face) is already imported: load by path
    spec = importlib.util.spec_from_file_location("deploykit_bench_textlines", BENCH / "datasets" / "textlines.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


T = _textlines()


@pytest.fixture(scope="module")
def fonts():
    try:
        return T.find_fonts()
    except T.FontsNotFound as e:
        pytest.skip(str(e))


def _model(name: str) -> Path:
    try:
        return T.model_path(name)
    except FileNotFoundError as e:
        pytest.skip(str(e))


def _fp32_run_fn(model: Path):
    ort = pytest.importorskip("onnxruntime")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    return lambda x: sess.run(None, {"x": x})[0]


def _build_int8(cli, model: Path, calib: np.ndarray, shape: str, tmp_path: Path):
    calib_path = tmp_path / "calib.npy"
    np.save(calib_path, calib)
    out = tmp_path / "bundle"
    res = cli("build", model, "--target", "host", "--precision", "int8", "--calibration", calib_path,
              "--input-shape", shape, "-o", out, "--force")
    assert res.returncode == 0, res.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["precision"] == "int8"
    runner = load_runner_module(out).Runner(str(out), num_threads=1)
    return lambda x: runner.run({"x": x})


def test_ppocr_cls_int8_accuracy(cli, tmp_path, fonts):
    model = _model(T.CLS_MODEL)
    calib, _ = T.cls_dataset(64, seed=11, fonts=fonts)
    x, labels = T.cls_dataset(1000, seed=21, fonts=fonts)  # 1 line = 0.1 points (see the module docstring)

    fp32 = T.evaluate_cls(_fp32_run_fn(model), x, labels)
    assert fp32 >= 0.95, f"fp32 reference accuracy {fp32:.3f}: the rendered data no longer fits the model"

    int8 = T.evaluate_cls(_build_int8(cli, model, calib, "x:1,3,48,192", tmp_path), x, labels)
    drop = (fp32 - int8) * 100
    assert drop <= MAX_DROP_POINTS + 1e-9, (
        f"PP-OCR cls int8 top-1 {int8:.4f} vs fp32 {fp32:.4f} on {len(x)} held-out lines: "
        f"-{drop:.2f} points (budget {MAX_DROP_POINTS})")


@pytest.mark.slow  # ~330 s with engine cd4272f (see module docstring); target < 120 s
def test_ppocr_rec_int8_char_accuracy(cli, tmp_path, fonts):
    model = _model(T.REC_MODEL)
    charset = T.rec_charset(model)
    calib, _ = T.rec_dataset(48, seed=12, width=320, fonts=fonts)
    x, texts = T.rec_dataset(120, seed=22, width=320, fonts=fonts)

    fp32 = T.evaluate_rec(_fp32_run_fn(model), x, texts, charset)
    assert fp32 >= 0.95, f"fp32 reference char accuracy {fp32:.3f}: the rendered data no longer fits the model"

    int8, preds = T.evaluate_rec(_build_int8(cli, model, calib, "x:1,3,48,320", tmp_path), x, texts, charset,
                                 return_preds=True)
    drop = (fp32 - int8) * 100
    wrong = [(t, p) for t, p in zip(texts, preds) if t.replace(" ", "") != p.replace(" ", "")][:5]
    assert drop <= MAX_DROP_POINTS + 1e-9, (
        f"PP-OCR rec int8 char accuracy {int8:.4f} vs fp32 {fp32:.4f} on {len(x)} held-out lines: "
        f"-{drop:.2f} points (budget {MAX_DROP_POINTS}); e.g. (truth, int8): {wrong}")
