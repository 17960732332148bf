"""OpenVINO's compile_model runs in a child process: a native crash is a clean error (issue 19)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from deploykit.errors import DeployError

pytest.importorskip("openvino")
pytestmark = pytest.mark.plugin


def _ir(tmp_path):
    import openvino as ov

    from ov_testlib import _save

    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
                          [numpy_helper.from_array(np.ones((4, 3), np.float32), "w")])
    src = _save(g, tmp_path / "m.onnx")
    xml = tmp_path / "m.xml"
    ov.save_model(ov.convert_model(str(src)), str(xml))
    return xml


def test_child_compiles_and_reports_layer_precisions(tmp_path):
    from deploykit_openvino.probe import compile_in_child

    counts = compile_in_child(_ir(tmp_path), {"INFERENCE_PRECISION_HINT": "f32"})
    assert isinstance(counts, dict) and all(isinstance(v, dict) for v in counts.values())


@pytest.mark.parametrize("returncode, expected", [(-8, "crashed (SIGFPE)"), (-11, "crashed (SIGSEGV)"),
                                                  (1, "could not compile the model: boom")])
def test_child_death_is_one_clean_error(tmp_path, monkeypatch, returncode, expected):
    from deploykit_openvino import probe

    def fake_run(cmd, **kw):
        assert cmd[1:3] == ["-m", "deploykit_openvino.probe"]
        return subprocess.CompletedProcess(cmd, returncode, stdout="", stderr="Traceback ...\nRuntimeError: boom\n")

    monkeypatch.setattr(probe.subprocess, "run", fake_run)
    with pytest.raises(DeployError, match=expected.replace("(", r"\(").replace(")", r"\)")) as e:
        probe.compile_in_child(tmp_path / "m.xml", {})
    assert "\n" not in str(e.value)


def test_ops_openvino_cannot_convert_are_refused_by_name_before_calibration(cli, tmp_path):
    """intel-cpu used to calibrate for 32 s before OpenVINO said it cannot convert ``Loop``, and only
    the first line of its message survived (issue 19)."""
    import onnx

    from ov_testlib import ENV

    g = helper.make_graph([helper.make_node("Det", ["m"], ["d"], name="det_node"),
                           helper.make_node("Mul", ["m", "d"], ["y"], name="mul")], "g",
                          [helper.make_tensor_value_info("m", TensorProto.FLOAT, [3, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 3])])
    path = tmp_path / "det.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    calib = tmp_path / "c.npy"
    np.save(calib, np.random.default_rng(0).standard_normal((8, 3, 3)).astype(np.float32))
    proc = cli("build", path, "--target", "intel-cpu", "--precision", "int8", "--calibration", calib,
               "-o", tmp_path / "b", env=ENV)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert proc.returncode != 0 and len(errors) == 1, proc.stderr
    assert "det_node" in errors[0] and "intel-cpu" in errors[0] and "cannot convert" in errors[0]
    assert "calibration" not in proc.stderr.replace(errors[0], "")  # refused before any calibration work
    assert not (tmp_path / "b").exists()


def test_conversion_failure_report_is_one_line_per_op():
    from deploykit_openvino.lowering import conversion_failure, failed_ops

    report = ("Check 'false' failed at x.cpp:151:\nFrontEnd API failed with OpConversionFailure:\n"
              "Model wasn't fully converted. Failed operations detailed log:\n-- Loop-13 with a message:\n"
              "[ONNX Frontend] Conversion failed for Loop-13\nCheck 'a' failed at loop.cpp:310:\n"
              "While validating ONNX node '<Node(Loop): l>':\nbody inputs (41) do not match (25)\n\n"
              "Summary:\n-- Conversion is failed for: Loop-13\n-- No conversion rule found for operations: Det-13\n")
    assert failed_ops(report) == {"Loop": "body inputs (41) do not match (25)", "Det": "no conversion rule for this op"}
    assert "\n" not in conversion_failure(report)
