"""Emulated verification: a bundle's stored samples through its own runner on the emulated device,
judged against the fp32 reference under the same rules as host verification.

Roles: ``bundle`` runs the runtime the bundle's ``requirements.txt`` names (this decides the
status); ``fallback`` runs the runtime the runner falls back to on the device (e.g. tflite-runtime),
recorded beside it so that the runner can say what the fallback costs.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deploykit.devenv import DeviceEnv, device_env, requirement_lines
from deploykit.errors import DeployError

ROLES = ("bundle", "fallback")


def profile_for(manifest: Mapping[str, Any], registry=None):
    """The target profile of a bundle, which must say how its device is emulated."""
    from deploykit.plugins import default_registry

    reg = registry or default_registry()
    target = manifest.get("target")
    if target not in reg.targets:
        raise DeployError(f"target {target!r} of this bundle is not known here (its plugin is not loaded); "
                          "cannot tell which device to emulate")
    profile = reg.targets[target]
    if not profile.emulation:
        known = sorted(n for n, p in reg.targets.items() if p.emulation)
        raise DeployError(f"target {target!r} has no emulated device ({profile.arch}, profile without an [emulation] "
                          f"table); emulated verification exists for: {', '.join(known)}")
    return profile


def tolerance_key(precision: str, profile, bundle: Path) -> str:
    """fp16 bundles that a CPU with fp16 arithmetic runs in fp16 (the model carries LiteRT's
    ``reduced_precision_support`` metadata) are judged by what that arithmetic does."""
    from deploykit.emulate.cpus import arm_cpu

    if precision != "fp16" or "asimdhp" not in arm_cpu(profile.emulation["cpu"]).features:
        return precision
    model = bundle / "model.tflite"
    try:
        return "fp16-arithmetic" if model.is_file() and b"reduced_precision_support" in model.read_bytes() else precision
    except OSError:
        return precision


def environments(profile, bundle: Path, roles: Sequence[str]) -> list[DeviceEnv]:
    try:
        reqs = requirement_lines((bundle / "requirements.txt").read_text(encoding="utf-8"))
    except OSError as e:
        raise DeployError(f"{bundle} has no readable requirements.txt ({e.strerror}); rebuild the bundle") from e
    envs = []
    for role in roles:
        env = device_env(profile, reqs, role)
        if env is None:
            if role == "fallback":
                continue  # the profile names no fallback runtime
            raise DeployError(f"target {profile.name!r} has no emulated device")
        envs.append(env)
    return envs


def verify_emulated(bundle: Path, manifest: Mapping[str, Any], feeds: Sequence[Mapping[str, np.ndarray]],
                    refs: Sequence[Mapping[str, np.ndarray]], parts: Mapping[str, Any] | None = None,
                    roles: Sequence[str] = ("bundle",), registry=None,
                    log: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """Verify ``bundle`` on its emulated device; the result for the manifest's ``verification.emulated``."""
    from deploykit.emulate.root import require_emulation
    from deploykit.emulate.run import Emulator
    from deploykit.verification import verify_outputs

    profile = profile_for(manifest, registry)
    envs = environments(profile, bundle, roles)
    require_emulation(envs[0].arch)
    precision = str(manifest["precision"])
    key = tolerance_key(precision, profile, bundle)
    inputs = [s["name"] for s in manifest["inputs"]]
    outputs = [s["name"] for s in manifest["outputs"]]
    runs: dict[str, Any] = {}
    for env in envs:
        emulator = Emulator(env, cores=profile.cores, log=log)
        outs, info = emulator.run_bundle(bundle, feeds, inputs, outputs)
        label = f"{info.get('runtime', '?')} on emulated {env.cpu}"
        result = verify_outputs(refs, outs, key, label, parts=parts)
        result.pop("output_parts", None)
        if result["status"] != "passed" and key == "fp16-arithmetic":
            result["problems"].append(f"the {env.cpu} computes this fp16 bundle in fp16 (LiteRT's reduced_precision_support); "
                                      "this model does not hold in fp16 arithmetic: build it fp32 (or int8) for this target")
        result.update({
            "cpu": env.cpu, "debian": env.debian, "python": info.get("python"), "numpy": info.get("numpy"),
            "packages": info.get("packages", {}), "requirements": list(env.requirements),
            "xnnpack": info.get("xnnpack"),
            **({"note": env.note} if env.note else {}), **({"runner_log": info["stderr"]} if info.get("stderr") else {}),
        })
        runs[env.role] = result
        log(f"emulated {env.cpu} ({env.role} runtime): {label}: {result['status']}")
    main = runs.get("bundle") or next(iter(runs.values()))
    return {"status": main["status"], "runtime": main["runtime"], "cpu": main["cpu"], "runs": runs}


def record(bundle: Path, emulated: Mapping[str, Any]) -> None:
    """Store ``emulated`` as ``verification.emulated`` in the bundle's manifest (atomic rewrite)."""
    from deploykit.bundle.files import write_json
    from deploykit.bundle.manifest import MANIFEST

    path = Path(bundle) / MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8"))
    verification = manifest.get("verification") or {}
    verification["emulated"] = emulated
    manifest["verification"] = verification
    fd, tmp = tempfile.mkstemp(prefix=".manifest.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write_json(tmp, manifest)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def summary_line(emulated: Mapping[str, Any]) -> str:
    """One line per run: runtime, status and the worst output's figures."""
    lines = []
    for role, r in (emulated.get("runs") or {}).items():
        worst = _worst(r.get("outputs") or {})
        lines.append(f"emulated {r.get('cpu')} [{role}] {r.get('runtime')}: {r.get('status')}{worst}"
                     + (f"; stand-in environment: {r['note']}" if r.get("note") else ""))
    return "\n".join(lines)


def _worst(outputs: Mapping[str, Any]) -> str:
    errs = [m.get("max_abs_error") for m in outputs.values() if isinstance(m.get("max_abs_error"), (int, float))]
    cos = [m.get("cosine") for m in outputs.values() if isinstance(m.get("cosine"), (int, float))]
    top = [m.get("top1_agreement") for m in outputs.values() if isinstance(m.get("top1_agreement"), (int, float))]
    parts = []
    if errs:
        parts.append(f"max abs err {max(errs):.3g}")
    if cos:
        parts.append(f"cosine {min(cos):.6f}")
    if top:
        parts.append(f"top-1 agreement {min(top):.3f}")
    return (" (" + ", ".join(parts) + ")") if parts else ""
