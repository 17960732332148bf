"""``deploykit run`` and ``deploykit verify``: use a finished bundle on this machine."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import typer

from deploykit.cli.common import DebugOption, JsonOption, cli_errors, err_console, out_console, print_json, printable
from deploykit.errors import DeployError, explain


def _parse_inputs(items: list[str], names: list[str]) -> dict[str, Path]:
    feeds: dict[str, Path] = {}
    for item in items:
        # names may contain '=': take the split whose left part is a known input name
        splits = [i for i, ch in enumerate(item) if ch == "=" and item[:i] in names]
        if not splits:
            raise DeployError(f"--input {item!r} must be NAME=FILE.npy with NAME one of {names}")
        i = splits[-1]
        if item[:i] in feeds:
            raise DeployError(f"--input {item[:i]!r} is given twice; pass each input once")
        feeds[item[:i]] = Path(item[i + 1:])
    missing = [n for n in names if n not in feeds]
    if missing:
        raise DeployError(f"missing --input for {', '.join(map(repr, missing))} (inputs: {names})")
    return feeds


def _missing_runtime(bundle: Path, e: ImportError) -> DeployError:
    """One line: the runner's own message (it names the fix), with the bundle's requirements path."""
    text = " ".join(str(e).split()) or type(e).__name__
    fix = f"pip install -r {Path(bundle) / 'requirements.txt'}"
    text = text.replace("pip install -r requirements.txt", fix) if "requirements.txt" in text else f"{text}; {fix}"
    return DeployError(f"cannot run bundle {str(bundle)!r} here: {text}")


def _load_array(path: Path):
    import numpy as np

    from deploykit.userfiles import regular_file

    regular_file(path, "input array")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DeployError(f"cannot read input array {str(path)!r} (a .npy file is expected): {reason}") from e


def _check_feed(name: str, x: np.ndarray, spec: dict) -> None:
    import numpy as np

    shape, dtype = list(spec["shape"]), np.dtype(spec["dtype"])
    if list(x.shape) != shape and list(x.shape) != shape[1:]:
        raise DeployError(f"input {name!r} has shape {list(x.shape)}; the bundle expects {shape}")
    if x.dtype.kind not in "biuf" or (dtype.kind == "f") != (x.dtype.kind == "f"):
        raise DeployError(f"input {name!r} has dtype {x.dtype}; the bundle expects {dtype}")


def safe_member_names(names: list[str]) -> dict[str, str]:
    """Output name -> the key it is stored under in an .npz (a zip): the name itself when it is a
    plain file name, else with path separators, control characters and leading dots replaced, so
    that no tool unpacking the archive writes outside its folder."""
    keys: dict[str, str] = {}
    for name in names:
        key = "".join("_" if ch in "/\\:" or not ch.isprintable() else ch for ch in name).lstrip(".") or "output"
        base, n = key, 1
        while key in keys.values():
            n += 1
            key = f"{base}_{n}"
        keys[name] = key
    return keys


def _write_outputs(path: Path, outputs: dict[str, np.ndarray]) -> dict[str, str]:
    """Write ``outputs`` to ``path`` atomically (a temporary sibling, then a rename)."""
    import os
    import tempfile

    from deploykit.bundle.files import write_npz

    parent = path.absolute().parent
    if not parent.is_dir():
        raise DeployError(f"cannot write {str(path)!r}: the folder {str(parent)!r} does not exist; create it first")
    if path.is_dir():
        raise DeployError(f"--output {str(path)!r} is a folder; name a .npz file")
    keys = safe_member_names(list(outputs))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:40]}.", suffix=".tmp", dir=parent)
    os.close(fd)
    try:
        write_npz(tmp, {keys[k]: v for k, v in outputs.items()})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return {k: v for k, v in keys.items() if k != v}


def _num(value, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, (int, float)) else str(value)


@contextlib.contextmanager
def _runtime_errors(bundle: Path, what: str) -> Iterator[None]:
    """Errors of a bundle whose files match its manifest, while its runner loads or runs: a missing
    runtime says what to install; anything else is about the inputs or the stored samples."""
    try:
        yield
    except ImportError as e:
        raise _missing_runtime(bundle, e) from e
    except Exception as e:  # noqa: BLE001 - one line naming what failed
        if isinstance(e, DeployError) or explain(e) is not None:
            raise
        reason = " ".join(str(e).split())[:300] or type(e).__name__
        raise DeployError(f"the bundle {what}: {reason}") from e


@cli_errors
def run_command(
    bundle: Path = typer.Argument(..., help="A bundle folder made by 'deploykit build'.", show_default=False),
    input: list[str] = typer.Option([], "--input", "-i", help="NAME=FILE.npy, one per model input."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the outputs to this .npz file."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads [default: the target's, at most the cores available]."),
    json_out: bool = JsonOption,
    debug: bool = DebugOption,
) -> None:
    """Run a bundle on this machine with inputs from .npy files."""
    import numpy as np

    from deploykit.bundle.manifest import open_bundle
    from deploykit.verification import load_runner_module

    if threads is not None and threads < 1:
        raise DeployError(f"--threads must be >= 1, got {threads}")
    manifest = open_bundle(bundle)  # never run a modified runner.py
    specs = {s["name"]: s for s in manifest["inputs"]}
    paths = _parse_inputs(input, list(specs))
    feeds = {n: _load_array(p) for n, p in paths.items()}
    for name, x in feeds.items():
        _check_feed(name, x, specs[name])
    if output is not None and not output.absolute().parent.is_dir():
        raise DeployError(f"cannot write {str(output)!r}: the folder {str(output.absolute().parent)!r} does not exist; create it first")
    with _runtime_errors(bundle, "runner could not be loaded"):
        runner = load_runner_module(bundle).Runner(str(bundle), num_threads=threads)
    with _runtime_errors(bundle, "rejected the inputs"):
        outputs = runner.run(feeds)
    renamed = _write_outputs(output, outputs) if output else {}
    summary = {name: {"shape": list(y.shape), "dtype": str(y.dtype),
                      "min": float(np.min(y)) if y.size else None, "max": float(np.max(y)) if y.size else None}
               for name, y in outputs.items()}
    if json_out:
        print_json({"runtime": runner.runtime, "outputs": summary})
        return
    for name, s in summary.items():
        rng = f"min={s['min']:.6g} max={s['max']:.6g}" if s["min"] is not None else "empty"
        out_console.print(f"{printable(name)}: shape={s['shape']} dtype={s['dtype']} {rng}", markup=False, highlight=False)
    if output:
        for name, key in renamed.items():
            err_console.print(printable(f"output {name!r} is stored as {key!r} in {output}"), markup=False, highlight=False)
        err_console.print(printable(f"outputs written to {output}"), markup=False, highlight=False)


@cli_errors
def verify_command(
    bundle: Path = typer.Argument(..., help="A bundle folder made by 'deploykit build'.", show_default=False),
    emulate: bool = typer.Option(
        False, "--emulate",
        help="Run the bundle's runner on its emulated device instead of this machine: an arm64 Debian root under QEMU "
        "with the device's CPU model and cpuinfo, Python and the runtime wheels of requirements.txt (made once, cached "
        "in $XDG_CACHE_HOME/deploykit/emulation). Needs root, qemu-user-static + binfmt and mmdebstrap "
        "('deploykit doctor' says). The result is stored in the manifest's verification.emulated."),
    runtime: str = typer.Option(
        "all", "--runtime",
        help="With --emulate: bundle (the runtime requirements.txt names), fallback (the one the runner falls back to "
        "on the device, e.g. tflite-runtime) or all."),
    json_out: bool = JsonOption,
    debug: bool = DebugOption,
) -> None:
    """Re-check a bundle: file checksums, then run its runner on the stored samples (here, or --emulate'd)."""
    from deploykit.bundle.manifest import open_bundle, read_samples
    from deploykit.verification import run_bundle, stored_output_parts, verify_outputs

    if runtime not in ("bundle", "fallback", "all"):
        raise DeployError(f"unknown --runtime {runtime!r}; use bundle, fallback or all")
    if runtime != "all" and not emulate:
        raise DeployError("--runtime only applies with --emulate")
    manifest = open_bundle(bundle)
    feeds, refs = read_samples(bundle, manifest)
    parts = stored_output_parts(bundle, manifest)
    if emulate:
        _verify_emulated(bundle, manifest, feeds, refs, parts, runtime, json_out)
        return
    with _runtime_errors(bundle, "does not run on its stored samples (rebuild it with 'deploykit build')"):
        outs, runtime = run_bundle(bundle, feeds)
        result = verify_outputs(refs, outs, manifest["precision"], runtime, parts=parts)
    result["files_checked"] = len(manifest["files"])
    built = (manifest.get("verification") or {}).get("samples")
    result["build_samples"] = built
    if json_out:
        print_json(result)
    else:
        from deploykit.cli.verdict import verdict

        out_console.print(f"{result['files_checked']} files match their sha256", markup=False)
        for name, m in result["outputs"].items():
            rows = [(name, m)] + [(f"{name} {label}", pm) for label, pm in (m.get("parts") or {}).items()]
            for label, v in rows:
                out_console.print(f"{printable(label)}: max abs err {_num(v.get('max_abs_error'), '.3g')}, "
                                  f"cosine {_num(v.get('cosine'), '.6f')}, SQNR {_num(v.get('sqnr_db'), '.1f')} dB",
                                  markup=False, highlight=False)
        n = len(feeds)
        if isinstance(built, int) and built != n:
            out_console.print(f"note: this bundle stores {n} of the {built} held-out samples its build verified on "
                              "(an older bundle; a rebuild stores them all), so these figures differ from the build's",
                              markup=False)
        _, line = verdict(result, _quantization(bundle, manifest), stored=True)
        out_console.print(line, markup=False, highlight=False)
    if result["status"] != "passed":
        raise DeployError("verification failed: " + "; ".join(result["problems"]))


def _verify_emulated(bundle: Path, manifest: dict, feeds, refs, parts, runtime: str, json_out: bool) -> None:
    from deploykit.emulate.verify import ROLES, profile_for, record, summary_line, verify_emulated

    profile = profile_for(manifest)
    roles = ROLES if runtime == "all" else (runtime,)
    log = (lambda msg: None) if json_out else (lambda msg: err_console.print(printable(msg), markup=False, highlight=False))
    with _runtime_errors(bundle, f"does not run on the emulated {profile.emulation['cpu']}"):
        emulated = verify_emulated(bundle, manifest, feeds, refs, parts, roles=roles, log=log)
    record(bundle, emulated)
    if json_out:
        print_json({"files_checked": len(manifest["files"]), **emulated})
    else:
        out_console.print(f"{len(manifest['files'])} files match their sha256", markup=False)
        for role, r in emulated["runs"].items():
            for name, m in r["outputs"].items():
                out_console.print(f"[{role}] {printable(name)}: max abs err {_num(m.get('max_abs_error'), '.3g')}, "
                                  f"cosine {_num(m.get('cosine'), '.6f')}, SQNR {_num(m.get('sqnr_db'), '.1f')} dB"
                                  + (f", top-1 {_num(m.get('top1_agreement'), '.3f')}" if m.get("top1_agreement") is not None else ""),
                                  markup=False, highlight=False)
        out_console.print(summary_line(emulated), markup=False, highlight=False)
        out_console.print(f"recorded in {bundle / 'manifest.json'} (verification.emulated)", markup=False, highlight=False)
    if emulated["status"] != "passed":
        raise DeployError("emulated verification failed: " + "; ".join(emulated["runs"].get("bundle", {}).get("problems", [])))


def _quantization(bundle: Path, manifest: dict) -> dict | None:
    """The build's int8 report (report.json has the engine's figures; the manifest a summary)."""
    import json

    try:
        report = json.loads((Path(bundle) / "report.json").read_text(encoding="utf-8"))
        q = report.get("quantization") if isinstance(report, dict) else None
    except (OSError, ValueError):
        q = None
    return q if isinstance(q, dict) else manifest.get("quantization")
