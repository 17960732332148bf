"""Deterministic rendered text-line data for the PP-OCR models shipped in ``rapidocr_onnxruntime``.

Everything is generated locally with PIL and the DejaVu fonts; nothing is downloaded. The same
``(n, seed)`` always gives the same arrays (for the same PIL/FreeType/OpenCV versions), so a
calibration set and an evaluation set are disjoint when they use different seeds.

Two models (``rapidocr_onnxruntime/models/``):

* ``ch_ppocr_mobile_v2.0_cls_infer.onnx`` -- text direction classifier, labels ``["0", "180"]``.
  :func:`cls_dataset` renders lines, rotates half of them by 180 degrees, and preprocesses them the
  way ``rapidocr_onnxruntime/ch_ppocr_cls/text_cls.py`` does: the image is BGR (rapidocr reads
  with ``cv2.imread``), resized to height 48 keeping the aspect ratio with width
  ``min(ceil(48 * w / h), 192)`` (longer lines are squashed to 192), scaled
  ``(x / 255 - 0.5) / 0.5`` and zero-padded on the right to ``3x48x192`` (zero = mid gray after
  normalization), NCHW.
* ``ch_PP-OCRv4_rec_infer.onnx`` -- CTC text recognizer. :func:`rec_dataset` uses the same
  preprocessing as ``ch_ppocr_rec/text_recognize.py`` with the width pinned (default 320):
  the text is shortened until the rendered line fits ``W / 48`` so nothing is squashed (rapidocr
  would widen the batch instead). The character list is the ONNX metadata key ``"character"``
  (one per line) with ``"blank"`` prepended (CTC index 0) and ``" "`` appended, as rapidocr's
  ``CTCLabelDecode`` does; see :func:`rec_charset`. Texts are latin letters, digits,
  punctuation and common words (DejaVu has no CJK glyphs).

Functions: :func:`cls_dataset`, :func:`rec_dataset`, :func:`evaluate_cls`, :func:`evaluate_rec`,
:func:`ctc_greedy_decode`, :func:`char_accuracy`, :func:`model_path`, :func:`find_fonts`.
A ``run_fn`` maps one NCHW batch-1 float32 array to the model output (an array, or a dict /
list whose first element is the output).
"""

from __future__ import annotations

import glob
import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

__all__ = [
    "CLS_LABELS",
    "CLS_MODEL",
    "REC_MODEL",
    "FontsNotFound",
    "find_fonts",
    "model_path",
    "rec_charset",
    "render_line",
    "random_text",
    "cls_dataset",
    "rec_dataset",
    "evaluate_cls",
    "evaluate_rec",
    "ctc_greedy_decode",
    "edit_distance",
    "char_accuracy",
]

CLS_MODEL = "ch_ppocr_mobile_v2.0_cls_infer.onnx"
REC_MODEL = "ch_PP-OCRv4_rec_infer.onnx"
CLS_LABELS = ["0", "180"]
LINE_H = 48
CLS_W = 192

FONT_GLOBS = (
    "/usr/share/fonts/truetype/dejavu/DejaVu*.ttf",
    "/usr/share/fonts/dejavu/DejaVu*.ttf",  # Fedora / Arch layout
    "/usr/share/fonts/TTF/DejaVu*.ttf",
)
# The math font's latin glyphs are unusual and it is not a text face.
_FONT_EXCLUDE = ("MathTeXGyre",)


class FontsNotFound(RuntimeError):
    """No DejaVu TrueType fonts on this machine."""


# ---------------------------------------------------------------- resources


def find_fonts(extra_dir: str | os.PathLike | None = None) -> list[str]:
    """Sorted DejaVu ``.ttf`` paths (``$DEPLOYKIT_FONT_DIR`` or ``extra_dir`` searched first).

    Raises :class:`FontsNotFound` with an install hint when there are none.
    """
    patterns = list(FONT_GLOBS)
    for d in (extra_dir, os.environ.get("DEPLOYKIT_FONT_DIR")):
        if d:
            patterns.insert(0, str(Path(d) / "*.ttf"))
    found: list[str] = []
    for pat in patterns:
        found = sorted(p for p in glob.glob(pat) if not any(x in p for x in _FONT_EXCLUDE))
        if found:
            return found
    raise FontsNotFound(
        "no DejaVu fonts found (looked in: " + ", ".join(patterns) + "); install them "
        "(Debian/Ubuntu: apt-get install fonts-dejavu-core fonts-dejavu-extra) or set "
        "DEPLOYKIT_FONT_DIR to a folder of .ttf files"
    )


def model_path(name: str) -> Path:
    """Path of a model shipped in the installed ``rapidocr_onnxruntime`` wheel (no import of it)."""
    import importlib.util

    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("rapidocr_onnxruntime is not installed (pip install rapidocr-onnxruntime)")
    p = Path(list(spec.submodule_search_locations)[0]) / "models" / name
    if not p.exists():
        raise FileNotFoundError(f"{name} not found in the rapidocr_onnxruntime wheel ({p.parent})")
    return p


def rec_charset(model: str | os.PathLike | None = None) -> list[str]:
    """CTC class list of the rec model: ``["blank", *metadata "character" lines, " "]``."""
    import onnx

    m = onnx.load(str(model or model_path(REC_MODEL)), load_external_data=False)
    meta = {p.key: p.value for p in m.metadata_props}
    if "character" not in meta:
        raise KeyError(f"{model}: no 'character' key in the ONNX metadata_props")
    return ["blank", *meta["character"].splitlines(), " "]


@lru_cache(maxsize=256)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


# ---------------------------------------------------------------- text

_WORDS = (
    "the of and to in is for on that with as was by at from this are be or an it not have "
    "total price date name number order invoice page item quantity amount account address "
    "city street road phone email invoice receipt balance due paid tax net gross discount "
    "report model version build device target input output value error warning status open "
    "close start stop system data file table image line text speed power time hour minute "
    "north south east west left right center top bottom front back first last next previous "
    "monday tuesday friday january march june october december hello world please thank you "
    "welcome exit entrance floor room level station platform ticket gate flight train bus "
    "coffee water milk bread apple orange sugar salt green blue black white red yellow "
    "small large medium fast slow new old open free sale offer limited edition series"
).split()
_PUNCT = ".,:;!?-()/'\"%&+#@*=<>[]$_"
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LOWER = "abcdefghijklmnopqrstuvwxyz"
_DIGITS = "0123456789"


def _word(rng: np.random.Generator) -> str:
    w = str(rng.choice(_WORDS))
    r = rng.random()
    if r < 0.25:
        w = w.capitalize()
    elif r < 0.35:
        w = w.upper()
    return w


def random_text(rng: np.random.Generator, max_chars: int = 24) -> str:
    """One line of text: words, numbers, codes, dates, prices or random alphanumerics."""
    kind = rng.choice(["words", "words", "words", "mixed", "number", "code", "date", "price", "random"])
    if kind == "words":
        parts = [_word(rng) for _ in range(int(rng.integers(1, 5)))]
        s = " ".join(parts)
        if rng.random() < 0.4:
            s += str(rng.choice(list(".,:;!?")))
    elif kind == "mixed":
        s = f"{_word(rng)} {rng.integers(1, 10_000)}"
        if rng.random() < 0.5:
            s = f"{_word(rng)}: {s}"
    elif kind == "number":
        s = "".join(rng.choice(list(_DIGITS), int(rng.integers(3, 12))))
        if rng.random() < 0.4:
            s = "+" + s[:2] + " " + s[2:]
    elif kind == "code":
        a = "".join(rng.choice(list(_UPPER), int(rng.integers(2, 4))))
        b = "".join(rng.choice(list(_DIGITS), int(rng.integers(2, 6))))
        s = f"{a}{rng.choice(list('-/_#'))}{b}"
    elif kind == "date":
        sep = str(rng.choice(list("-/.")))
        s = f"{rng.integers(1, 29):02d}{sep}{rng.integers(1, 13):02d}{sep}{rng.integers(1990, 2031)}"
        if rng.random() < 0.3:
            s += f" {rng.integers(0, 24):02d}:{rng.integers(0, 60):02d}"
    elif kind == "price":
        cur = str(rng.choice(["$", "EUR ", "USD ", "#", ""]))
        s = f"{cur}{rng.integers(0, 5000)}.{rng.integers(0, 100):02d}"
        if rng.random() < 0.3:
            s = f"{_word(rng).capitalize()} {s}"
    else:
        pool = _UPPER + _LOWER + _DIGITS + _PUNCT
        s = "".join(rng.choice(list(pool), int(rng.integers(3, 14))))
    s = s.strip()
    return s[:max_chars].strip() or "0"


# ---------------------------------------------------------------- rendering


def render_line(text: str, rng: np.random.Generator, fonts: Sequence[str]) -> np.ndarray:
    """Render ``text`` as a cropped text-line image, uint8 ``HxWx3`` in **BGR** order (like
    ``cv2.imread``). Varied font, size, colours, background gradient, noise and slight blur;
    mostly dark text on a light background, sometimes light on dark."""
    font_path = str(fonts[int(rng.integers(len(fonts)))])
    size = int(rng.integers(26, 41))
    font = _font(font_path, size)
    l, t, r, b = font.getbbox(text)
    tw, th = max(r - l, 1), max(b - t, 1)
    # line height: the text box (cap height..descender) takes ~60-80% of it, like a detector crop
    h = max(int(round(size * rng.uniform(1.15, 1.45))), th + 4)
    pad_l, pad_r = int(rng.integers(2, 14)), int(rng.integers(2, 14))
    w = tw + pad_l + pad_r
    y0 = int(rng.integers(max(1, (h - th) // 2 - 3), max(2, (h - th) // 2 + 3))) if h > th + 2 else 0

    inverse = rng.random() < 0.12
    bg_lum = rng.uniform(185, 255) if not inverse else rng.uniform(10, 70)
    fg_lum = rng.uniform(0, 80) if not inverse else rng.uniform(190, 255)
    tint = rng.uniform(-25, 25, 3)
    bg = np.clip(bg_lum + tint, 0, 255)
    fg = np.clip(fg_lum + rng.uniform(-40, 40, 3) * (rng.random() < 0.4), 0, 255)

    base = np.empty((h, w, 3), np.float32)
    base[:] = bg
    if rng.random() < 0.5:  # horizontal or vertical illumination gradient
        g = rng.uniform(-30, 30)
        ramp = np.linspace(-0.5, 0.5, w if rng.random() < 0.5 else h, dtype=np.float32) * g
        base += ramp[None, :, None] if ramp.shape[0] == w else ramp[:, None, None]
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    ImageDraw.Draw(img).text((pad_l - l, y0 - t), text, font=font, fill=tuple(int(c) for c in fg))
    if rng.random() < 0.6:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.2, 0.9))))
    a = np.asarray(img, np.float32)
    sigma = rng.uniform(0, 8)
    if sigma > 0.5:
        a = a + rng.normal(0, sigma, a.shape).astype(np.float32)
    a = np.clip(a, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(a[:, :, ::-1])  # RGB -> BGR


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    try:
        import cv2  # what rapidocr uses (bilinear)

        return cv2.resize(img, (w, h))
    except ImportError:  # pragma: no cover - rapidocr depends on opencv
        return np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR))


def preprocess(img: np.ndarray, width: int, height: int = LINE_H) -> np.ndarray:
    """rapidocr ``resize_norm_img``: BGR uint8 HxWx3 -> float32 ``3 x height x width``."""
    ih, iw = img.shape[:2]
    rw = min(width, int(math.ceil(height * iw / float(ih))))
    x = _resize(img, rw, height).astype(np.float32).transpose(2, 0, 1) / 255.0
    x = (x - 0.5) / 0.5
    out = np.zeros((3, height, width), np.float32)
    out[:, :, :rw] = x
    return out


# ---------------------------------------------------------------- datasets


def cls_dataset(n: int, seed: int, fonts: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` lines for the direction classifier: ``x`` float32 ``[n,3,48,192]`` and labels int64
    (0 = upright, 1 = rotated 180 degrees). Exactly ``n // 2`` lines are rotated, in random order."""
    fonts = list(fonts or find_fonts())
    rng = np.random.default_rng([seed, 0xC15])
    labels = np.zeros(n, np.int64)
    labels[: n // 2] = 1
    rng.shuffle(labels)
    x = np.empty((n, 3, LINE_H, CLS_W), np.float32)
    for i in range(n):
        img = render_line(random_text(rng, max_chars=20), rng, fonts)
        if labels[i]:
            img = np.ascontiguousarray(img[::-1, ::-1])
        x[i] = preprocess(img, CLS_W)
    return x, labels


def rec_dataset(n: int, seed: int, width: int = 320, fonts: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """``n`` lines for the recognizer: ``x`` float32 ``[n,3,48,width]`` and the ground-truth
    strings. Text is shortened until the line fits the pinned width without squashing."""
    fonts = list(fonts or find_fonts())
    rng = np.random.default_rng([seed, 0x8EC])
    x = np.empty((n, 3, LINE_H, width), np.float32)
    texts: list[str] = []
    for i in range(n):
        text = random_text(rng, max_chars=28)
        while True:
            img = render_line(text, rng, fonts)
            if img.shape[1] * LINE_H <= width * img.shape[0] or len(text) <= 2:
                break
            text = text[: max(2, int(len(text) * 0.8))].rstrip() or text[:2]
        texts.append(text)
        x[i] = preprocess(img, width)
    return x, texts


# ---------------------------------------------------------------- metrics


def _first_output(out) -> np.ndarray:
    if isinstance(out, dict):
        out = next(iter(out.values()))
    elif isinstance(out, (list, tuple)):
        out = out[0]
    return np.asarray(out)


def evaluate_cls(run_fn: Callable[[np.ndarray], object], x: np.ndarray, labels: Sequence[int]) -> float:
    """Top-1 accuracy of ``run_fn`` (one ``[1,3,48,192]`` array -> ``[1,2]`` scores)."""
    correct = 0
    for i in range(len(x)):
        pred = int(np.argmax(_first_output(run_fn(x[i : i + 1])).reshape(-1)))
        correct += pred == int(labels[i])
    return correct / max(len(x), 1)


def ctc_greedy_decode(probs: np.ndarray, charset: Sequence[str]) -> str:
    """rapidocr ``CTCLabelDecode``: argmax per time step, merge repeats, drop blank (index 0)."""
    idx = np.asarray(probs).reshape(-1, len(charset)).argmax(axis=1)
    keep = np.ones(len(idx), bool)
    keep[1:] = idx[1:] != idx[:-1]
    keep &= idx != 0
    return "".join(charset[i] for i in idx[keep])


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def char_accuracy(preds: Sequence[str], texts: Sequence[str], ignore_space: bool = True) -> float:
    """``1 - sum(edit_distance) / sum(len(gt))`` over the set (clipped at 0).

    ``ignore_space`` (default, as PaddleOCR's ``RecMetric``) removes spaces from both strings
    first: the recognizer often emits a space for the margin / right padding of a crop, and the
    width of word gaps is not what is measured here."""
    if ignore_space:
        preds = [p.replace(" ", "") for p in preds]
        texts = [t.replace(" ", "") for t in texts]
    errs = sum(edit_distance(p, t) for p, t in zip(preds, texts))
    total = sum(len(t) for t in texts)
    return max(0.0, 1.0 - errs / max(total, 1))


def evaluate_rec(
    run_fn: Callable[[np.ndarray], object],
    x: np.ndarray,
    texts: Sequence[str],
    charset: Sequence[str],
    return_preds: bool = False,
    ignore_space: bool = True,
):
    """Character accuracy (see :func:`char_accuracy`) of CTC-greedy-decoded ``run_fn`` outputs;
    with ``return_preds`` also the decoded strings."""
    preds = [ctc_greedy_decode(_first_output(run_fn(x[i : i + 1])), charset) for i in range(len(x))]
    acc = char_accuracy(preds, texts, ignore_space=ignore_space)
    return (acc, preds) if return_preds else acc
