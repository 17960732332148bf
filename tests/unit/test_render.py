"""deploykit.bundle.render: model-supplied names are data, never code or markup."""

from __future__ import annotations

import ast
import json
import re
import shlex

import pytest

import modelzoo
from deploykit.backend import Artifact
from deploykit.bundle.render import environment, mdtext, pyjson, pystr, render, shquote
from deploykit.ir.info import TensorSpec

pytestmark = pytest.mark.unit

HOSTILE = [
    "",
    "plain",
    "it's",
    'say "hi"',
    "'''",
    '"""',
    "'''; import os; os.system('echo pwned'); '''",
    '"""\nimport os\nos.system("echo pwned")\n"""',
    "back\\slash\\",
    "\\",
    "trailing\\'",
    "new\nline",
    "carriage\rreturn",
    "nul\x00byte",
    "tab\tand\x0bvt\x0cff",
    "ünïcödé ✓ 漢字 🚀",
    "\u2028line\u2029sep",
    "surrogate\udcff\ud800escape",
    "{{ jinja }} {% raw %}",
    "${HOME} $(rm -rf /) `id`",
    "# comment\n__import__('os').system('echo pwned')",
    "</script><b>**bold**</b>|`code`|[link](x)",
    modelzoo.NASTY_NAMES["input"],
    modelzoo.NASTY_NAMES["output"],
]


# --------------------------------------------------------------------------- filters
@pytest.mark.parametrize("value", HOSTILE)
def test_pystr_is_a_python_literal_of_the_value(value):
    literal = pystr(value)
    assert "\n" not in literal and "\r" not in literal
    assert isinstance(ast.parse(literal, mode="eval").body, ast.Constant)
    assert ast.literal_eval(literal) == value
    assert eval(literal, {"__builtins__": {}}) == value  # noqa: S307 - the point of the test


@pytest.mark.parametrize("value", HOSTILE)
def test_pyjson_builds_the_value(value):
    data = {"name": value, "shape": [1, 2], "nested": [{"k": value}], value: True}
    expr = pyjson(data)
    assert expr.isascii() and "\n" not in expr
    tree = ast.parse(expr, mode="eval").body
    assert isinstance(tree, ast.Call) and ast.unparse(tree.func) == "json.loads"
    assert len(tree.args) == 1 and isinstance(tree.args[0], ast.Constant)
    assert eval(expr, {"__builtins__": {}, "json": json}) == data  # noqa: S307


def test_pystr_of_non_strings():
    assert ast.literal_eval(pystr(42)) == "42"
    assert ast.literal_eval(pystr(None)) == "None"


def test_pyjson_of_plain_values():
    for v in (None, 1, 2.5, [1, [2]], {"b": 1, "a": [True, None]}):
        assert eval(pyjson(v), {"json": json}) == v  # noqa: S307


@pytest.mark.parametrize("value", HOSTILE)
def test_shquote_is_one_shell_word(value):
    assert shlex.split(shquote(value)) == [value] or "\x00" in value


@pytest.mark.parametrize(
    "value, expected",
    [
        ("plain text", "plain text"),
        ("a|b", "a\\|b"),
        ("`code`", "\\`code\\`"),
        ("**bold** _x_", "\\*\\*bold\\*\\* \\_x\\_"),
        ("[link](http://x)", "\\[link\\](http://x)"),
        ("<script>", "\\<script\\>"),
        ("# title", "\\# title"),
        ("back\\slash", "back\\\\slash"),
        ("two\nlines\r\nand  spaces", "two lines and spaces"),
    ],
)
def test_mdtext_escapes_markdown(value, expected):
    assert mdtext(value) == expected


@pytest.mark.parametrize("value", HOSTILE)
def test_mdtext_is_one_line_without_unescaped_specials(value):
    text = mdtext(value)
    assert "\n" not in text and "\r" not in text
    i = 0
    while i < len(text):  # every special character is preceded by a backslash escape
        if text[i] == "\\":
            i += 2
            continue
        assert text[i] not in "`|*_[]<>#", (value, text)
        i += 1


def test_environment_is_strict_and_not_autoescaped():
    env = environment()
    assert env.autoescape is False
    with pytest.raises(Exception, match="undefined"):
        env.from_string("{{ missing }}").render()
    assert env.from_string("{{ x | pystr }}").render(x="a'b") == repr("a'b")


# --------------------------------------------------------------------------- the real runner template
def _context(registry, names_in: list[str], names_out: list[str]) -> dict:
    profile = registry.target("host")
    backend = registry.backend_for(profile)(profile)
    artifact = Artifact(
        files=["model.onnx"],
        inputs=[TensorSpec(n, [1, 3, 4, 4], layout="NCHW") for n in names_in],
        outputs=[TensorSpec(n, [1, 10]) for n in names_out],
        runner_context={"model_file": "model.onnx", "providers": ["CPUExecutionProvider"]},
    )
    try:
        from deploykit.pipeline import _template_context
    except ImportError:  # the pipeline's context builder moved: rebuild it the same way
        _template_context = None
    if _template_context is not None:
        return _template_context(profile, backend, "fp32", artifact)
    from deploykit import __version__

    spec = {"target": profile.name, "backend": backend.name, "precision": "fp32", "threads": profile.threads,
            "inputs": [s.to_json() for s in artifact.inputs], "outputs": [s.to_json() for s in artifact.outputs],
            **artifact.runner_context}
    return {"spec": spec, "profile": profile, "backend": backend, "precision": "fp32",
            "deploykit_version": __version__, "artifact": artifact}


def _render_runner(registry, names_in, names_out) -> str:
    return render("runner_onnxruntime.py.j2", _context(registry, names_in, names_out), "deploykit_onnxruntime")


class _Skeleton(ast.NodeTransformer):
    """Replace every string constant by a placeholder: what is left is the code's structure."""

    def visit_Constant(self, node):
        if isinstance(node.value, str):
            return ast.copy_location(ast.Constant("S"), node)
        return node


def _skeleton(source: str) -> str:
    return ast.dump(_Skeleton().visit(ast.parse(source)), include_attributes=False)


def _spec_value(source: str) -> dict:
    for stmt in ast.parse(source).body:
        if isinstance(stmt, ast.Assign) and [ast.unparse(t) for t in stmt.targets] == ["SPEC"]:
            return eval(compile(ast.Expression(stmt.value), "<SPEC>", "eval"), {"json": json})  # noqa: S307
    raise AssertionError("runner has no SPEC = ... assignment")


def _identifiers(source: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        for attr in ("id", "attr", "name", "arg", "module"):
            v = getattr(node, attr, None)
            if isinstance(v, str):
                found.add(v)
        if isinstance(node, ast.alias):
            found.update(filter(None, [node.name, node.asname]))
    return found


@pytest.mark.parametrize("hostile", HOSTILE[1:], ids=range(1, len(HOSTILE)))
def test_runner_with_hostile_names_has_the_same_code(registry, hostile):
    benign = _render_runner(registry, ["x"], ["y"])
    source = _render_runner(registry, [hostile, "x2"], ["y", hostile + "_out"])
    compile(source, "runner.py", "exec")
    assert source.encode("utf-8", "surrogatepass")
    assert _skeleton(source) == _skeleton(benign)  # the names changed only string constants
    assert _identifiers(source) == _identifiers(benign)
    # a '#' in a name must not turn into a comment that hides or adds code: the line count is unchanged
    assert len(source.splitlines()) == len(benign.splitlines())
    spec = _spec_value(source)
    assert [s["name"] for s in spec["inputs"]] == [hostile, "x2"]
    assert [s["name"] for s in spec["outputs"]] == ["y", hostile + "_out"]


def test_runner_source_is_utf8_writable_for_surrogates(registry, tmp_path):
    source = _render_runner(registry, ["surrogate\udcff"], ["y"])
    (tmp_path / "runner.py").write_text(source, encoding="utf-8")  # pipeline writes it like this
    assert _spec_value((tmp_path / "runner.py").read_text(encoding="utf-8"))["inputs"][0]["name"] == "surrogate\udcff"


def test_runner_spec_carries_the_profile(registry):
    spec = _spec_value(_render_runner(registry, ["x"], ["y"]))
    host = registry.target("host")
    assert spec["target"] == "host" and spec["threads"] == host.threads and spec["model_file"] == "model.onnx"
    assert spec["inputs"][0] == {"name": "x", "shape": [1, 3, 4, 4], "dtype": "float32", "layout": "NCHW",
                                 "quantization": None}


def test_readme_escapes_hostile_names(registry):
    names = ["a|b`c", "**x**\nnew row | y"]
    ctx = _context(registry, names, ["out<b>"])
    verification = {"status": "passed", "samples": 2, "runtime": "onnxruntime",
                    "outputs": {"out<b>": {"max_abs_error": 0.0, "rel_max_abs_error": 0.0, "cosine": 1.0, "sqnr_db": "inf"}}}
    text = render("README.md.j2", {**ctx, "verification": verification, "requirements": []}, "deploykit_onnxruntime")
    rows = [line for line in text.splitlines() if re.match(r"^\| (input|output) \| \d+ \|", line)]
    assert len(rows) == 3
    for row in rows:  # each table row keeps its 7 cells (8 unescaped pipes)
        assert row.replace("\\|", "").count("|") == 7, row
    assert "a\\|b\\`c" in text and "\\*\\*x\\*\\* new row \\| y" in text and "out\\<b\\>" in text
    assert "<b>" not in text
