"""Bad input never crashes: exit code != 0, one line ``error: ...`` on stderr, no traceback, no output folder."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import modelzoo

pytestmark = pytest.mark.e2e


def _expect_error(cli, tmp_path, *args, match: str):
    out = tmp_path / "out"
    res = cli("build", *args, "-o", out)
    assert res.returncode != 0
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and not ln.startswith(("✓", "  "))]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.stderr
    assert match.lower() in lines[0].lower(), lines[0]
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")], "staging folder left behind"
    return lines[0]


def test_missing_file(cli, tmp_path):
    _expect_error(cli, tmp_path, tmp_path / "nope.onnx", "--target", "host", match="does not exist")


def test_not_onnx(cli, tmp_path):
    p = tmp_path / "model.onnx"
    p.write_text("this is not a model\n" * 10)
    _expect_error(cli, tmp_path, p, "--target", "host", match="not")


def test_truncated_onnx(cli, tmp_path, cnn):
    data = cnn.read_bytes()
    p = tmp_path / "trunc.onnx"
    p.write_bytes(data[: len(data) // 2])
    _expect_error(cli, tmp_path, p, "--target", "host", match="onnx")


def test_external_data_outside_folder(cli, tmp_path):
    w = np.ones((4, 4), np.float32)
    t = numpy_helper.from_array(w, "w")
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "../../etc/passwd"), ("offset", "0"), ("length", "64")):
        e = t.external_data.add()
        e.key, e.value = k, v
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [t])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    sub = tmp_path / "m"
    sub.mkdir()
    p = sub / "evil.onnx"
    p.write_bytes(model.SerializeToString())
    _expect_error(cli, tmp_path, p, "--target", "host", match="outside the model's folder")


def test_dynamic_dims_without_input_shape(cli, tmp_path):
    model = modelzoo.dynamic_batch_model(tmp_path / "dyn.onnx")
    line = _expect_error(cli, tmp_path, model, "--target", "host", match="dynamic")
    assert "'image' dim 0" in line and "--input-shape image:1,3,16,16" in line


@pytest.mark.parametrize("spec", ["image", "image:1,3,x,16", "image:1,3,,16", "image:0,3,16,16"])
def test_malformed_input_shape(cli, tmp_path, cnn, spec):
    _expect_error(cli, tmp_path, cnn, "--target", "host", "--input-shape", spec, match="--input-shape")


def test_input_shape_unknown_name_and_rank(cli, tmp_path, cnn):
    _expect_error(cli, tmp_path, cnn, "--target", "host", "--input-shape", "nope:1,3,16,16", match="not a model input")
    _expect_error(cli, tmp_path, cnn, "--target", "host", "--input-shape", "image:1,3,16", match="rank")


def test_unknown_target_suggests(cli, tmp_path, cnn):
    line = _expect_error(cli, tmp_path, cnn, "--target", "rpi", match="unknown target")
    assert "rpi4" in line


def test_output_exists_without_force(cli, tmp_path, cnn):
    out = tmp_path / "out"
    assert cli("build", cnn, "--target", "host", "-o", out).returncode == 0
    res = cli("build", cnn, "--target", "host", "-o", out)
    assert res.returncode != 0 and res.stderr.startswith("error: ") and "--force" in res.stderr
    res = cli("build", cnn, "--target", "host", "-o", out, "--force")
    assert res.returncode == 0, res.stderr
    assert (out / "manifest.json").exists()


def test_force_never_replaces_a_folder_deploykit_did_not_build(cli, tmp_path, cnn):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    for extra in ((), ("--force",)):
        res = cli("build", cnn, "--target", "host", "-o", out, *extra)
        assert res.returncode == 2 and res.stderr.startswith("error: ") and "not a deploykit bundle" in res.stderr
        assert "--force" not in res.stderr  # never suggested for a folder it would refuse
    assert (out / "keep.txt").read_text() == "x"


def test_int8_without_calibration(cli, tmp_path, cnn):
    _expect_error(cli, tmp_path, cnn, "--target", "host", "--precision", "int8", match="--calibration")


@pytest.mark.parametrize(
    "array, match",
    [
        (np.zeros((8, 3, 15, 16), np.float32), "shape"),
        (np.zeros((8, 3, 16, 16), np.uint8), "dtype"),
        (np.full((8, 3, 16, 16), np.nan, np.float32), "nan"),
        (np.array(["a", "b"]), "dtype"),
    ],
    ids=["shape", "int-for-float", "nan", "strings"],
)
def test_bad_calibration(cli, tmp_path, cnn, array, match):
    calib = tmp_path / "calib.npy"
    np.save(calib, array)
    _expect_error(cli, tmp_path, cnn, "--target", "host", "-p", "int8", "-c", calib, match=match)


def test_calibration_missing_file_and_unknown_precision(cli, tmp_path, cnn):
    _expect_error(cli, tmp_path, cnn, "--target", "host", "-p", "int8", "-c", tmp_path / "none.npy", match="does not exist")
    _expect_error(cli, tmp_path, cnn, "--target", "host", "-p", "int4", match="precision")


def test_precision_not_supported_by_target(cli, tmp_path, cnn):
    line = _expect_error(cli, tmp_path, cnn, "--target", "ncs2", "-p", "int8", match="does not support --precision int8")
    assert "fp16" in line


def test_debug_shows_traceback(cli, tmp_path):
    res = cli("build", tmp_path / "nope.onnx", "--target", "host", "--debug")
    assert res.returncode != 0 and "Traceback" in res.stderr


def test_checker_failure(cli, tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Relu", ["y"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    p = tmp_path / "bad.onnx"
    p.write_bytes(model.SerializeToString())
    _expect_error(cli, tmp_path, p, "--target", "host", match="checker")


def test_run_and_verify_bad_bundle(cli, tmp_path):
    res = cli("verify", tmp_path)
    assert res.returncode != 0 and res.stderr.startswith("error: ") and "manifest.json" in res.stderr
    res = cli("run", tmp_path / "nope")
    assert res.returncode != 0 and res.stderr.startswith("error: ")
