"""The edgetpu_compiler integration without the compiler (x86-64 Linux apt package, absent here):
the log parser on recorded output samples (compiler_logs/, layout as documented, see its README),
run_compiler with stand-in compilers (success, failure, no output, timeout), compile.sh run with a
stand-in compiler / docker on a restricted PATH, and the build's report and notes for each case."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgetpu_testlib import registry

pytestmark = pytest.mark.plugin
pytest.importorskip("ai_edge_litert")

from deploykit_edgetpu import compiler  # noqa: E402

LOGS = Path(__file__).parent / "compiler_logs"


def _log(name: str) -> str:
    return (LOGS / name).read_text()


# -- parse_log on recorded output ------------------------------------------------------------------------


def test_parse_all_mapped():
    r = compiler.parse_log(_log("mapped_all.stdout"))
    assert r["compiler_version"] == "16.0.384591198" and r["status"] == "succeeded" and "error" not in r
    assert r["compile_ms"] == 734 and r["input_model"] == "model.tflite" and r["output_model"] == "model_edgetpu.tflite"
    assert r["input_size_bytes"] == round(6.91 * 2**20) and r["on_chip_remaining_bytes"] == 512 * 1024
    assert r["on_chip_used_bytes"] == round(6.74 * 2**20) and r["off_chip_streamed_bytes"] == 0
    assert r["edgetpu_subgraphs"] == 1 and r["total_operations"] == 109 and r["operation_log"] == "model_edgetpu.log"
    assert sum(row["count"] for row in r["operations"]) == 109 and {"op": "RSQRT", "count": 4,
                                                                    "status": "Mapped to Edge TPU"} in r["operations"]
    assert r["mapped_fraction"] == 1.0 and "not_mapped" not in r and "partial" not in r
    assert "search_attempts" not in r


def test_parse_delegate_search_keeps_the_last_verdict():
    r = compiler.parse_log(_log("search_delegate.stdout"))
    assert r["status"] == "succeeded" and "error" not in r  # earlier tries failed, the last one compiled
    assert r["delegate_search_step"] == 10
    tries = r["search_attempts"]
    assert [t["segment_ops"] for t in tries] == [140, 130, 120]
    assert [t["status"] for t in tries] == ["failed", "failed", "succeeded"]
    assert "large activation tensors" in tries[0]["error"] and "Restored original execution plan" in tries[0]["error"]
    assert tries[1]["intermediate_tensors"] == ["head/conv1;head/relu1", "head/concat"]  # ';' is part of a name
    assert tries[2]["intermediate_tensors"] == ["stage4/add", "stage4/relu"] and "error" not in tries[2]
    assert r["partial"] is True and r["tpu_operations"] == 120 and r["cpu_operations"] == 20
    assert r["off_chip_streamed_bytes"] == round(5.13 * 2**20) and r["on_chip_remaining_bytes"] == round(4.25 * 1024)
    # one op type can have several rows (mapped / after the split)
    conv = [row for row in r["operations"] if row["op"] == "CONV_2D"]
    assert [row["count"] for row in conv] == [70, 12]
    assert r["not_mapped"] == {"More than one subgraph is not supported": 16,
                               "Tensor has unsupported rank (up to 3 innermost dimensions mapped)": 2,
                               "Operation is otherwise supported, but not mapped due to some unspecified limitation": 2}
    assert r["mapped_fraction"] == pytest.approx(120 / 140)


def test_parse_unparsable_model_without_a_verdict_line():
    r = compiler.parse_log(_log("parse_error.stdout"))
    assert r["status"] == "failed"
    assert r["error"].startswith("Didn't find op for builtin opcode 'TRANSPOSE_CONV' version '4'")
    assert "Registration failed." in r["error"] and "Model could not be parsed" in r["error"]
    assert "mapped_fraction" not in r and r["operations"] == []


def test_parse_dynamic_shape_failure():
    r = compiler.parse_log(_log("dynamic_shape.stdout"))
    assert r["status"] == "failed"
    assert "static-sized tensors" in r["error"] and "Model failed in Tflite interpreter" in r["error"]


def test_parse_old_compiler_counts_only():
    r = compiler.parse_log(_log("old_compiler.stdout"))
    assert r["compiler_version"] == "2.0.267685300" and r["on_chip_remaining_bytes"] == round(6.91 * 2**20)
    assert r["operations"] == [] and r["partial"] is True
    assert r["mapped_fraction"] == pytest.approx(41 / 44)  # from the counts when there is no op table
    assert "status" not in r  # 2.0 printed no verdict line: run_compiler decides from the exit code


def test_parse_operation_log_file():
    r = compiler.parse_log(_log("model_edgetpu.log"))
    assert r["input_model"] == "model.tflite" and r["output_model"] == "model_edgetpu.tflite"
    statuses = {row["op"]: row["status"] for row in r["operations"]}
    assert statuses["TRANSPOSE"] == "Operation not supported"
    assert statuses["RESIZE_BILINEAR"] == "Operation version not supported"
    assert statuses["DEQUANTIZE"] == "Operation is working on an unsupported data type"
    assert r["mapped_fraction"] == pytest.approx(20 / 28)


def test_parse_internal_error_and_sizes():
    r = compiler.parse_log("Edge TPU Compiler version 16.0.384591198\nInternal compiler error. Aborting! \n")
    assert r["status"] == "failed" and "Internal compiler error" in r["error"]
    r = compiler.parse_log("Edge TPU Compiler version 16.0.384591198\nInvalid model: m.tflite\nModel not quantized\n"
                           "Compilation failed! \n")
    assert r["status"] == "failed" and r["error"] == "Invalid model: m.tflite; Model not quantized"
    assert compiler.parse_size("0.00B") == 0 and compiler.parse_size("41.75KiB") == round(41.75 * 1024)
    assert compiler.parse_size("15.73MiB") == round(15.73 * 2**20) and compiler.parse_size("n/a") is None
    assert compiler.parse_log("") == {"operations": []}


# -- run_compiler with stand-in compilers ------------------------------------------------------------------


def _fake_compiler(folder: Path, log: str, *, code: int = 0, write: bool = True, sleep: float = 0) -> Path:
    """A bash stand-in for edgetpu_compiler: records its arguments in args.txt beside itself, copies the
    model to <out_dir>/<name>_edgetpu.tflite (``write``), prints ``log`` and exits with ``code``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "log.txt").write_text(log)
    fake = folder / "edgetpu_compiler"
    fake.write_text(f"""#!/usr/bin/env bash
set -e
here="$(dirname "$0")"
printf '%s\\n' "$@" > "$here/args.txt"
out=.
while [ $# -gt 1 ]; do
  case $1 in
    --out_dir) out=$2; shift 2 ;;
    --min_runtime_version|--delegate_search_step|--timeout_sec) shift 2 ;;
    *) shift ;;
  esac
done
{"sleep " + str(sleep) if sleep else ":"}
{'cp "$1" "$out/$(basename "$1" .tflite)_edgetpu.tflite"' if write else ":"}
cat "$here/log.txt"
exit {code}
""")
    fake.chmod(0o755)
    return fake


def _model(tmp_path: Path) -> Path:
    m = tmp_path / "model.tflite"
    m.write_bytes(b"TFL3 int8 model bytes")
    return m


def test_run_compiler_flags_and_output(tmp_path):
    fake = _fake_compiler(tmp_path / "bin", _log("mapped_all.stdout"))
    parsed, data, log = compiler.run_compiler(str(fake), _model(tmp_path), 14)
    assert parsed["status"] == "succeeded" and data == b"TFL3 int8 model bytes" and "Compilation succeeded" in log
    args = (tmp_path / "bin" / "args.txt").read_text().split("\n")
    assert args[-2] == "model.tflite"  # the model last, inside the scratch --out_dir
    joined = " ".join(args)
    for flag in ("--show_operations", "--min_runtime_version 14", "--search_delegate", "--delegate_search_step 10",
                 "--timeout_sec 180", "--out_dir"):
        assert flag in joined, joined


def test_run_compiler_failure_and_missing_output(tmp_path):
    fake = _fake_compiler(tmp_path / "bin", _log("parse_error.stdout"), code=1, write=False)
    parsed, data, _ = compiler.run_compiler(str(fake), _model(tmp_path), 14)
    assert data is None and parsed["status"] == "failed" and "Model could not be parsed" in parsed["error"]
    fake = _fake_compiler(tmp_path / "bin2", _log("old_compiler.stdout"), code=3)  # no verdict line, exit 3
    parsed, data, _ = compiler.run_compiler(str(fake), _model(tmp_path), 14)
    assert data is None and parsed["status"] == "failed" and parsed["error"] == "exit code 3"
    fake = _fake_compiler(tmp_path / "bin3", _log("mapped_all.stdout"), write=False)  # says OK, writes nothing
    parsed, data, _ = compiler.run_compiler(str(fake), _model(tmp_path), 14)
    assert data is None and parsed["status"] == "failed" and "wrote no model_edgetpu.tflite" in parsed["error"]


def test_run_compiler_timeout(tmp_path, monkeypatch):
    monkeypatch.setattr(compiler, "TIMEOUT_SEC", -59)  # the wait is TIMEOUT_SEC + 60 s
    fake = _fake_compiler(tmp_path / "bin", _log("mapped_all.stdout"), sleep=10)
    parsed, data, _ = compiler.run_compiler(str(fake), _model(tmp_path), 14)
    assert data is None and parsed["status"] == "failed" and "could not run" in parsed["error"]


def test_find_compiler(tmp_path, monkeypatch):
    fake = _fake_compiler(tmp_path / "bin", "")
    monkeypatch.setenv(compiler.COMPILER_ENV, str(fake))
    assert compiler.find_compiler() == str(fake)
    monkeypatch.setenv(compiler.COMPILER_ENV, str(tmp_path / "missing"))
    assert compiler.find_compiler() is None  # an explicit path that does not exist: no silent PATH fallback
    monkeypatch.delenv(compiler.COMPILER_ENV)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert compiler.find_compiler() == str(fake)


# -- compile.sh on a restricted PATH -----------------------------------------------------------------------


def _tools(tmp_path: Path, *extra: Path) -> str:
    """A PATH with only the tools compile.sh and the stand-ins use (no real docker/compiler leaks in)."""
    tools = tmp_path / "tools"
    tools.mkdir(exist_ok=True)
    for name in ("bash", "env", "dirname", "basename", "cp", "cat", "uname", "sleep", "printf"):
        src = shutil.which(name)
        if src and not (tools / name).exists():
            (tools / name).symlink_to(src)
    return os.pathsep.join([*(str(p) for p in extra), str(tools)])


def _bundle(tmp_path: Path) -> Path:
    b = tmp_path / "bundle dir"  # a space: the script must quote its paths
    b.mkdir()
    (b / "model.tflite").write_bytes(b"TFL3 int8")
    script = b / compiler.COMPILE_SCRIPT
    script.write_text(compiler.compile_script("model.tflite", 14, "deb https://packages.cloud.google.com/apt "
                                              "coral-edgetpu-stable main", "16.0.384591198"))
    script.chmod(0o755)
    return b


def _compile_sh(bundle: Path, path: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([shutil.which("bash"), str(bundle / compiler.COMPILE_SCRIPT), *args], capture_output=True,
                          text=True, env={"PATH": path, "HOME": str(bundle)}, timeout=60, check=False)


def test_compile_sh_uses_the_compiler_on_path(tmp_path):
    bundle = _bundle(tmp_path)
    _fake_compiler(tmp_path / "bin", _log("mapped_all.stdout"))
    proc = _compile_sh(bundle, _tools(tmp_path, tmp_path / "bin"))
    assert proc.returncode == 0, proc.stderr
    assert (bundle / "model_edgetpu.tflite").read_bytes() == b"TFL3 int8"
    assert "Compilation succeeded" in proc.stdout and "Number of Edge TPU subgraphs: 1" in proc.stdout
    args = (tmp_path / "bin" / "args.txt").read_text().split("\n")
    assert args[args.index("--out_dir") + 1] == str(bundle) and args[-2] == str(bundle / "model.tflite")
    assert args[args.index("--min_runtime_version") + 1] == "14"


def test_compile_sh_falls_back_to_docker(tmp_path):
    bundle = _bundle(tmp_path)
    (tmp_path / "dk").mkdir()
    docker = tmp_path / "dk" / "docker"
    docker.write_text('#!/usr/bin/env bash\nprintf \'%s\\0\' "$@" > "$(dirname "$0")/docker_args.txt"\n')
    docker.chmod(0o755)
    for mode in ((), ("--docker",)):
        proc = _compile_sh(bundle, _tools(tmp_path, tmp_path / "dk"), *mode)
        assert proc.returncode == 0, proc.stderr
        args = (tmp_path / "dk" / "docker_args.txt").read_text().split("\0")  # the inner script has newlines
        assert args[:4] == ["run", "--rm", "--platform", "linux/amd64"]
        assert f"{bundle}:/bundle" in args and "debian:bookworm-slim" in args
        inner = args[args.index("-c") + 1]
        assert "apt-get install -y --no-install-recommends edgetpu-compiler" in inner
        assert "edgetpu_compiler --out_dir /bundle" in inner and "/bundle/model.tflite" in inner
        assert "--min_runtime_version 14" in inner


def test_compile_sh_without_compiler_or_docker(tmp_path):
    bundle = _bundle(tmp_path)
    proc = _compile_sh(bundle, _tools(tmp_path))
    assert proc.returncode == 1 and "no edgetpu_compiler and no docker" in proc.stderr and "--install" in proc.stderr
    proc = _compile_sh(bundle, _tools(tmp_path), "--bogus")
    assert proc.returncode == 2 and "usage:" in proc.stderr
    assert not (bundle / "model_edgetpu.tflite").exists()


def test_compile_sh_failing_compiler_fails(tmp_path):
    bundle = _bundle(tmp_path)
    _fake_compiler(tmp_path / "bin", _log("parse_error.stdout"), code=1, write=False)
    proc = _compile_sh(bundle, _tools(tmp_path, tmp_path / "bin"))
    assert proc.returncode == 1 and "Model could not be parsed" in proc.stdout
    assert "check the log above" not in proc.stdout  # set -e: no success hint after a failure


# -- the build: report, notes and files for each compiler outcome -------------------------------------------


def _build(tmp_path: Path):
    import modelzoo

    from deploykit.pipeline import BuildRequest, build

    src = modelzoo.small_cnn(tmp_path / "cnn.onnx")
    calib = tmp_path / "c.npy"
    np.save(calib, np.random.default_rng(0).normal(size=(12, 3, 16, 16)).astype(np.float32))
    return build(BuildRequest(model=src, target="coral-usb", output=tmp_path / "b", calibration=str(calib)),
                 registry=registry())


def test_build_without_compiler_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv(compiler.COMPILER_ENV, str(tmp_path / "no-such-compiler"))
    res = _build(tmp_path)
    comp = res.report["backend_report"]["edgetpu"]["compiler"]
    assert comp["status"] == "not_found" and "compile.sh" in comp["note"] and "x86-64 Linux" in comp["note"]
    assert any(n.startswith("warning: edgetpu_compiler not found") for n in res.report["notes"])
    files = res.manifest["files"]
    assert "compile.sh" in files and "model.tflite" in files and "model_edgetpu.tflite" not in files
    assert os.access(tmp_path / "b" / "compile.sh", os.X_OK)


def test_build_with_failing_compiler_ships_the_cpu_model(tmp_path, monkeypatch):
    fake = _fake_compiler(tmp_path / "bin", _log("parse_error.stdout"), code=1, write=False)
    monkeypatch.setenv(compiler.COMPILER_ENV, str(fake))
    res = _build(tmp_path)
    comp = res.report["backend_report"]["edgetpu"]["compiler"]
    assert comp["status"] == "failed" and "Model could not be parsed" in comp["error"]
    note = [n for n in res.report["notes"] if "edgetpu_compiler failed" in n]
    assert note and note[0].startswith("warning:") and "compile.sh" in note[0]
    files = res.manifest["files"]
    assert "model_edgetpu.tflite" not in files and "model_edgetpu.log" not in files and "compile.sh" in files
    assert res.report["verification"]["status"] == "passed"


def test_build_with_delegate_search_log(tmp_path, monkeypatch):
    fake = _fake_compiler(tmp_path / "bin", _log("search_delegate.stdout"))
    monkeypatch.setenv(compiler.COMPILER_ENV, str(fake))
    res = _build(tmp_path)
    comp = res.report["backend_report"]["edgetpu"]["compiler"]
    assert comp["status"] == "succeeded" and len(comp["search_attempts"]) == 3
    assert (tmp_path / "b" / "model_edgetpu.log").read_text() == _log("search_delegate.stdout")
    note = [n for n in res.report["notes"] if n.startswith("edgetpu_compiler 16.0.384591198")]
    assert note and "120 ops on the TPU" in note[0] and "85.7% of ops mapped" in note[0]
