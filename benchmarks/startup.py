"""Start-up time of the deploykit CLI: ``--help``, ``--version``, ``targets``, ``doctor`` and a small build.

    python benchmarks/startup.py [--repeats 9]

Every command runs ``--repeats`` times, each in a fresh process of the installed console script
(``deploykit`` beside this interpreter), after one warm-up run; figures are the median and minimum
wall time and the median CPU time (user + sys of the child: less sensitive to a busy shared
machine than wall time). References measured in the same run:

* ``python -c pass``: the interpreter's own start-up, the floor;
* ``import deploykit.pipeline``: the graph stack (onnx_ir, onnx, onnxruntime, numpy) that
  ``deploykit --help`` imported before the CLI modules and backends were made lazy.

``python -X importtime`` then checks which of those heavy modules each command imports (goal: none
for ``--help``, ``--version``, ``targets`` and ``doctor``). The small build is a 3-layer CNN made with
onnx.helper, built for ``host`` in fp32; its ``--json`` stage timings split the wall time into the
build's stages and the rest (interpreter, imports, plugin loading, rendering the summary).

Goal (issue 18, measured there on an idle machine): ``deploykit --help`` <= 0.5 s. On this shared
machine the goal is judged on the fastest of the repeats (the least disturbed run, the nearest to an
idle machine); the median and the CPU time are reported beside it. Writes
``benchmarks/results/startup.json`` and ``startup.md``. No host names or paths are recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
GOAL_HELP_S = 0.5
HEAVY = ("onnx_ir", "onnx", "onnxruntime", "numpy", "ml_dtypes", "sympy", "onnxscript")
ENV = {**os.environ, "COLUMNS": "100"}


def deploykit_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("deploykit")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "deploykit.cli.app"]


def timed(cmd: list[str], cwd: Path | None = None) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall s, child CPU s, result) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=ENV, timeout=600)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[-3:])} failed ({res.returncode}):\n{res.stderr[-1500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), res


def measure(cmd: list[str], repeats: int, cwd: Path | None = None) -> dict:
    timed(cmd, cwd)  # warm-up: file system caches, .pyc files
    walls, cpus = [], []
    last = None
    for _ in range(repeats):
        wall, cpu, last = timed(cmd, cwd)
        walls.append(wall)
        cpus.append(cpu)
    return {"median_s": statistics.median(walls), "min_s": min(walls), "max_s": max(walls),
            "cpu_median_s": statistics.median(cpus), "runs": repeats, "stdout": last.stdout if last else ""}


def heavy_imports(args: list[str], cwd: Path | None = None) -> list[str]:
    """Which of :data:`HEAVY` ``deploykit ARGS`` imports (``python -X importtime``)."""
    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "deploykit.cli.app", *args],
                         capture_output=True, text=True, cwd=cwd, env=ENV, timeout=600)
    seen = set()
    for line in res.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name.split(".")[0] in HEAVY:
                seen.add(name.split(".")[0])
    return sorted(seen)


def small_model(path: Path) -> Path:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((8, 1, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((16, 8, 3, 3)).astype(np.float32), "w2")
    fc = numpy_helper.from_array(rng.standard_normal((16, 4)).astype(np.float32), "fc")
    nodes = [
        helper.make_node("Conv", ["image", "w1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("MatMul", ["flat", "fc"], ["scores"], name="fc"),
    ]
    graph = helper.make_graph(nodes, "startup_cnn",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, 16, 16])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 4])], [w1, w2, fc])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def machine_info() -> dict:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from hostinfo import cpu_class_label, cpu_model, memory_gb

    import importlib.metadata as md

    versions = {}
    for p in ("deploykit", "typer", "rich", "onnx", "onnx-ir", "onnxruntime", "numpy"):
        try:
            versions[p] = md.version(p)
        except md.PackageNotFoundError:
            versions[p] = None
    return {"cpu": cpu_model(platform.processor() or platform.machine()), "cpu_class": cpu_class_label(),
            "cores": os.cpu_count(), "memory_gb": memory_gb(), "os": f"{platform.system()} {platform.machine()}",
            "python": platform.python_version(), "load_avg_at_start": os.getloadavg()[0], "packages": versions}


def run(repeats: int) -> dict:
    dk = deploykit_cmd()
    rows: dict[str, dict] = {}
    rows["python -c pass"] = measure([sys.executable, "-c", "pass"], repeats)
    rows["import deploykit.pipeline (graph stack)"] = measure([sys.executable, "-c", "import deploykit.pipeline"], repeats)
    for name, args in (("deploykit --help", ["--help"]), ("deploykit --version", ["--version"]),
                       ("deploykit targets", ["targets"]), ("deploykit doctor", ["doctor"])):
        rows[name] = measure(dk + args, repeats)
        rows[name]["heavy_imports"] = heavy_imports(args)
    with tempfile.TemporaryDirectory(prefix="deploykit-startup-") as tmp:
        model = small_model(Path(tmp) / "cnn.onnx")
        out = Path(tmp) / "bundle"
        build = dk + ["build", str(model), "--target", "host", "-o", str(out), "--force", "--json"]
        rows["deploykit build (small CNN, host fp32)"] = row = measure(build, max(3, repeats // 3))
        stages = json.loads(row["stdout"])["timings_s"]
        row["stages_s"] = stages
        row["outside_stages_s"] = row["median_s"] - sum(stages.values())
        shutil.rmtree(out, ignore_errors=True)
    for r in rows.values():
        r.pop("stdout", None)
    h = rows["deploykit --help"]
    return {"machine": machine_info(), "repeats": repeats, "rows": rows,
            "goal": {"help_s_max": GOAL_HELP_S, "help_min_s": h["min_s"], "help_median_s": h["median_s"],
                     "help_cpu_s": h["cpu_median_s"], "met": h["min_s"] <= GOAL_HELP_S}}


def write_markdown(report: dict, path: Path) -> None:
    m, rows = report["machine"], report["rows"]
    graph = rows["import deploykit.pipeline (graph stack)"]["median_s"]
    floor = rows["python -c pass"]["median_s"]
    lines = [
        "# CLI start-up time",
        "",
        f"`python benchmarks/startup.py --repeats {report['repeats']}` — every command in a fresh process (the installed "
        "`deploykit` console script), one warm-up run, then the median / minimum wall time and the median CPU time "
        "(user + sys) of the repeats. Heavy imports: which of "
        f"{', '.join(HEAVY)} the command imports (`python -X importtime`).",
        "",
        f"Machine: {m['cpu']} (CPU class: {m['cpu_class']}), {m['cores']} cores, {m['memory_gb']} GB, {m['os']}, "
        f"Python {m['python']}; shared with other jobs (load average {m['load_avg_at_start']:.1f} at start), "
        "so compare ratios within this run.",
        "",
        "| command | median s | min s | CPU s | vs graph-stack import | heavy imports |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, r in rows.items():
        heavy = ", ".join(r["heavy_imports"]) or "none" if "heavy_imports" in r else ""
        lines.append(f"| `{name}` | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['cpu_median_s']:.3f} | "
                     f"{r['median_s'] / graph:.2f}× | {heavy} |")
    g = report["goal"]
    b = rows["deploykit build (small CNN, host fp32)"]
    stages = ", ".join(f"{k} {v:.2f}" for k, v in b["stages_s"].items())
    lines += [
        "",
        f"**Goal `deploykit --help` ≤ {g['help_s_max']} s: {'met' if g['met'] else 'MISSED'}** "
        f"(fastest run {g['help_min_s']:.3f} s, median {g['help_median_s']:.3f} s, CPU {g['help_cpu_s']:.3f} s; "
        f"in the same run the interpreter alone takes {floor:.3f} s and importing the graph stack {graph:.3f} s).",
        "",
        f"Small build: {b['median_s']:.2f} s median, of which the build stages take {sum(b['stages_s'].values()):.2f} s "
        f"({stages}) and the rest — interpreter, imports of the graph stack and the backend, plugin loading, "
        f"printing — {b['outside_stages_s']:.2f} s.",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args(argv)
    report = run(args.repeats)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "startup.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    write_markdown(report, RESULTS / "startup.md")
    print((RESULTS / "startup.md").read_text(encoding="utf-8"))
    return 0 if report["goal"]["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
