"""Fuzz the CLI with mutated models and report crashes by class (the hostile-input fuzz pass).

    python benchmarks/fuzz/run.py [--mutants 520] [--seed 17] [--jobs 2]

Valid seed models (built with onnx.helper, plus two ``light_*`` models from the onnx wheel) are
mutated with a fixed seed (benchmarks/fuzz/mutators.py: protobuf byte flips, field flips,
shape/dtype changes, dangling edges, hostile names) and fed to ``deploykit build`` on a target
drawn per mutant (host fp32/fp16/int8, rpi4, intel-cpu, ncs2, jetson-nano), some also to
``deploykit inspect``; a successful build is re-checked with ``deploykit verify``. Each command
runs in its own folder with its own TMPDIR and HOME.

A *crash* is anything that breaks the error contract: ``internal error``, a traceback, a signal
(segfault), a timeout, not exactly one ``error:`` line on failure, files left in TMPDIR or beside
the output, or files written outside the job's folders. Crashes are grouped by class; the goal
is 0. Writes ``benchmarks/results/fuzz.json`` and ``fuzz.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "hostile"), str(HERE)]

import hostile_models  # noqa: E402
import modelzoo  # noqa: E402
from mutators import mutate  # noqa: E402

PLUGINS = "profiles,onnxruntime,tflite,edgetpu,tensorrt,openvino"
# (target, precision, weight)
JOBS = [("host", "fp32", 40), ("host", "fp16", 8), ("host", "int8", 12), ("rpi4", "fp32", 12),
        ("intel-cpu", "fp32", 10), ("ncs2", "fp16", 6), ("jetson-nano", "fp16", 8), ("coral-usb", "int8", 4)]
INSPECT_SHARE = 0.2
VERIFY_SHARE = 0.5
TIMEOUT = 300
FRESH = False  # --fresh: a new interpreter per command instead of a child of the preloaded server
_SERVERS = threading.local()


def _fork_server():
    """One preloaded deploykit per worker thread (tests/hostile/fork_server.py): each command is a
    forked child, a real process, without paying 2-3 s of imports per command."""
    from hostile_harness import _ForkServer

    if getattr(_SERVERS, "server", None) is None or _SERVERS.server.proc.poll() is not None:
        _SERVERS.server = _ForkServer()
    return _SERVERS.server


def seeds(folder: Path) -> dict[str, Path]:
    out = {
        "small_cnn": modelzoo.small_cnn(folder / "small_cnn.onnx"),
        "small_transformer": modelzoo.small_transformer(folder / "small_transformer.onnx"),
        "conv": hostile_models.save(hostile_models.conv_model(), folder / "conv.onnx"),
        "opset7_ir3": hostile_models.save(hostile_models.opset7_ir3_model(), folder / "opset7.onnx"),
        "if_subgraph": hostile_models.save(hostile_models.if_subgraph_names(), folder / "if.onnx"),
    }
    for name in ("light_bvlc_alexnet", "light_squeezenet"):
        p = modelzoo.LIGHT_DIR / f"{name}.onnx"
        if p.exists():
            out[name] = p
    return out


def calibration_for(model: Path, folder: Path) -> Path | None:
    """Calibration data shaped for the seed's inputs (an .npz; None if the seed cannot be read)."""
    m = onnx.load(str(model))
    inits = {t.name for t in m.graph.initializer}
    arrays = {}
    rng = np.random.default_rng(0)
    for vi in m.graph.input:
        if vi.name in inits:
            continue
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        shape = dims[1:] if dims and dims[0] == 1 else dims
        if vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT:
            arrays[vi.name] = rng.standard_normal((8, *shape)).astype(np.float32)
        else:
            arrays[vi.name] = rng.integers(0, 4, (8, *shape)).astype(np.int64)
    path = folder / f"{model.stem}.calib.npz"
    np.savez(path, **arrays)
    return path


def _snapshot(root: Path) -> set[str]:
    return {str(Path(d, f).relative_to(root)) for d, dirs, files in os.walk(root) for f in files + dirs}


def run_cli(job_dir: Path, args: list[str]) -> dict:
    tmp, home = job_dir / "tmp", job_dir / "home"
    for p in (tmp, home):
        p.mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(tmp), "HOME": str(home), "DEPLOYKIT_PLUGINS": PLUGINS,
           "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("DEPLOYKIT_DEBUG", None)
    before = _snapshot(job_dir)
    t0 = time.perf_counter()
    if FRESH:
        try:
            proc = subprocess.run([sys.executable, "-m", "deploykit.cli.app", *args], capture_output=True, text=True,
                                  errors="replace", cwd=job_dir, env=env, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
            code, out, err = proc.returncode, proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as e:
            code, out, err = None, str(e.stdout or ""), str(e.stderr or "")
    else:
        code, out, err = _fork_server().run(args, job_dir, env, job_dir / "tmp", TIMEOUT)
        if code == -9:  # killed by the server's timeout
            code = None
    written = sorted(_snapshot(job_dir) - before)
    return {"args": args, "code": code, "stdout": out[-4000:], "stderr": err[-4000:], "written": written,
            "seconds": round(time.perf_counter() - t0, 2)}


def classify(res: dict, out: Path | None) -> str | None:
    """The crash class of one command (None: the contract held)."""
    text = res["stderr"] + res["stdout"]
    if res["code"] is None:
        return "timeout"
    if res["code"] < 0:
        return f"signal {-res['code']}"
    if "Traceback" in text:
        return "traceback: " + _last_exception(text)
    lines = [ln for ln in res["stderr"].splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    if res["code"] != 0:
        if len(errors) != 1 or lines[-1] != errors[0]:
            return "not one error line"
        m = re.match(r"error: internal error: (\w+): ?(.{0,60})", errors[0])
        if m:
            return f"internal error: {m.group(1)}: {re.sub(r'[0-9]+', 'N', m.group(2))}"
    left = [w for w in res["written"] if w.startswith("tmp/") or ".partial" in w or ".old" in w]
    if left:
        return "leftovers"
    allowed = ("out", "tmp", "home") if res["code"] == 0 else ("tmp", "home")
    stray = [w for w in res["written"] if w.split("/")[0] not in allowed or w.startswith("home/")]
    if stray:
        return "wrote outside its folders"
    if res["code"] != 0 and out is not None and out.exists():
        return "output left on failure"
    return None


def _last_exception(text: str) -> str:
    found = re.findall(r"^(\w[\w.]*(?:Error|Exception|Exit|Interrupt)\w*)", text, re.M)
    return found[-1] if found else "?"


def one_mutant(index: int, seed: int, models: dict[str, Path], calibs: dict[str, Path], work: Path) -> dict:
    rng = random.Random(seed * 1_000_003 + index)
    name = rng.choice(sorted(models))
    base = onnx.load(str(models[name]))
    data, steps = mutate(rng, base, steps=rng.choice([1, 1, 1, 2, 3]))
    target, precision = rng.choices([(t, p) for t, p, _ in JOBS], weights=[w for *_, w in JOBS])[0]
    job = work / f"m{index:04d}"
    job.mkdir()
    model = job / "model.onnx"
    model.write_bytes(data)
    out = job / "out"
    args = ["build", str(model), "--target", target, "-p", precision, "-o", str(out)]
    if precision == "int8":
        args += ["-c", str(calibs[name])]
    record = {"index": index, "seed_model": name, "mutations": steps, "target": target, "precision": precision,
              "commands": []}
    def command(name: str, cli_args: list[str], output: Path | None) -> dict:
        res = run_cli(job, cli_args)
        entry = {"command": name, "crash": classify(res, output), "code": res["code"], "seconds": res["seconds"],
                 "error": _error_line(res)}
        if entry["crash"]:
            entry["stderr_tail"] = res["stderr"][-1500:]
            entry["written"] = res["written"][:10]
        record["commands"].append(entry)
        return res

    built = command("build", args, out)
    if built["code"] == 0:
        try:
            status = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["verification"]["status"]
        except (OSError, ValueError, KeyError, TypeError):
            status = "unreadable manifest"
        record["commands"][-1]["verification"] = status
    if built["code"] == 0 and rng.random() < VERIFY_SHARE:
        command("verify", ["verify", str(out)], None)
    if rng.random() < INSPECT_SHARE:
        command("inspect", ["inspect", str(model), "--target", target], None)
    shutil.rmtree(job, ignore_errors=True)
    return record


def _error_class(line: str) -> str:
    """An error line without its specifics (names, paths, numbers): what kind of refusal it was."""
    text = re.sub(r"\d+", "N", re.sub(r"'[^']*'", "'…'", line[len("error: "):]))
    parts = [p.strip()[:50] for p in re.split(r"[:;]", text)[:2]]
    return ": ".join(p for p in parts if p)


def _error_line(res: dict) -> str | None:
    lines = [ln for ln in res["stderr"].splitlines() if ln.startswith("error:")]
    return lines[-1][:300] if lines else None


def write_results(records: list[dict], args, elapsed: float) -> dict:
    from deploykit.effect.host import cpu_model
    from deploykit.cpu import cpu_class

    commands = [c for r in records for c in r["commands"]]
    crashes = Counter(c["crash"] for c in commands if c["crash"])
    outcome = Counter("crash" if c["crash"] else f"clean error (exit {c['code']})" if c["code"] != 0 else
                      f"ok, build verification {c['verification']}" if c.get("verification") else "ok"
                      for c in commands)
    unverified = [{"index": r["index"], "seed_model": r["seed_model"], "target": f"{r['target']} {r['precision']}",
                   "mutations": r["mutations"], "verification": c["verification"]}
                  for r in records for c in r["commands"] if c.get("verification") not in (None, "passed", "skipped")]
    by_kind = Counter(s.split(":")[0] for r in records for s in r["mutations"])
    errors = Counter(_error_class(c["error"]) for c in commands if c["error"] and not c["crash"])
    import deploykit
    import onnxruntime

    summary = {
        "machine": {"cpu": cpu_model(), "cpu_flags": cpu_class().label, "cores": os.cpu_count(), "python": platform.python_version()},
        "versions": {"deploykit": deploykit.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__},
        "seed": args.seed, "mutants": len(records), "commands": len(commands), "seconds": round(elapsed),
        "outcomes": dict(outcome), "crashes": dict(crashes),
        "internal_errors": sum(n for k, n in crashes.items() if k.startswith("internal error")),
        "tracebacks": sum(n for k, n in crashes.items() if k.startswith("traceback")),
        "mutation_kinds": dict(sorted(by_kind.items())),
        "targets": dict(Counter(f"{r['target']} {r['precision']}" for r in records)),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fuzz.json").write_text(json.dumps({"summary": summary, "crashed": [r for r in records if any(
        c["crash"] for c in r["commands"])], "built_but_not_verified": unverified}, indent=2, sort_keys=True) + "\n",
        encoding="utf-8")
    lines = [
        "# Fuzz pass: mutated models through the CLI",
        "",
        f"Machine: {summary['machine']['cpu']} ({summary['machine']['cores']} cores, shared; CPU class: "
        f"{summary['machine']['cpu_flags']}), Python {summary['machine']['python']}; deploykit "
        f"{summary['versions']['deploykit']}, onnx {summary['versions']['onnx']}, onnxruntime "
        f"{summary['versions']['onnxruntime']}.",
        f"Regenerate: `python benchmarks/fuzz/run.py --mutants {args.mutants} --seed {args.seed}` "
        f"({summary['seconds']} s here with {args.jobs} jobs; each command "
        f"{'a fresh interpreter' if args.fresh else 'a child forked from a preloaded deploykit, as in tests/hostile'}).",
        "",
        f"- mutants: **{len(records)}** (seed {args.seed}), commands run: {len(commands)} "
        "(build on a drawn target; inspect on some; verify after half of the successful builds)",
        f"- **internal errors: {summary['internal_errors']}, tracebacks: {summary['tracebacks']}, "
        f"crashes of any class: {sum(crashes.values())}**",
        "",
        "## Outcomes",
        "",
        "| outcome | commands |", "|---|---:|",
        *[f"| {k} | {v} |" for k, v in sorted(outcome.items())],
        "",
        "## Crashes by class",
        "",
        *([f"- {v} x {k}" for k, v in crashes.most_common()] or ["none"]),
        "",
        "## Built, but verification did not pass (not a crash: the build says so; listed to look into)",
        "",
        *([f"- m{u['index']:04d} {u['seed_model']} on {u['target']}: {'; '.join(u['mutations'])}" for u in unverified]
          or ["none"]),
        "",
        "## Mutations applied",
        "",
        "| kind | count |", "|---|---:|",
        *[f"| {k} | {v} |" for k, v in sorted(by_kind.items())],
        "",
        "## Targets drawn",
        "",
        *[f"- {k}: {v}" for k, v in sorted(summary["targets"].items())],
        "",
        "## Most frequent clean errors (first words)",
        "",
        *[f"- {v} x `{k}`" for k, v in errors.most_common(25)],
        "",
    ]
    (RESULTS / "fuzz.md").write_text("\n".join(lines), encoding="utf-8")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=int, default=520)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--fresh", action="store_true",
                        help="start a new interpreter per command (start-up included; ~4x slower)")
    args = parser.parse_args(argv)
    global FRESH
    FRESH = args.fresh
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="deploykit-fuzz-") as tmp:
        work = Path(tmp)
        (work / "seeds").mkdir()
        models = seeds(work / "seeds")
        calibs = {name: calibration_for(p, work / "seeds") for name, p in models.items()}
        done = 0

        def task(i):
            nonlocal done
            rec = one_mutant(i, args.seed, models, calibs, work)
            done += 1
            crash = [c["crash"] for c in rec["commands"] if c["crash"]]
            if crash or done % 25 == 0:
                print(f"[{done}/{args.mutants}] m{i:04d} {rec['target']} {rec['precision']}: "
                      f"{crash or 'ok'}", flush=True)
            return rec

        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            records = list(pool.map(task, range(args.mutants)))
    summary = write_results(records, args, time.time() - start)
    print(json.dumps({k: summary[k] for k in ("mutants", "internal_errors", "tracebacks", "crashes")}, indent=1))
    return 0 if not summary["crashes"] else 1


if __name__ == "__main__":
    sys.exit(main())
