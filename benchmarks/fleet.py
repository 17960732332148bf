"""The fleet example as a benchmark: 24 bundles (3 models x 4 targets x 2 precisions).

    python benchmarks/fleet.py          # writes benchmarks/results/fleet.md

Measures, in one run on this machine (a fresh bundle cache and dist/ for each executor, latency
measurement off so only builds are timed): wall time sequential (-j 1) vs -j 2 vs a local Ray
cluster (started by the run, 2 CPUs); a no-change rebuild of the whole matrix (goal <= 2 s; the
process's own wall time and the matrix's in-process time); one model changed (only its 8 bundles
rebuild); peak memory of all build processes together with -j 1 and -j 2 (sampled every 50 ms).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from hostinfo import cpu_model, memory_gb  # noqa: E402

FLEET = HERE.parent / "examples" / "fleet"
DEPLOYKIT = [sys.executable, "-m", "deploykit.cli.app"]


def tree_rss_mb(root_pid: int) -> float:
    """Resident memory of a process and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(d.name))
            rss[int(d.name)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total / 2**20


def run(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall s, peak tree RSS MB, result)."""
    peak = [0.0]
    t0 = time.perf_counter()
    proc = subprocess.Popen([*DEPLOYKIT, *args], cwd=cwd, env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss_mb(proc.pid))
            time.sleep(0.05)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    t.join()
    return wall, peak[0], subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def statuses(folder: Path) -> dict[str, str]:
    data = json.loads((folder / "dist" / "matrix.json").read_text())
    return {j["id"]: j["status"] for j in data["jobs"]}


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="deploykit-fleet-bench-"))
    try:
        shutil.copytree(FLEET, work / "fleet", ignore=shutil.ignore_patterns("dist", "models", "data"))
        fleet = work / "fleet"
        subprocess.run([sys.executable, str(FLEET / "make_models.py"), "--out", str(fleet)], check=True, capture_output=True)
        toml = (fleet / "deploykit.toml").read_text()
        (fleet / "deploykit.toml").write_text(toml.replace("[build]\n", "[build]\nmeasure = false\n"))
        rows, notes = [], []

        def fresh(name: str) -> dict[str, str]:
            shutil.rmtree(fleet / "dist", ignore_errors=True)
            return {"XDG_CACHE_HOME": str(work / f"cache-{name}")}

        walls = {}
        for name, args in (("sequential (-j 1)", ["-j", "1"]), ("-j 2", ["-j", "2"]), ("Ray, local cluster (2 CPUs)", ["--executor", "ray", "-j", "2"])):
            wall, peak, r = run(["build", *args], fleet, fresh(name.split()[0]))
            st = statuses(fleet)
            built = sum(s == "built" for s in st.values())
            walls[name] = wall
            rows.append((name, f"{wall:.1f} s", f"{walls['sequential (-j 1)'] / wall:.2f}x", f"{built} / {len(st)}",
                         f"{peak:.0f} MB", f"exit {r.returncode}"))
        # incremental: reuse the -j 2 cache and dist
        env = fresh("incremental")
        run(["build", "-j", "2"], fleet, env)
        nochange = []
        for _ in range(3):
            wall, _peak, r = run(["build"], fleet, env)
            inproc = json.loads((fleet / "dist" / "matrix.json").read_text())["wall_s"]
            nochange.append((wall, inproc))
            assert set(statuses(fleet).values()) == {"up to date"}, statuses(fleet)
        sys.path.insert(0, str(HERE.parent / "tests"))
        import modelzoo

        modelzoo.small_cnn(fleet / "models" / "classifier.onnx", opset=18)  # same net, another opset: new bytes
        wall_one, peak_one, r = run(["build", "-j", "2"], fleet, env)
        st = statuses(fleet)
        rebuilt = sorted(k for k, v in st.items() if v == "built")
        only_classifier = all(k.startswith("classifier:") for k in rebuilt) and len(rebuilt) == 8
        median_wall = statistics.median(w for w, _ in nochange)
        median_inproc = statistics.median(i for _, i in nochange)
        flags = subprocess.run("grep -o -w 'avx512_vnni\\|avx_vnni\\|avx2' /proc/cpuinfo | sort -u", shell=True,
                               capture_output=True, text=True).stdout.split()
        lines = [
            "# Fleet matrix benchmark (issue 20)", "",
            f"Machine: {cpu_model()}, {os.cpu_count()} cores, {memory_gb()} GB, CPU flags {' '.join(flags) or 'none of avx2/avx_vnni/avx512_vnni'}, "
            f"Python {sys.version.split()[0]}; shared with other work, so compare ratios within this run.", "",
            "`python benchmarks/fleet.py`: `examples/fleet` (classifier, encoder, squeezenet x host, rpi5, intel-cpu, "
            "jetson-orin-nano x fp16, int8 = 24 bundles), latency measurement off, a fresh cache and dist/ per row.", "",
            "| executor | wall | speed-up vs -j 1 | bundles built | peak RSS of all build processes | result |",
            "|---|---|---|---|---|---|",
            *[f"| {' | '.join(r)} |" for r in rows], "",
            "exit 4 = every bundle built, and at least one missed its accuracy gate (see below).", "",
            "| incremental | wall (whole command) | in-process matrix time | result |", "|---|---|---|---|",
            f"| no change, whole matrix (median of 3) | {median_wall:.2f} s (goal <= 2 s: {'met' if median_wall <= 2 else 'MISSED'}) | "
            f"{median_inproc:.2f} s | 24 up to date |",
            f"| one model changed (classifier) | {wall_one:.1f} s | — | rebuilt {len(rebuilt)}: "
            f"{'only the classifier' if only_classifier else ', '.join(rebuilt)}; peak RSS {peak_one:.0f} MB |", "",
        ]
        lines += notes
        out = HERE / "results" / "fleet.md"
        out.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print("\n".join(lines))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
