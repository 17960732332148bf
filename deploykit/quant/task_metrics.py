"""Task metrics: accuracy as the user measures it, on evaluation data with labels.

``--eval-data FILE.npz`` holds one array per model input (samples stacked on axis 0, each shaped
like the input without its batch dimension of 1, as calibration ``.npz`` files) and the labels
(every other array, samples on axis 0). It is never used for calibration. ``--metric`` names how
the first graph output is scored against ``labels`` (custom functions get every output):

======================  ==================================================================
``top1``, ``topk:K``    classifier: ``labels`` [N] class indices; arg-max / top-K over the last axis
``argmax[:AXIS]``       per-position classes (segmentation, tagging): ``labels`` [N, ...] shaped like
                        the output without batch and class axis (default class axis: 1 for rank-4
                        outputs, else the last); label -1 is ignored
``ctc[:BLANK]``         CTC recognizer, output [1, T, C]: ``labels`` [N, L] class indices padded with -1;
                        character accuracy (1 - edit distance / length), greedy decoding, blank 0
``detection``           YOLOv8-style output [1, 4 + classes, anchors] (cx, cy, w, h in input pixels, class
                        scores): ``labels`` [N, M, 5] (class, x1, y1, x2, y2) padded with class -1; mAP@0.5
``sqnr``                no labels: SQNR (dB) of every output against the fp32 model
``FILE.py:FUNCTION``    your function ``(outputs, labels) -> float`` (higher is better): ``outputs`` maps each
                        output name to its samples stacked on axis 0, ``labels`` every label array;
                        imported only when named
======================  ==================================================================

Values of the built-in label metrics are fractions in [0, 1]; budgets on them are in points
(``top1=-0.5``: at most 0.5 points under fp32).
"""

from __future__ import annotations

import importlib.util
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deploykit.errors import CalibrationError, DeployError

Outputs = Sequence[dict[str, np.ndarray]]  # per sample: output name -> array (batch 1)


@dataclass
class EvalSet:
    """Evaluation samples (one feed per sample, batch 1) and their labels."""

    feeds: list[dict[str, np.ndarray]]
    labels: dict[str, np.ndarray]
    path: str

    def __len__(self) -> int:
        return len(self.feeds)


def load_eval_data(path: str | Path, inputs) -> EvalSet:
    """Read an ``--eval-data`` file; ``inputs``: the model's input specs (name, shape, dtype)."""
    p = Path(path)
    if p.suffix.lower() != ".npz":
        raise CalibrationError(f"--eval-data {str(p)!r}: use a .npz with one array per model input "
                               f"({', '.join(repr(s.name) for s in inputs)}) plus the label arrays")
    if not p.is_file():
        raise CalibrationError(f"--eval-data {str(p)!r}: no such file")
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: np.asarray(z[k]) for k in z.files}
    except (ValueError, OSError) as e:
        raise CalibrationError(f"--eval-data {str(p)!r} is not a readable .npz without pickled objects: {e}") from e
    missing = [s.name for s in inputs if s.name not in arrays]
    if missing:
        raise CalibrationError(f"--eval-data {str(p)!r} has no array for input(s) {', '.join(map(repr, missing))}; "
                               f"it holds {', '.join(map(repr, arrays)) or 'nothing'}")
    counts = {k: (a.shape[0] if a.ndim else 0) for k, a in arrays.items()}
    n = counts[inputs[0].name]
    bad = [k for k, c in counts.items() if c != n]
    if n == 0 or bad:
        raise CalibrationError(f"--eval-data {str(p)!r}: every array needs the same number of samples on axis 0 "
                               f"({n} for {inputs[0].name!r}; differs: {', '.join(map(repr, bad)) or 'none'})")
    feeds = []
    for i in range(n):
        feed = {}
        for s in inputs:
            x = arrays[s.name][i]
            shape = [d for d in s.shape]
            if len(shape) == x.ndim + 1 and shape and shape[0] in (1, -1):
                x = x[None]
            if not np.issubdtype(x.dtype, np.number) and x.dtype != np.bool_:
                raise CalibrationError(f"--eval-data input {s.name!r} has dtype {x.dtype}; use numbers")
            if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
                raise CalibrationError(f"--eval-data input {s.name!r} sample {i} has NaN/Inf values")
            feed[s.name] = x.astype(np.dtype(s.dtype), copy=False)
        feeds.append(feed)
    labels = {k: a for k, a in arrays.items() if k not in {s.name for s in inputs}}
    return EvalSet(feeds, labels, str(p))


@dataclass
class TaskMetric:
    """:ivar name: as given to ``--metric``. :ivar unit: ``fraction`` (shown in %, budgets in
    points), ``dB`` or ``value``. :ivar fn: ``(outputs, labels, refs) -> float``."""

    name: str
    unit: str
    fn: Callable[[Outputs, dict[str, np.ndarray], Outputs | None], float]
    needs_labels: bool = True

    def __call__(self, outputs: Outputs, labels: dict[str, np.ndarray], refs: Outputs | None = None) -> float:
        return float(self.fn(outputs, labels, refs))

    def format(self, value: float) -> str:
        if self.unit == "fraction":
            return f"{100 * value:.2f} %"
        return f"{value:.2f} dB" if self.unit == "dB" else f"{value:.4g}"

    def drop_text(self, drop: float) -> str:
        return f"{drop:g} pt" if self.unit == "fraction" else (f"{drop:g} dB" if self.unit == "dB" else f"{drop:g}")

    def scale(self) -> float:
        """Budget units per metric unit (points for fractions)."""
        return 100.0 if self.unit == "fraction" else 1.0


def _first(outputs: Outputs) -> list[np.ndarray]:
    return [np.asarray(next(iter(o.values()))) for o in outputs]


def _labels(labels: dict[str, np.ndarray], metric: str) -> np.ndarray:
    if "labels" in labels:
        return labels["labels"]
    if len(labels) == 1:
        return next(iter(labels.values()))
    raise DeployError(f"--metric {metric} needs an array named 'labels' in --eval-data "
                      f"(it holds {', '.join(map(repr, labels)) or 'no label array'})")


def _topk(k: int):
    def fn(outputs, labels, refs):
        y = _labels(labels, "top1" if k == 1 else f"topk:{k}")
        hits = 0
        for out, lab in zip(_first(outputs), y):
            scores = out.reshape(-1, out.shape[-1])[0]
            top = np.argsort(-scores, kind="stable")[:k]
            hits += int(int(lab) in top.tolist())
        return hits / max(len(outputs), 1)
    return fn


def _argmax(axis: int | None):
    def fn(outputs, labels, refs):
        y = _labels(labels, "argmax")
        right = total = 0
        for out, lab in zip(_first(outputs), y):
            a = axis if axis is not None else (1 if out.ndim == 4 else out.ndim - 1)
            pred = np.argmax(out, axis=a)
            pred = pred[0] if pred.ndim == lab.ndim + 1 and pred.shape[0] == 1 else pred
            if pred.shape != lab.shape:
                raise DeployError(f"--metric argmax: labels of shape {list(lab.shape)} do not match the arg-max of "
                                  f"the output, {list(pred.shape)}")
            valid = lab >= 0
            right += int(np.sum((pred == lab) & valid))
            total += int(np.sum(valid))
        return right / max(total, 1)
    return fn


def _edit_distance(a: Sequence[int], b: Sequence[int]) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
        prev = cur
    return prev[-1]


def ctc_greedy(out: np.ndarray, blank: int = 0) -> list[int]:
    """Best path of a [T, C] (or [1, T, C]) CTC output: arg-max, repeats merged, blanks dropped."""
    seq = np.argmax(out.reshape(-1, out.shape[-1]), axis=-1)
    result, last = [], None
    for c in seq.tolist():
        if c != last and c != blank:
            result.append(c)
        last = c
    return result


def _ctc(blank: int):
    def fn(outputs, labels, refs):
        y = _labels(labels, "ctc")
        errors = length = 0
        for out, lab in zip(_first(outputs), y):
            truth = [int(v) for v in np.ravel(lab) if v >= 0]
            errors += _edit_distance(ctc_greedy(out, blank), truth)
            length += len(truth)
        return max(0.0, 1.0 - errors / max(length, 1))
    return fn


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return inter / np.maximum(area, 1e-9)


def yolo_detections(out: np.ndarray, conf: float = 0.25, iou: float = 0.7) -> list[tuple[int, float, np.ndarray]]:
    """(class, score, xyxy box) after per-class NMS of a YOLOv8-style [1, 4 + C, A] output."""
    y = out.reshape(out.shape[-2], out.shape[-1]) if out.ndim == 3 else out
    boxes, scores = y[:4].T, y[4:].T
    cls = np.argmax(scores, axis=1)
    best = scores[np.arange(len(cls)), cls]
    keep = best >= conf
    xyxy = np.stack([boxes[:, 0] - boxes[:, 2] / 2, boxes[:, 1] - boxes[:, 3] / 2,
                     boxes[:, 0] + boxes[:, 2] / 2, boxes[:, 1] + boxes[:, 3] / 2], axis=1)[keep]
    cls, best = cls[keep], best[keep]
    found = []
    for c in np.unique(cls):
        idx = np.nonzero(cls == c)[0]
        idx = idx[np.argsort(-best[idx], kind="stable")]
        while idx.size:
            i = idx[0]
            found.append((int(c), float(best[i]), xyxy[i]))
            idx = idx[1:][_iou(xyxy[i], xyxy[idx[1:]]) < iou] if idx.size > 1 else idx[1:]
    return found


def _detection(outputs, labels, refs):
    y = _labels(labels, "detection")
    per_class: dict[int, list[tuple[float, bool]]] = {}
    positives: dict[int, int] = {}
    for out, lab in zip(_first(outputs), y):
        truth = [(int(t[0]), np.asarray(t[1:5], np.float64)) for t in np.asarray(lab).reshape(-1, 5) if t[0] >= 0]
        for c, _ in truth:
            positives[c] = positives.get(c, 0) + 1
        used = [False] * len(truth)
        for c, score, box in sorted(yolo_detections(out), key=lambda d: -d[1]):
            match = -1
            best = 0.5
            for j, (tc, tb) in enumerate(truth):
                if tc == c and not used[j]:
                    v = float(_iou(box, tb[None])[0])
                    if v >= best:
                        best, match = v, j
            if match >= 0:
                used[match] = True
            per_class.setdefault(c, []).append((score, match >= 0))
    aps = []
    for c, n_pos in positives.items():
        dets = sorted(per_class.get(c, []), key=lambda d: -d[0])
        tp = np.cumsum([d[1] for d in dets]) if dets else np.zeros(0)
        fp = np.cumsum([not d[1] for d in dets]) if dets else np.zeros(0)
        recall = tp / n_pos if dets else np.zeros(0)
        precision = tp / np.maximum(tp + fp, 1) if dets else np.zeros(0)
        mrec = np.concatenate([[0.0], recall, [1.0]])
        mpre = np.concatenate([[1.0], precision, [0.0]])
        mpre = np.maximum.accumulate(mpre[::-1])[::-1]
        aps.append(float(np.sum((mrec[1:] - mrec[:-1]) * mpre[1:])))
    return float(np.mean(aps)) if aps else 0.0


def _sqnr(outputs, labels, refs):
    if refs is None:
        return math.inf
    signal = noise = 0.0
    for out, ref in zip(outputs, refs):
        for name, r in ref.items():
            r64 = np.asarray(r, np.float64)
            signal += float(np.sum(r64 ** 2))
            noise += float(np.sum((np.asarray(out[name], np.float64) - r64) ** 2))
    return math.inf if noise == 0 else 10 * math.log10(max(signal, 1e-300) / noise)


def _custom(spec: str) -> TaskMetric:
    file, _, func = spec.rpartition(":")
    path = Path(file)
    if not path.is_file():
        raise DeployError(f"--metric {spec!r}: no such file {file!r}; write FILE.py:FUNCTION")
    try:
        module_spec = importlib.util.spec_from_file_location(f"deploykit_user_metric_{abs(hash(spec))}", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - the user's code: report, do not crash
        raise DeployError(f"--metric {spec!r}: importing {file!r} failed: {type(e).__name__}: {e}") from e
    fn = getattr(module, func, None)
    if not callable(fn):
        raise DeployError(f"--metric {spec!r}: {file!r} has no function {func!r}")

    def call(outputs, labels, refs):
        stacked = {name: np.concatenate([np.asarray(o[name]) for o in outputs]) for name in outputs[0]}
        try:
            value = float(fn(stacked, dict(labels)))
        except Exception as e:  # noqa: BLE001
            raise DeployError(f"--metric {spec!r}: {func}() failed: {type(e).__name__}: {e}") from e
        if not math.isfinite(value):
            raise DeployError(f"--metric {spec!r}: {func}() returned {value}; return a finite number (higher is better)")
        return value

    return TaskMetric(func, "value", call)


METRICS = ("top1", "topk:K", "argmax[:AXIS]", "ctc[:BLANK]", "detection", "sqnr", "FILE.py:FUNCTION")


def parse_metric(text: str) -> TaskMetric:
    """A :class:`TaskMetric` from its ``--metric`` text (see the module docstring)."""
    t = text.strip()
    if t == "top1":
        return TaskMetric("top1", "fraction", _topk(1))
    if m := re.fullmatch(r"topk:(\d+)", t):
        return TaskMetric(t, "fraction", _topk(max(1, int(m.group(1)))))
    if m := re.fullmatch(r"argmax(?::(-?\d+))?", t):
        return TaskMetric("argmax", "fraction", _argmax(int(m.group(1)) if m.group(1) else None))
    if m := re.fullmatch(r"ctc(?::(\d+))?", t):
        return TaskMetric("ctc", "fraction", _ctc(int(m.group(1) or 0)))
    if t == "detection":
        return TaskMetric("detection", "fraction", _detection)
    if t == "sqnr":
        return TaskMetric("sqnr", "dB", _sqnr, needs_labels=False)
    if re.fullmatch(r".+\.py:[A-Za-z_][A-Za-z0-9_]*", t):
        return _custom(t)
    raise DeployError(f"unknown --metric {text!r}; use one of: {', '.join(METRICS)}")


@dataclass(frozen=True)
class TaskBudget:
    """int8 may fall at most ``drop`` (points for fraction metrics, dB for sqnr) under fp32 on the task metric."""

    metric: TaskMetric
    drop: float = 0.5

    @classmethod
    def parse(cls, metric: TaskMetric, text: str | None) -> TaskBudget:
        if not text:
            return cls(metric, {"fraction": 0.5, "dB": 25.0}.get(metric.unit, 0.0))
        m = re.fullmatch(r"\s*(?:([A-Za-z0-9_:.\-]+)\s*=\s*)?-?\s*([0-9.eE+]+)\s*(?:pt|points|dB)?\s*", text)
        if not m or (m.group(1) and m.group(1) not in (metric.name, "metric", "task")):
            raise DeployError(f"--accuracy-budget {text!r}: with --metric {metric.name}, give the largest drop allowed "
                              f"under fp32, e.g. {metric.name}=-0.5 ({metric.drop_text(0.5)})")
        return cls(metric, float(m.group(2)))

    def threshold(self, fp32_value: float) -> float:
        if self.metric.unit == "dB":  # SQNR against fp32 itself: the number is the minimum, not a drop
            return self.drop
        return fp32_value - self.drop / self.metric.scale()

    def met(self, value: float, fp32_value: float) -> bool:
        return value >= self.threshold(fp32_value) - 1e-12

    def __str__(self) -> str:
        if self.metric.unit == "dB":
            return f"{self.metric.name} >= {self.drop:g} dB"
        return f"{self.metric.name} >= fp32 - {self.metric.drop_text(self.drop)}"


def summary(budget: TaskBudget, fp32: float, value: float, samples: int, precision: str = "int8") -> dict[str, Any]:
    """The report's ``task_metric`` entry."""
    m = budget.metric
    return {"metric": m.name, "unit": m.unit, "samples": samples, "fp32": _json(fp32), precision: _json(value),
            "delta": _json((value - fp32) * m.scale()) if math.isfinite(value - fp32) else None,
            "budget": str(budget), "met": budget.met(value, fp32)}


def _json(v: float):
    return v if math.isfinite(v) else ("inf" if v > 0 else "-inf" if v < 0 else "nan")


def parse_metric_unit_format(unit: str) -> Callable[[Any], str]:
    """Formats values of a metric with ``unit`` (values may be the strings 'inf'/'nan' from JSON)."""
    def fmt(v: Any) -> str:
        if isinstance(v, str):
            return v
        if unit == "fraction":
            return f"{100 * v:.2f} %"
        return f"{v:.2f} dB" if unit == "dB" else f"{v:.4g}"
    return fmt
