"""deploykit.errors.explain, deploykit.userfiles, and the CLI's one-line error plumbing."""

from __future__ import annotations

import errno
import os
import socket

import pytest
import typer

from deploykit.cli.common import one_line, printable, report_exception
from deploykit.errors import CalibrationError, DeployError, InputFileError, explain
from deploykit.reference import ort_reason
from deploykit.userfiles import regular_file

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("exc, words", [
    (MemoryError("Unable to allocate 894. GiB"), "out of memory"),
    (OSError(errno.ENOSPC, "No space left on device", "/out/model.onnx"), "no space left on the device (/out/model.onnx)"),
    (OSError(errno.EACCES, "Permission denied", "/ro"), "permission denied"),
    (OSError(errno.EROFS, "Read-only file system"), "read-only file system"),
    (OSError(errno.ENAMETOOLONG, "File name too long"), "file name too long"),
    (RuntimeError("[ONNXRuntimeError] : 1 : FAIL : write failed: No space left on device"), "no space left"),
    (RuntimeError("std::bad_alloc"), "out of memory"),
    (RecursionError("maximum recursion depth exceeded"), "nested too deeply"),
])
def test_explain_known_failures(exc, words):
    known = explain(exc)
    assert isinstance(known, DeployError) and words in str(known)


def test_explain_looks_through_wrapping():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise ValueError("protobuf serialization failed") from inner
    except ValueError as outer:
        assert "no space left" in str(explain(outer))


def test_explain_unknown_is_none():
    assert explain(ValueError("a bug")) is None
    assert explain(KeyError("x")) is None


def test_report_exception_kinds(capsys):
    for exc, code, start in [(CalibrationError("bad data"), 2, "error: bad data"),
                             (MemoryError(), 2, "error: out of memory"),
                             (ZeroDivisionError("boom"), 1, "error: internal error: ZeroDivisionError: boom"),
                             (KeyboardInterrupt(), 130, "error: interrupted (SIGINT)")]:
        with pytest.raises(typer.Exit) as info:
            report_exception(exc, debug=False)
        assert info.value.exit_code == code
        err = capsys.readouterr().err
        assert err.startswith(start) and err.count("\n") == 1, err
    with pytest.raises(ZeroDivisionError):
        report_exception(ZeroDivisionError("boom"), debug=True)


def test_printable_and_one_line():
    assert printable("plain [/] name") == "plain [/] name"
    assert printable("a\x1b[2Jb\x07") == "a\\x1b[2Jb\\x07"
    assert one_line("line1\nline2\x00") == "line1 line2\\x00"
    assert len(one_line("x" * 5000)) == 2000


def test_ort_reason_drops_codes_paths_and_cpp_locations():
    e = RuntimeError("[ONNXRuntimeError] : 1 : FAIL : Load model from /tmp/x/canonical.onnx failed:/onnxruntime_src/"
                     "onnxruntime/core/graph/model_load_utils.h:46 void onnxruntime::model_load_utils::Validate"
                     "OpsetForDomain(const std::unordered_map<std::string, int>&, bool) Opset 99 is under development.")
    assert ort_reason(e) == "Opset 99 is under development"


# --------------------------------------------------------------------------- userfiles
def test_regular_file_kinds(tmp_path):
    f = tmp_path / "m.onnx"
    f.write_bytes(b"x")
    assert regular_file(f, "model file") == f
    os.mkfifo(tmp_path / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    try:
        cases = {tmp_path / "pipe": "named pipe", tmp_path: "a folder", "/dev/zero": "character device",
                 tmp_path / "nope": "does not exist", tmp_path / "sock": "a socket", "": "no model file given"}
        for path, words in cases.items():
            with pytest.raises(InputFileError, match=words):
                regular_file(path, "model file")
    finally:
        sock.close()
    os.symlink("/dev/zero", tmp_path / "z.onnx")
    with pytest.raises(CalibrationError, match="character device"):
        regular_file(tmp_path / "z.onnx", "calibration data", error=CalibrationError)
