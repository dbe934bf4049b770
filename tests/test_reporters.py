"""Reporters: JSON, CSV, SARIF, HTML and the terminal summary, from constructed reports."""

from __future__ import annotations

import ast
import csv
import io
import json
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import pytest
from rich.console import Console

from scanner.models import Status
from scanner.plugins import load_reporters
from scanner.reporters import ReporterError, jsonable, render_all, write_atomic
from scanner.reporters.csv_report import BOM, COLUMNS, CsvReporter, safe_cell
from scanner.reporters.html import HtmlReporter, make_environment, shape_evidence
from scanner.reporters.json_report import JsonReporter
from scanner.reporters.sarif import SarifReporter
from scanner.reporters.terminal import print_summary
from tests.testbed.reports import finding, make_report, make_target


@pytest.fixture(scope="module")
def report():
    return make_report()


# -- registry and files ------------------------------------------------------------------------

def test_entry_points_publish_the_four_formats():
    reporters = load_reporters()
    got = {k: (r.format, r.extension) for k, r in reporters.items()}
    assert got.items() >= {"html": ("html", "html"), "json": ("json", "json"), "csv": ("csv", "csv"),
                           "sarif": ("sarif", "sarif")}.items()


def test_templates_are_package_data():
    files = resources.files("templates")
    for name in ("report.html", "_base.html", "_macros.html"):
        assert files.joinpath(name).is_file(), name


def test_write_atomic_replaces_and_leaves_no_temp_file(tmp_path):
    dest = tmp_path / "sub" / "r.txt"
    write_atomic(dest, "one")
    write_atomic(dest, "two\r\nlines")
    assert dest.read_bytes() == b"two\r\nlines"
    assert [p.name for p in dest.parent.iterdir()] == ["r.txt"]


def test_render_all_one_format_writes_the_file_given(tmp_path, report):
    out = tmp_path / "scan.json"
    assert render_all(report, ["json"], out) == [out]
    assert json.loads(out.read_text())["tool"]["name"] == "pledgescan"


def test_render_all_one_format_into_existing_directory(tmp_path, report):
    assert render_all(report, ["csv"], tmp_path) == [tmp_path / "report.csv"]


def test_render_all_several_formats_fill_a_directory(tmp_path, report):
    out = tmp_path / "reports"
    paths = render_all(report, ["html", "json", "csv", "sarif", "json"], out)
    assert [p.name for p in paths] == ["report.html", "report.json", "report.csv", "report.sarif"]
    assert all(p.parent == out and p.stat().st_size > 100 for p in paths)


def test_render_all_refuses_unknown_format_and_file_as_directory(tmp_path, report):
    with pytest.raises(ReporterError, match="unknown report format"):
        render_all(report, ["pdf"], tmp_path / "x.pdf")
    existing = tmp_path / "file"
    existing.write_text("x")
    with pytest.raises(ReporterError, match="directory"):
        render_all(report, ["json", "csv"], existing)


def test_jsonable_never_leaves_bytes_or_nan():
    data = jsonable({"raw": b"\xff\xfeabc", 1: float("nan"), "t": (1, 2), "s": {"b"}})
    assert data == {"raw": "\ufffd\ufffdabc", "1": None, "t": [1, 2], "s": ["b"]}


# -- JSON ----------------------------------------------------------------------------------------

def test_json_has_the_issue_shape(report):
    doc = json.loads(JsonReporter().render(report))
    assert set(doc) >= {"schema_version", "tool", "baseline", "generated_at", "targets"}
    assert doc["tool"] == {"name": "pledgescan", "version": "0.1.0"}
    assert doc["baseline"] == {"id": "pledge4", "version": "1"}
    assert doc["generated_at"] == "2025-03-14T09:26:53+00:00"
    endpoint, domain, down = doc["targets"]
    assert endpoint["member"] == "m-001" and domain["member"] is None
    assert (endpoint["kind"], domain["kind"]) == ("endpoint", "domain")
    assert endpoint["addresses"] == ["127.0.0.1", "::1"]
    assert down["grade"] == "?" and down["errors"] == ["host not resolved: NXDOMAIN"]
    t3 = next(c for c in endpoint["controls"] if c["id"] == "T3")
    assert set(t3) >= {"id", "title", "status", "severity", "findings"}
    assert t3["status"] == "fail" and t3["findings"][0]["evidence"]["suites"][0]["fs"] is False
    f = next(f for f in endpoint["findings"] if f["check"] == "http-version-disclosure")
    assert set(f) >= {"check", "status", "severity", "title", "detail", "evidence"}
    assert f["severity"] == "low"
    # a finding without its own severity carries its control's
    h2 = next(f for f in endpoint["findings"] if f["check"] == "http-hsts")
    assert h2["severity"] == "medium"
    statuses = {c["status"] for t in doc["targets"] for c in t["controls"]}
    assert statuses == {s.value for s in Status}


# -- CSV -----------------------------------------------------------------------------------------

def _csv_text(report) -> str:
    text = CsvReporter().render(report)
    assert text.startswith(BOM), "Excel needs the byte-order mark to read UTF-8"
    return text.removeprefix(BOM)


def test_csv_one_row_per_target_and_control(report):
    rows = list(csv.DictReader(io.StringIO(_csv_text(report), newline="")))
    assert len(rows) == sum(len(t.controls) for t in report.targets)
    assert tuple(rows[0]) == COLUMNS
    t3 = next(r for r in rows if r["control"] == "T3")
    assert t3 == t3 | {"member": "m-001", "kind": "endpoint", "grade": "B", "score": "87", "area": "T",
                       "status": "fail", "severity": "medium",
                       "finding": "Cipher suites without forward secrecy",
                       "remediation": "Fix cipher suites without forward secrecy."}
    d1 = next(r for r in rows if r["control"] == "D1")
    assert d1["member"] == "" and d1["target"] == "school.example"
    passing = next(r for r in rows if r["control"] == "T1")
    assert passing["remediation"] == ""


def test_csv_leaves_the_score_of_an_unassessed_target_empty():
    # Given a target where nothing could be decided (unreachable) and one graded target
    given = make_report(make_target("endpoint", "https://down.example/", {}, default="error"),
                        make_target("endpoint", "https://up.example/", {}))
    rows = list(csv.DictReader(io.StringIO(_csv_text(given), newline="")))
    # Then the unreachable one has an empty score (not 0: a 0 would read as the worst possible result)
    assert {r["score"] for r in rows if r["target"] == "https://down.example/"} == {""}
    assert {r["score"] for r in rows if r["target"] == "https://up.example/"} == {"100"}


@pytest.mark.parametrize("text", ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"])
def test_csv_cells_that_start_a_formula_are_quoted(text):
    given = make_report(make_target("endpoint", "https://a.example/", {
        "H10": [finding("http-version-disclosure", "H10", "fail", text, remediation=text)]},
        member=text, member_name=text))
    rows = list(csv.reader(io.StringIO(_csv_text(given), newline="")))
    h10 = next(r for r in rows if r[6] == "H10")
    for idx in (0, 1, 11, 12):
        assert h10[idx] == "'" + text
    assert safe_cell(-5) == -5 and safe_cell("a=b") == "a=b"


# -- SARIF ---------------------------------------------------------------------------------------

def test_sarif_required_structure_and_one_result_per_failing_finding(report):
    doc = json.loads(SarifReporter().render(report))
    assert doc["version"] == "2.1.0" and doc["$schema"].endswith("sarif-2.1.0.json")
    (run,) = doc["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "pledgescan" and driver["version"] == "0.1.0"
    rule_ids = [r["id"] for r in driver["rules"]]
    assert len(rule_ids) == len(set(rule_ids))
    for rule in driver["rules"]:
        assert rule["shortDescription"]["text"]
        assert 0 <= float(rule["properties"]["security-severity"]) <= 10
    expected = [(t.target, f.check, f.status.value) for t in report.targets for c in t.controls
                for f in c.findings if f.status in (Status.FAIL, Status.WARN)]
    got = []
    for res in run["results"]:
        assert res["message"]["text"]
        assert res["level"] in {"error", "warning", "note", "none"}
        assert rule_ids[res["ruleIndex"]] == res["ruleId"]
        (loc,) = res["locations"]
        got.append((loc["physicalLocation"]["artifactLocation"]["uri"], res["ruleId"],
                    res["properties"]["status"]))
    assert got == expected
    levels = {(r["ruleId"], r["properties"]["status"]): r["level"] for r in run["results"]}
    assert levels[("tls-ciphers", "fail")] == "warning"  # medium fail
    assert levels[("http-version-disclosure", "fail")] == "note"  # low fail
    assert levels[("tls-protocols", "warn")] == "warning"  # warn of a high control
    assert run["invocations"][0]["startTimeUtc"] == "2025-03-14T09:26:53.000Z"
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert [n["level"] for n in notes] == ["error"] and "NXDOMAIN" in notes[0]["message"]["text"]


def test_sarif_critical_fail_is_an_error_and_no_findings_means_no_results():
    bad = make_target("endpoint", "https://bad.example/", {
        "T1": [finding("tls-handshake", "T1", "fail", "TLS handshake fails")]})
    doc = json.loads(SarifReporter().render(make_report(bad)))
    (res,) = doc["runs"][0]["results"]
    assert (res["ruleId"], res["level"]) == ("tls-handshake", "error")
    good = make_target("endpoint", "https://good.example/", {})
    assert json.loads(SarifReporter().render(make_report(good)))["runs"][0]["results"] == []


# -- HTML ----------------------------------------------------------------------------------------

class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _parse(html: str) -> _Collector:
    p = _Collector()
    p.feed(html)
    p.close()
    return p


@pytest.fixture(scope="module")
def html(report):
    return HtmlReporter().render(report)


def test_html_is_self_contained(html):
    doc = _parse(html)
    names = [t for t, _ in doc.tags]
    assert "script" not in names and "link" not in names and "img" not in names
    assert names.count("style") == 1
    for _, attrs in doc.tags:
        for key in ("src", "srcset", "action", "background", "data"):
            assert key not in attrs
        if "href" in attrs:
            assert attrs["href"].startswith("#"), attrs["href"]
    metas = [a for t, a in doc.tags if t == "meta"]
    csp = next(a["content"] for a in metas if a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp
    assert "@media print" in html


def test_html_reads_like_a_report(html, report):
    doc = _parse(html)
    text = " ".join(" ".join(doc.text).split())
    assert "Grade based on 23 of 24 applicable controls: 1 could not be assessed" in text
    for area in ("T · Encrypted transport", "H · HTTPS enforcement and browser protections",
                 "C · Cookies", "E · Exposed surfaces", "D · Domain and e-mail"):
        assert area in text
    for label in ("Pass", "Warning", "Fail", "Not assessed", "Not applicable"):
        assert label in text
    assert "What to do: Fix hsts missing." in text
    assert "host not resolved: NXDOMAIN" in text and "Could not assess everything" in text
    assert "What to fix first" in text
    assert "Example School" in text and "pledge4" in text and "2025-03-14 09:26 UTC" in text
    # requirement text from the baseline
    assert "Strict-Transport-Security with max-age" in text
    # one score ring per target in the summary and one per target section
    rings = [a for t, a in doc.tags if t == "svg" and "ring" in (a.get("class") or "")]
    assert len(rings) == 2 * len(report.targets)
    assert any(a.get("aria-label") == "Grade B, score 87 out of 100" for a in rings)
    # evidence: a table for a list of records, long strings cut with a note
    assert "TLS_RSA_WITH_AES_128_GCM_SHA256" in text
    assert "x" * 500 in text and "x" * 501 not in text and "1500 more characters not shown" in text
    # failing, warning and errored controls are open; passing ones closed
    controls = {a["id"]: "open" in a for t, a in doc.tags
                if t == "details" and "control" in a.get("class", "")}
    # (targets are shown worst first: the endpoint graded B comes after the domain graded lower)
    import re

    (www,) = re.findall(r'id="(t\d+)-h">https://www\.school\.example/<', html)
    assert controls[f"{www}-T3"] and controls[f"{www}-T2"] and controls[f"{www}-T4"]
    assert not controls[f"{www}-T1"]


def test_html_of_an_empty_report():
    empty = make_report().model_copy(update={"targets": (), "stats": {}})
    doc = _parse(HtmlReporter().render(empty))
    assert "No target was scanned." in " ".join(doc.text)


def test_evidence_shapes_are_bounded():
    node = shape_evidence({"a": list(range(120)), "deep": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}})
    (_, lst), (_, deep) = node.entries
    assert lst.kind == "list" and len(lst.values) == 50 and lst.more == 70
    d = deep
    for _ in range(5):
        d = d.entries[0][1]
    assert d.kind == "text"  # depth cap reached, rendered as text
    assert shape_evidence([{"k": 1}, {"k": 2}]).kind == "table"
    assert shape_evidence([{"k": {"x": 1}}, {"k": 2}]).kind == "list"


def test_macros_are_reusable_by_other_pages(report):
    env = make_environment()
    page = env.from_string(
        '{% extends "_base.html" %}{% import "_macros.html" as m %}'
        '{% block title %}Portfolio{% endblock %}'
        '{% block content %}{{ m.grade_badge("A+") }}{{ m.status_pill("fail") }}'
        '{{ m.score_ring(91, "A") }}{{ m.evidence_of(ev) }}{% endblock %}'
        '{% block footer %}{{ m.doc_footer(report) }}{% endblock %}'
    ).render(report=report, ev={"k": "<b>v</b>"})
    assert "<title>Portfolio</title>" in page and "g-Aplus" in page and "&lt;b&gt;v&lt;/b&gt;" in page
    assert "pledgescan 0.1.0" in page


# -- terminal ------------------------------------------------------------------------------------

def test_terminal_summary_is_plain_when_not_a_tty(report):
    buf = io.StringIO()
    print_summary(report, Console(file=buf, width=140))
    out = buf.getvalue()
    assert "\x1b[" not in out
    assert "https://www.school.example/" in out and "Example School" in out
    assert "2 medium 1 low" in out and "n/a" in out
    assert "H2 HSTS" in out and "host not resolved: NXDOMAIN" in out
    lines = out.splitlines()
    assert lines.index(next(x for x in lines if "T3 Strong" in x)) < lines.index(
        next(x for x in lines if "H10 No software" in x))  # heavier first


def test_terminal_summary_colours_on_a_terminal(report):
    buf = io.StringIO()
    print_summary(report, Console(file=buf, width=140, force_terminal=True, color_system="standard"))
    assert "\x1b[" in buf.getvalue()


def test_reporters_do_not_import_checks_or_collectors():
    root = Path(__file__).resolve().parents[1] / "scanner" / "reporters"
    for src in root.glob("*.py"):
        for node in ast.walk(ast.parse(src.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                assert not name.startswith(("checks", "scanner.collectors", "scanner.engine")), (src, name)
                assert not name.endswith("load_checks"), (src, name)


def test_html_explains_a_grade_capped_below_its_score():
    capped = make_target("endpoint", "https://a.example/", {
        "T4": [finding("tls-cert-trust", "T4", "fail", "Certificate expired")]})
    assert (capped.grade, capped.score) == ("F", 91)
    text = " ".join(" ".join(_parse(HtmlReporter().render(make_report(capped))).text).split())
    assert ("A score of 91 alone would give A; the critical failure (T4 Trusted certificate) caps the grade "
            "at F.") in text


def test_streamed_reports_are_the_same_bytes(report, tmp_path):
    """Given a report whose targets come from a source read once per pass (as a stored run's do)
    When render_all writes it
    Then every format is byte for byte the report rendered whole, and the targets were read at most
    twice (SARIF: rules first, then results)."""
    from scanner.reporters.stream import ReportStream

    passes = []

    def source():
        passes.append(1)
        yield from report.targets

    stream = ReportStream(report.model_copy(update={"targets": ()}), source)
    for rep in (JsonReporter(), CsvReporter(), SarifReporter()):
        passes.clear()
        streamed = render_all(stream, [rep.format], tmp_path / f"s.{rep.format}")[0].read_bytes()
        assert streamed == rep.render(report).encode(), rep.format
        assert len(passes) <= 2, rep.format
    empty = ReportStream(report.model_copy(update={"targets": ()}), lambda: ())
    assert render_all(empty, ["json"], tmp_path / "e.json")[0].read_text() == \
        JsonReporter().render(report.model_copy(update={"targets": ()}))
