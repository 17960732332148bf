"""int8 quantization benchmark: deploykit vs ``onnxruntime.quantization.quantize_static``.

    python benchmarks/quant/run.py [--quick]

Real models with real accuracy: the PP-OCR models shipped in the ``rapidocr_onnxruntime`` wheel,
on text lines rendered locally (``benchmarks/datasets/textlines.py``; nothing is downloaded):

* ``ppocr_cls``  ``ch_ppocr_mobile_v2.0_cls_infer.onnx`` (0/180 degree text direction), input
  pinned to ``x:1,3,48,192``, metric top-1 accuracy;
* ``ppocr_rec``  ``ch_PP-OCRv4_rec_infer.onnx`` (10.8 MB CTC recognizer), input pinned to
  ``x:1,3,48,320``, metric character accuracy (1 - edit distance / length, spaces ignored).

Per model, with the SAME calibration set (saved as ``.npy``) and the SAME held-out evaluation set
(generated from different seeds):

* fp32: onnxruntime on the source model;
* deploykit: ``python -m deploykit.cli.app build MODEL --target host --precision int8
  --calibration calib.npy --input-shape ... -o DIR --force``, accuracy through the bundle's
  generated ``runner.py``;
* onnxruntime: ``quant_pre_process`` + ``quantize_static`` (QDQ, per-channel, QInt8 weights,
  QInt8 / QUInt8 activations) for MinMax, Entropy and Percentile (``ort_quantize.py``).

Every build / quantization runs in a fresh subprocess; its wall time and peak RSS (``wait4``
rusage of that process) are its own. By default the whole benchmark is pinned to one CPU
(``--cpus``), which keeps the machine usable and makes deploykit and ORT timings comparable.

Writes ``benchmarks/results/quant.{json,md}`` (``quant_quick.*`` with ``--quick``) with machine
info and the issue's goals (accuracy >= best ORT method and within 0.5 points of fp32; build time
<= ORT MinMax + 50%; peak memory <= 500 MB) marked PASS/FAIL. Failures of a single step (e.g. a
deploykit build error) are recorded in the results, not raised, so the script can be re-run
unchanged while the engine evolves.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
sys.path.insert(0, str(BENCH))

from datasets import textlines as T  # noqa: E402
from hostinfo import cpu_class_label, cpu_model, memory_gb, proc_status_mb  # noqa: E402

GOAL_ACC_POINTS = 0.5  # int8 within 0.5 points of fp32
GOAL_TIME_FACTOR = 1.5  # build time <= ORT MinMax + 50%
GOAL_RSS_MB = 500.0
ORT_METHODS = ("MinMax", "Entropy", "Percentile")


@dataclass
class ModelSpec:
    key: str
    file: str
    input_name: str
    shape: tuple[int, ...]
    metric: str
    n_calib: int
    n_eval: int
    calib_seed: int
    eval_seed: int


def model_specs(quick: bool) -> list[ModelSpec]:
    # Evaluation sets are large enough that one line is <= 0.1 pt (cls) / a few chars (rec): on
    # 300 cls lines a single line (0.33 pt) decided the comparison with ORT.
    return [
        ModelSpec("ppocr_cls", T.CLS_MODEL, "x", (1, 3, 48, 192), "top-1 accuracy",
                  64 if quick else 100, 120 if quick else 1000, 101, 1001),
        ModelSpec("ppocr_rec", T.REC_MODEL, "x", (1, 3, 48, 320), "char accuracy",
                  32 if quick else 64, 60 if quick else 300, 201, 2001),
    ]


# ---------------------------------------------------------------- processes


MEM_LIMIT_MB = 0.0  # set in main(): kill a subprocess whose RSS passes this (shared machine)
EMULATE: list[str] = []  # set in main() by --emulate-cpu: QEMU command prefix for builds and evaluations
NATIVE_BUILDS = False  # --native-builds: with --emulate-cpu, build natively (the engine is CPU-independent)
QUICK = False


def emulated(cmd: list[str]) -> list[str]:
    """``cmd`` under the emulated CPU (``--emulate-cpu``), else unchanged."""
    return [*EMULATE, *cmd] if EMULATE else cmd


def _mem_available_mb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def measure(cmd: list[str], env: dict | None = None, cwd: Path | None = None, timeout: float = 1800.0) -> dict:
    """Run ``cmd``; return rc, wall time, peak RSS (MB) of that process, stdout, stderr.

    The process is killed (``mem_killed``) when its RSS passes ``MEM_LIMIT_MB`` -- ORT's histogram
    calibrators keep every intermediate tensor of every sample in memory."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd, start_new_session=True)
        timed_out = mem_killed = False
        n = 0
        hwm = 0.0
        while True:
            # VmHWM is the peak RSS of the process's own address space since exec. (ru_maxrss is
            # not used: it includes the benchmark's own RSS at fork time, a floor of ~400 MB here.)
            hwm = max(hwm, proc_status_mb(p.pid, "VmHWM"))
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            n += 1
            if MEM_LIMIT_MB and n % 5 == 0 and proc_status_mb(p.pid) > MEM_LIMIT_MB:
                mem_killed = True
            if time.perf_counter() - t0 > timeout or mem_killed:
                timed_out = not mem_killed
                os.killpg(p.pid, 9)
                pid, status, ru = os.wait4(p.pid, 0)
                break
            time.sleep(0.01)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return {
            "rc": p.returncode,
            "timed_out": timed_out,
            "mem_killed": mem_killed,
            "wall_s": round(wall, 2),
            "peak_rss_mb": round(hwm, 1),
            "stdout": out.read().decode(errors="replace"),
            "stderr": err.read().decode(errors="replace"),
        }


def _failure(m: dict) -> str:
    if m["mem_killed"]:
        return f"killed: RSS above the benchmark's memory cap ({MEM_LIMIT_MB / 1024:.1f} GB)"
    if m["timed_out"]:
        return "timeout"
    return _last_line(m["stderr"]) or f"exit code {m['rc']}"


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:400] if lines else ""


# ---------------------------------------------------------------- evaluation


def ort_run_fn(model: Path, input_name: str) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    return lambda x: sess.run(None, {input_name: x})[0]


def bundle_run_fn(bundle: Path, input_name: str) -> Callable[[np.ndarray], np.ndarray]:
    from deploykit.verification import load_runner_module

    mod = load_runner_module(bundle)
    try:
        runner = mod.Runner(str(bundle), num_threads=1)
    except TypeError:
        runner = mod.Runner(str(bundle))
    return lambda x: runner.run({input_name: x})


def save_data(data: dict, path: Path) -> Path:
    arrays = {"x": data["x"]}
    if "labels" in data:
        arrays["labels"] = np.asarray(data["labels"])
    else:
        arrays["texts"] = np.asarray(data["texts"], dtype=str)
        arrays["charset"] = np.asarray(data["charset"], dtype=str)
    np.savez(path, **arrays)
    return path


def load_data(path: Path) -> dict:
    d = np.load(path, allow_pickle=False)
    if "labels" in d:
        return {"x": d["x"], "labels": [int(v) for v in d["labels"]]}
    return {"x": d["x"], "texts": [str(t) for t in d["texts"]], "charset": [str(c) for c in d["charset"]]}


def evaluate_in(spec: ModelSpec, data: dict, *, onnx_model: Path | None = None, bundle: Path | None = None,
                native: bool = False) -> dict:
    """Metrics of an ONNX model (onnxruntime) or a bundle (its runner): in this process, or in a
    subprocess on the emulated CPU (``--emulate-cpu``) unless ``native`` (fp32: no int8 kernels)."""
    if not EMULATE or native:
        fn = ort_run_fn(onnx_model, spec.input_name) if onnx_model else bundle_run_fn(bundle, spec.input_name)
        return evaluate(spec, fn, data)
    path = data.get("_file")
    cmd = [sys.executable, str(HERE / "_evaluate.py"), spec.key, str(path),
           *(["--onnx", str(onnx_model)] if onnx_model else ["--bundle", str(bundle)]), *(["--quick"] if QUICK else [])]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    m = measure(emulated(cmd), env=env, timeout=86400)
    if m["rc"] != 0:
        raise RuntimeError(_failure(m))
    return json.loads(_last_line(m["stdout"]))


def evaluate(spec: ModelSpec, run_fn, data: dict) -> dict:
    t0 = time.perf_counter()
    if spec.key == "ppocr_cls":
        acc = T.evaluate_cls(run_fn, data["x"], data["labels"])
        res = {"accuracy": round(acc, 5)}
    else:
        acc, preds = T.evaluate_rec(run_fn, data["x"], data["texts"], data["charset"], return_preds=True)
        exact = np.mean([p.replace(" ", "") == t.replace(" ", "") for p, t in zip(preds, data["texts"])])
        res = {"accuracy": round(acc, 5), "line_accuracy": round(float(exact), 5),
               "char_accuracy_with_spaces": round(T.char_accuracy(preds, data["texts"], ignore_space=False), 5)}
    res["eval_s"] = round(time.perf_counter() - t0, 2)
    return res


# ---------------------------------------------------------------- one model


def make_data(spec: ModelSpec, work: Path) -> tuple[Path, dict, dict]:
    fonts = T.find_fonts()
    t0 = time.perf_counter()
    if spec.key == "ppocr_cls":
        xc, _ = T.cls_dataset(spec.n_calib, spec.calib_seed, fonts)
        xe, labels = T.cls_dataset(spec.n_eval, spec.eval_seed, fonts)
        data = {"x": xe, "labels": labels}
    else:
        xc, _ = T.rec_dataset(spec.n_calib, spec.calib_seed, spec.shape[-1], fonts)
        xe, texts = T.rec_dataset(spec.n_eval, spec.eval_seed, spec.shape[-1], fonts)
        data = {"x": xe, "texts": texts, "charset": T.rec_charset(T.model_path(spec.file))}
    calib = work / f"{spec.key}_calib.npy"
    np.save(calib, xc)
    if EMULATE:
        data["_file"] = save_data(data, work / f"{spec.key}_eval.npz")
    info = {
        "calibration": {"samples": spec.n_calib, "seed": spec.calib_seed, "shape": list(xc.shape[1:]),
                        "sha256": hashlib.sha256(xc.tobytes()).hexdigest()},
        "evaluation": {"samples": spec.n_eval, "seed": spec.eval_seed,
                       "sha256": hashlib.sha256(xe.tobytes()).hexdigest()},
        "generate_s": round(time.perf_counter() - t0, 2),
    }
    return calib, data, info


def run_deploykit(spec: ModelSpec, model: Path, calib: Path, work: Path, data: dict, timeout: float,
                  src: Path | None = None) -> dict:
    out = work / f"{spec.key}_deploykit"
    shape = f"{spec.input_name}:{','.join(map(str, spec.shape))}"
    launch = ["-m", "deploykit.cli.app"] if src is None else [str(HERE / "_dk_launch.py"), str(src)]
    cmd = [sys.executable, *launch, "build", str(model), "--target", "host",
           "--precision", "int8", "--calibration", str(calib), "--input-shape", shape,
           "-o", str(out), "--force"]
    env = dict(os.environ)
    env["DEPLOYKIT_PLUGINS"] = "profiles,onnxruntime"
    if src is None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    emulate_build = EMULATE and not NATIVE_BUILDS
    m = measure(emulated(cmd) if emulate_build else cmd, env=env, cwd=REPO, timeout=timeout * (40 if emulate_build else 1))
    row = {"method": "deploykit int8 (host)", "kind": "deploykit", "rc": m["rc"],
           "wall_s": m["wall_s"], "peak_rss_mb": m["peak_rss_mb"]}
    # the build's own stage timings (canonicalize, calibrate + quantize): the counterpart of ORT's
    # quant_pre_process + quantize_static
    stages = [re.search(rf"{re.escape(name)} \(([0-9.]+) s\)", m["stdout"] + m["stderr"])
              for name in ("canonicalize", "calibrate + quantize")]
    if all(stages):
        row["total_s"] = round(sum(float(x.group(1)) for x in stages), 2)
    if m["rc"] != 0 or not (out / "manifest.json").exists():
        row["error"] = _failure(m)
        return row
    try:
        manifest = json.loads((out / "manifest.json").read_text())
        arts = [out / a for a in manifest.get("artifacts", []) if (out / a).exists()]
        row["artifact_mb"] = round(sum(a.stat().st_size for a in arts) / 2**20, 2) if arts else None
        ver = manifest.get("verification") or {}
        row["verification_status"] = ver.get("status")
        # whatever the engine records about itself (method, budget, fallbacks): keep it small
        for k in ("quantization", "quant"):
            if k in manifest:
                row["manifest_quantization"] = manifest[k]
        row["build_options"] = {k: v for k, v in (manifest.get("build_options") or {}).items()
                                if k not in ("calibration",)}
        row.update(evaluate_in(spec, data, bundle=out))
    except Exception as e:  # noqa: BLE001 - record, keep benchmarking
        row["error"] = f"evaluation failed: {type(e).__name__}: {e}"[:400]
    return row


def run_ort(spec: ModelSpec, model: Path, calib: Path, work: Path, data: dict, method: str,
            act: str, timeout: float, reduce_range: bool = False) -> dict:
    """ORT quantize_static; its calibration runs fp32 only, so it runs natively even with --emulate-cpu
    (the quantized model is the same on any CPU); the evaluation follows the emulation."""
    out = work / f"{spec.key}_ort_{method}_{act}{'_rr' if reduce_range else ''}.onnx"
    shape = f"{spec.input_name}:{','.join(map(str, spec.shape))}"
    cmd = [sys.executable, str(HERE / "ort_quantize.py"), str(model), str(calib), str(out),
           "--input-shape", shape, "--method", method, "--activation", act, *(["--reduce-range"] if reduce_range else [])]
    m = measure(cmd, timeout=timeout)
    w8 = {"QInt8": "S8", "QUInt8": "U8"}[act]
    wbits = "w S7 per-channel, reduce_range" if reduce_range else "w S8 per-channel"
    row = {"method": f"ORT QDQ {method} (act {w8}, {wbits})", "kind": "ort",
           "ort_method": method, "activation": act, "reduce_range": reduce_range, "rc": m["rc"],
           "wall_s": m["wall_s"], "peak_rss_mb": m["peak_rss_mb"]}
    if m["rc"] != 0 or not out.exists():
        row["error"] = _failure(m)
        return row
    try:
        row.update({k: v for k, v in json.loads(_last_line(m["stdout"])).items()
                    if k in ("prep_s", "quant_s", "total_s", "prep_note") and v is not None})
    except ValueError:
        pass
    row["artifact_mb"] = round(out.stat().st_size / 2**20, 2)
    try:
        row.update(evaluate_in(spec, data, onnx_model=out))
    except Exception as e:  # noqa: BLE001
        row["error"] = f"evaluation failed: {type(e).__name__}: {e}"[:400]
    out.unlink(missing_ok=True)
    return row


def _reusable_ort_rows(path: Path | None, entry: dict, machine: dict) -> dict:
    if path is None or not path.exists():
        return {}
    old = json.loads(path.read_text())
    if old.get("machine", {}).get("versions", {}).get("onnxruntime") != machine["versions"]["onnxruntime"]:
        return {}
    for m in old.get("models", []):
        same = m["key"] == entry["key"] and all(
            m["data"][k]["sha256"] == entry["data"][k]["sha256"] for k in ("calibration", "evaluation"))
        if same:
            return {(r["ort_method"], r["activation"], r.get("reduce_range", False)): dict(r, reused=True)
                    for r in m["rows"] if r["kind"] == "ort" and "accuracy" in r}
    return {}


def goals(fp32: dict, rows: list[dict]) -> list[dict]:
    dk = next((r for r in rows if r["kind"] == "deploykit"), None)
    ort_ok = [r for r in rows if r["kind"] == "ort" and "accuracy" in r]
    mm = [r for r in ort_ok if r.get("ort_method") == "MinMax"]
    out = []

    def add(name, ok, detail):
        out.append({"goal": name, "status": "PASS" if ok else "FAIL", "detail": detail})

    if dk is None or "accuracy" not in dk:
        why = (dk or {}).get("error", "not run")
        for g in ("accuracy >= best ORT method", f"accuracy within {GOAL_ACC_POINTS} pt of fp32",
                  f"calibration time <= ORT MinMax x {GOAL_TIME_FACTOR}", f"peak memory <= {GOAL_RSS_MB:.0f} MB"):
            add(g, False, f"deploykit: {why}")
        return out
    acc = dk["accuracy"]
    if ort_ok:
        best = max(ort_ok, key=lambda r: r["accuracy"])
        add("accuracy >= best ORT method", acc >= best["accuracy"],
            f"{acc:.4f} vs {best['accuracy']:.4f} ({best['method']})")
    else:
        add("accuracy >= best ORT method", False, "no ORT result")
    diff = (fp32["accuracy"] - acc) * 100
    add(f"accuracy within {GOAL_ACC_POINTS} pt of fp32", diff <= GOAL_ACC_POINTS + 1e-9,
        f"{acc:.4f} vs fp32 {fp32['accuracy']:.4f} ({-diff:+.2f} pt)")
    if EMULATE:  # emulated time and memory say nothing about a real CPU
        out.append({"goal": "calibration time / peak memory", "status": "INFO",
                    "detail": "not judged under CPU emulation: see the native run (quant.md)"})
        return out
    timed = [r for r in mm if r.get("total_s")]
    if timed and dk.get("total_s"):
        ref = min(r["total_s"] for r in timed)
        add(f"calibration time <= ORT MinMax x {GOAL_TIME_FACTOR}", dk["total_s"] <= ref * GOAL_TIME_FACTOR,
            f"{dk['total_s']:.1f} s vs {ref:.1f} s x {GOAL_TIME_FACTOR} = {ref * GOAL_TIME_FACTOR:.1f} s "
            "(deploykit's canonicalize + calibrate + quantize stages vs ORT's quant_pre_process + quantize_static)")
    else:
        add(f"calibration time <= ORT MinMax x {GOAL_TIME_FACTOR}", False, "no timed ORT MinMax / deploykit result")
    if mm:  # not a goal: the whole build does more (import, passes, lowering, verification, bundle)
        ref = min(r["wall_s"] for r in mm)
        out.append({"goal": "whole process wall time vs ORT MinMax", "status": "INFO",
                    "detail": f"{dk['wall_s']:.1f} s vs {ref:.1f} s = {dk['wall_s'] / ref:.2f}x (deploykit: the complete "
                              "build incl. verification and bundle; ORT: quantization script)"})
    add(f"peak memory <= {GOAL_RSS_MB:.0f} MB", dk["peak_rss_mb"] <= GOAL_RSS_MB,
        f"{dk['peak_rss_mb']:.0f} MB peak RSS of the build process")
    return out


# ---------------------------------------------------------------- machine / report


def machine_info(cpus: list[int] | None, src: Path | None = None) -> dict:
    cpu = cpu_model()
    mem = memory_gb()
    vers = {}
    for mod in ("onnxruntime", "onnx", "numpy", "PIL", "cv2", "deploykit"):
        try:
            vers[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            vers[mod] = None
    commit = None
    try:  # read-only; meaningless for a --deploykit-src tree (use --label there)
        if src is not None:
            raise RuntimeError
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
    except Exception:  # noqa: BLE001
        pass
    h = hashlib.sha256()
    for p in sorted(((src or REPO) / "deploykit" / "quant").glob("*.py")):
        h.update(p.name.encode() + p.read_bytes())
    return {
        "cpu": cpu, "cpu_class": cpu_class_label(), "emulated_cpu": " ".join(EMULATE[1:3]) if EMULATE else None,
        "native_builds": NATIVE_BUILDS,
        "logical_cores": os.cpu_count(), "pinned_cpus": len(cpus) if cpus else None,
        "memory_gb": mem, "os": f"{platform.system()} {platform.release()}", "machine": platform.machine(),
        "python": platform.python_version(), "versions": vers, "git_commit": commit,
        "deploykit_quant_sha256": h.hexdigest()[:16],
        "load_avg_at_start": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }


def _fmt(v, f="{:.4f}"):
    return "—" if v is None else f.format(v)


def write_markdown(res: dict, path: Path) -> None:
    mi = res["machine"]
    L = ["# int8 quantization benchmark: deploykit vs onnxruntime quantize_static", "",
         f"Generated by `python benchmarks/quant/run.py{' --quick' if res['quick'] else ''}` "
         "(results in the `.json` next to this file).", "",
         *( [f"Label: **{res['label']}**.", ""] if res.get("label") else []),
         f"deploykit used: {res['deploykit_source']}.", "",
         "## Machine", "",
         f"- CPU class: **{mi.get('cpu_class')}**"
         + (f" (the host); every int8 model was evaluated on an **emulated** CPU: QEMU user mode `{mi['emulated_cpu']}` "
            "(x86-64 AVX2, no VNNI). " + ("deploykit builds ran natively (the engine's simulation is exact on any CPU), "
            if mi.get("native_builds") else "deploykit builds ran emulated too, ")
            + "ORT's quantize_static natively (its calibration is fp32, so its model is the same on any CPU), fp32 "
            "natively" if mi.get("emulated_cpu") else ""),
         f"- CPU: {mi['cpu']} — {mi['logical_cores']} logical cores"
         + (f", benchmark pinned to {mi['pinned_cpus']} CPU(s)" if mi["pinned_cpus"] else ""),
         f"- Memory: {mi['memory_gb']} GB; {mi['os']} {mi['machine']}; Python {mi['python']}",
         "- Versions: " + ", ".join(f"{k} {v}" for k, v in mi["versions"].items() if v),
         f"- deploykit commit {mi['git_commit'] or '(see label)'} (working tree may differ), deploykit/quant "
         f"fingerprint `{mi['deploykit_quant_sha256']}`",
         f"- Load average at start (1/5/15 min): {mi.get('load_avg_at_start')} — wall times are only comparable "
         "within one run on a shared machine", "",
         "## Method", "",
         "- Data: text lines rendered locally with PIL + DejaVu fonts (`benchmarks/datasets/textlines.py`), "
         "preprocessed exactly like rapidocr; calibration and evaluation sets come from different seeds. "
         "Every method gets the same calibration `.npy` and is scored on the same held-out set.",
         "- fp32 and ORT-quantized models are evaluated with onnxruntime (CPU EP, 1 thread); the deploykit "
         "bundle through its generated `runner.py`.",
         "- *wall s*: wall time of the whole build/quantization process (Python start-up and imports included, "
         "for both). For deploykit that is the complete `deploykit build` (import, passes, calibration, "
         "lowering, verification, bundle); for ORT: pinning the input shape, `quant_pre_process`, "
         "`quantize_static`. *quant s*: for ORT `quant_pre_process` + `quantize_static` inside the process; for deploykit "
         "the build's `canonicalize` + `calibrate + quantize` stages (graph passes, statistics, range search, fallback "
         "search; as printed by the CLI). "
         "The time goal compares these calibration times; the whole-process ratio is listed too.",
         "- *peak RSS*: the highest `VmHWM` (peak resident set of the process's own address space) polled every 10 ms while it runs; `ru_maxrss` is not used because it counts the benchmark's own memory inherited at fork.",
         "- ORT: QDQ, per-channel, weights QInt8; activations QInt8 (S8) and QUInt8 (U8); "
         "`quant_pre_process` first as ORT recommends.", ""]
    for m in res["models"]:
        L += [f"## {m['key']} — `{m['file']}` ({m['size_mb']} MB), input `{m['input_shape']}`", "",
              f"Metric: {m['metric']}. Calibration {m['data']['calibration']['samples']} samples "
              f"(seed {m['data']['calibration']['seed']}), evaluation {m['data']['evaluation']['samples']} "
              f"held-out samples (seed {m['data']['evaluation']['seed']}).", ""]
        rec = m["key"] == "ppocr_rec"
        hdr = "| method | accuracy | Δ vs fp32 (pt) |" + (" line acc |" if rec else "") + \
              " wall s | quant s | peak RSS MB | size MB | notes |"
        L += [hdr, "|" + "---|" * (hdr.count("|") - 1)]
        fp = m["fp32"]
        L.append(f"| fp32 (onnxruntime) | {_fmt(fp.get('accuracy'))} | — |"
                 + (f" {_fmt(fp.get('line_accuracy'), '{:.3f}')} |" if rec else "")
                 + f" — | — | — | {m['size_mb']} | source model |")
        for r in m["rows"]:
            acc = r.get("accuracy")
            d = None if acc is None or fp.get("accuracy") is None else (acc - fp["accuracy"]) * 100
            note = r.get("error") or ""
            if r["kind"] == "ort":
                note = note or r.get("prep_note", "")
                if r.get("reused"):
                    note = (note + "; " if note else "") + "reused from an earlier run (same data)"
            if r["kind"] == "deploykit" and r.get("verification_status"):
                note = note or f"verification {r['verification_status']}"
            L.append(f"| {r['method']} | {_fmt(acc)} | {_fmt(d, '{:+.2f}')} |"
                     + (f" {_fmt(r.get('line_accuracy'), '{:.3f}')} |" if rec else "")
                     + f" {_fmt(r.get('wall_s'), '{:.1f}')} | {_fmt(r.get('total_s'), '{:.1f}')} |"
                     f" {_fmt(r.get('peak_rss_mb'), '{:.0f}')} | {_fmt(r.get('artifact_mb'), '{:.2f}')} |"
                     f" {note.replace('|', '/')} |")
        L += ["", "Goals (issue 4), for deploykit:", "", "| goal | status | detail |", "|---|---|---|"]
        L += [f"| {g['goal']} | **{g['status']}** | {g['detail']} |" for g in m["goals"]]
        L.append("")
    L += ["## Notes", "", *[f"- {n}" for n in res["notes"]], ""]
    path.write_text("\n".join(L))


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="int8 benchmark: deploykit vs onnxruntime quantize_static")
    ap.add_argument("--quick", action="store_true", help="small data sets, QInt8 activations only; "
                    "writes quant_quick.{json,md}")
    ap.add_argument("--models", default="ppocr_cls,ppocr_rec", help="comma-separated subset")
    ap.add_argument("--methods", default=",".join(ORT_METHODS), help="ORT calibration methods")
    ap.add_argument("--activations", default=None, help="ORT activation types, default QInt8,QUInt8 "
                    "(QInt8 with --quick)")
    ap.add_argument("--no-ort", action="store_true", help="only fp32 + deploykit (no goals on time)")
    ap.add_argument("--deploykit-src", type=Path, default=None, help="build with deploykit from this "
                    "source tree instead of the installed one (e.g. an export of an older commit)")
    ap.add_argument("--label", default=None, help="free-text label stored in the results (e.g. 'baseline')")
    ap.add_argument("--reuse-ort", type=Path, default=None, help="take the ORT rows from this earlier "
                    "results .json where its calibration/evaluation data hashes and onnxruntime version match "
                    "(saves the expensive histogram calibrations when only deploykit changed); MinMax is always re-run")
    ap.add_argument("--cpus", type=int, default=1, help="pin the benchmark (and its subprocesses) to "
                    "this many CPUs; 0 = no pinning")
    ap.add_argument("--mem-limit-gb", type=float, default=None, help="kill a build/quantization process "
                    "whose RSS passes this (default: 60%% of MemAvailable at start)")
    ap.add_argument("--timeout", type=float, default=1800, help="per build/quantization process, s")
    ap.add_argument("--out", type=Path, default=None, help="output stem (default benchmarks/results/quant"
                    "[_quick])")
    ap.add_argument("--keep", type=Path, default=None, help="keep calibration data / bundles in this folder")
    ap.add_argument("--reduce-range", action="store_true", help="also run every ORT configuration with "
                    "reduce_range=True (7-bit weights, ORT's advice for x86 CPUs without VNNI)")
    ap.add_argument("--emulate-cpu", default=None, metavar="QEMU_CPU", help="build and evaluate on an emulated "
                    "x86 CPU (qemu-x86_64-static -cpu QEMU_CPU, e.g. Haswell: AVX2 without VNNI); writes "
                    "quant_<cpu>.{json,md}; time/memory goals are not judged")
    ap.add_argument("--native-builds", action="store_true", help="with --emulate-cpu: run the deploykit builds "
                    "natively (its simulation is exact on any CPU, tests/e2e/test_cpu_classes.py) and emulate only "
                    "the evaluation of int8 models")
    args = ap.parse_args(argv)
    global EMULATE, QUICK, NATIVE_BUILDS
    QUICK = args.quick
    NATIVE_BUILDS = args.native_builds
    if args.emulate_cpu:
        qemu = shutil.which("qemu-x86_64-static") or shutil.which("qemu-x86_64")
        if qemu is None:
            print("error: --emulate-cpu needs qemu-x86_64-static (Debian: apt-get install qemu-user-static)",
                  file=sys.stderr)
            return 2
        EMULATE = [qemu, "-cpu", args.emulate_cpu]

    cpus = None
    if args.cpus and hasattr(os, "sched_setaffinity"):
        avail = sorted(os.sched_getaffinity(0))
        cpus = avail[: args.cpus]
        os.sched_setaffinity(0, cpus)  # inherited by every subprocess
    try:
        T.find_fonts()
    except T.FontsNotFound as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    global MEM_LIMIT_MB
    MEM_LIMIT_MB = args.mem_limit_gb * 1024 if args.mem_limit_gb else 0.6 * _mem_available_mb()
    acts = (args.activations or ("QInt8" if args.quick else "QInt8,QUInt8")).split(",")
    methods = [] if args.no_ort else [m for m in args.methods.split(",") if m]
    wanted = set(args.models.split(","))
    stem = args.out or (RESULTS / ("quant" + (f"_{args.emulate_cpu.lower()}" if args.emulate_cpu else "")
                                   + ("_quick" if args.quick else "")))

    if args.keep:
        work = args.keep
        work.mkdir(parents=True, exist_ok=True)
    else:
        work = Path(tempfile.mkdtemp(prefix="dk-quant-bench-"))
    res = {"quick": args.quick, "label": args.label,
           "deploykit_source": "--deploykit-src tree" if args.deploykit_src else "installed (working tree)",
           "machine": machine_info(cpus, args.deploykit_src), "models": [], "notes": [
        "cls top-1 on N held-out lines: one sample = 100/N pt (N=300: 0.33 pt); rec char accuracy counts characters "
        "(spaces ignored, as PaddleOCR's RecMetric); line acc = exact line match.",
        "Best ORT method for the accuracy goal = best over all ORT configurations run (both activation types).",
        "ORT input: the source model upgraded to opset 13 (per-channel DequantizeLinear needs it; at "
        "opset 11/12 quantize_static writes a model ORT refuses to load) with the input shape pinned; "
        "if quant_pre_process's symbolic shape inference fails (it does on PP-OCR cls) it is re-run "
        "without it.",
        "Build-time goal compares whole-process wall times; deploykit's includes verification and bundle "
        "writing, which ORT does not do.",
    ]}
    res["memory_cap_gb"] = round(MEM_LIMIT_MB / 1024, 1)
    t_all = time.perf_counter()
    try:
        for spec in model_specs(args.quick):
            if spec.key not in wanted:
                continue
            try:
                model = T.model_path(spec.file)
            except FileNotFoundError as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
            print(f"== {spec.key}: generating data", flush=True)
            calib, data, info = make_data(spec, work)
            entry = {"key": spec.key, "file": spec.file, "size_mb": round(model.stat().st_size / 2**20, 2),
                     "input_shape": f"{spec.input_name}:{','.join(map(str, spec.shape))}",
                     "metric": spec.metric, "data": info, "rows": []}
            entry["fp32"] = evaluate_in(spec, data, onnx_model=model, native=True)
            print(f"   fp32: {entry['fp32']}", flush=True)
            row = run_deploykit(spec, model, calib, work, data, args.timeout, args.deploykit_src)
            entry["rows"].append(row)
            print(f"   deploykit: { {k: v for k, v in row.items() if k not in ('build_options', 'manifest_quantization')} }",
                  flush=True)
            reused = _reusable_ort_rows(args.reuse_ort, entry, res["machine"])
            configs = [(a, m, rr) for a in acts for m in methods for rr in ((False, True) if args.reduce_range else (False,))]
            for act, method, rr in configs:
                # MinMax is always re-run: the time goal compares against it within one run
                row = None if method == "MinMax" else reused.get((method, act, rr))
                if row is None:
                    row = run_ort(spec, model, calib, work, data, method, act, args.timeout, reduce_range=rr)
                entry["rows"].append(row)
                print(f"   {row['method']}: acc={row.get('accuracy')} wall={row['wall_s']}s "
                      f"rss={row['peak_rss_mb']}MB {row.get('error', '')}", flush=True)
            entry["goals"] = goals(entry["fp32"], entry["rows"]) if methods else []
            res["models"].append(entry)
            # write after every model so a long run leaves partial results
            res["total_s"] = round(time.perf_counter() - t_all, 1)
            stem.parent.mkdir(parents=True, exist_ok=True)
            stem.with_suffix(".json").write_text(json.dumps(res, indent=1, sort_keys=False) + "\n")
            write_markdown(res, stem.with_suffix(".md"))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    for m in res["models"]:
        for g in m["goals"]:
            print(f"{m['key']}: {g['status']} {g['goal']}: {g['detail']}")
    print(f"wrote {stem.with_suffix('.md').relative_to(REPO) if stem.is_relative_to(REPO) else stem.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
