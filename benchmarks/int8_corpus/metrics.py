"""Task metrics of the int8 corpus benchmark.

A :class:`Task` turns the outputs of one artifact on one evaluation set into a compact *summary*
(arrays saved as ``.npz``, so a later run reuses them) and scores a summary against the fp32
summary of the same set and the set's labels. Every task names its ``primary`` metric (higher is
better) -- what the goals compare -- and reports more beside it:

* :class:`Classify` top-1 vs labels (or arg-max agreement with fp32 when there are none), logits SQNR;
* :class:`CTC` character accuracy of greedy CTC decoding vs the rendered text, line accuracy, agreement;
* :class:`Detect` SQNR of each part of a concatenated head (boxes, scores), detection agreement with
  fp32 (class-aware NMS, then matched boxes at IoU >= 0.5, F1);
* :class:`Segment` mean IoU of the thresholded map vs fp32 (and text IoU vs the rendered mask);
* :class:`Embed` SQNR and cosine of embeddings, nearest-neighbour retrieval agreement with fp32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..datasets import textlines as T


def sqnr_db(ref: np.ndarray, x: np.ndarray) -> float:
    """10 log10(|ref|^2 / |ref - x|^2) over the whole array (inf when identical)."""
    ref = np.asarray(ref, np.float64)
    x = np.asarray(x, np.float64)
    if not np.isfinite(x).all():
        return float("-inf")
    noise = float(np.sum((ref - x) ** 2))
    signal = float(np.sum(ref ** 2))
    if noise == 0.0:
        return float("inf")
    return 10.0 * np.log10(max(signal, 1e-30) / noise)


def _cos_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    b = np.asarray(b, np.float64).reshape(len(b), -1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.where(den > 0, np.sum(a * b, axis=1) / np.maximum(den, 1e-30), 1.0)


class Task:
    primary = "value"
    unit = ""  # "%" (points) or "dB"

    def summarize(self, outs: list[dict], names: list[str]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def score(self, s: dict, ref: dict, labels) -> dict:
        raise NotImplementedError


def _first(outs: list[dict], names: list[str], output: str | None) -> np.ndarray:
    """The named output (default: the first) of every sample, stacked, its batch-1 axis removed."""
    key = output or names[0]
    arrs = [np.asarray(o[key], np.float32) for o in outs]
    return np.stack([a[0] if a.ndim and a.shape[0] == 1 else a for a in arrs])


@dataclass
class Classify(Task):
    output: str | None = None
    primary = "top1"
    unit = "%"

    def summarize(self, outs, names):
        return {"logits": _first(outs, names, self.output).reshape(len(outs), -1)}

    def score(self, s, ref, labels):
        pred, fp = s["logits"].argmax(1), ref["logits"].argmax(1)
        res = {"agree": 100.0 * float(np.mean(pred == fp)), "sqnr_db": sqnr_db(ref["logits"], s["logits"])}
        res["top1"] = 100.0 * float(np.mean(pred == np.asarray(labels))) if labels is not None else res["agree"]
        return res


@dataclass
class CTC(Task):
    charset: tuple
    primary = "char_acc"
    unit = "%"

    def summarize(self, outs, names):
        p = _first(outs, names, None)  # [n, T, C]
        return {"idx": p.argmax(-1).astype(np.int16), "maxp": p.max(-1).astype(np.float16)}

    def _decode(self, idx):
        out = []
        for row in idx:
            keep = np.ones(len(row), bool)
            keep[1:] = row[1:] != row[:-1]
            keep &= row != 0
            out.append("".join(self.charset[i] for i in row[keep]))
        return out

    def score(self, s, ref, labels):
        preds, fp = self._decode(s["idx"]), self._decode(ref["idx"])
        strip = lambda xs: [x.replace(" ", "") for x in xs]  # noqa: E731
        return {"char_acc": 100.0 * T.char_accuracy(preds, labels),
                "line_acc": 100.0 * float(np.mean([a == b for a, b in zip(strip(preds), strip(labels))])),
                "agree": 100.0 * float(np.mean([a == b for a, b in zip(strip(preds), strip(fp))]))}


def _iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of centre-format boxes a [N,4] and b [M,4]."""
    a1, a2 = a[:, None, :2] - a[:, None, 2:] / 2, a[:, None, :2] + a[:, None, 2:] / 2
    b1, b2 = b[None, :, :2] - b[None, :, 2:] / 2, b[None, :, :2] + b[None, :, 2:] / 2
    wh = np.clip(np.minimum(a2, b2) - np.maximum(a1, b1), 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area = lambda x: np.clip(x[..., 2], 0, None) * np.clip(x[..., 3], 0, None)  # noqa: E731
    return inter / np.maximum(area(a[:, None]) + area(b[None]) - inter, 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, conf: float, iou: float = 0.45, top: int = 100):
    """Class-aware NMS; returns (boxes, classes) of the kept detections."""
    keep_mask = scores >= conf
    boxes, scores, classes = boxes[keep_mask], scores[keep_mask], classes[keep_mask]
    order = np.argsort(-scores)[:1000]
    boxes, scores, classes = boxes[order], scores[order], classes[order]
    kept = []
    alive = np.ones(len(boxes), bool)
    for i in range(len(boxes)):
        if not alive[i]:
            continue
        kept.append(i)
        if len(kept) >= top:
            break
        same = (classes == classes[i]) & alive
        same[: i + 1] = False
        if same.any():
            idx = np.nonzero(same)[0]
            alive[idx[_iou_xywh(boxes[i: i + 1], boxes[idx])[0] > iou]] = False
    return boxes[kept], classes[kept]


def match_f1(ref_boxes, ref_cls, boxes, cls, iou: float = 0.5) -> tuple[int, int, int]:
    """(matched, n_ref, n_other): greedy one-to-one matches of the same class at IoU >= ``iou``."""
    if len(ref_boxes) == 0 or len(boxes) == 0:
        return 0, len(ref_boxes), len(boxes)
    m = _iou_xywh(ref_boxes, boxes) * (ref_cls[:, None] == cls[None, :])
    matched = 0
    while m.size and m.max() >= iou:
        i, j = np.unravel_index(int(m.argmax()), m.shape)
        matched += 1
        m[i, :] = 0
        m[:, j] = 0
    return matched, len(ref_boxes), len(boxes)


@dataclass
class Detect(Task):
    """``layout``: ``yolov8`` = ``[4 + classes, anchors]`` (pixel boxes then class probabilities);
    ``yolox`` = ``[anchors, 4 + 1 + classes]`` (raw box regression on strides 8/16/32 of a square
    ``size`` input, objectness, class probabilities), decoded as YOLOX does before NMS."""

    layout: str
    conf: float
    size: int = 0
    primary = "score_sqnr_db"
    unit = "dB"

    def summarize(self, outs, names):
        return {"raw": _first(outs, names, None)}

    def parts(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        if self.layout == "yolov8":
            return {"box": raw[:, :4], "score": raw[:, 4:]}
        return {"box": raw[..., :4], "score": raw[..., 4:]}

    def detections(self, raw_one: np.ndarray):
        if self.layout == "yolov8":
            boxes, probs = raw_one[:4].T, raw_one[4:].T
            scores, classes = probs.max(1), probs.argmax(1)
        else:
            grid, stride = self._grid()
            boxes = np.concatenate([(raw_one[:, :2] + grid) * stride, np.exp(np.minimum(raw_one[:, 2:4], 20)) * stride], 1)
            obj, probs = raw_one[:, 4], raw_one[:, 5:]
            scores, classes = obj * probs.max(1), probs.argmax(1)
        return nms(boxes, scores, classes, self.conf)

    def _grid(self):
        grids, strides = [], []
        for st in (8, 16, 32):
            g = self.size // st
            yy, xx = np.meshgrid(np.arange(g), np.arange(g), indexing="ij")
            grids.append(np.stack([xx.ravel(), yy.ravel()], 1))
            strides.append(np.full((g * g, 1), st))
        return np.concatenate(grids).astype(np.float32), np.concatenate(strides).astype(np.float32)

    def score(self, s, ref, labels):
        got, fp = self.parts(s["raw"]), self.parts(ref["raw"])
        res = {f"{k}_sqnr_db": sqnr_db(fp[k], got[k]) for k in fp}
        matched = n_ref = n_got = 0
        for a, b in zip(ref["raw"], s["raw"]):
            rb, rc = self.detections(a)
            gb, gc = self.detections(b)
            m, nr, ng = match_f1(rb, rc, gb, gc)
            matched, n_ref, n_got = matched + m, n_ref + nr, n_got + ng
        res["det_f1"] = 100.0 * 2 * matched / (n_ref + n_got) if n_ref + n_got else None
        res["fp32_boxes"] = n_ref
        return res


@dataclass
class Segment(Task):
    threshold: float
    primary = "miou"
    unit = "%"

    def summarize(self, outs, names):
        return {"prob": _first(outs, names, None).astype(np.float16)}

    def score(self, s, ref, labels):
        p = s["prob"].astype(np.float32).reshape(len(s["prob"]), -1)
        r = ref["prob"].astype(np.float32).reshape(len(p), -1)
        a, b = p >= self.threshold, r >= self.threshold
        ious = []
        for fg in (True, False):
            x, y = a == fg, b == fg
            union = np.sum(x | y)
            ious.append(np.sum(x & y) / union if union else 1.0)
        res = {"miou": 100.0 * float(np.mean(ious)), "fg_iou": 100.0 * float(ious[0]),
               "pixel_agree": 100.0 * float(np.mean(a == b)), "sqnr_db": sqnr_db(r, p)}
        if labels is not None:
            gt = np.asarray(labels).reshape(len(p), -1).astype(bool)
            res["text_iou_gt"] = 100.0 * float(np.sum(a & gt) / max(np.sum(a | gt), 1))
        return res


@dataclass
class Embed(Task):
    output: str | None = None
    primary = "sqnr_db"
    unit = "dB"

    def summarize(self, outs, names):
        return {"emb": _first(outs, names, self.output).reshape(len(outs), -1)}

    def score(self, s, ref, labels):
        e, r = s["emb"], ref["emb"]
        cos = _cos_rows(r, e)

        def nn(x):
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
            sim = x @ x.T
            np.fill_diagonal(sim, -np.inf)
            return sim.argmax(1)

        return {"sqnr_db": sqnr_db(r, e), "cos_mean": float(np.mean(cos)), "cos_min": float(np.min(cos)),
                "nn_agree": 100.0 * float(np.mean(nn(e.astype(np.float64)) == nn(r.astype(np.float64))))}
