"""deploykit.toml / [tool.deploykit]: validation errors name the file, the table and the field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import modelzoo
from deploykit.buildsys.project import ProjectError, find_project, load_project

pytestmark = pytest.mark.unit


@pytest.fixture
def folder(tmp_path) -> Path:
    (tmp_path / "models").mkdir()
    modelzoo.small_cnn(tmp_path / "models" / "cnn.onnx")
    np.save(tmp_path / "calib.npy", np.zeros((4, 3, 16, 16), np.float32))
    return tmp_path


def write(folder: Path, text: str, name: str = "deploykit.toml") -> Path:
    p = folder / name
    p.write_text(text, encoding="utf-8")
    return p


GOOD = """
[defaults]
precision = "int8"
calibration = "calib.npy"
[models.cnn]
path = "models/cnn.onnx"
targets = ["host"]
[models.cnn2]
path = "models/cnn.onnx"
targets = { host = ["fp32", "fp16"] }
"""


def test_good_project_lists_its_matrix(folder, registry):
    project = load_project(write(folder, GOOD), registry.targets)
    assert [j.id for j in project.jobs()] == ["cnn:host:int8", "cnn2:host:fp32", "cnn2:host:fp16"]
    assert project.models["cnn"].calibration == folder / "calib.npy"  # from [defaults]
    assert project.settings.dist == folder / "dist"
    assert [j.id for j in project.select(["cnn2:host:fp16"])] == ["cnn2:host:fp16"]
    assert [j.id for j in project.select(None, precision="fp32")] == ["cnn2:host:fp32"]
    assert project.jobs()[0].folder == "cnn/host-int8"


def test_target_default_precision_when_none_is_given(folder, registry):
    text = '[models.cnn]\npath = "models/cnn.onnx"\ntargets = ["host"]\n'
    project = load_project(write(folder, text), registry.targets)
    assert [j.precision for j in project.jobs()] == [registry.targets["host"].default_precision]


@pytest.mark.parametrize("text, expected", [
    (GOOD.replace('targets = ["host"]', 'targets = ["hots"]'),
     "deploykit.toml: [models.cnn] field 'targets': unknown target 'hots'; did you mean 'host'?"),
    (GOOD.replace('path = "models/cnn.onnx"\ntargets = ["host"]', 'path = "models/cnn.onnx"\ntarget = ["host"]'),
     "deploykit.toml: [models.cnn] field 'target': is unknown"),
    (GOOD.replace('precision = "int8"', 'precision = "int4"'),
     "deploykit.toml: [models.cnn] field 'precision': unknown precision 'int4'"),
    (GOOD.replace('"models/cnn.onnx"\ntargets = ["host"]', '"models/missing.onnx"\ntargets = ["host"]'),
     "deploykit.toml: [models.cnn] field 'path': 'models/missing.onnx' is not a file"),
    (GOOD + "\n[build]\njobs = 0\n", "deploykit.toml: [build] field 'jobs': must be a positive integer, got 0"),
    (GOOD + "\n[build]\nexecutor = \"slurm\"\n", "deploykit.toml: [build] field 'executor': must be local, ray or ray://HOST:PORT"),
    (GOOD.replace("[models.cnn2]", "[models.\"bad/name\"]"), "deploykit.toml: [models.bad/name]: model name 'bad/name'"),
    (GOOD.replace('calibration = "calib.npy"\n', ''), "deploykit.toml: [models.cnn] field 'calibration': is missing: int8 builds (host)"),
    (GOOD.replace("[models.cnn2]", "[models.cnn2]\neval = { data = \"calib.npy\", metric = \"top9\" }"),
     "deploykit.toml: [models.cnn2] field 'eval.metric': unknown metric 'top9'"),
    (GOOD.replace("[models.cnn2]", "[models.cnn2]\ninput-shapes = [\"x\"]"), "deploykit.toml: [models.cnn2] field 'input-shapes'"),
    ("[models]\n", "deploykit.toml: top level field 'models': is missing"),
    ("[modles.cnn]\npath = 'x'\n", "deploykit.toml: top level field 'modles': is unknown"),
    ("models = [", "deploykit.toml is not valid TOML"),
])
def test_errors_name_file_table_and_field(folder, registry, text, expected):
    with pytest.raises(ProjectError) as e:
        load_project(write(folder, text), registry.targets)
    assert expected in str(e.value)


def test_precision_a_target_cannot_build(folder, registry):
    text = GOOD.replace('targets = { host = ["fp32", "fp16"] }', 'targets = { host = ["fp32", "fp8"] }')
    with pytest.raises(ProjectError, match=r"\[models.cnn2\] field 'targets.host': unknown precision 'fp8'"):
        load_project(write(folder, text), registry.targets)


def test_unknown_model_and_target_in_selectors(folder, registry):
    project = load_project(write(folder, GOOD), registry.targets)
    with pytest.raises(ProjectError, match="unknown model 'cn': deploykit.toml defines cnn, cnn2; did you mean 'cnn'"):
        project.select(["cn"])
    with pytest.raises(ProjectError, match="model 'cnn' is not built for target 'rpi4'"):
        project.select(["cnn:rpi4"])
    with pytest.raises(ProjectError, match="model 'cnn2' is not built in int8 for host"):
        project.select(["cnn2:host:int8"])
    with pytest.raises(ProjectError, match="not a model selector"):
        project.select(["a:b:c:d"])
    with pytest.raises(ProjectError, match="no model in deploykit.toml is built for --target 'rpi5'"):
        project.select(None, target="rpi5")


def test_pyproject_table_and_discovery(folder, registry):
    text = "[project]\nname = 'x'\n\n" + GOOD.replace("[defaults]", "[tool.deploykit.defaults]").replace(
        "[models.", "[tool.deploykit.models.")
    path = write(folder, text, "pyproject.toml")
    sub = folder / "sub"
    sub.mkdir()
    assert find_project(sub) == path
    project = load_project(path, registry.targets)
    assert [j.id for j in project.jobs()][0] == "cnn:host:int8"
    with pytest.raises(ProjectError, match=r"pyproject.toml: \[tool.deploykit.models.cnn\] field 'targets': unknown target 'x'"):
        load_project(write(folder, text.replace('targets = ["host"]', 'targets = ["x"]'), "pyproject.toml"), registry.targets)
    write(folder, GOOD)
    with pytest.raises(ProjectError, match="define a deploykit project; keep one"):
        find_project(sub)


def test_no_project_anywhere(tmp_path):
    assert find_project(tmp_path) is None or not str(find_project(tmp_path)).startswith(str(tmp_path))
