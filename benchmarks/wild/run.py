"""Wild-model benchmark (issue 19): every corpus model x target x precision through ``deploykit build``.

    python benchmarks/wild/run.py [--only nudenet,magika] [--builds host:fp32,rpi4:int8] [--calib 32] [--held 12]
    python benchmarks/wild/run.py --resume      # a full run that was stopped: finished cells are kept

Each build runs ``deploykit build ... --json`` in its own process (a crash or a signal is a result,
never the end of the run) and is classified:

* **built** (exit 0), with the bundle's own verification status;
* **refused** (exit != 0 and one ``error:`` line that is not an internal error), with that line and
  whether it came *before* any calibration work;
* **crashed** (a signal, an internal error, no ``error:`` line, or a time-out).

For every built bundle a child process runs the bundle's generated runner on held-out inputs (a
seed the calibration never saw) and the fp32 source model in ONNX Runtime on the same inputs:
cosine (worst output and sample; an output of fewer than 8 values, such as one wake-word or
voice score, over all samples stacked, since one value's cosine is only its sign), the largest
absolute error, arg-max agreement of the first output, and the fraction of non-finite values. A bundle whose verification *passed* while its outputs are non-finite is a defect
("nonfinite-passed"). Accelerator shares come from the bundle report (Edge TPU: predicted TPU MAC
share; TFLite: XNNPACK partitions and undelegated ops). For rpi4 the int8 and fp32 bundles of the
same model are timed in one child process, alternating, on this machine's LiteRT (XNNPACK) with
the profile's threads: the ratio int8/fp32 is what the goal "int8 <= fp32" is checked on.

Results: ``benchmarks/results/wild.json`` and ``wild.md`` (header: machine and CPU class). Every
finished cell is also appended to a journal in the work folder; ``--resume`` continues a stopped run
from it (cells already measured are not built again, the rpi4 latency pair is re-timed only when one
of its two cells was rebuilt).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from benchmarks.wild import corpus  # noqa: E402
from hostinfo import cpu_model, memory_gb  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
WORK = corpus.CACHE / "runs"
JOURNAL = WORK / "journal.jsonl"
BUILDS = ("host:fp32", "host:int8", "rpi4:fp32", "rpi4:fp16", "rpi4:int8", "coral-usb:int8",
          "jetson-orin-nano:int8", "jetson-nano:fp16", "ncs2:fp16", "intel-cpu:int8")
DEPLOYKIT = [sys.executable, "-c", "from deploykit.cli.app import main; main()"]


def _cpu_class() -> str:
    try:
        flags = set(re.findall(r"\b(avx512_vnni|avx_vnni|avx2)\b", Path("/proc/cpuinfo").read_text()))
    except OSError:
        flags = set()
    return ", ".join(sorted(flags)) or "none of avx2/avx_vnni/avx512_vnni"


def _wait(proc: subprocess.Popen, timeout: float) -> tuple[int, float, bool]:
    """(returncode, peak RSS MB of the child, timed out) — os.wait4 gives the child's own rusage."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, ru.ru_maxrss / 1024, False
        if time.monotonic() > deadline:
            proc.kill()
            _, status, ru = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, ru.ru_maxrss / 1024, True
        time.sleep(0.2)


def build_one(m: corpus.WildModel, target: str, precision: str, calib: Path, timeout: float) -> dict:
    out = WORK / "bundles" / f"{m.name}-{target}-{precision}"
    cmd = [*DEPLOYKIT, "build", str(corpus.fetch(m)), "--target", target, "--precision", precision,
           "-o", str(out), "--force", "--json"]
    for s in m.shape_args():
        cmd += ["--input-shape", s]
    cmd += [*m.build_args, "--calibration", str(calib)]  # int8: calibration; every precision: realistic verification samples
    log_dir = WORK / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{m.name}-{target}-{precision}"
    t0 = time.perf_counter()
    with open(log_dir / f"{stem}.out", "wb") as fo, open(log_dir / f"{stem}.err", "wb") as fe:
        proc = subprocess.Popen(cmd, stdout=fo, stderr=fe, cwd=ROOT)
        rc, rss, timed_out = _wait(proc, timeout)
    secs = time.perf_counter() - t0
    err = (log_dir / f"{stem}.err").read_text(errors="replace")
    row = {"model": m.name, "target": target, "precision": precision, "seconds": round(secs, 1),
           "peak_rss_mb": round(rss), "returncode": rc}
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    calibrated = any(re.search(r"calibration data|calibrate \+ quantize|calibration /", ln) for ln in err.splitlines())
    if timed_out:
        row.update(status="crashed", reason=f"timed out after {timeout:.0f} s")
    elif rc == 0:
        row["status"] = "built"
        try:
            row.update(_bundle_facts(json.loads((log_dir / f"{stem}.out").read_text())["manifest"], out))
        except (ValueError, KeyError, OSError) as e:
            row.update(status="crashed", reason=f"--json output unreadable: {e}")
    elif rc < 0 or rc > 128 or not errors:
        sig = -rc if rc < 0 else rc - 128 if rc > 128 else 0
        row.update(status="crashed", reason=f"signal {sig}" if sig else (err.strip().splitlines() or ["no output"])[-1][:300])
    elif "internal error" in errors[-1]:
        row.update(status="crashed", reason=errors[-1][:400])
    else:
        row.update(status="refused", reason=errors[-1][:400], after_calibration=calibrated,
                   error_lines=len(errors))
    return row


def _bundle_facts(manifest: dict, bundle: Path) -> dict:
    ver = manifest.get("verification") or {}
    facts = {"bundle": str(bundle), "verification": ver.get("status"), "problems": ver.get("problems", [])[:3]}
    try:
        rep = json.loads((bundle / "report.json").read_text())
    except (OSError, ValueError):
        rep = {}
    br = rep.get("backend_report") or {}
    if "edgetpu" in br:
        facts["tpu_mac_share"] = br["edgetpu"].get("tpu_mac_share")
    xnn = br.get("xnnpack")
    if isinstance(xnn, dict):
        facts["xnnpack_partitions"] = xnn.get("partitions")
        facts["xnnpack_undelegated"] = xnn.get("undelegated")
    q = manifest.get("quantization") or {}
    if q:
        facts["fallback_layers"] = len(q.get("fallback_layers") or [])
    return facts


# ---------------------------------------------------------------- child: evaluation and latency
def _cosine(got, ref, atol: float = 1e-8) -> float:
    """Cosine of two flat outputs; 1 or 0 by closeness when either is all zeros."""
    import numpy as np

    den = np.linalg.norm(got) * np.linalg.norm(ref)
    return float(got @ ref / den) if den > 0 else float(np.allclose(got, ref, atol=atol))


def _child_eval(args) -> int:
    """Runs in a child process: bundle runner vs fp32 ORT on held-out inputs; prints one JSON line."""
    import numpy as np
    import onnxruntime as ort

    from deploykit.verification import load_runner_module

    m = corpus.by_name(args.model)
    held = corpus.samples(m, args.held, seed=args.seed)
    sess = ort.InferenceSession(str(corpus.fetch(m)), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    runner = load_runner_module(args.eval).Runner(args.eval)
    cos, agree, nonfinite, total = [], [], 0, 0
    small: dict[str, list] = {}  # outputs of < 8 values (one score): cosine over the stacked samples
    max_err: dict[str, float] = {}
    for i in range(args.held):
        feed = {}
        for inp in sess.get_inputs():
            a = np.asarray(held[inp.name][i])
            shp = m.shapes.get(inp.name)
            feed[inp.name] = a.reshape(shp) if shp else a
        ref = dict(zip(names, sess.run(None, feed)))
        got = runner.run(feed)
        for j, name in enumerate(names):
            if name not in got:
                continue
            g = np.asarray(got[name], np.float64).ravel()
            r = np.asarray(ref[name], np.float64).ravel()
            nonfinite += int(np.size(g) - np.isfinite(g).sum())
            total += g.size
            if g.shape != r.shape:
                continue
            ok = np.isfinite(g)
            gg, rr = np.where(ok, g, 0), r
            max_err[name] = max(max_err.get(name, 0.0), float(np.max(np.abs(gg - rr), initial=0.0)))
            if g.size < 8:  # per sample, the cosine of one score is only its sign
                small.setdefault(name, []).append((gg, rr))
                continue
            cos.append((name, _cosine(gg, rr)))
            if j == 0 and np.asarray(ref[name]).shape[-1] > 1:
                agree.append(float(np.argmax(np.asarray(got[name]), -1).ravel().tolist() == np.argmax(np.asarray(ref[name]), -1).ravel().tolist()))
    for name, pairs in small.items():
        gg, rr = np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])
        cos.append((name, _cosine(gg, rr, atol=1e-3)))
    worst = {}
    for name, c in cos:
        worst[name] = min(worst.get(name, 1.0), c)
    print(json.dumps({"cosine_min": min(worst.values()) if worst else None, "cosine": worst,
                      "argmax_agreement": sum(agree) / len(agree) if agree else None, "max_abs_error": max_err,
                      "nonfinite_fraction": nonfinite / total if total else 0.0}))
    return 0


def _child_latency(args) -> int:
    """Alternating timing of several bundles in one process (ratios are what counts)."""
    import numpy as np

    from deploykit.verification import load_runner_module

    m = corpus.by_name(args.model)
    x = corpus.samples(m, 1, seed=args.seed)
    feed = {k: np.asarray(v[0]).reshape(m.shapes[k]) if k in m.shapes else np.asarray(v[0]) for k, v in x.items()}
    runners = {b: load_runner_module(b).Runner(b) for b in args.latency}
    for r in runners.values():
        for _ in range(3):
            r.run(feed)
    times = {b: [] for b in runners}
    for _ in range(args.runs):
        for b, r in runners.items():
            t0 = time.perf_counter()
            r.run(feed)
            times[b].append(time.perf_counter() - t0)
    print(json.dumps({b: float(np.median(t)) * 1e3 for b, t in times.items()}))
    return 0


def _child(cmd: list[str], timeout: float) -> dict:
    try:
        p = subprocess.run([sys.executable, str(Path(__file__).resolve()), *cmd], capture_output=True, text=True,
                           timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        tail = (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]
        return {"error": f"exit {p.returncode}: {tail[:300]}"}
    return json.loads(lines[-1])


# ---------------------------------------------------------------- report
def _scrub(text: str) -> str:
    """Machine paths out of messages and rows (a results file names no folder of this machine)."""
    text = text.replace(str(ROOT) + "/", "")
    return re.sub(r"(?:/[\w.+-]+){2,}", lambda m: "<...>/" + m.group(0).rsplit("/", 1)[-1], text)


def _cell(r: dict) -> str:
    if r["status"] == "built":
        bits = [r.get("verification") or "?"]
        ev = r.get("eval") or {}
        if ev.get("cosine_min") is not None:
            bits.append(f"cos {ev['cosine_min']:.3f}")
        if ev.get("nonfinite_fraction"):
            bits.append(f"NaN/inf {ev['nonfinite_fraction']:.0%}")
        if ev.get("error"):
            bits.append("eval: " + ev["error"][:60])
        if r.get("tpu_mac_share") is not None:
            bits.append(f"TPU {r['tpu_mac_share']:.0%}")
        if r.get("xnnpack_partitions") is not None:
            bits.append(f"xnn {r['xnnpack_partitions']}p")
        if r.get("latency_ratio") is not None:
            bits.append(f"{r['latency_ratio']:.2f}x fp32")
        return "ok " + ", ".join(bits)
    reason = r.get("reason", "").replace("|", "/")
    return f"{r['status'].upper()}: {reason[:140]}"


def write_report(rows: list[dict], meta: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows = json.loads(_scrub(json.dumps(rows)))
    (RESULTS / "wild.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, sort_keys=True) + "\n")
    builds = [b for b in BUILDS if any(f"{r['target']}:{r['precision']}" == b for r in rows)]
    models = list(dict.fromkeys(r["model"] for r in rows))
    n = len(rows)
    count = lambda s: sum(r["status"] == s for r in rows)  # noqa: E731
    nf_passed = [r for r in rows if r["status"] == "built" and r.get("verification") == "passed"
                 and (r.get("eval") or {}).get("nonfinite_fraction")]
    late = [r for r in rows if r["status"] == "refused" and r.get("after_calibration")]
    lines = [
        "# Wild models: build matrix (issue 19)", "",
        f"Machine: {meta['cpu']} ({meta['cpu_class']}), {meta['memory_gb']} GB, Python {meta['python']}; "
        f"`python benchmarks/wild/run.py` ({sum(r.get('seconds', 0) for r in rows):.0f} s of builds). Calibration: {meta['calib']} generated samples "
        f"(seed 1); accuracy on {meta['held']} held-out samples (seed 2) through the bundle's own runner vs the fp32 "
        "model in ONNX Runtime; latency ratios measured in one process on this machine.", "",
        *([f"Run cut short: {meta['models_done']} of {meta['models_total']} models done (conv nets first).", ""]
          if meta.get("models_done", meta.get("models_total", 0)) < meta.get("models_total", 0) else []),
        f"**{count('built')} / {n} built, {count('refused')} refused, {count('crashed')} crashed**; "
        f"non-finite outputs reported as passed: {len(nf_passed)}; refusals after calibration work: {len(late)}.", "",
        *([f"{len(meta['rerun'])} cell(s) re-run after the full run, with later fixes: "
           f"{', '.join(meta['rerun'])}.", ""] if meta.get("rerun") else []),
        "| model | " + " | ".join(builds) + " |",
        "|---|" + "---|" * len(builds),
    ]
    for mname in models:
        cells = []
        for b in builds:
            t, p = b.split(":")
            r = next((r for r in rows if r["model"] == mname and r["target"] == t and r["precision"] == p), None)
            cells.append(_cell(r) if r else "")
        lines.append(f"| {mname} | " + " | ".join(cells) + " |")
    lines += ["", "Cells: bundle verification status, worst-output cosine vs fp32 on held-out inputs, share of "
              "non-finite output values, predicted TPU MAC share (Edge TPU), XNNPACK partitions (TFLite), rpi4 int8 "
              "latency / fp32 latency (LiteRT on this x86 machine, profile threads).", "",
              "## Models", "", "| model | package | task | exporter | covers |", "|---|---|---|---|---|"]
    for m in corpus.CORPUS:
        if m.name in models:
            note = f" ({m.note})" if m.note else ""
            lines.append(f"| {m.name} | {m.package} | {m.task} | {m.exporter} | {', '.join(m.tags)}{note} |")
    (RESULTS / "wild.md").write_text("\n".join(lines) + "\n")


def _append_journal(row: dict) -> None:
    with open(JOURNAL, "a") as f:
        f.write(json.dumps(row) + "\n")


def _journal(args) -> dict:
    """Cells of the stopped run's journal (the last line of a cell wins), if it measured the same way."""
    try:
        head, *lines = JOURNAL.read_text().splitlines()
    except (OSError, ValueError):
        return {}
    if json.loads(head) != {"calib": args.calib, "held": args.held}:
        sys.exit(f"error: the journal was written with {head}; resume with those --calib/--held or start afresh")
    cells = {}
    for ln in lines:
        try:
            r = json.loads(ln)
        except ValueError:  # a line cut by the stop
            continue
        cells[(r["model"], r["target"], r["precision"])] = r
    return cells


def _meta(args, t0: float) -> dict:
    return {"cpu": cpu_model(), "cpu_class": _cpu_class(), "memory_gb": memory_gb(), "python": platform.python_version(),
            "seconds": time.perf_counter() - t0, "calib": args.calib, "held": args.held}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated model names")
    ap.add_argument("--builds", default="", help=f"comma-separated target:precision (default: {','.join(BUILDS)})")
    ap.add_argument("--calib", type=int, default=32)
    ap.add_argument("--held", type=int, default=12)
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--runs", type=int, default=30, help="timed runs per rpi4 bundle")
    ap.add_argument("--no-write", action="store_true", help="print rows, do not write results/")
    ap.add_argument("--resume", action="store_true",
                    help="keep the cells of the journal of a stopped run (same --calib/--held) and build only the rest")
    # child modes
    ap.add_argument("--eval", help=argparse.SUPPRESS)
    ap.add_argument("--latency", nargs="*", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.eval:
        return _child_eval(args)
    if args.latency:
        return _child_latency(args)

    names = [n for n in args.only.split(",") if n]
    builds = [b for b in args.builds.split(",") if b] or list(BUILDS)
    full = not names and not args.builds and not args.no_write
    if not full:  # a partial run never touches the bundles and journal of a full run going on beside it
        global WORK, JOURNAL
        WORK = WORK / "partial"
        JOURNAL = WORK / "journal.jsonl"
    t0 = time.perf_counter()
    rows: list[dict] = []
    kept = _journal(args) if args.resume else {}
    if not args.resume:
        JOURNAL.parent.mkdir(parents=True, exist_ok=True)
        JOURNAL.write_text(json.dumps({"calib": args.calib, "held": args.held}) + "\n")
    # conv nets first (the goals on them are the strictest), then the rest in corpus order
    ordered = sorted(corpus.CORPUS, key=lambda m: (not m.cnn, corpus.CORPUS.index(m)))
    for m in ordered:
        if names and m.name not in names:
            continue
        calib = None
        fresh = set()
        for b in builds:
            target, precision = b.split(":")
            row = kept.get((m.name, target, precision))
            if row is None:
                calib = calib or corpus.write_calibration(m, args.calib, 1, WORK / "calib" / f"{m.name}.npz")
                row = build_one(m, target, precision, calib, args.timeout)
                if row["status"] == "built":
                    row["eval"] = _child(["--eval", row["bundle"], "--model", m.name, "--held", str(args.held)], 900)
                fresh.add(precision if target == "rpi4" else "")
                _append_journal(row)
            print(f"{m.name:18s} {b:22s} {_cell(row)[:150]}", flush=True)
            rows.append(row)
        pair = {r["precision"]: r for r in rows if r["model"] == m.name and r["target"] == "rpi4" and r["status"] == "built"}
        if "fp32" in pair and "int8" in pair and (fresh & {"fp32", "int8"} or "latency_ratio" not in pair["int8"]):
            lat = _child(["--latency", pair["fp32"]["bundle"], pair["int8"]["bundle"], "--model", m.name,
                          "--runs", str(args.runs)], 900)
            if "error" not in lat:
                pair["int8"]["latency_ms"] = round(lat[pair["int8"]["bundle"]], 3)
                pair["fp32"]["latency_ms"] = round(lat[pair["fp32"]["bundle"]], 3)
                pair["int8"]["latency_ratio"] = round(lat[pair["int8"]["bundle"]] / lat[pair["fp32"]["bundle"]], 3)
                _append_journal(pair["fp32"])
                _append_journal(pair["int8"])
                print(f"{m.name:18s} rpi4 int8/fp32 latency {pair['int8']['latency_ratio']:.2f}", flush=True)
        if full:  # results after every model: a run cut short still leaves its rows
            write_report(rows, {**_meta(args, t0), "models_done": len({r["model"] for r in rows}),
                                "models_total": len(corpus.CORPUS)})
    meta = _meta(args, t0)
    if args.no_write:
        out = WORK / "partial.json"
        out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
        print(f"rows in {out}")
    elif full:
        write_report(rows, meta)
    else:  # a partial re-run replaces its cells in the last full results
        old = json.loads((RESULTS / "wild.json").read_text())
        done = {(r["model"], r["target"], r["precision"]) for r in rows}
        merged = [r for r in old["rows"] if (r["model"], r["target"], r["precision"]) not in done] + rows
        order = {m.name: i for i, m in enumerate(corpus.CORPUS)}
        merged.sort(key=lambda r: (order.get(r["model"], 99), BUILDS.index(f"{r['target']}:{r['precision']}")))
        old["meta"]["rerun"] = sorted({*old["meta"].get("rerun", []), *(f"{m}:{t}:{p}" for m, t, p in done)})
        write_report(merged, old["meta"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
