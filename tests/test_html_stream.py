"""The single-run HTML report written as it is rendered (``HtmlReporter.write``, what ``render_all`` uses
for a stored run): byte for byte the report rendered whole, the targets read once, and each target's
section built only when the writer reaches it. (Memory against the number of targets is measured by
``bench/bench_html.py``, not asserted here.)"""

from __future__ import annotations

import io

import pytest

from scanner import i18n
from scanner.models import Report
from scanner.reporters import html_stream, render_all
from scanner.reporters.html import HtmlReporter
from scanner.reporters.stream import ReportStream
from tests.testbed.reports import default_targets, finding, make_report, make_target


def portfolio_like() -> Report:
    """Targets of several members and none, equal grades and scores (the sort must stay stable),
    names that sort differently from their order, untrusted certificates, errors."""
    base = default_targets()
    untrusted = make_target("endpoint", "https://self-signed.example/", {
        "H2": [finding("http-hsts", "H2", "fail", "HSTS missing",
                       evidence={"tls_verified": False, "tls_error": "self-signed certificate"})]},
        member="m-2", member_name="Second")
    targets = [untrusted]
    for i in range(24):
        t = base[i % 3]
        targets.append(t.model_copy(update={"target": f"{t.target}{'zyx'[i % 3]}{i % 5}",
                                             "member": [None, "m-1", "m-2"][i % 3],
                                             "member_name": [None, "First", "Second"][i % 3]}))
    return make_report(*targets)


def counted(report: Report, passes: list[int]) -> ReportStream:
    def source():
        passes.append(1)
        yield from report.targets

    return ReportStream(report.model_copy(update={"targets": ()}), source)


@pytest.mark.parametrize("lang", [None, "es"])
@pytest.mark.parametrize("build", [make_report, portfolio_like, lambda: make_report(default_targets()[1])])
def test_streamed_html_is_the_report_rendered_whole(build, lang, tmp_path):
    report = build()
    passes: list[int] = []
    with i18n.using(lang):
        whole = HtmlReporter().render(report)
        written = render_all(counted(report, passes), ["html"], tmp_path / "report.html")[0]
    assert written.read_bytes() == whole.encode()
    assert passes == [1]  # the targets were read once


def test_streamed_html_of_no_target_is_the_empty_report():
    empty = make_report(default_targets()[0]).model_copy(update={"targets": ()})
    out = io.StringIO()
    HtmlReporter().write(ReportStream(empty, lambda: ()), out)
    assert out.getvalue() == HtmlReporter().render(empty)


def test_each_target_section_is_built_when_the_writer_reaches_it(monkeypatch):
    report = portfolio_like()
    built: list[str] = []
    real = html_stream.target_view

    def spy(result, index, baseline, *, evidence=True):
        if evidence:
            built.append(result.target)
        return real(result, index, baseline, evidence=evidence)

    monkeypatch.setattr(html_stream, "target_view", spy)
    seen: list[int] = []  # sections built when each section starts being written

    class Out(io.StringIO):
        def write(self, text: str) -> int:
            if '<section class="target"' in text:
                seen.append(len(built))
            return super().write(text)

    out = Out()
    HtmlReporter().write(ReportStream.of(report), out)
    assert seen == list(range(1, len(report.targets) + 1))
    assert out.getvalue() == HtmlReporter().render(report)
