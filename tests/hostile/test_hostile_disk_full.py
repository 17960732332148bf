"""Full disks (a small tmpfs; skipped where mounting is not allowed): the output's disk, the
temporary folder's disk, and ``run --output``. One line saying the disk is full, nothing left."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import hostile_models as hm


def _big_model(path, mib: int = 2):
    """The conv model plus an unused-looking but live 2 MiB weight (a MatMul on the output)."""
    m = hm.conv_model()
    n = int(mib * (1 << 20) / 4 / 5)
    w = np.random.default_rng(0).standard_normal((5, n)).astype(np.float32)
    m.graph.initializer.append(numpy_helper.from_array(w, "big"))
    m.graph.node.append(onnx.helper.make_node("MatMul", ["scores", "big"], ["wide"], name="wide"))
    m.graph.output.append(onnx.helper.make_tensor_value_info("wide", onnx.TensorProto.FLOAT, [1, n]))
    return hm.save(m, path)


@pytest.mark.parametrize("size_kib, big", [(16, False), (1024, True)], ids=["tiny-disk", "large-model"])
def test_output_disk_full(sb, small_fs, size_kib, big):
    """16 KiB: the bundle's own files fill it; 1 MiB with a 2 MiB weight: onnxruntime's model writer
    hits it (it reports a protobuf serialization failure)."""
    fs = small_fs(size_kib)
    model = _big_model(sb.work / "m.onnx") if big else hm.save(hm.conv_model(), sb.work / "m.onnx")
    out = fs / "out"
    res = sb.run("build", model, "--target", "host", "-o", out)
    sb.expect_error(res, "no space left", code=2, out=out)
    assert list(fs.iterdir()) == []


def test_tmpdir_disk_full(sb, small_fs):
    fs = small_fs(512)
    model = _big_model(sb.work / "m.onnx")
    out = sb.work / "out"
    res = sb.run("build", model, "--target", "host", "-o", out, env={"TMPDIR": str(fs)})
    sb.expect_error(res, "no space left", code=2, out=out)
    assert list(fs.iterdir()) == []


def test_run_output_disk_full(sb, small_fs):
    model = _big_model(sb.work / "m.onnx", mib=1)
    bundle = sb.work / "b"
    assert sb.run("build", model, "--target", "host", "-o", bundle).returncode == 0
    x = sb.work / "x.npy"
    np.save(x, np.zeros((1, 3, 8, 8), np.float32))
    fs = small_fs(64)
    res = sb.run("run", bundle, "--input", f"image={x}", "--output", fs / "y.npz")
    sb.expect_error(res, "no space left", code=2)
    assert list(fs.iterdir()) == []
