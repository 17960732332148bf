"""`--executor ray` on a local two-node Ray cluster: byte-identical bundles, toolchain resources.

The cluster (a head and one worker node, each with one CPU, both on this machine: Ray binds them to
its own address, and a driver given node_ip_address 127.0.0.1 did not connect in this Ray version) is
started and shut down by this test, with a time bound. Skipped only when Ray is not installed (pip install 'deploykit[ray]').
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest

import modelzoo

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
TIME_LIMIT_S = 420
PLUGINS = "profiles,onnxruntime,tflite"

PROJECT = """
[build]
measure = false
keep-going = true

[models.cnn]
path = "cnn.onnx"
calibration = "calib.npy"
targets = { host = ["fp32", "int8"], rpi5 = ["fp32"] }
"""


class _TimeLimit(Exception):
    pass


@pytest.fixture
def ray_cluster(monkeypatch):
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'deploykit[ray]'")
    from ray.cluster_utils import Cluster

    def expired(signum, frame):
        raise _TimeLimit(f"the Ray test ran past {TIME_LIMIT_S} s")

    # workers load the same plugins as the driver: a manifest lists every loaded plugin
    monkeypatch.setenv("DEPLOYKIT_PLUGINS", PLUGINS)
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(TIME_LIMIT_S)
    cluster = None
    try:
        # only the onnxruntime toolchain is offered: tflite builds must never be scheduled
        resources = {"deploykit_onnxruntime": 1000.0}
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 1, "resources": resources, "include_dashboard": False})
        cluster.add_node(num_cpus=1, resources=resources)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        if cluster is not None:
            cluster.shutdown()


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_ray_local_cluster_builds_byte_identical_bundles(ray_cluster, tmp_path, cli):
    modelzoo.small_cnn(tmp_path / "cnn.onnx")
    np.save(tmp_path / "calib.npy", np.random.default_rng(1).normal(size=(10, 3, 16, 16)).astype(np.float32))
    (tmp_path / "deploykit.toml").write_text(PROJECT, encoding="utf-8")
    plugins = {"DEPLOYKIT_PLUGINS": PLUGINS}

    local = cli("build", "-o", "dist-local", cwd=tmp_path, env={"XDG_CACHE_HOME": str(tmp_path / "c1"), **plugins})
    assert local.returncode == 0, local.stderr
    r = cli("build", "--executor", "ray", "-o", "dist-ray", cwd=tmp_path, timeout=240,
            env={"XDG_CACHE_HOME": str(tmp_path / "c2"), "RAY_ADDRESS": ray_cluster.address, **plugins})
    jobs = {j["id"]: j for j in json.loads((tmp_path / "dist-ray" / "matrix.json").read_text())["jobs"]}
    assert jobs["cnn:host:fp32"]["status"] == jobs["cnn:host:int8"]["status"] == "built", r.stderr
    for job in ("host-fp32", "host-int8"):
        assert _files(tmp_path / "dist-ray" / "cnn" / job) == _files(tmp_path / "dist-local" / "cnn" / job), job
        assert jobs[f"cnn:{job.replace('-', ':')}"]["worker"]  # built on a cluster node, reported per build
        assert jobs[f"cnn:{job.replace('-', ':')}"]["attempts"] == 1

    # no node has the tflite toolchain: the rpi5 build is refused per build, never scheduled
    assert jobs["cnn:rpi5:fp32"]["status"] == "failed"
    assert "no Ray node offers the 'tflite' toolchain (resource deploykit_tflite)" in jobs["cnn:rpi5:fp32"]["error"]
    assert r.returncode == 2 and r.stderr.count("error:") == 1
