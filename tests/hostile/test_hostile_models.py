"""Hostile model files: every one gives one clean ``error:`` line (or a verified bundle), on every
command that reads a model, and leaves nothing behind."""

from __future__ import annotations

import os
import socket

import numpy as np
import onnx
import pytest

import hostile_models as hm


def _build(sb, model, *extra, target="host", precision="fp32"):
    out = sb.work / "out"
    return out, sb.run("build", model, "--target", target, "-p", precision, "-o", out, *extra)


# (id, writer(folder) -> path, words the error line must contain)
BROKEN_FILES = [
    ("text", lambda d: hm.write_bytes(d / "m.onnx", b"not a model\n" * 20), "not a readable onnx model"),
    ("empty", lambda d: hm.write_bytes(d / "m.onnx", b""), "onnx"),
    ("truncated", lambda d: hm.truncated(d / "m.onnx"), "onnx"),
    ("random-bytes", lambda d: hm.random_bytes(d / "m.onnx"), "onnx"),
    ("zip", lambda d: hm.write_bytes(d / "m.onnx", b"PK\x03\x04" + b"\x00" * 100), "onnx"),
    ("missing", lambda d: d / "nope.onnx", "does not exist"),
    ("folder", lambda d: (d / "dir.onnx").mkdir() or d / "dir.onnx", "is a folder"),
    ("fifo", lambda d: hm.fifo(d / "pipe.onnx"), "named pipe"),
    ("dev-zero", lambda d: os.symlink("/dev/zero", d / "zero.onnx") or d / "zero.onnx", "character device"),
    ("dev-null", lambda d: __import__("pathlib").Path("/dev/null"), "character device"),
    ("empty-path", lambda d: "", ("model",)),
]


@pytest.mark.parametrize("writer, match", [c[1:] for c in BROKEN_FILES], ids=[c[0] for c in BROKEN_FILES])
@pytest.mark.parametrize("command", ["build", "inspect"])
def test_broken_model_files(sb, writer, match, command):
    path = writer(sb.work)
    if command == "build":
        out, res = _build(sb, path)
    else:
        out, res = None, sb.run("inspect", path)
    sb.expect_error(res, match, code=2, out=out)


def test_socket_as_model(sb):
    path = sb.work / "sock.onnx"
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(path))
        out, res = _build(sb, path)
        sb.expect_error(res, "socket", out=out)
    finally:
        s.close()


# (id, model, words the error line must contain)
BAD_MODELS = [
    ("opset-99", lambda: hm.relu_model(opset=99), "opset 99"),
    ("opset-0", lambda: hm.relu_model(opset=0), "opset 0"),
    ("ir-version-99", lambda: (lambda m: (setattr(m, "ir_version", 99), m)[1])(hm.relu_model()), "checker"),
    ("no-inputs", hm.no_inputs, "no inputs"),
    ("string-input", hm.string_input, "type string"),
    ("string-output", hm.string_output, "type string"),
    ("complex-input", hm.complex_input, "complex64"),
    ("sequence-input", hm.sequence_input, "sequence"),
    ("zero-dim", lambda: hm.dims((1, 0)), "dimension of 0"),
    ("negative-dim", lambda: hm.dims((1, -3)), "dimension of -3"),
    ("huge-dims", lambda: hm.dims((1, 100000, 100000, 3)), "per sample"),
    ("dynamic-dims", lambda: hm.dims(("N", 4)), "dynamic"),
    ("custom-domain-op", hm.custom_domain_op, ("frobnicate", "com.acme.secret")),
    ("checker-ok-ort-refuses", hm.checker_ok_ort_refuses, "onnx runtime cannot load"),
    ("fails-when-run", hm.runtime_reshape_failure, "onnx runtime fails running"),
    ("bad-raw-data", hm.bad_raw_data, ("m.onnx",)),
    ("nul-in-name", lambda: hm.renamed(hm.relu_model(), "x", "a\x00b"), "nul"),
    ("cycle", lambda: hm.renamed(hm.relu_model(), "x", "y"), "checker"),
    ("declared-output-rank-wrong", hm.declared_output_rank_wrong, "declared shape or type contradicts"),
    ("output-dtype-enum-99", hm.output_dtype_enum_99, "unknown element type 99"),
]


@pytest.mark.parametrize("make, match", [c[1:] for c in BAD_MODELS], ids=[c[0] for c in BAD_MODELS])
def test_bad_models(sb, make, match):
    path = hm.save(make(), sb.work / "m.onnx")
    out, res = _build(sb, path)
    sb.expect_error(res, match, code=2, out=out)


def test_non_utf8_name_no_traceback(sb):
    """onnx_ir logs tracebacks for names that are not UTF-8; none may reach the user."""
    path = hm.write_bytes(sb.work / "m.onnx", hm.raw_name(hm.relu_model(x="xq"), "xq", b"x\xff"))
    out, res = _build(sb, path)
    sb.expect_error(res, "not valid utf-8", code=2, out=out)
    sb.expect_error(sb.run("inspect", path), "not valid utf-8", code=2)


@pytest.mark.parametrize("location, match", [("../../etc/passwd", "outside the model's folder"),
                                             ("/etc/passwd", "outside the model's folder"),
                                             ("missing.bin", "missing"),
                                             ("link.bin", "outside the model's folder"),
                                             ("pipe.bin", "missing")])
def test_external_data_escapes(sb, location, match):
    folder = sb.work / "m"
    folder.mkdir()
    os.symlink("/etc/hostname", folder / "link.bin")
    os.mkfifo(folder / "pipe.bin")
    path = hm.save(hm.external_data(folder, location), folder / "m.onnx")
    out, res = _build(sb, path)
    sb.expect_error(res, match, code=2, out=out)


def test_nan_weights_warn_and_fail_verification(sb):
    """NaN/Inf weights: a warning in every precision, and verification never passes."""
    path = hm.save(hm.conv_model(nan_weights=True), sb.work / "m.onnx")
    for precision in ("fp32", "fp16"):
        out = sb.work / f"out-{precision}"
        res = sb.run("build", path, "--target", "host", "-p", precision, "-o", out)
        assert "weight tensor(s) hold NaN/Inf: 'fc'" in res.stderr, res
        assert "the fp32 reference itself is non-finite" in res.stderr, res
        manifest = sb.expect_ok(res, out)
        assert manifest["verification"]["status"] == "failed"
    res = sb.run("build", path, "--target", "host", "-p", "fp32", "-o", sb.work / "strict", "--strict")
    assert res.returncode == 4 and not (sb.work / "strict").exists() or res.returncode == 4, res


def test_nan_weights_int8(sb):
    path = hm.save(hm.conv_model(nan_weights=True), sb.work / "m.onnx")
    calib = sb.work / "c.npy"
    np.save(calib, np.random.default_rng(0).standard_normal((8, 3, 8, 8)).astype(np.float32))
    out = sb.work / "out"
    res = sb.run("build", path, "--target", "host", "-p", "int8", "-c", calib, "-o", out)
    if res.returncode == 0:
        assert "NaN/Inf" in res.stderr
        assert sb.expect_ok(res, out)["verification"]["status"] == "failed"
    else:
        sb.expect_error(res, out=out)


@pytest.mark.parametrize("kind", sorted(hm.HOSTILE_NAMES))
def test_hostile_names_build_and_inspect(sb, kind):
    """Names are data: printed as text (no markup, no terminal escapes), never executed."""
    name = hm.HOSTILE_NAMES[kind]
    path = hm.save(hm.conv_model(x=name, y=name + "_out"), sb.work / "m.onnx")
    out = sb.work / "out"
    res = sb.run("build", path, "--target", "host", "-o", out)
    manifest = sb.expect_ok(res, out)
    assert manifest["verification"]["status"] == "passed"
    assert "\x1b]0;pwned" not in res.stderr and not (sb.work / "PWNED").exists()
    ins = sb.run("inspect", path, "--target", "host")
    assert ins.returncode == 0 and "Traceback" not in ins.stderr, ins
    assert "\x1b" not in ins.stdout, ins  # shown escaped
    x = sb.work / "x.npy"
    np.save(x, np.zeros((1, 3, 8, 8), np.float32))
    run = sb.run("run", out, "--input", f"{name}={x}", "--output", sb.work / "y.npz")
    assert run.returncode == 0 and "\x1b]0;" not in run.stdout + run.stderr, run
    with np.load(sb.work / "y.npz") as z:
        assert all("/" not in k and not k.startswith(".") for k in z.files)


def test_markup_in_model_path(sb):
    folder = sb.work / "[red]x["
    folder.mkdir()
    path = hm.save(hm.conv_model(), folder / "]m.onnx")  # the path reads .../[red]x[/]m.onnx
    assert "[/]" in str(path)
    sb.expect_error(sb.run("inspect", folder / "]nope.onnx"), "does not exist")
    ins = sb.run("inspect", path)
    assert ins.returncode == 0 and "[/]" in ins.stdout, ins
    out = folder / "]out"
    sb.expect_ok(sb.run("build", path, "--target", "host", "-o", out), out)


def test_subgraph_names(sb):
    path = hm.save(hm.if_subgraph_names(), sb.work / "m.onnx")
    out = sb.work / "out"
    manifest = sb.expect_ok(sb.run("build", path, "--target", "host", "-o", out), out)
    assert manifest["verification"]["status"] == "passed"
    assert sb.run("inspect", path, "--target", "host").returncode == 0


def test_duplicate_node_names(sb):
    path = hm.save(hm.duplicate_node_names(), sb.work / "m.onnx")
    out, res = _build(sb, path)
    sb.expect_error(res, "same node name", code=2, out=out)
    assert sb.run("inspect", path).returncode == 0


def test_long_model_path_and_name(sb):
    deep = sb.work / "/".join(["d" * 200] * 4)
    deep.mkdir(parents=True)
    path = hm.save(hm.conv_model(), deep / ("m" * 200 + ".onnx"))
    out = deep / "out"
    sb.expect_ok(sb.run("build", path, "--target", "host", "-o", out), out)


def test_checker_passes_unknown_default_op(sb):
    m = hm.relu_model()
    m.graph.node[0].op_type = "NoSuchOp"
    path = hm.save(m, sb.work / "m.onnx")
    out, res = _build(sb, path)
    sb.expect_error(res, "checker", code=2, out=out)
    assert onnx.load(str(path)).graph.node[0].op_type == "NoSuchOp"


AWKWARD_BUT_VALID = ["sparse_initializer", "local_function", "hostile_metadata", "passthrough", "scalar_io", "bool_io",
                     "float16_io"]


@pytest.mark.parametrize("make", AWKWARD_BUT_VALID)
def test_awkward_but_valid_models_build(sb, make):
    path = hm.save(getattr(hm, make)(), sb.work / "m.onnx")
    out = sb.work / "out"
    manifest = sb.expect_ok(sb.run("build", path, "--target", "host", "-o", out), out)
    assert manifest["verification"]["status"] == "passed"
    ins = sb.run("inspect", path)
    assert ins.returncode == 0 and "\x1b" not in ins.stdout, ins


def test_huge_intermediate_is_out_of_memory_not_a_crash(sb):
    path = hm.save(hm.huge_intermediate(), sb.work / "m.onnx")
    out, res = _build(sb, path)
    sb.expect_error(res, "out of memory", code=2, out=out)
    assert "[E:onnxruntime" not in res.stderr  # the runtime's own log stays off the screen


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_model_that_fails_only_when_run(sb, precision):
    """Found by the fuzz pass: ONNX Runtime loads it and fails when it runs; in int8 that happens while
    calibrating, in fp32 while computing the reference."""
    path = hm.save(hm.gather_axis_out_of_range(), sb.work / "m.onnx")
    calib = sb.work / "c.npy"
    np.save(calib, np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32))
    out = sb.work / "out"
    extra = ["-c", calib] if precision == "int8" else []
    res = sb.run("build", path, "--target", "host", "-p", precision, "-o", out, *extra)
    sb.expect_error(res, "onnx runtime fails running", code=2, out=out)


def test_input_listed_as_output_fp16(sb):
    """Found by the fuzz pass: onnxruntime's float16 converter breaks a graph whose input is also an
    output; fp32 builds, fp16 says to use fp32."""
    path = hm.save(hm.input_listed_as_output(), sb.work / "m.onnx")
    out = sb.work / "out"
    sb.expect_ok(sb.run("build", path, "--target", "host", "-p", "fp32", "-o", out), out)
    out16 = sb.work / "out16"
    res = sb.run("build", path, "--target", "host", "-p", "fp16", "-o", out16)
    if res.returncode != 0:
        sb.expect_error(res, "--precision fp32", code=2, out=out16)
    else:
        sb.expect_ok(res, out16)


def test_initializer_bytes_that_do_not_match_its_type_are_refused_at_import(sb):
    """A float bias retyped to bool in the file (fuzz seed 47, m0546): its 40 raw bytes cannot be
    bool[10]. ONNX Runtime refused the build, but `inspect --target jetson-nano` reached the TensorRT
    lowering and ended in `internal error: ValueError: cannot reshape`. Refused at import for every
    command."""
    m = hm.conv_model()
    fc_b = next(t for t in m.graph.initializer if t.name == "fc_b")
    fc_b.data_type = onnx.TensorProto.BOOL
    path = hm.save(m, sb.work / "m.onnx")
    for args in (("inspect", path, "--target", "jetson-nano"), ("inspect", path)):
        sb.expect_error(sb.run(*args), "'fc_b' holds 20 bytes, but bool [5] needs 5", code=2)
    out, res = _build(sb, path)
    sb.expect_error(res, "'fc_b' holds 20 bytes", code=2, out=out)
