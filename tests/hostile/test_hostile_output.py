"""The output folder: --force replaces only deploykit bundles, never a user's folder, the working
folder, a symlink or a folder holding the inputs; long names and odd paths give one clean line."""

from __future__ import annotations

import json
import os

import pytest

import hostile_models as hm


@pytest.fixture
def model(sb):
    return hm.save(hm.conv_model(), sb.work / "m.onnx")


def _build(sb, model, out, *extra, cwd=None):
    return sb.run("build", model, "--target", "host", "-o", out, *extra, cwd=cwd)


def test_force_never_deletes_a_users_folder(sb, model):
    out = sb.work / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    for extra in ((), ("--force",)):
        line = sb.expect_error(_build(sb, model, out, *extra), "not a deploykit bundle", code=2)
        assert "--force" not in line
    assert (out / "thesis.tex").read_text() == "years of work"


def test_force_refuses_a_bundle_holding_user_files(sb, model):
    out = sb.work / "b"
    sb.expect_ok(_build(sb, model, out), out)
    (out / "notes.txt").write_text("mine")
    sb.expect_error(_build(sb, model, out, "--force"), ("not part of the bundle", "notes.txt"), code=2,
                    allowed=("work/b",))
    assert (out / "notes.txt").exists()


def test_force_refuses_a_fake_manifest(sb, model):
    out = sb.work / "fake"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"hello": 1}))
    sb.expect_error(_build(sb, model, out, "--force"), "not a deploykit bundle", code=2)
    assert (out / "manifest.json").exists()


def test_force_replaces_its_own_bundle(sb, model):
    out = sb.work / "b"
    sb.expect_ok(_build(sb, model, out), out)
    sb.expect_error(_build(sb, model, out), "--force", code=2)
    sb.expect_ok(_build(sb, model, out, "--force"), out)


def test_empty_folder_is_used_without_force(sb, model):
    out = sb.work / "empty"
    out.mkdir()
    sb.expect_ok(_build(sb, model, out), out)


@pytest.mark.parametrize("target", [".", "", "..", "/", "~"])
def test_working_folder_home_and_root_refused(sb, model, target):
    project = sb.work / "project"
    project.mkdir()
    (project / "src.py").write_text("print(1)")
    out = str(sb.home) if target == "~" else target
    for extra in ((), ("--force",)):
        sb.expect_error(_build(sb, model, out, *extra, cwd=project), code=2)
    assert (project / "src.py").exists()


def test_folder_holding_the_model_refused(sb):
    folder = sb.work / "models"
    folder.mkdir()
    model = hm.save(hm.conv_model(), folder / "m.onnx")
    sb.expect_error(_build(sb, model, folder, "--force"), code=2)
    assert model.exists()


def test_symlink_output_refused(sb, model):
    real = sb.work / "real"
    sb.expect_ok(_build(sb, model, real), real)
    link = sb.work / "link"
    os.symlink(real, link)
    for extra in ((), ("--force",)):
        sb.expect_error(_build(sb, model, link, *extra), "symbolic link", code=2)
    assert link.is_symlink() and (real / "manifest.json").exists()
    assert not [p for p in sb.work.iterdir() if ".old" in p.name]
    dangling = sb.work / "dangling"
    os.symlink(sb.work / "nowhere", dangling)
    sb.expect_error(_build(sb, model, dangling, "--force"), "symbolic link", code=2)


def test_output_is_a_file(sb, model):
    f = sb.work / "file.txt"
    f.write_text("x")
    sb.expect_error(_build(sb, model, f, "--force"), "not a folder", code=2)
    sb.expect_error(_build(sb, model, f / "sub"), "is a file", code=2)
    assert f.read_text() == "x"


def test_name_too_long(sb, model):
    sb.expect_error(_build(sb, model, sb.work / ("n" * 300)), "too long", code=2)


def test_name_at_the_limit(sb, model):
    """255 bytes: the staging folder name must not add characters past the limit."""
    out = sb.work / ("n" * 255)
    sb.expect_ok(_build(sb, model, out), out)


def test_deep_new_parents_removed_on_failure(sb):
    bad = hm.save(hm.no_inputs(), sb.work / "bad.onnx")
    out = sb.work / "a" / "b" / "c" / "out"
    sb.expect_error(_build(sb, bad, out), "no inputs", code=2)
    assert not (sb.work / "a").exists()


def test_read_only_output_parent(sb, model, small_fs):
    ro = small_fs(1024, read_only=True)
    sb.expect_error(_build(sb, model, ro / "out"), code=2)


def test_unicode_and_spaces_in_output(sb, model):
    out = sb.work / "dossier à  espaces" / "出力 [x]"
    sb.expect_ok(_build(sb, model, out), out)
