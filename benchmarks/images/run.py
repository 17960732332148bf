"""Container images built for real (issue 22): every toolchain and device image, x86-64 and arm64, with podman
and local Debian bases (no registry). One command:

    python benchmarks/images/run.py [--fresh-bases] [--only NAME ...]

writes ``benchmarks/results/images.md`` and ``images.json``: image x architecture -> built / failed at step N
(why), image size, build time, no-change rebuild time, and the check in the image (device images: the bundle's
runner on its stored samples vs the fp32 reference; toolchain images: ``deploykit build`` inside = the same
bundle bytes as outside). The cases are those of ``tests/images/cases.py`` plus rows the tests leave out
(bases this machine cannot make, an arm64 toolchain build). Before measuring, it removes the images of these
cases (not the bases, unless --fresh-bases), so build times are from the local base up; layers that two images
share (same requirements) are built once and the second image reuses them, as in real use.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
sys.path[:0] = [str(BENCH), str(REPO / "tests"), str(REPO / "tests" / "images")]
os.environ.setdefault("DEPLOYKIT_PLUGINS", "profiles,onnxruntime")

from cases import DEVICE_CASES, ENGINE, TOOLCHAIN_CASES, Case, run_device_case, run_toolchain_case  # noqa: E402
from hostinfo import cpu_class_label, cpu_model, memory_gb  # noqa: E402

NVIDIA = ("^FROM nvcr\\.io", "NVIDIA's registry (nvcr.io) is not reachable and no local stand-in exists for L4T bases")
UBUNTU = ("^FROM ubuntu:", "ubuntu:* bases are not made locally (bootstrap makes Debian python bases only) and no "
          "registry is reachable")
EXTRA_CASES = [
    Case("device", "coral-usb", "coral-usb", "int8", "profiles,tflite,edgetpu", "linux/arm64",
         r"packages\.cloud\.google\.com", "the Coral apt repository (packages.cloud.google.com) is not reachable here"),
    Case("device", "jetson-orin-nano", "jetson-orin-nano", "fp16", "profiles,tensorrt", "linux/arm64", *NVIDIA),
    Case("device", "jetson-nano", "jetson-nano", "fp16", "profiles,tensorrt", "linux/arm64", *NVIDIA),
    Case("device", "intel-npu", "intel-npu", "int8", "profiles,openvino", "linux/amd64", *UBUNTU),
    Case("toolchain", "tflite", "rpi4", "int8", "profiles,tflite", "linux/arm64"),
]


def machine() -> dict:
    def ver(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return None

    return {"cpu": cpu_model(), "cpu_class": cpu_class_label(), "cores": os.cpu_count(), "memory_gb": memory_gb(),
            "kernel": platform.release(), "python": platform.python_version(), "podman": ver([ENGINE, "--version"]),
            "mmdebstrap": ver(["mmdebstrap", "--version"]), "qemu": ver(["qemu-aarch64-static", "--version"]),
            "git_commit": ver(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
            "load_avg_at_start": [round(v, 2) for v in os.getloadavg()]}


def bootstrap_bases(fresh: bool) -> list[dict]:
    from deploykit.docker.bases import LOCAL_BASES, bootstrap, cache_root

    if fresh:
        for tar in cache_root().glob("rootfs-*.tar"):
            tar.unlink()
        subprocess.run([ENGINE, "rmi", "--force", *[b.full_name for b in LOCAL_BASES.values()]], capture_output=True)
        out = subprocess.run([ENGINE, "images", "--format", "{{.Repository}}:{{.Tag}}", "localhost/deploykit-base"],
                             capture_output=True, text=True).stdout.split()
        if out:
            subprocess.run([ENGINE, "rmi", "--force", *out], capture_output=True)
    rows = []
    for res in bootstrap(engine=ENGINE, log=lambda m: print("  " + m, flush=True)):
        from deploykit.docker.bases import base_image_size

        for arch, ref in res.archs.items():
            size = None if ref.startswith("failed") else base_image_size(ENGINE, ref)
            rows.append({"name": res.name, "arch": arch, "ok": not ref.startswith("failed"), "seconds": res.seconds[arch],
                         "size_mb": round(size / 1e6, 1) if size else None, "note": res.note,
                         "error": ref[len("failed: "):] if ref.startswith("failed") else ""})
    return rows


def remove_case_images(cases: list[Case], all_stale: bool = True) -> None:
    subprocess.run([ENGINE, "rmi", "--force", *[c.tag for c in cases]], capture_output=True)
    if not all_stale:
        return
    others = subprocess.run([ENGINE, "images", "--format", "{{.Repository}}:{{.Tag}}"], capture_output=True,
                            text=True).stdout.split()
    stale = [t for t in others if "deploykit-toolchain-" in t or "deploykit-imagetest-" in t]
    if stale:
        subprocess.run([ENGINE, "rmi", "--force", *stale], capture_output=True)


def row_json(row: dict) -> dict:
    from deploykit.docker.imagecheck import verdict_text

    case, out = row["case"], row["outcome"]
    verify = row.get("verify") or {}
    if case.kind == "toolchain" and verify.get("status") in ("passed", "failed"):
        check = (f"{verify['status']}: {verify['identical_files']}/{verify['files']} files identical"
                 + (f" (differ: {', '.join(verify['differ'])})" if verify["differ"] else ""))
    elif verify:
        check = verdict_text(verify)
    else:
        check = "-"
    problem = row["problem"] or ("" if case.stops_at or verify.get("status") == "passed" else
                                 f"the check in the image did not pass: {check}")
    return {"kind": case.kind, "name": case.name, "target": case.target, "precision": case.precision,
            "arch": case.arch, "built": out.ok, "result": out.summary(), "step": out.step, "steps": out.steps,
            "expected": (f"stop at /{case.stops_at}/: {case.why}" if case.stops_at else "build + pass"),
            "as_expected": not problem, "problem": problem, "build_s": round(out.seconds, 1),
            "rebuild_s": round(row["rebuild"].seconds, 1) if row.get("rebuild") else None,
            "rebuild_cached_steps": row["rebuild"].cached_steps if row.get("rebuild") else None,
            "size_mb": row.get("size_mb"), "check": check, "check_s": verify.get("seconds") or row.get("run_seconds")}


def cell(text: str, limit: int = 220) -> str:
    """Table-safe: one line, no column breaks."""
    text = re.sub(r"/tmp/dk-images-bench-\w+/", "", " ".join(str(text).split()))  # no temporary paths
    return (text[:limit] + " …" if len(text) > limit else text).replace("|", "\\|")


def fmt(v, spec=".0f", none="-"):
    return none if v is None else format(v, spec)


def write_md(info: dict, bases: list[dict], rows: list[dict], total_s: float) -> None:
    m = info
    lines = [
        "# Container images built and run for real (issue 22)", "",
        "Generated by `python benchmarks/images/run.py` (figures also in `images.json`).", "",
        "## Machine", "",
        f"- CPU class: **{m['cpu_class']}** ({m['cpu']}, {m['cores']} logical cores, {m['memory_gb']} GB) — shared and "
        "noisy: times are indicative, not a benchmark of the engine.",
        f"- {m['podman']}, runtime runc, overlay storage; {m['mmdebstrap']}; {m['qemu']}; kernel {m['kernel']}; "
        f"deploykit commit {m['git_commit']} (working tree may differ); load average at start {m['load_avg_at_start']}.",
        f"- Whole run: {total_s / 60:.1f} min.", "",
        "## Method", "",
        "- No container registry is reachable: the bases are **local stand-ins** made by `deploykit images bootstrap` "
        "(mmdebstrap minbase from the Debian mirror + `podman import` per architecture + a manifest list under the "
        "upstream name). They are **Debian's python3, not the upstream python images**: the stand-in for "
        "`python:3.10-slim-bookworm` runs Python **3.11**. Shim: a venv at `/opt/python` first on `PATH` gives the "
        "unmodified Dockerfiles their `python`/`pip`; the machine's local CA certificates are added "
        "(`PIP_CERT` points at the system bundle). Builds use `--pull=never` (`DEPLOYKIT_PULL=never`).",
        "- Device images: `deploykit package BUNDLE --docker --engine podman` on a bundle of the test suite's small CNN "
        "(`tests/modelzoo.py`), then the bundle's `runner.py` inside the image on the bundle's stored samples, judged "
        "against the stored fp32 outputs with deploykit's verification tolerances. arm64 images run under qemu user "
        "mode (binfmt) with the board's core (`QEMU_CPU` cortex-a72 / cortex-a76) and an arm64 `/proc/cpuinfo`.",
        "- Toolchain images: the toolchain Dockerfile, then `deploykit build` inside the image (as `build --docker` "
        "runs it) vs the same build outside; *check* compares every file's sha256 and the manifest's own bytes.",
        "- *build* = from the local base (case images removed first; layers shared with an image built earlier in the "
        "run are reused); *rebuild* = the same command again with nothing changed (device rows include the "
        "`deploykit package` CLI start, ~1-2 s). Size = `podman image inspect .Size`.", "",
        "## Local bases", "",
        "| base (upstream name) | arch | result | size MB | time s | note |", "|---|---|---|---|---|---|",
    ]
    for b in bases:
        lines.append(f"| `{b['name']}` | {b['arch']} | {'made' if b['ok'] else 'failed: ' + cell(b['error'], 400)} | "
                     f"{fmt(b['size_mb'])} | {fmt(b['seconds'])} {'(cached)' if b['ok'] and b['seconds'] < 5 else ''} | "
                     f"{b['note'] if b['ok'] else ''} |")
    lines += ["", "## Images", "",
              "| image | arch | result | as expected here | size MB | build s | rebuild s | check in the image |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        res = "built" if r["built"] else f"failed at step {r['step']}/{r['steps']}: {cell(r['result'].split(': ', 1)[-1])}"
        exp = "yes" if r["as_expected"] else f"**NO**: {cell(r['problem'])}"
        again = " (re-run)" if r.get("rerun") else ""
        lines.append(f"| {r['kind']} `{r['name']}`{again} ({r['target']} {r['precision']}) | {r['arch']} | {res} | {exp} | "
                     f"{fmt(r['size_mb'])} | {fmt(r['build_s'])} | {fmt(r['rebuild_s'], '.1f')} | {cell(r['check'])} |")
    lines += ["", "Expected stops (what this machine cannot reach): " + "; ".join(
        sorted({f"{r['name']}: {r['expected'].split(': ', 1)[1]}" for r in rows if r["expected"] != "build + pass"})), ""]
    (RESULTS / "images.md").write_text("\n".join(lines), encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fresh-bases", action="store_true", help="remove the cached bases first (times the bootstrap)")
    ap.add_argument("--only", nargs="*", help="only these cases (NAME or NAME/ARCH), merged into the last full run's results")
    ap.add_argument("--no-extra", action="store_true", help="only the cases the tests build")
    ap.add_argument("--render-only", action="store_true", help="only rewrite images.md from images.json")
    args = ap.parse_args()
    if args.render_only:
        prev = json.loads((RESULTS / "images.json").read_text(encoding="utf-8"))
        write_md(prev["machine"], prev["bases"], prev["images"], prev["total_s"])
        return 0
    t0 = time.perf_counter()
    info = machine()
    print("bases …", flush=True)
    bases = bootstrap_bases(args.fresh_bases)
    cases = DEVICE_CASES + TOOLCHAIN_CASES + ([] if args.no_extra else EXTRA_CASES)
    cases = [c for c in cases if not args.only or c.name in args.only or f"{c.name}/{c.arch}" in args.only]
    remove_case_images(cases, all_stale=not args.only)
    rows = []
    with tempfile.TemporaryDirectory(prefix="dk-images-bench-") as tmp:
        for i, case in enumerate(cases):
            print(f"{case.kind} {case.name} {case.arch} …", flush=True)
            run = run_device_case if case.kind == "device" else run_toolchain_case
            try:
                row = row_json(run(case, Path(tmp) / f"{i}-{case.name}"))
            except AssertionError as e:  # the bundle itself did not build: a row that says so
                row = {"kind": case.kind, "name": case.name, "target": case.target, "precision": case.precision,
                       "arch": case.arch, "built": False, "result": f"bundle build failed: {str(e)[:300]}", "step": None,
                       "steps": None, "expected": "build + pass", "as_expected": False, "problem": str(e)[:300],
                       "build_s": None, "rebuild_s": None, "size_mb": None, "check": "-", "check_s": None}
            print(f"  {row['result'][:200]} | {row['check'][:200]}", flush=True)
            rows.append(row)
    total = time.perf_counter() - t0
    RESULTS.mkdir(exist_ok=True)
    last = RESULTS / "images.json"
    if args.only and last.is_file():  # re-run of some cases: merged into the last full run's rows and bases
        prev = json.loads(last.read_text(encoding="utf-8"))
        key = lambda r: (r["kind"], r["name"], r["arch"])  # noqa: E731
        new = {key(r): r for r in rows}
        rows = [dict(new.pop(key(r)), rerun=True) if key(r) in new else r for r in prev["images"]] + list(new.values())
        bases, total = prev["bases"], prev["total_s"]
    text = json.dumps({"machine": info, "bases": bases, "images": rows, "total_s": round(total, 1)}, indent=1)
    (RESULTS / "images.json").write_text(re.sub(r"/tmp/dk-images-bench-\w+/", "", text), encoding="utf-8")
    write_md(info, bases, rows, total)
    print(f"wrote {RESULTS / 'images.md'}")
    return 0 if all(r["as_expected"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
