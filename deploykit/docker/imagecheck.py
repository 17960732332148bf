"""Build an image for real and check what runs in it: the tests in ``tests/images`` and
``benchmarks/images/run.py`` share these steps.

- :func:`build_image`: run an engine build, time it, and say at which Dockerfile step it stopped and why.
- :func:`verify_in_image`: run a bundle's runner inside its device image on the bundle's stored samples,
  then judge the outputs against the stored fp32 reference with deploykit's own tolerances.
- :func:`bundle_files`: the manifest's ``{file: sha256}``, to compare bundles built in and out of a toolchain image.

arm64 images run through qemu user mode (binfmt). The container gets the emulated board's CPU
(``QEMU_CPU``: never QEMU's ``max``, whose SME makes XNNPACK's int8 results wrong) and an arm64
``/proc/cpuinfo`` of that board bind-mounted over the host's x86 one (LiteRT reads it to pick its kernels).
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# podman/buildah: "STEP 3/7: RUN pip install ..."; docker buildx: "#7 [3/5] RUN pip install ..."
_STEP = re.compile(r"^(?:STEP (\d+)/(\d+): |#\d+ \[(?:[\w.-]+ )?(\d+)/(\d+)\] )(.*)$")
_CACHED = re.compile(r"^--> Using cache|^#\d+ CACHED")

@dataclass
class BuildOutcome:
    ok: bool
    seconds: float
    step: int | None = None          # the step it stopped at (1-based), None when built
    steps: int | None = None
    step_text: str = ""              # that step's instruction
    cached_steps: int = 0            # steps the engine took from its cache
    reason: str = ""                 # the last error lines
    log: str = ""

    def summary(self) -> str:
        if self.ok:
            return "built"
        return f"failed at step {self.step}/{self.steps} ({self.step_text[:90]}): {self.reason[:300]}"


def _error_reason(lines: list[str]) -> str:
    keys = ("error", "Error", "ERROR", "E: ", "Could not", "No matching distribution", "not known", "Temporary failure",
            "Failed", "failed", "requires a different Python")
    picked = [ln.strip() for ln in lines if any(k in ln for k in keys)]
    return " | ".join(dict.fromkeys(picked[-4:] or [ln.strip() for ln in lines[-3:]]))


def parse_build_log(text: str, rc: int, seconds: float) -> BuildOutcome:
    lines = text.splitlines()
    step = steps = None
    step_text = ""
    cached = 0
    for ln in lines:
        m = _STEP.match(ln.strip())
        if m:
            n, total = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
            step, steps, step_text = int(n), int(total), m.group(5).strip()
        elif _CACHED.match(ln.strip()):
            cached += 1
    if rc == 0:
        return BuildOutcome(True, seconds, steps=steps, cached_steps=cached, log=text)
    return BuildOutcome(False, seconds, step or 1, steps, step_text, cached, _error_reason(lines), log=text)


def build_image(cmd: list[str], timeout: float = 3600, env: dict | None = None) -> BuildOutcome:
    """Run a build command (engine build, or ``deploykit package --docker``) and parse where it stopped."""
    import os

    t0 = time.perf_counter()
    try:
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                             timeout=timeout, env={**os.environ, **(env or {})})
        text, rc = out.stdout, out.returncode
    except subprocess.TimeoutExpired as e:
        text, rc = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or ""), 124
        text += f"\nerror: timed out after {timeout:.0f} s"
    return parse_build_log(text, rc, time.perf_counter() - t0)


def image_size_mb(engine: str, tag: str) -> float | None:
    out = subprocess.run([engine, "image", "inspect", "--format", "{{.Size}}", tag], capture_output=True, text=True)
    s = out.stdout.strip()
    return round(int(s) / 1e6, 1) if out.returncode == 0 and s.isdigit() else None


# Runs inside the device image: numpy + the bundle's runtime only (no deploykit there).
IN_IMAGE_SCRIPT = r'''
import json, platform, sys
import numpy as np
sys.path.insert(0, "/bundle")
from runner import Runner
m = json.load(open("/bundle/manifest.json"))
inp = np.load("/bundle/" + m["samples"]["inputs"])
r = Runner("/bundle")
outs = {}
for j in range(len(inp["in_0"])):
    o = r.run({s["name"]: inp["in_%d" % i][j] for i, s in enumerate(m["inputs"])})
    for i, s in enumerate(m["outputs"]):
        outs.setdefault("out_%d" % i, []).append(np.asarray(o[s["name"]], dtype=np.float32))
np.savez(sys.argv[1], **{k: np.stack(v) for k, v in outs.items()})
print(json.dumps({"runtime": str(getattr(r, "runtime", "")), "machine": platform.machine(),
                  "python": platform.python_version(), "numpy": np.__version__}))
'''


def run_args_for(target: str, platform: str, workdir: Path) -> list[str]:
    """Extra ``run`` arguments for an emulated arm64 board: its core (QEMU_CPU) and its /proc/cpuinfo
    (:func:`deploykit.emulate.cpus.container_cpu_args`, from the target profile's ``[emulation]``)."""
    from deploykit.docker.engine import host_platform
    from deploykit.emulate.cpus import container_cpu_args
    from deploykit.plugins import default_registry

    if not platform.endswith("arm64") or host_platform().endswith("arm64"):
        return []
    return container_cpu_args(default_registry().targets.get(target), workdir)


def verify_in_image(engine: str, tag: str, bundle: Path, platform: str, target: str, timeout: float = 1800) -> dict:
    """Run the bundle's runner in image ``tag`` on the stored samples; judge against the stored fp32 outputs."""
    from deploykit.bundle.files import read_npz
    from deploykit.bundle.manifest import open_bundle, read_samples
    from deploykit.verification import stored_output_parts, verify_outputs

    manifest = open_bundle(bundle)
    _, refs = read_samples(bundle, manifest)
    with tempfile.TemporaryDirectory(prefix="dk-imagecheck-") as tmp:
        work = Path(tmp)
        (work / "check.py").write_text(IN_IMAGE_SCRIPT, encoding="utf-8")
        cmd = [engine, "run", "--rm", "--platform", platform, "--network", "none", *run_args_for(target, platform, work),
               "-v", f"{work}:/check:rw", tag, "python3", "/check/check.py", "/check/out.npz"]
        t0 = time.perf_counter()
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"status": "error", "problems": [f"timed out after {timeout:.0f} s"], "seconds": timeout}
        seconds = round(time.perf_counter() - t0, 1)
        if out.returncode != 0:
            tail = " | ".join((out.stderr or out.stdout).strip().splitlines()[-3:])
            return {"status": "error", "problems": [f"exit {out.returncode}: {tail[:400]}"], "seconds": seconds}
        info = json.loads(out.stdout.strip().splitlines()[-1])
        got = read_npz(work / "out.npz")
    outs = [{s["name"]: got[f"out_{i}"][j] for i, s in enumerate(manifest["outputs"])} for j in range(len(refs))]
    result = verify_outputs(refs, outs, manifest["precision"], info["runtime"], parts=stored_output_parts(bundle, manifest))
    result.update(info, seconds=seconds)
    return result


def verdict_text(result: dict) -> str:
    """One cell of the results table: passed/failed, the worst output's max abs error and cosine."""
    if result.get("status") == "error":
        return f"error: {'; '.join(result.get('problems', []))[:200]}"
    worst = max(result.get("outputs", {}).values(), key=lambda m: m.get("max_abs_error") or 0, default={})
    return (f"{result['status']} ({result.get('samples')} samples, {result.get('machine')}, {result.get('runtime')}; "
            f"max abs err {worst.get('max_abs_error', float('nan')):.3g}, cosine {worst.get('cosine', float('nan')):.6f})")


def bundle_files(bundle: Path) -> dict[str, str]:
    """``{file: sha256}`` from the bundle's manifest, plus the manifest's own sha256."""
    import hashlib

    files = dict(json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))["files"])
    files["manifest.json"] = hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest()
    return files
