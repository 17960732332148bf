"""Tampered and malformed bundles: ``verify``, ``run``, ``compare --measure`` and ``package`` check
the manifest (one validator) and every file's hash before anything of the bundle runs; only plain
files inside the bundle may be listed; ``run`` refuses bad inputs in one line."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import numpy as np
import pytest

import hostile_models as hm
from hostile_harness import Sandbox

COMMANDS = {
    "verify": lambda b, sb: ["verify", b],
    "run": lambda b, sb: ["run", b, "--input", f"image={sb.work / 'x.npy'}"],
    "compare-measure": lambda b, sb: ["compare", b, "--measure", "--runs", "1"],
    "package": lambda b, sb: ["package", b, "--docker", "--dry-run"],
}


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    """One good host bundle, built once; tests work on copies."""
    sb = Sandbox(tmp_path_factory.mktemp("golden"))
    model = hm.save(hm.conv_model(), sb.work / "m.onnx")
    out = sb.work / "bundle"
    res = sb.run("build", model, "--target", "host", "-o", out)
    assert res.returncode == 0, res
    return out


@pytest.fixture
def bundle(sb, golden):
    b = sb.work / "b"
    shutil.copytree(golden, b, symlinks=True)
    np.save(sb.work / "x.npy", np.zeros((1, 3, 8, 8), np.float32))
    return b


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(b):
    return json.loads((b / "manifest.json").read_text())


def _write_manifest(b, m):
    if isinstance(m, bytes):
        (b / "manifest.json").write_bytes(m)
    else:
        (b / "manifest.json").write_text(m if isinstance(m, str) else json.dumps(m))


def _rehash(b, name):
    m = _manifest(b)
    m["files"][name] = _sha(b / name)
    _write_manifest(b, m)


# -- tampering that every command must refuse before running anything -------------------------------
def _modified_runner(b, sb):
    marker = sb.work / "RUNNER_EXECUTED"
    with open(b / "runner.py", "a") as f:
        f.write(f"\nopen({str(marker)!r}, 'w').write('x')\n")
    return marker


def _listed_outside_relative(b, sb):
    (sb.work / "outside.txt").write_text("secret")
    m = _manifest(b)
    m["files"]["../outside.txt"] = _sha(sb.work / "outside.txt")
    _write_manifest(b, m)


def _listed_absolute(b, sb):
    m = _manifest(b)
    m["files"]["/etc/hostname"] = _sha(__import__("pathlib").Path("/etc/hostname"))
    _write_manifest(b, m)


def _runner_symlink_out(b, sb):
    outside = sb.work / "runner_copy.py"
    shutil.copy(b / "runner.py", outside)
    (b / "runner.py").unlink()
    os.symlink(outside, b / "runner.py")


def _model_symlink_dev_zero(b, sb):
    (b / "model.onnx").unlink()
    os.symlink("/dev/zero", b / "model.onnx")


def _samples_symlink_dir(b, sb):
    outside = sb.work / "samples_elsewhere"
    shutil.move(b / "samples", outside)
    os.symlink(outside, b / "samples")


def _extra_fifo(b, sb):
    os.mkfifo(b / "extra.npy")


def _extra_file(b, sb):
    (b / "evil.py").write_text("import os")


TAMPERING = {
    "modified-runner": _modified_runner,
    "listed-../": _listed_outside_relative,
    "listed-absolute": _listed_absolute,
    "runner-symlink-outside": _runner_symlink_out,
    "model-symlink-dev-zero": _model_symlink_dev_zero,
    "samples-symlinked-folder": _samples_symlink_dir,
    "extra-fifo": _extra_fifo,
    "extra-file": _extra_file,
}


# every tampering on the commands that execute the runner; the two worst on all commands
TAMPER_CASES = [(t, c) for t in sorted(TAMPERING) for c in ("verify", "run")]
TAMPER_CASES += [(t, c) for t in ("modified-runner", "listed-../") for c in ("compare-measure", "package")]


@pytest.mark.parametrize("tamper, command", TAMPER_CASES, ids=[f"{t}-{c}" for t, c in TAMPER_CASES])
def test_tampered_bundle_is_refused(sb, bundle, tamper, command):
    marker = TAMPERING[tamper](bundle, sb)
    res = sb.run(*COMMANDS[command](bundle, sb))
    line = sb.expect_error(res, code=2)
    assert "was modified" in line or "not a valid deploykit manifest" in line, line
    if marker is not None:
        assert not marker.exists(), "the modified runner.py ran"


# -- malformed manifests: one validator, one line ---------------------------------------------------
def _set(path, value):
    def edit(m):
        keys = path.split(".")
        node = m
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) else node[k]
        last = keys[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
        return m
    return edit


MALFORMED = {
    "not-json": lambda m: "{not json",
    "binary": lambda m: b"\xff\xfe\x00\x01",
    "array": lambda m: [1, 2],
    "schema-2": _set("schema_version", 2),
    "files-list": _set("files", ["runner.py"]),
    "digest-short": lambda m: {**m, "files": {**m["files"], "runner.py": "abc"}},
    "inputs-string": _set("inputs", "image"),
    "inputs-empty": _set("inputs", []),
    "shape-strings": _set("inputs.0.shape", ["a", "b"]),
    "dtype-object": _set("inputs.0.dtype", "object"),
    "dtype-garbage": _set("inputs.0.dtype", "<class 'os.system'>"),
    "name-number": _set("outputs.0.name", 5),
    "samples-escape": _set("samples.inputs", "../../x.npz"),
    "precision-null": _set("precision", None),
    "verification-list": _set("verification", [1]),
    "deep-nesting": lambda m: "[" * 100000 + "]" * 100000,
    "nul-name": lambda m: {**m, "files": {**m["files"], "a\u0000b": "0" * 64}},
}


# every malformation through verify (all commands share one validator); three through every command
MALFORMED_CASES = [(k, "verify") for k in sorted(MALFORMED)]
MALFORMED_CASES += [(k, c) for k in ("not-json", "shape-strings", "samples-escape") for c in ("run", "compare-measure", "package")]


@pytest.mark.parametrize("kind, command", MALFORMED_CASES, ids=[f"{k}-{c}" for k, c in MALFORMED_CASES])
def test_malformed_manifest(sb, bundle, kind, command):
    _write_manifest(bundle, MALFORMED[kind](_manifest(bundle)))
    sb.expect_error(sb.run(*COMMANDS[command](bundle, sb)), code=2)


def test_pickled_samples_with_matching_hash(sb, bundle):
    """A samples file replaced by a pickle, manifest re-hashed: numpy never unpickles it."""
    with open(bundle / "samples" / "inputs.npz", "wb") as f:
        np.savez(f, in_0=np.array([{"__reduce__": "os.system"}], dtype=object))
    _rehash(bundle, "samples/inputs.npz")
    sb.expect_error(sb.run("verify", bundle), "cannot be read", code=2)
    sb.expect_error(sb.run("compare", bundle, "--measure", "--runs", "1"), code=2)


def test_garbage_samples_with_matching_hash(sb, bundle):
    (bundle / "samples" / "expected.npz").write_bytes(b"PK\x03\x04garbage")
    _rehash(bundle, "samples/expected.npz")
    sb.expect_error(sb.run("verify", bundle), "samples", code=2)


def test_samples_wrong_shape_with_matching_hash(sb, bundle):
    with open(bundle / "samples" / "inputs.npz", "wb") as f:
        np.savez(f, in_0=np.zeros((2, 7), np.float32))
    _rehash(bundle, "samples/inputs.npz")
    sb.expect_error(sb.run("verify", bundle), code=2)


def test_report_symlink_to_dev_zero_does_not_hang_compare(sb, bundle):
    (bundle / "report.json").unlink()
    os.symlink("/dev/zero", bundle / "report.json")
    sb.expect_error(sb.run("compare", bundle, timeout=120), "modified", code=2)


NOT_BUNDLE = [(k, "verify") for k in ("missing", "file", "empty-folder", "dev-null")]
NOT_BUNDLE += [("empty-folder", c) for c in ("run", "compare", "package")]


@pytest.mark.parametrize("kind, command", NOT_BUNDLE, ids=[f"{k}-{c}" for k, c in NOT_BUNDLE])
def test_not_a_bundle(sb, kind, command):
    path = {"missing": sb.work / "nope", "file": sb.work / "f.txt", "empty-folder": sb.work / "empty",
            "dev-null": "/dev/null"}[kind]
    if kind == "file":
        path.write_text("x")
    if kind == "empty-folder":
        path.mkdir()
    args = {"verify": ["verify", path], "run": ["run", path], "compare": ["compare", path],
            "package": ["package", path, "--docker", "--dry-run"]}[command]
    sb.expect_error(sb.run(*args), code=2)


# -- run: hostile inputs ------------------------------------------------------------------------------
def _npy(sb, name, array, **kw):
    p = sb.work / name
    np.save(p, array, **kw)
    return p


RUN_CASES = [
    ("duplicate-input", lambda sb: ["--input", f"image={sb.work / 'x.npy'}", "--input", f"image={sb.work / 'x.npy'}"], "twice"),
    ("missing-input", lambda sb: [], "missing --input"),
    ("unknown-name", lambda sb: ["--input", f"nope={sb.work / 'x.npy'}"], "name=file.npy"),
    ("not-npy", lambda sb: ["--input", f"image={sb.work / 'm.txt'}"], "cannot read input array"),
    ("fifo", lambda sb: ["--input", f"image={hm.fifo(sb.work / 'p.npy')}"], "named pipe"),
    ("dev-zero", lambda sb: ["--input", "image=/dev/zero"], "character device"),
    ("wrong-shape", lambda sb: ["--input", f"image={_npy(sb, 'w.npy', np.zeros((1, 3, 9, 8), np.float32))}"], "shape"),
    ("wrong-dtype", lambda sb: ["--input", f"image={_npy(sb, 's.npy', np.full((1, 3, 8, 8), 'a'))}"], "dtype"),
    ("pickled", lambda sb: ["--input", f"image={_npy(sb, 'p.npy', np.array([{}], dtype=object), allow_pickle=True)}"], "cannot read"),
    ("output-missing-folder", lambda sb: ["--input", f"image={sb.work / 'x.npy'}", "--output", sb.work / "no" / "y.npz"], "does not exist"),
    ("output-is-folder", lambda sb: ["--input", f"image={sb.work / 'x.npy'}", "--output", sb.work], "is a folder"),
    ("threads-negative", lambda sb: ["--input", f"image={sb.work / 'x.npy'}", "--threads", "-1"], "--threads"),
    ("threads-zero", lambda sb: ["--input", f"image={sb.work / 'x.npy'}", "--threads", "0"], "--threads"),
]


@pytest.mark.parametrize("extra, match", [c[1:] for c in RUN_CASES], ids=[c[0] for c in RUN_CASES])
def test_run_bad_inputs(sb, bundle, extra, match):
    (sb.work / "m.txt").write_text("not an array")
    args = extra(sb)
    sb.expect_error(sb.run("run", bundle, *args), match, code=2, allowed=("work/p.npy", "work/w.npy", "work/s.npy"))


def test_run_output_written_atomically(sb, bundle):
    res = sb.run("run", bundle, "--input", f"image={sb.work / 'x.npy'}", "--output", sb.work / "y.npz")
    assert res.returncode == 0, res
    assert [p.name for p in sb.work.iterdir() if p.name.startswith(".")] == []
    with np.load(sb.work / "y.npz") as z:
        assert z.files == ["scores"]
