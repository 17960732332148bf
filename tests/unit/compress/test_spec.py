import json

import pytest

from deploykit.compress import DEFAULT_SPEC, CompressionSpec, parse_spec
from deploykit.errors import DeployError

pytestmark = pytest.mark.unit


def test_text_form():
    spec = parse_spec("prune=0.3, lowrank=auto ,cluster=64")
    assert spec == CompressionSpec(prune=0.3, lowrank="auto", cluster=64)
    assert str(spec) == "prune=0.3,lowrank=auto,cluster=64"


@pytest.mark.parametrize("text", ["auto", "default", "AUTO"])
def test_auto_is_the_default_spec(text):
    assert parse_spec(text) == DEFAULT_SPEC
    assert DEFAULT_SPEC.prune == DEFAULT_SPEC.lowrank == DEFAULT_SPEC.cluster == "auto"


def test_config_files(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text("[compress]\nprune = 0.25\ncluster = 32\nbudget = 0.98\n")
    assert parse_spec(str(toml)) == CompressionSpec(prune=0.25, cluster=32, budget=0.98)
    js = tmp_path / "c.json"
    js.write_text(json.dumps({"lowrank": 0.9, "sparsity": 0.5}))
    assert parse_spec(str(js)) == CompressionSpec(lowrank=0.9, sparsity=0.5)


@pytest.mark.parametrize("text, words", [
    ("prune=0.3,foo=1", "unknown key 'foo'"),
    ("prune=2", "out of range"),
    ("prune=lots", "not a number"),
    ("cluster=8", "out of range"),
    ("cluster=64.5", "not an integer"),
    ("sparsity=auto", "not supported"),
    ("prune", "not KEY=VALUE"),
    ("prune=0.1,prune=0.2", "given twice"),
    ("", "empty"),
    ("budget=0.9", "nothing to do"),
    ("missing.toml", "does not exist"),
])
def test_bad_specs_are_one_line_errors(text, words):
    with pytest.raises(DeployError) as e:
        parse_spec(text)
    assert words in str(e.value)
    assert "\n" not in str(e.value)


def test_bad_config_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("prune = [")
    with pytest.raises(DeployError, match="cannot read compression config"):
        parse_spec(str(bad))
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"prune": "x"}')
    with pytest.raises(DeployError, match="not a number"):
        parse_spec(str(wrong))
