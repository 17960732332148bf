"""The README's walk-through, run as written on a fresh copy of the repository.

The commands come from the block between ``<!-- walkthrough -->`` and ``<!-- /walkthrough -->`` in
README.md; each line runs verbatim in one bash script (``set -euo pipefail``) from the copy's root
folder. Only the install line is left out: this test's environment is the installed deploykit, put
first on PATH, and ``make`` is pointed at it (``MAKEFLAGS``: VENV = this environment, STAMP = a file
newer than pyproject.toml) so that ``make demo`` does not create a second venv.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ("host", "rpi4", "rpi5", "coral-usb", "coral-devboard", "jetson-nano", "jetson-orin-nano", "ncs2",
           "intel-cpu", "intel-npu")


def walkthrough() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- walkthrough -->\s*```sh\n(.*?)```\s*<!-- /walkthrough -->", text, re.S)
    assert m, "README.md has no walk-through block"
    return m.group(1).rstrip("\n").splitlines()


def fresh_copy(dest: Path) -> Path:
    """The repository's files as a clone has them: tracked and new files, nothing ignored."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: cannot tell the repository's files from generated ones")
    for rel in listed.stdout.splitlines():
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def test_walkthrough_block_is_complete():
    lines = walkthrough()
    joined = "\n".join(lines)
    assert sum("pip install" in line for line in lines) == 1
    for step in ("make demo", "deploykit targets", "deploykit build", "deploykit run", "runner.py", "deploykit verify",
                 "deploykit compare"):
        assert step in joined, step
    for target in TARGETS:
        assert re.search(rf"(?<![\w-]){re.escape(target)}(?![\w-])", joined), target


def test_readme_walkthrough_runs_verbatim(tmp_path):
    for module in ("ai_edge_litert", "openvino"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} not installed: the walk-through builds every target (pip install -e '.[all]')")
    if shutil.which("make") is None or shutil.which("bash") is None:
        pytest.skip("needs make and bash")
    repo = fresh_copy(tmp_path / "deploykit")
    stamp = tmp_path / "installed.stamp"
    stamp.write_text("")
    os.utime(repo / "pyproject.toml", (0, 0))  # older than the stamp: make's setup step is satisfied
    script = ["set -euo pipefail"] + [line for line in walkthrough() if "pip install" not in line]
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", ""), "COLUMNS": "80",
           "MAKEFLAGS": f"VENV={sys.prefix} STAMP={stamp}", "PYTHON": sys.executable}
    env.pop("DEPLOYKIT_PLUGINS", None)  # a user's environment: every installed plugin
    env.pop("VIRTUAL_ENV", None)
    res = subprocess.run(["bash", "-c", "\n".join(script)], cwd=repo, capture_output=True, text=True, env=env,
                         timeout=1800)
    assert res.returncode == 0, f"stdout:\n{res.stdout[-4000:]}\nstderr:\n{res.stderr[-4000:]}"
    assert "Traceback" not in res.stderr
    out = res.stdout
    # make demo: both quickstart bundles evaluated
    assert "host fp32" in out and "host int8" in out
    # one verified bundle per target
    for target in TARGETS:
        manifest = json.loads((repo / "out" / target / "manifest.json").read_text())
        assert manifest["target"] == target
        assert manifest["verification"]["status"] == "passed", target
    # deploykit run, the bundle's own runner, verify, compare
    assert re.search(r"^scores: shape=\[1, 4\]", out, re.M)
    assert re.search(r"^\"scores\": shape=\[1, 4\]", out, re.M)
    assert "latency over 20 runs" in out
    assert "files match their sha256" in out and "on 4 stored held-out samples" in out
    assert "cosine vs fp32" in out and "jetson-orin-nano" in out
    assert "INFO:" not in res.stderr
