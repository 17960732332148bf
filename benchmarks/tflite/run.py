"""Benchmark of the tflite backend, side by side with onnx2tf: ``python benchmarks/tflite/run.py``.

Models: PP-OCR mobile v2 cls (input pinned 1x3x48x192), PP-OCRv4 rec (pinned 1x3x48x320) from the
``rapidocr_onnxruntime`` wheel, and the small test CNN (tests/modelzoo.py). For each:

* ``deploykit build --target rpi4`` (fp32, fp16, int8) in a fresh process;
* onnx2tf (``--onnx2tf`` / default; ``--no-onnx2tf`` to skip) in a throwaway venv
  (``~/.cache/deploykit/venvs/onnx2tf``, created on first use with ``pip install onnx2tf==ONNX2TF``,
  which pins TensorFlow and the rest), converting the same ONNX file with the same calibration
  samples (``-cind x calib_nhwc.npy MEAN STD -oiqt``). onnx2tf also reads an image sample file
  (``calibration_image_sample_data_20x128x128x3_float32.npy``) from the current folder, else
  downloads it from GitHub: we write one locally from our own text-line renders, so nothing is
  downloaded.

Measured, in one run on this machine: conversion wall time and peak RSS of the whole process tree
(/proc polled every 20 ms, summed over the child and its descendants), latency of every .tflite in
the same harness (ai-edge-litert Interpreter, XNNPACK, 2 threads, ``invoke()`` only, 100 runs, best
p50 of three), accuracy on rendered text lines (benchmarks/datasets/textlines.py: cls top-1, rec
character accuracy), install size of ``pip install '.[tflite]'`` in a fresh venv vs the onnx2tf
venv. Goals from issue 5 are checked and written as PASS/FAIL to benchmarks/results/tflite.md/json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
import modelzoo  # noqa: E402
from datasets import textlines  # noqa: E402
from hostinfo import cpu_model, memory_gb  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
THREADS = 2
RUNS = 100
ONNX2TF = "1.29.24"
VENVS = Path(os.environ.get("DEPLOYKIT_BENCH_VENVS", Path.home() / ".cache" / "deploykit" / "venvs"))
ENV = {**os.environ, "DEPLOYKIT_PLUGINS": "profiles,onnxruntime,tflite"}
SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"  # what onnx2tf would download

BUILD_SNIPPET = """
import sys, time
t = time.perf_counter()
from deploykit.cli.app import app
t1 = time.perf_counter()
try:
    app(sys.argv[1:])
except SystemExit as e:
    if e.code:
        raise
print("BENCH", t1 - t, time.perf_counter() - t1)
"""


# ---------------------------------------------------------------- process-tree measurement

def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    return kids


def _tree_rss(pid: int) -> int:
    kids, todo, total, page = _children(), [pid], 0, os.sysconf("SC_PAGE_SIZE")
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * page
        except OSError:
            pass
        todo.extend(kids.get(p, []))
    return total


def measured(cmd: list[str], env=None, cwd=None, timeout: float = 3600) -> dict:
    """Run ``cmd``; wall time, peak RSS of its process tree (MB), exit code, output tail."""
    t = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, text=True)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, _tree_rss(proc.pid))
            if time.perf_counter() - t > timeout:
                proc.kill()
            time.sleep(0.02)
        wall = time.perf_counter() - t
        log.seek(0)
        out = log.read()
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(peak / 2**20, 1), "rc": proc.returncode, "log": out}


# ---------------------------------------------------------------- models and data

def models(tmp: Path, n_eval_cls: int, n_eval_rec: int) -> dict:
    xc, _ = textlines.cls_dataset(64, seed=1)
    xt, yt = textlines.cls_dataset(n_eval_cls, seed=2)
    rc, _ = textlines.rec_dataset(64, seed=3)
    rt, rtexts = textlines.rec_dataset(n_eval_rec, seed=4)
    charset = textlines.rec_charset()
    cnn = modelzoo.small_cnn(tmp / "small_cnn.onnx")
    cnn_calib = np.random.default_rng(0).standard_normal((32, 3, 16, 16)).astype(np.float32)
    ocr_norm = ("[[[[0.5,0.5,0.5]]]]", "[[[[0.5,0.5,0.5]]]]")  # PP-OCR: (x/255 - 0.5) / 0.5
    return {
        "ppocr_cls_mobile_v2": dict(
            path=textlines.model_path(textlines.CLS_MODEL), input="x", shape=[1, 3, 48, 192], calib=xc,
            calib01=xc * 0.5 + 0.5, norm=ocr_norm, metric="top-1 %",
            evaluate=lambda fn: 100.0 * textlines.evaluate_cls(fn, xt, yt), sample=xt[:1]),
        "ppocr_rec_v4": dict(
            path=textlines.model_path(textlines.REC_MODEL), input="x", shape=[1, 3, 48, 320], calib=rc,
            calib01=rc * 0.5 + 0.5, norm=ocr_norm, metric="char acc %",
            evaluate=lambda fn: 100.0 * textlines.evaluate_rec(fn, rt, rtexts, charset), sample=rt[:1]),
        "small_cnn": dict(
            path=cnn, input="image", shape=[1, 3, 16, 16], calib=cnn_calib, calib01=cnn_calib,
            norm=("[[[[0.0]]]]", "[[[[1.0]]]]"), metric=None, evaluate=None, sample=cnn_calib[:1]),
    }


# ---------------------------------------------------------------- one harness for every .tflite

class TFLite:
    """ai-edge-litert Interpreter (XNNPACK, THREADS) taking NCHW float32, as the ONNX model does."""

    def __init__(self, path: Path):
        from ai_edge_litert.interpreter import Interpreter

        self.it = Interpreter(model_path=str(path), num_threads=THREADS)
        self.it.allocate_tensors()
        self.inp = self.it.get_input_details()[0]
        self.out = self.it.get_output_details()[0]

    def feed(self, x: np.ndarray) -> np.ndarray:
        shape = list(self.inp["shape"])
        if list(x.shape) != shape and x.ndim == 4 and list(x.transpose(0, 2, 3, 1).shape) == shape:
            x = x.transpose(0, 2, 3, 1)
        x = np.ascontiguousarray(x.reshape(shape))
        if self.inp["dtype"] != np.float32:
            s, z = self.inp["quantization"]
            x = np.clip(np.round(x / s + z), -128, 127).astype(self.inp["dtype"])
        return x

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.it.set_tensor(self.inp["index"], self.feed(x))
        self.it.invoke()
        y = self.it.get_tensor(self.out["index"])
        if self.out["dtype"] != np.float32:
            s, z = self.out["quantization"]
            y = (y.astype(np.float32) - z) * s
        return y

    def latency(self, x: np.ndarray) -> dict:
        self.it.set_tensor(self.inp["index"], self.feed(x))
        best = None
        for _ in range(3):  # the machine is shared: keep the best of three medians
            for _ in range(10):
                self.it.invoke()
            ts = []
            for _ in range(RUNS):
                t = time.perf_counter()
                self.it.invoke()
                ts.append((time.perf_counter() - t) * 1e3)
            p50, p90 = float(np.percentile(ts, 50)), float(np.percentile(ts, 90))
            best = (p50, p90) if best is None or p50 < best[0] else best
        return {"p50_ms": round(best[0], 3), "p90_ms": round(best[1], 3)}


def evaluate(m: dict, fn) -> float | None:
    return None if m["evaluate"] is None else round(m["evaluate"](fn), 2)


# ---------------------------------------------------------------- deploykit

def deploykit_build(key: str, m: dict, tmp: Path, precision: str) -> dict:
    out = tmp / f"dk-{key}-{precision}"
    cmd = [sys.executable, "-c", BUILD_SNIPPET, "build", str(m["path"]), "--target", "rpi4", "--precision", precision,
           "-o", str(out), "--force", "--input-shape", f"{m['input']}:{','.join(map(str, m['shape']))}"]
    if precision == "int8":
        np.save(tmp / f"{key}-calib.npy", m["calib"])
        cmd += ["--calibration", str(tmp / f"{key}-calib.npy")]
    r = measured(cmd, env=ENV, cwd=ROOT)
    if r["rc"] != 0:
        return {"error": r["log"].strip().splitlines()[-1][:400] if r["log"].strip() else f"exit {r['rc']}",
                "build_s": r["wall_s"], "peak_rss_mb": r["peak_rss_mb"]}
    manifest = json.loads((out / "manifest.json").read_text())
    tfl = TFLite(out / "model.tflite")
    bench = [ln.split() for ln in r["log"].splitlines() if ln.startswith("BENCH")]
    res = {"build_s": r["wall_s"], "peak_rss_mb": r["peak_rss_mb"],
           "import_s": round(float(bench[-1][1]), 2) if bench else None,
           "in_process_build_s": round(float(bench[-1][2]), 2) if bench else None,
           "model_kb": round((out / "model.tflite").stat().st_size / 1024, 1),
           "verification": manifest["verification"]["status"], **tfl.latency(m["sample"])}
    res["accuracy"] = evaluate(m, tfl)
    return res


# ---------------------------------------------------------------- onnx2tf

def onnx2tf_venv() -> Path:
    venv = VENVS / "onnx2tf"
    py = venv / "bin" / "python"
    ok = py.exists() and subprocess.run([str(py), "-c", "import onnx2tf, tensorflow, onnxsim"],
                                        capture_output=True).returncode == 0
    if not ok:
        print(f"creating {venv} (onnx2tf=={ONNX2TF} + TensorFlow; a few minutes)", flush=True)
        shutil.rmtree(venv, ignore_errors=True)
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        # onnx2tf's wheel pins its requirements (tensorflow, tf-keras, onnx, onnxsim, onnx-graphsurgeon,
        # sng4onnx, simple-onnx-processing-tools, psutil, ai-edge-litert, ...)
        subprocess.run([str(py), "-m", "pip", "install", "-q", f"onnx2tf=={ONNX2TF}"], check=True)
    return venv


def onnx2tf_convert(key: str, m: dict, tmp: Path, venv: Path) -> dict:
    work = tmp / f"o2t-{key}"
    work.mkdir()
    # the sample file onnx2tf would download (20 NHWC images in [0, 1]): our own renders
    np.save(work / SAMPLE_FILE, _sample_images())
    calib = work / "calib_nhwc.npy"
    c = m["calib01"]
    np.save(calib, np.ascontiguousarray(c.transpose(0, 2, 3, 1) if c.ndim == 4 else c).astype(np.float32))
    # onnx2tf rewrites its input file in place (shape-pinned, simplified): give it a copy, never the
    # installed package's model (that silently changed the model every later run and test saw)
    model_copy = work / Path(m["path"]).name
    shutil.copyfile(m["path"], model_copy)
    cmd = [str(venv / "bin" / "onnx2tf"), "-i", str(model_copy), "-o", str(work / "out"),
           "-ois", f"{m['input']}:{','.join(map(str, m['shape']))}", "-oiqt",
           "-cind", m["input"], str(calib), *m["norm"]]
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}", "CUDA_VISIBLE_DEVICES": "-1",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    r = measured(cmd, env=env, cwd=work)
    res: dict = {"convert_s": r["wall_s"], "peak_rss_mb": r["peak_rss_mb"], "rc": r["rc"]}
    name = Path(m["path"]).stem
    files = {"fp32": work / "out" / f"{name}_float32.tflite", "int8": work / "out" / f"{name}_integer_quant.tflite"}
    if r["rc"] != 0 or not files["fp32"].exists():
        res["error"] = error_line(r["log"]) or f"exit {r['rc']}"
        res["log_tail"] = _plain(r["log"]).splitlines()[-60:]
    for p, f in files.items():
        if f.exists():
            try:
                tfl = TFLite(f)
                res[p] = {"model_kb": round(f.stat().st_size / 1024, 1), **tfl.latency(m["sample"]),
                          "accuracy": evaluate(m, tfl)}
            except Exception as e:  # noqa: BLE001 - record and go on
                res[p] = {"error": f"{type(e).__name__}: {e}"[:400]}
        else:
            res.setdefault(p, {"error": "not produced"})
    return res


def _plain(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def error_line(log: str) -> str:
    """The exception of a failed onnx2tf run, its explanation and the ONNX op it names."""
    import re

    lines = [ln.strip() for ln in _plain(log).splitlines()]
    exc = [i for i, ln in enumerate(lines) if re.match(r"^[\w.]*(Error|Exception)\b.*:", ln)]
    if not exc:
        return ""
    i = exc[0]
    msg = lines[i]
    nxt = next((ln for ln in lines[i + 1:i + 4] if ln), "")
    if nxt and not nxt.startswith(("Call arguments", "File ", "ERROR")):
        msg += " " + nxt
    op = next((ln.rsplit(":", 1)[1].strip() for ln in lines[i:] if ln.startswith("ERROR: onnx_op_name:")), "")
    return (msg + (f" [onnx op: {op}]" if op else ""))[:500]


def _sample_images() -> np.ndarray:
    from PIL import Image

    x, _ = textlines.cls_dataset(20, seed=99)
    imgs = [np.asarray(Image.fromarray(((xi.transpose(1, 2, 0) * 0.5 + 0.5) * 255).clip(0, 255).astype(np.uint8))
                       .resize((128, 128)), np.float32) / 255.0 for xi in x]
    return np.stack(imgs).astype(np.float32)


# ---------------------------------------------------------------- install size

def du_mb(path: Path) -> float:
    out = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True).stdout.split()
    return float(out[0]) if out else float("nan")


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def install_size(tmp: Path) -> dict:
    venv = tmp / "venv-dk"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    t = time.perf_counter()
    r = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"{ROOT}[tflite]"],
                       capture_output=True, text=True)
    res = {"pip_install_s": round(time.perf_counter() - t, 1)}
    if r.returncode != 0:
        res["error"] = (r.stderr.strip().splitlines() or ["?"])[-1][:400]
        return res
    sp = site_packages(venv)
    res["site_packages_mb"] = du_mb(sp)
    empty = tmp / "venv-empty"  # what any venv holds before our install (pip, setuptools)
    subprocess.run([sys.executable, "-m", "venv", str(empty)], check=True)
    res["empty_venv_mb"] = du_mb(site_packages(empty))
    top = sorted(((du_mb(p), p.name) for p in sp.iterdir() if p.is_dir() and not p.name.endswith("-info")),
                 reverse=True)[:6]
    res["largest"] = {n: s for s, n in top}
    return res


# ---------------------------------------------------------------- report

def ratio(a, b):
    return round(a / b, 2) if a and b else None


# Models too small for time goals: a 4 KB CNN is converted in a few ms by either tool, so build time
# is process start-up (our imports ~0.6 s, onnx2tf's TensorFlow ~5 s) and latency is microseconds of
# invoke overhead. Their speed/latency rows are reported as INFO; the goals are judged on real models.
SANITY_MODELS = frozenset({"small_cnn"})


def goals(res: dict) -> list[tuple[str, str, str]]:
    out = []
    for key, r in res["models"].items():
        dk, o2t = r.get("deploykit", {}), r.get("onnx2tf")
        _pf = _info if key in SANITY_MODELS else _pass_fail
        f32, i8 = dk.get("fp32", {}), dk.get("int8", {})
        if o2t is not None:
            if "error" in o2t and "fp32" not in o2t:
                pass
            ok = o2t.get("rc") == 0 and "p50_ms" in o2t.get("fp32", {})
            sp = ratio(o2t.get("convert_s"), f32.get("build_s"))
            sp8 = ratio(o2t.get("convert_s"), i8.get("build_s"))
            goal = "build >= 10x faster than onnx2tf (onnx2tf run / our fp32 build, / our int8 build)"
            if ok:
                out.append((key, goal, _pf(sp is not None and sp >= 10 and (sp8 is None or sp8 >= 10), f"{sp}x / {sp8}x")))
            else:
                out.append((key, goal, f"N/A (onnx2tf fails on this model after {o2t.get('convert_s')} s; ours builds)"))
            lat = o2t.get("fp32", {}).get("p50_ms")
            if lat is not None:
                out.append((key, "fp32 latency <= onnx2tf fp32",
                            _pf(f32.get("p50_ms", 1e9) <= lat, f"{f32.get('p50_ms')} vs {lat} ms")))
            else:
                out.append((key, "fp32 latency <= onnx2tf fp32", "N/A (onnx2tf produced no model)"))
        peak = max(dk.get(p, {}).get("peak_rss_mb", 0) for p in ("fp32", "fp16", "int8"))
        out.append((key, "build peak RSS <= 500 MB (max over fp32/fp16/int8)", _pass_fail(0 < peak <= 500, f"{peak} MB")))
        if "p50_ms" in i8 and "p50_ms" in f32:
            rr = ratio(i8["p50_ms"], f32["p50_ms"])
            out.append((key, "int8 latency <= 0.8x our fp32", _pf(rr <= 0.8, f"{i8['p50_ms']} / {f32['p50_ms']} ms = {rr}x")))
        if i8.get("accuracy") is not None and f32.get("accuracy") is not None:
            d = round(i8["accuracy"] - f32["accuracy"], 2)
            out.append((key, "int8 accuracy >= fp32 - 0.5 points", _pf(d >= -0.5, f"{i8['accuracy']} vs {f32['accuracy']} ({d:+})")))
    inst = res.get("install", {})
    if "site_packages_mb" in inst:
        out.append(("install", "pip install deploykit[tflite] <= 250 MB", _pass_fail(inst["site_packages_mb"] <= 250,
                                                                               f"{inst['site_packages_mb']} MB")))
    return out


def _pass_fail(ok: bool, detail: str) -> str:
    return ("PASS" if ok else "FAIL") + f" ({detail})"


def _info(ok: bool, detail: str) -> str:
    del ok
    return f"INFO ({detail}; start-up bound sanity model, see SANITY_MODELS)"


def machine() -> str:
    cpu = cpu_model("?")
    gb = memory_gb()
    mem = f"{gb:.0f} GB RAM" if gb is not None else "?"
    return f"{platform.machine()} {cpu}, {os.cpu_count()} cpus, {mem}, Linux {platform.release()}, python {platform.python_version()}"


def versions(venv: Path | None) -> dict:
    from importlib.metadata import version

    v = {"ai-edge-litert (harness)": version("ai-edge-litert"), "numpy": version("numpy")}
    if venv is not None:
        out = subprocess.run([str(venv / "bin" / "python"), "-c",
                              "from importlib.metadata import version as v;"
                              "print(v('onnx2tf'), v('tensorflow'), v('onnx'), v('onnxsim'))"],
                             capture_output=True, text=True).stdout.split()
        if len(out) == 4:
            v.update(dict(zip(("onnx2tf", "tensorflow", "onnx (onnx2tf venv)", "onnxsim"), out)))
    return v


def write(res: dict) -> str:
    RESULTS.mkdir(parents=True, exist_ok=True)
    res["goals"] = [{"scope": k, "goal": g, "result": r} for k, g, r in goals(res)]
    (RESULTS / "tflite.json").write_text(json.dumps(res, indent=2, sort_keys=True, default=str) + "\n")
    md = ["# tflite backend benchmark (`python benchmarks/tflite/run.py`)", "",
          f"Machine: {res['machine']} — shared with other jobs; x86 timings say nothing about a Pi.",
          "Versions: " + ", ".join(f"{k} {v}" for k, v in res["versions"].items()) + ".",
          f"Latency: every .tflite through the same harness (ai-edge-litert Interpreter, XNNPACK, {THREADS} threads, "
          f"`invoke()` only, {RUNS} runs, best p50 of 3). Build / convert: wall time and peak RSS of the whole "
          "process tree (/proc polled every 20 ms), fresh process each. deploykit build = import, canonicalize, "
          "quantize, lower, verify in LiteRT, bundle. onnx2tf = `onnx2tf -i M -ois x:... -oiqt -cind x calib.npy "
          "MEAN STD` (one run makes fp32, int8 with float I/O, full-int8...; the int8 column uses "
          "`*_integer_quant.tflite`: int8 inside, float I/O, as ours). Same calibration samples for both.",
          "Accuracy: text lines rendered locally (benchmarks/datasets/textlines.py); cls: top-1 % on "
          f"{res['n_eval']['cls']} lines; rec: character accuracy % on {res['n_eval']['rec']} lines (CTC greedy).", "",
          "## Goals (issue 5)", "", "| scope | goal | result |", "|---|---|---|"]
    md += [f"| {g['scope']} | {g['goal']} | {g['result']} |" for g in res["goals"]]
    md += ["", "## deploykit build --target rpi4", "",
           "| model | precision | build s (wall) | of which CLI import s | peak RSS MB | model KB | p50 ms | p90 ms | accuracy | verification |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for key, r in res["models"].items():
        for p in ("fp32", "fp16", "int8"):
            d = r.get("deploykit", {}).get(p)
            if d is None:
                continue
            if "error" in d:
                md.append(f"| {key} | {p} | {d.get('build_s')} | - | {d.get('peak_rss_mb')} | - | - | - | - | error: {d['error']} |")
                continue
            md.append(f"| {key} | {p} | {d['build_s']} | {d['import_s']} | {d['peak_rss_mb']} | {d['model_kb']} | {d['p50_ms']} | "
                      f"{d['p90_ms']} | {d['accuracy'] if d['accuracy'] is not None else '-'} | {d['verification']} |")
    md += ["", "onnxruntime fp32 accuracy (reference): " + ", ".join(
        f"{k} {r['onnxruntime_fp32_accuracy']}" for k, r in res["models"].items() if r.get("onnxruntime_fp32_accuracy") is not None)]
    if any("onnx2tf" in r for r in res["models"].values()):
        md += ["", "## onnx2tf, same models, same run", "",
               "| model | convert s | peak RSS MB | fp32 KB | fp32 p50 ms | fp32 acc | int8 KB | int8 p50 ms | int8 acc | "
               "deploykit fp32 build is N× faster | note |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for key, r in res["models"].items():
            o = r.get("onnx2tf")
            if o is None:
                continue
            f, i = o.get("fp32", {}), o.get("int8", {})
            dk = r.get("deploykit", {}).get("fp32", {})
            md.append(f"| {key} | {o['convert_s']} | {o['peak_rss_mb']} | {f.get('model_kb', '-')} | {f.get('p50_ms', '-')} | "
                      f"{f.get('accuracy', '-')} | {i.get('model_kb', '-')} | {i.get('p50_ms', '-')} | {i.get('accuracy', '-')} | "
                      f"{ratio(o['convert_s'], dk.get('build_s'))} | {o.get('error', '') or f.get('error', '')} |")
    inst = res.get("install")
    if inst:
        md += ["", "## Install size", "",
               f"- `pip install '.[tflite]'` into a fresh venv: site-packages **{inst.get('site_packages_mb', '?')} MB** "
               f"({inst.get('pip_install_s', '?')} s; largest: "
               + ", ".join(f"{k} {v} MB" for k, v in inst.get("largest", {}).items()) + ")"
               + (f"; {round(inst['site_packages_mb'] - inst['empty_venv_mb'], 1)} MB beyond an empty venv"
                  if "empty_venv_mb" in inst and "site_packages_mb" in inst else "")
               + (f" — error: {inst['error']}" if "error" in inst else "")]
        if "onnx2tf_site_packages_mb" in inst:
            md.append(f"- onnx2tf venv (`pip install onnx2tf=={ONNX2TF}`): site-packages **{inst['onnx2tf_site_packages_mb']} MB** "
                      f"({ratio(inst['onnx2tf_site_packages_mb'], inst.get('site_packages_mb'))}× ours)")
    md += [""] + res.get("notes", []) + [""]
    text = "\n".join(md)
    (RESULTS / "tflite.md").write_text(text)
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--onnx2tf", dest="onnx2tf", action="store_true", default=True,
                    help="also convert with onnx2tf in a throwaway venv (default)")
    ap.add_argument("--no-onnx2tf", dest="onnx2tf", action="store_false")
    ap.add_argument("--no-install-size", dest="install", action="store_false", default=True)
    ap.add_argument("--models", default="ppocr_cls_mobile_v2,ppocr_rec_v4,small_cnn")
    ap.add_argument("--precisions", default="fp32,fp16,int8")
    ap.add_argument("--eval-cls", type=int, default=400)
    ap.add_argument("--eval-rec", type=int, default=300)
    ap.add_argument("--report-only", action="store_true", help="rewrite tflite.md from tflite.json")
    args = ap.parse_args(argv)
    if args.report_only:
        print(write(json.loads((RESULTS / "tflite.json").read_text())))
        return 0
    venv = onnx2tf_venv() if args.onnx2tf else None
    res: dict = {"machine": machine(), "threads": THREADS, "runs": RUNS, "versions": versions(venv),
                 "n_eval": {"cls": args.eval_cls, "rec": args.eval_rec}, "models": {}}
    with tempfile.TemporaryDirectory(prefix="dk-bench-") as tmp:
        tmp = Path(tmp)
        ms = models(tmp, args.eval_cls, args.eval_rec)
        for key in args.models.split(","):
            m = ms[key]
            r: dict = {"input_shape": m["shape"], "metric": m["metric"], "deploykit": {}}
            for p in args.precisions.split(","):
                print(f"[{key}] deploykit build {p}", flush=True)
                r["deploykit"][p] = deploykit_build(key, m, tmp, p)
            if m["evaluate"] is not None:
                import onnxruntime as ort

                sess = ort.InferenceSession(str(m["path"]), providers=["CPUExecutionProvider"])
                r["onnxruntime_fp32_accuracy"] = evaluate(m, lambda x: sess.run(None, {m["input"]: x})[0])
            if venv is not None:
                print(f"[{key}] onnx2tf", flush=True)
                r["onnx2tf"] = onnx2tf_convert(key, m, tmp, venv)
            res["models"][key] = r
            write(res)  # partial results survive an interruption
        if args.install:
            print("install size", flush=True)
            res["install"] = install_size(tmp)
            if venv is not None:
                res["install"]["onnx2tf_site_packages_mb"] = du_mb(site_packages(venv))
    print(write(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
