"""deploykit.bundle: atomic staging, deterministic writers, checksums and manifest reading."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

import deploykit.bundle.staging as staging
from deploykit.backend import Artifact, BuildOptions
from deploykit.bundle.files import read_npz, round_floats, sha256_file, write_json, write_npz
from deploykit.bundle.manifest import MANIFEST, SCHEMA_VERSION, check_hashes, hash_files, read_manifest, write_bundle_metadata
from deploykit.bundle.staging import StagedOutput, check_output_dir
from deploykit.errors import BundleError, DeployError
from deploykit.ir.info import TensorSpec

pytestmark = pytest.mark.unit


def _listing(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


class Boom(Exception):
    pass


def _old_bundle(out, content="old"):
    """A minimal finished bundle at ``out`` (what --force may replace)."""
    out.mkdir()
    (out / "old.txt").write_text(content)
    manifest = {"schema_version": SCHEMA_VERSION, "deploykit_version": "0", "files": {"old.txt": sha256_file(out / "old.txt")}}
    (out / MANIFEST).write_text(json.dumps(manifest))


# --------------------------------------------------------------------------- StagedOutput
def test_success_renames_stage_into_place(tmp_path):
    out = tmp_path / "bundle"
    with StagedOutput(out) as stage:
        assert stage.path.parent == tmp_path and stage.path.name.endswith(".partial")
        assert not out.exists()
        (stage.path / "a.txt").write_text("a")
        (stage.path / "sub").mkdir()
        (stage.path / "sub" / "b.txt").write_text("b")
    assert _listing(out) == ["a.txt", "sub", "sub/b.txt"]
    assert _listing(tmp_path) == ["bundle", "bundle/a.txt", "bundle/sub", "bundle/sub/b.txt"]  # no leftovers
    assert (os.stat(out).st_mode & 0o777) == 0o755


def test_exception_removes_everything(tmp_path):
    out = tmp_path / "bundle"
    with pytest.raises(Boom):
        with StagedOutput(out) as stage:
            (stage.path / "half.bin").write_bytes(b"x")
            raise Boom
    assert _listing(tmp_path) == []


def test_exception_removes_parent_folders_it_created(tmp_path):
    (tmp_path / "keep").mkdir()
    out = tmp_path / "keep" / "a" / "b" / "c" / "bundle"
    with pytest.raises(Boom):
        with StagedOutput(out) as stage:
            assert (tmp_path / "keep" / "a" / "b" / "c").is_dir()
            (stage.path / "x").write_text("x")
            raise Boom
    assert _listing(tmp_path) == ["keep"]


def test_keyboard_interrupt_also_cleans_up(tmp_path):
    out = tmp_path / "new" / "bundle"
    with pytest.raises(KeyboardInterrupt):
        with StagedOutput(out):
            raise KeyboardInterrupt
    assert _listing(tmp_path) == []


def test_success_keeps_created_parents(tmp_path):
    out = tmp_path / "a" / "b" / "bundle"
    with StagedOutput(out) as stage:
        (stage.path / "f").write_text("1")
    assert (out / "f").read_text() == "1"


def test_relative_output_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with StagedOutput("rel/out") as stage:
        (stage.path / "f").write_text("1")
    assert (tmp_path / "rel" / "out" / "f").is_file()


def test_existing_output_without_force_is_refused_before_any_work(tmp_path):
    out = tmp_path / "bundle"
    _old_bundle(out)
    entered = False
    with pytest.raises(BundleError, match="already exists; pass --force"):
        with StagedOutput(out):
            entered = True
    assert not entered
    assert _listing(tmp_path) == ["bundle", "bundle/manifest.json", "bundle/old.txt"]


def test_force_replaces_existing_output(tmp_path):
    out = tmp_path / "bundle"
    _old_bundle(out)
    with StagedOutput(out, force=True) as stage:
        (stage.path / "new.txt").write_text("new")
        assert (out / "old.txt").exists()  # the old bundle stays until the new one is complete
    assert _listing(tmp_path) == ["bundle", "bundle/new.txt"]


def test_force_with_failure_keeps_the_old_output(tmp_path):
    out = tmp_path / "bundle"
    _old_bundle(out)
    with pytest.raises(Boom):
        with StagedOutput(out, force=True) as stage:
            (stage.path / "new.txt").write_text("new")
            raise Boom
    assert _listing(tmp_path) == ["bundle", "bundle/manifest.json", "bundle/old.txt"]


def test_force_on_a_file_is_refused(tmp_path):
    out = tmp_path / "bundle"
    out.write_text("i am a file")
    with pytest.raises(BundleError, match="not a folder"):
        check_output_dir(out, force=True)
    with pytest.raises(BundleError):
        with StagedOutput(out, force=True):
            pass
    assert out.read_text() == "i am a file"


def test_output_created_meanwhile_without_force_is_refused_at_the_end(tmp_path):
    out = tmp_path / "bundle"
    with pytest.raises(BundleError, match="exists and it is not a deploykit bundle"):
        with StagedOutput(out, force=True) as stage:
            (stage.path / "f").write_text("new")
            out.mkdir()
            (out / "theirs").write_text("theirs")
    assert _listing(tmp_path) == ["bundle", "bundle/theirs"]


def test_force_keeps_the_old_output_when_the_final_rename_fails(tmp_path, monkeypatch):
    out = tmp_path / "bundle"
    _old_bundle(out)
    real_rename = os.rename

    def flaky_rename(src, dst):
        if str(src).endswith(".partial"):
            raise OSError(28, "No space left on device")
        return real_rename(src, dst)

    monkeypatch.setattr(staging.os, "rename", flaky_rename)
    with pytest.raises(BundleError, match="No space left on device"):
        with StagedOutput(out, force=True) as stage:
            (stage.path / "new.txt").write_text("new")
    assert _listing(tmp_path) == ["bundle", "bundle/manifest.json", "bundle/old.txt"]


def test_bundle_error_is_a_deploy_error():
    assert issubclass(BundleError, DeployError)


# --------------------------------------------------------------------------- deterministic writers
def _arrays():
    rng = np.random.default_rng(0)
    return {"b": rng.standard_normal((2, 3)).astype(np.float32), "a": np.arange(5, dtype=np.int64),
            "weird name/with:chars": np.zeros((1,), np.float16), "f": np.asfortranarray(np.ones((3, 2)))}


def test_write_npz_is_byte_identical(tmp_path):
    write_npz(tmp_path / "1.npz", _arrays())
    os.utime(tmp_path / "1.npz", (0, 0))
    write_npz(tmp_path / "2.npz", dict(reversed(list(_arrays().items()))))  # other insertion order
    assert (tmp_path / "1.npz").read_bytes() == (tmp_path / "2.npz").read_bytes()


def test_write_npz_round_trips_and_is_a_valid_npz(tmp_path):
    write_npz(tmp_path / "x.npz", _arrays())
    back = read_npz(tmp_path / "x.npz")
    assert sorted(back) == sorted(_arrays())
    for k, v in _arrays().items():
        np.testing.assert_array_equal(back[k], v)
        assert back[k].dtype == v.dtype
    with zipfile.ZipFile(tmp_path / "x.npz") as zf:
        assert [i.filename for i in zf.infolist()] == sorted(k + ".npy" for k in _arrays())
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_write_json_is_sorted_and_stable(tmp_path):
    write_json(tmp_path / "a.json", {"b": 1, "a": {"y": "ü", "x": [1.5]}})
    write_json(tmp_path / "b.json", {"a": {"x": [1.5], "y": "ü"}, "b": 1})
    text = (tmp_path / "a.json").read_text(encoding="utf-8")
    assert text == (tmp_path / "b.json").read_text(encoding="utf-8")
    assert text.endswith("}\n") and text.index('"a"') < text.index('"b"') and "ü" in text


@pytest.mark.parametrize(
    "value, expected",
    [
        (1 / 3, 0.333333),
        (123456789.0, 123457000.0),
        (-2 / 3 * 1e-9, -6.66667e-10),
        (0.0, 0.0),
        (5, 5),
        (True, True),
        ("1.23456789", "1.23456789"),
        (None, None),
        ({"a": [1 / 3, (2 / 3,)], "b": {"c": 1e-7 / 3}}, {"a": [0.333333, [0.666667]], "b": {"c": 3.33333e-08}}),
    ],
)
def test_round_floats(value, expected):
    assert round_floats(value) == expected


def test_round_floats_keeps_non_finite_and_digits():
    assert round_floats(float("inf")) == float("inf") and round_floats(float("-inf")) == float("-inf")
    assert round_floats(float("nan")) != round_floats(float("nan"))
    assert round_floats(1 / 3, digits=2) == 0.33


# --------------------------------------------------------------------------- hashes
def _bundle(tmp_path):
    folder = tmp_path / "b"
    (folder / "samples").mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"model")
    (folder / "runner.py").write_text("print(1)\n")
    (folder / "samples" / "inputs.npz").write_bytes(b"npz")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "runner.cpython-311.pyc").write_bytes(b"pyc")
    (folder / MANIFEST).write_text("{}")
    return folder


def test_hash_files(tmp_path):
    folder = _bundle(tmp_path)
    hashes = hash_files(folder)
    assert list(hashes) == ["model.onnx", "runner.py", "samples/inputs.npz"]  # sorted, POSIX, no manifest/pycache
    assert hashes["model.onnx"] == sha256_file(folder / "model.onnx")
    assert hashes["runner.py"] == hashlib.sha256(b"print(1)\n").hexdigest()


def test_check_hashes_clean(tmp_path):
    folder = _bundle(tmp_path)
    assert check_hashes(folder, {"files": hash_files(folder)}) == []


def test_check_hashes_detects_modified_missing_and_extra(tmp_path):
    folder = _bundle(tmp_path)
    manifest = {"files": hash_files(folder)}
    (folder / "runner.py").write_text("print('evil')\n")
    (folder / "samples" / "inputs.npz").unlink()
    (folder / "extra.txt").write_text("?")
    problems = check_hashes(folder, manifest)
    assert problems == [
        "runner.py: sha256 mismatch (file changed since the build)",
        "samples/inputs.npz: missing",
        "extra.txt: not listed in the manifest",
    ]


def test_check_hashes_same_size_change(tmp_path):
    folder = _bundle(tmp_path)
    manifest = {"files": hash_files(folder)}
    (folder / "model.onnx").write_bytes(b"mode1")
    assert check_hashes(folder, manifest) == ["model.onnx: sha256 mismatch (file changed since the build)"]


def test_check_hashes_listed_folder_is_missing(tmp_path):
    folder = _bundle(tmp_path)
    manifest = {"files": {**hash_files(folder), "samples": "0" * 64}}
    assert check_hashes(folder, manifest) == ["samples: not a regular file inside the bundle"]


# --------------------------------------------------------------------------- manifest
def test_write_bundle_metadata_then_read_and_check(tmp_path, registry):
    folder = _bundle(tmp_path)
    profile = registry.target("host")
    backend = registry.backend_for(profile)(profile)
    artifact = Artifact(files=["model.onnx"], inputs=[TensorSpec("x", [1, 3, 4, 4], layout="NCHW")],
                        outputs=[TensorSpec("y", [1, 2])])
    manifest = write_bundle_metadata(
        folder, profile=profile, backend=backend, precision="fp32", artifact=artifact, source_name="m.onnx",
        source_sha256="ab" * 32, options=BuildOptions(precision="fp32", calibration="/abs/path/calib.npy"),
        verification={"status": "skipped"}, plugins={"z": "1", "a": "2"},
    )
    read = read_manifest(folder)
    assert read == json.loads(json.dumps(manifest))
    assert read["schema_version"] == SCHEMA_VERSION and read["target"] == "host" and read["backend"] == "onnxruntime"
    assert read["files"] == hash_files(folder)
    assert read["build_options"]["calibration"] == "calib.npy"  # no host paths in the manifest
    assert list(read["plugins"]) == ["a", "z"]
    assert check_hashes(folder, read) == []
    text = (folder / MANIFEST).read_text()
    assert str(tmp_path) not in text


def test_read_manifest_not_a_folder(tmp_path):
    with pytest.raises(BundleError, match="is not a bundle folder"):
        read_manifest(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(BundleError, match="is not a bundle folder"):
        read_manifest(tmp_path / "file")


def test_read_manifest_missing(tmp_path):
    with pytest.raises(BundleError, match="has no manifest.json; is it a deploykit bundle"):
        read_manifest(tmp_path)


@pytest.mark.parametrize("content", [b"{not json", b"", b"\xff\xfe\x00garbage"])
def test_read_manifest_invalid_json(tmp_path, content):
    (tmp_path / MANIFEST).write_bytes(content)
    with pytest.raises(BundleError, match="is not valid JSON"):
        read_manifest(tmp_path)


@pytest.mark.parametrize("data, shown", [({"schema_version": 99}, "99"), ({}, "None"), ([1, 2], "None"),
                                         ({"schema_version": "1"}, "'1'")])
def test_read_manifest_wrong_schema(tmp_path, data, shown):
    (tmp_path / MANIFEST).write_text(json.dumps(data))
    with pytest.raises(BundleError, match=f"unsupported schema_version {shown}"):
        read_manifest(tmp_path)


def test_manifest_folder_is_a_manifest_path(tmp_path):
    (tmp_path / MANIFEST).mkdir()
    with pytest.raises(BundleError, match="has no manifest.json"):
        read_manifest(tmp_path)


# --------------------------------------------------------------------------- output-folder rules (hostile input)
def test_refuses_the_working_folder_its_parents_home_and_root(tmp_path, monkeypatch):
    work = tmp_path / "project" / "sub"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    for out in (".", "..", "", str(tmp_path), str(tmp_path / "home"), "/"):
        with pytest.raises(BundleError, match="working folder|home folder|root"):
            check_output_dir(Path(out), force=True)


def test_refuses_a_folder_holding_an_input(tmp_path):
    model = tmp_path / "models" / "m.onnx"
    model.parent.mkdir()
    model.write_bytes(b"x")
    with pytest.raises(BundleError, match="an input of this build"):
        check_output_dir(tmp_path / "models", force=True, protect=[model])


def test_refuses_symlinks(tmp_path):
    real = tmp_path / "real"
    _old_bundle(real)
    (tmp_path / "link").symlink_to(real)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for name in ("link", "dangling"):
        with pytest.raises(BundleError, match="symbolic link"):
            check_output_dir(tmp_path / name, force=True)


def test_name_length_and_staging_stem(tmp_path):
    with pytest.raises(BundleError, match="is too long"):
        check_output_dir(tmp_path / ("n" * 256), force=False)
    long_name = "é" * 127  # 254 bytes: allowed, and the staging folder name must still fit
    stem = staging.staging_stem(long_name)
    assert len(os.fsencode(f".{stem}.{os.getpid()}.abcdefgh.partial")) <= 255 and stem != long_name
    assert staging.staging_stem("short") == "short"
    out = tmp_path / long_name
    with StagedOutput(out) as stage:
        (stage.path / "f").write_text("x")
    assert (out / "f").exists()


def test_empty_existing_folder_is_used_without_force(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    with StagedOutput(out) as stage:
        (stage.path / "f").write_text("x")
    assert _listing(tmp_path) == ["empty", "empty/f"]


def test_bundle_problem(tmp_path):
    b = tmp_path / "b"
    _old_bundle(b)
    assert staging.bundle_problem(b) is None
    (b / "__pycache__").mkdir()
    (b / "__pycache__" / "runner.pyc").write_bytes(b"pyc")
    assert staging.bundle_problem(b) is None  # made by running the bundle
    (b / "mine.txt").write_text("x")
    assert "mine.txt" in staging.bundle_problem(b)
    (b / "manifest.json").write_text("[]")
    assert "not a deploykit manifest" in staging.bundle_problem(b)


def _dead_pid():
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_partials_of_dead_builds_are_removed_live_ones_kept(tmp_path):
    dead = tmp_path / f".out.{_dead_pid()}.abcdefgh.partial"
    (dead / "half").mkdir(parents=True)
    user = tmp_path / ".notes.partial"  # not ours by name
    user.mkdir()
    with StagedOutput(tmp_path / "other") as stage:
        live = stage.path
        assert not dead.exists() and user.exists()
        staging.remove_stale(tmp_path)  # another build sweeping while this one runs
        assert live.exists()


def test_stale_old_folder_of_a_dead_build_is_restored(tmp_path):
    """A build killed between moving the previous bundle aside and renaming the new one in place:
    the previous bundle comes back."""
    old = tmp_path / f".out.{_dead_pid()}.abcdefgh.old"
    _old_bundle(old)
    staging.remove_stale(tmp_path)
    assert (tmp_path / "out" / "old.txt").exists() and not old.exists()


# --------------------------------------------------------------------------- manifest validation, paths, open_bundle
def _valid_manifest(**changes):
    m = {"schema_version": SCHEMA_VERSION, "deploykit_version": "0", "target": "host", "backend": "onnxruntime",
         "precision": "fp32", "files": {"runner.py": "a" * 64}, "artifacts": ["runner.py"],
         "inputs": [{"name": "x", "shape": [1, 4], "dtype": "float32"}],
         "outputs": [{"name": "y", "shape": [1, 4], "dtype": "float32"}],
         "samples": {"inputs": "samples/inputs.npz", "expected": "samples/expected.npz"}}
    m.update(changes)
    return m


@pytest.mark.parametrize("changes, words", [
    ({"files": {"../x": "a" * 64}}, "'..' parts"),
    ({"files": {"/etc/hostname": "a" * 64}}, "absolute"),
    ({"files": {"a\\b": "a" * 64}}, "backslash"),
    ({"files": {"a\x00b": "a" * 64}}, "NUL"),
    ({"files": {"runner.py": "xyz"}}, "64 hex"),
    ({"files": ["runner.py"]}, "'files' must be an object"),
    ({"inputs": "x"}, "'inputs' must be a non-empty list"),
    ({"inputs": [{"name": "x", "shape": ["a"], "dtype": "float32"}]}, "shape"),
    ({"inputs": [{"name": "x", "shape": [1], "dtype": "object"}]}, "dtype"),
    ({"outputs": [{"name": 5, "shape": [1], "dtype": "float32"}]}, "string 'name'"),
    ({"samples": {"inputs": "../x.npz", "expected": "e.npz"}}, "'samples'"),
    ({"precision": None}, "'precision'"),
    ({"verification": [1]}, "'verification' must be an object"),
    ({"artifacts": ["nope.bin"]}, "'artifacts'"),
])
def test_validate_manifest_refuses(tmp_path, changes, words):
    (tmp_path / MANIFEST).write_text(json.dumps(_valid_manifest(**changes)))
    with pytest.raises(BundleError, match=words.replace("(", r"\(")):
        read_manifest(tmp_path)


def test_read_manifest_deep_nesting_and_symlink(tmp_path):
    (tmp_path / MANIFEST).write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(BundleError, match="not valid JSON"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST).unlink()
    (tmp_path / MANIFEST).symlink_to("/dev/zero")
    with pytest.raises(BundleError, match="has no manifest.json"):
        read_manifest(tmp_path)


def test_check_hashes_only_plain_files_inside(tmp_path):
    folder = _bundle(tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    files = hash_files(folder)
    (folder / "runner.py").unlink()
    (folder / "runner.py").symlink_to(outside)
    files["runner.py"] = sha256_file(outside)
    files["../outside.txt"] = sha256_file(outside)
    os.mkfifo(folder / "pipe")
    problems = check_hashes(folder, {"files": files})
    assert "'../outside.txt': listed name is not a plain relative path (empty, '.' or '..' parts)" in problems
    assert "runner.py: a symbolic link, not a file of the bundle" in problems
    assert "pipe: not listed in the manifest (special)" in problems


def test_open_bundle_and_read_samples(tmp_path):
    from deploykit.bundle.manifest import open_bundle, read_samples

    folder = tmp_path / "b"
    (folder / "samples").mkdir(parents=True)
    write_npz(folder / "samples" / "inputs.npz", {"in_0": np.zeros((2, 1, 4), np.float32)})
    write_npz(folder / "samples" / "expected.npz", {"out_0": np.ones((2, 1, 4), np.float32)})
    (folder / "runner.py").write_text("x")
    m = _valid_manifest(files=hash_files(folder))
    (folder / MANIFEST).write_text(json.dumps(m))
    manifest = open_bundle(folder)
    feeds, refs = read_samples(folder, manifest)
    assert len(feeds) == 2 and feeds[0]["x"].shape == (1, 4) and refs[1]["y"].sum() == 4
    (folder / "runner.py").write_text("changed")
    with pytest.raises(BundleError, match="was modified since it was built: runner.py: sha256 mismatch"):
        open_bundle(folder)
    with open(folder / "samples" / "inputs.npz", "wb") as f:
        np.savez(f, in_0=np.array([{}], dtype=object))
    with pytest.raises(BundleError, match="cannot be read"):
        read_samples(folder, manifest)
