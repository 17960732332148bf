"""`deploykit build` with a project file: the matrix, incremental rebuilds, the cache, -j/--keep-going."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

import modelzoo

pytestmark = pytest.mark.e2e

PROJECT = """
[build]
jobs = 2
measure = false

[models.cnn]
path = "cnn.onnx"
calibration = "calib.npy"
targets = { host = ["fp32", "int8"] }

[models.tr]
path = "tr.onnx"
calibration = "tr.npz"
targets = { host = ["fp32", "int8"] }
"""


@pytest.fixture
def project(tmp_path) -> Path:
    modelzoo.small_cnn(tmp_path / "cnn.onnx")
    modelzoo.small_transformer(tmp_path / "tr.onnx")
    rng = np.random.default_rng(0)
    np.save(tmp_path / "calib.npy", rng.normal(size=(12, 3, 16, 16)).astype(np.float32))
    np.savez(tmp_path / "tr.npz", tokens=rng.integers(0, 32, (12, 1, 8)).astype(np.int64)[:, 0],
             features=rng.normal(size=(12, 8, 16)).astype(np.float32))
    (tmp_path / "deploykit.toml").write_text(PROJECT, encoding="utf-8")
    return tmp_path


def env(tmp_path: Path) -> dict[str, str]:
    return {"XDG_CACHE_HOME": str(tmp_path / "xdg")}


def statuses(folder: Path) -> dict[str, str]:
    data = json.loads((folder / "dist" / "matrix.json").read_text(encoding="utf-8"))
    return {j["id"]: j["status"] for j in data["jobs"]}


def test_matrix_builds_incrementally_and_restores_from_the_cache(project, cli):
    r = cli("build", cwd=project, env=env(project))
    assert r.returncode == 0, r.stderr
    assert set(statuses(project).values()) == {"built"} and len(statuses(project)) == 4
    html = (project / "dist" / "matrix.html").read_text(encoding="utf-8")
    assert "<svg" in html and "<script" not in html and "cnn" in html and "http" not in html.replace("http-equiv", "")

    # the same pipeline as the single-model command: byte-identical bundles
    single = cli("build", "cnn.onnx", "--target", "host", "-p", "int8", "-c", "calib.npy", "-o", "single", cwd=project)
    assert single.returncode == 0, single.stderr
    for p in (project / "single").rglob("*"):
        if p.is_file():
            assert p.read_bytes() == (project / "dist" / "cnn" / "host-int8" / p.relative_to(project / "single")).read_bytes(), p

    r = cli("build", cwd=project, env=env(project))
    assert r.returncode == 0 and set(statuses(project).values()) == {"up to date"}, r.stderr

    # change one model's bytes: only its bundles rebuild
    m = onnx.load(str(project / "cnn.onnx"))
    m.graph.initializer[0].float_data[:] = []
    arr = onnx.numpy_helper.to_array(m.graph.initializer[0]) * 1.01
    m.graph.initializer[0].CopyFrom(onnx.numpy_helper.from_array(arr.astype(np.float32), m.graph.initializer[0].name))
    onnx.save(m, str(project / "cnn.onnx"))
    r = cli("build", cwd=project, env=env(project))
    assert r.returncode == 0, r.stderr
    assert statuses(project) == {"cnn:host:fp32": "built", "cnn:host:int8": "built",
                                 "tr:host:fp32": "up to date", "tr:host:int8": "up to date"}

    # a bundle gone from dist/ comes back from the cache, re-verified, without a build
    shutil.rmtree(project / "dist" / "tr")
    r = cli("build", "tr", cwd=project, env=env(project))
    assert r.returncode == 0, r.stderr
    assert statuses(project)["tr:host:int8"] == "restored"
    assert (project / "dist" / "tr" / "host-int8" / "manifest.json").is_file()

    # a damaged cache entry is never used: dropped and rebuilt
    cache_bundles = list((project / "xdg" / "deploykit" / "bundles").glob("*/*/bundle"))
    for b in cache_bundles:
        (b / "runner.py").write_text("tampered", encoding="utf-8")
    shutil.rmtree(project / "dist" / "tr")
    r = cli("build", "tr:host", "--json", cwd=project, env=env(project))
    assert r.returncode == 0, r.stderr
    jobs = {j["id"]: j for j in json.loads(r.stdout)["jobs"]}
    assert jobs["tr:host:int8"]["status"] == "built"
    assert any("cached bundle dropped" in w for w in jobs["tr:host:int8"]["warnings"])

    # --rebuild forces a build of what is up to date
    r = cli("build", "cnn:host:fp32", "--rebuild", cwd=project, env=env(project))
    assert r.returncode == 0 and statuses(project)["cnn:host:fp32"] == "built", r.stderr

    r = cli("cache", "ls", "--json", cwd=project, env=env(project))
    assert r.returncode == 0 and len(json.loads(r.stdout)["entries"]) >= 4, r.stderr
    r = cli("cache", "clear", cwd=project, env=env(project))
    assert r.returncode == 0 and "removed" in r.stdout
    assert json.loads(cli("cache", "ls", "--json", env=env(project)).stdout)["entries"] == []


def test_keep_going_builds_the_rest_after_a_failure(project, cli):
    np.save(project / "bad.npy", np.zeros((4, 3, 7, 7), np.float32))  # wrong sample shape for the cnn
    text = PROJECT.replace('[models.cnn]\npath = "cnn.onnx"\ncalibration = "calib.npy"',
                           '[models.cnn]\npath = "cnn.onnx"\ncalibration = "bad.npy"')
    (project / "deploykit.toml").write_text(text, encoding="utf-8")
    r = cli("build", "-j", "2", "--keep-going", cwd=project, env=env(project))
    assert r.returncode == 2
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cnn:host" in errors[0] and "Traceback" not in r.stderr
    st = statuses(project)
    assert st["tr:host:fp32"] == st["tr:host:int8"] == "built"
    assert st["cnn:host:fp32"] == st["cnn:host:int8"] == "failed"
    assert not (project / "dist" / "cnn").exists()
    assert not list((project / "dist").glob("**/*.partial"))
    log = json.loads((project / "dist" / "matrix.json").read_text())["jobs"][0]["log"]
    assert (project / "dist" / log).is_file()

    # without --keep-going the first failure stops new builds
    shutil.rmtree(project / "dist")
    r = cli("build", "-j", "1", cwd=project, env={"XDG_CACHE_HOME": str(project / "xdg2")})
    assert r.returncode == 2
    st = statuses(project)
    assert st["cnn:host:fp32"] == "failed" and st["tr:host:int8"] == "skipped"


def test_project_command_errors(project, cli, tmp_path_factory):
    cases = [
        (("build", "--calibration", "calib.npy"), "--calibration apply to single-model builds"),
        (("build", "cnx"), "unknown model 'cnx'"),
        (("build", "cnn.onnx", "-j", "2", "--target", "host"), "-j/--jobs apply to project builds"),
        (("build", "cnn.onnx"), "--target is required with a model file"),
        (("build", "--target", "rpi4"), "no model in deploykit.toml is built for --target 'rpi4'"),
    ]
    for args, message in cases:
        r = cli(*args, cwd=project, env=env(project))
        assert r.returncode != 0 and message in r.stderr, (args, r.stderr)
        assert r.stderr.count("error:") == 1 and "Traceback" not in r.stderr
    empty = tmp_path_factory.mktemp("no-project")
    r = cli("build", cwd=empty, env=env(project))
    assert r.returncode == 2 and "needs a MODEL.onnx (with --target), or a deploykit.toml" in r.stderr
    (project / "deploykit.toml").write_text(PROJECT.replace("[models.tr]", "[models.tr]\neval = { data = \"tr.npz\", metric = \"top1\" }"))
    r = cli("build", "tr", cwd=project, env=env(project))
    from deploykit.buildsys.child import eval_supported

    if not eval_supported():
        assert r.returncode == 2 and "field 'eval': task metrics" in r.stderr and "not supported by this deploykit version" in r.stderr
