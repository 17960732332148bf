"""deploykit.effect.write_report: self-contained, escaped HTML with SVG charts; report.json merge."""

from __future__ import annotations

import json
import re

import pytest

from deploykit.effect import Variant, measure_variants, write_report
from deploykit.effect.report import bar_chart, human
from deploykit.errors import BundleError
from effect_testlib import feeds, labels_of, tiny_classifier

pytestmark = pytest.mark.unit

EVIL = "</script><script>alert(1)</script>"


@pytest.fixture(scope="module")
def rows():
    ref = tiny_classifier()
    evil = tiny_classifier(scale=0.5)
    inputs = feeds(6)
    return measure_variants([Variant("fp32", ref), Variant(EVIL, evil)], inputs, labels=labels_of(ref, inputs), runs=3)


def test_html_is_self_contained_with_svg_charts(tmp_path, rows):
    write_report(tmp_path, rows, title="tiny <model> & co")
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert "http" not in html  # no CDN, no external link of any kind
    assert not re.search(r"""(src|href)\s*=""", html, re.I)
    assert "<script" not in html.lower()
    assert html.count("<svg") >= 4  # size, MACs, latency, accuracy (+ cosine)
    assert "tiny &lt;model&gt; &amp; co" in html


def test_untrusted_names_are_escaped(tmp_path, rows):
    write_report(tmp_path, rows, title=EVIL)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert EVIL not in html and "<script>" not in html
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html  # in the table, in full
    assert json.loads((tmp_path / "report.json").read_text())["effect"][1]["name"] == EVIL


def test_report_json_merge_keeps_other_keys(tmp_path, rows):
    (tmp_path / "report.json").write_text(json.dumps({"target": "host", "effect": ["old"], "z": {"a": 1}}))
    write_report(tmp_path, rows, title="t")
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["target"] == "host" and report["z"] == {"a": 1}
    assert [r["name"] for r in report["effect"]] == ["fp32", EVIL]


def test_report_json_created_when_absent(tmp_path, rows):
    out = tmp_path / "new" / "dir"
    write_report(out, rows, title="t")
    assert list(json.loads((out / "report.json").read_text())) == ["effect"]


def test_output_is_deterministic_and_sorted(tmp_path, rows):
    a, b = tmp_path / "a", tmp_path / "b"
    write_report(a, rows, title="t")
    write_report(b, [dict(reversed(list(r.items()))) for r in rows], title="t")  # key order does not matter
    for name in ("report.json", "report.html"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    text = (a / "report.json").read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    write_report(a, rows, title="t")  # writing again over itself changes nothing
    assert (a / "report.json").read_bytes() == (b / "report.json").read_bytes()


def test_invalid_existing_report_json_is_not_overwritten(tmp_path, rows):
    (tmp_path / "report.json").write_text("[1, 2")
    with pytest.raises(BundleError, match="not a JSON object"):
        write_report(tmp_path, rows, title="t")
    assert (tmp_path / "report.json").read_text() == "[1, 2"


def test_rows_with_missing_figures_still_render(tmp_path):
    rows = [{"name": "a", "size_raw": 100, "reference": "a"}, {"name": "b", "error": "runtime missing", "reference": "a"}]
    write_report(tmp_path, rows, title="t")
    html = (tmp_path / "report.html").read_text()
    assert "runtime missing" in html and "<svg" in html


def test_bar_chart_geometry():
    chart = bar_chart("c", [{"name": "a", "v": 10}, {"name": "b", "v": 5}, {"name": "c", "v": None}], [("v", "v")])
    widths = [b["w"] for b in chart["bars"]]
    assert widths[0] == 2 * widths[1] and widths[2] == 0 and chart["bars"][2]["text"] == "n/a"
    assert bar_chart("c", [{"name": "a"}], [("v", "v")]) is None


def test_human():
    assert human(None) == "—"
    assert human(1536, "B") == "1.5 KiB"
    assert human(92224) == "92.2 K"
