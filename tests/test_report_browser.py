"""The HTML reports in a real browser (Debian's headless Chromium, tests/testbed/browser.py): the demo
report and a portfolio at a phone's 390 px have no element wider than the screen and show the worst
target first; the demo's 4 targets print on at most 8 A4 pages. Needs chromium: skipped locally when it
is absent, a failure in CI (``.ci/run`` installs it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanner.history.diff import default_pair, diff_runs
from scanner.history.portfolio import render_diff, write_portfolio
from scanner.history.store import Store
from scanner.models import Status
from scanner.reporters.html import HtmlReporter
from tests.testbed.browser import OVERFLOW_JS, Browser, chromium_path
from tests.testbed.portfolio import make_result, make_target

PHONE = 390

# The first target section on the page and its grade, as a reader scrolling down meets them.
FIRST_TARGET_JS = """
(() => {
  const s = document.querySelector('section.target');
  return {name: s.querySelector('.target-name').textContent.trim(),
          grade: s.querySelector('.grade').textContent.replace('Grade', '').trim()};
})()
"""


@pytest.fixture(scope="module")
def browser():
    chromium_path()  # skip (locally) or fail (CI) before starting anything
    with Browser() as b:
        yield b


@pytest.fixture(scope="module")
def demo_html(tmp_path_factory, demo_report):
    out = tmp_path_factory.mktemp("demo") / "report.html"
    out.write_text(HtmlReporter().render(demo_report))
    return out, demo_report


@pytest.fixture(scope="module")
def portfolio(tmp_path_factory):
    """Three members over two runs: one fine, one failing (worse than before), one unreachable."""
    root = tmp_path_factory.mktemp("portfolio")
    ok, bad, down = (make_target("https://ok.example/", "ok-school"),
                     make_target("https://learn.failing-academy.example/a/rather/long/path/", "failing"),
                     make_target("https://down.example/", "unreachable"))
    members = [{"id": "ok-school", "name": "OK School", "contact": "sec@ok.example"},
               {"id": "failing", "name": "Académie qui échoue", "contact": "rssi@failing.example"},
               {"id": "unreachable", "name": "Down Learning", "contact": None}]
    store = Store(f"sqlite:///{root / 'h.sqlite3'}")
    try:
        for statuses in ({"H2": "fail"}, {"H2": "fail", "T4": "fail", "C1": "fail", "H3": "warn"}):
            with store.start_run([ok, bad, down], baseline_id="pledge4", baseline_version="1",
                                 tool_version="0", members=members) as rec:
                rec.on_result(make_result(ok), None)
                rec.on_result(make_result(bad, statuses), None)
                rec.on_result(make_result(down, default="error"), None)
        write_portfolio(store, rec.run_id, root / "site")
        (root / "site" / "diff.html").write_text(render_diff(diff_runs(store, *default_pair(store))))
    finally:
        store.close()
    return root / "site"


def _fits(browser: Browser, page: Path, width: int = PHONE) -> None:
    browser.open(page, width)
    got = browser.evaluate(OVERFLOW_JS)
    assert got["viewport"] == width
    assert got["page"] <= width and not got["wide"], got


def test_demo_report_fits_a_phone_and_starts_with_the_worst_target(browser, demo_html):
    page, report = demo_html
    # When the demo report is opened 390 px wide, nothing runs off the side of the page
    _fits(browser, page)
    # And the first target shown is a failing one with the worst grade, before the A+ site
    first = browser.evaluate(FIRST_TARGET_JS)
    worst = min(report.targets, key=lambda t: ("F", "E", "D", "C", "B", "A", "A+", "?").index(t.grade))
    assert first["grade"] == worst.grade == "F"
    assert any(c.status == Status.FAIL for t in report.targets if t.target == first["name"]
               for c in t.controls)
    # And "What to fix first" comes before the first target, and evidence is folded
    order = browser.evaluate("""(() => {
      const fix = document.querySelector('.fix-first'), tgt = document.querySelector('section.target');
      return [!!fix, fix && !!(fix.compareDocumentPosition(tgt) & Node.DOCUMENT_POSITION_FOLLOWING),
              document.querySelectorAll('details.evidence[open]').length];
    })()""")
    assert order == [True, True, 0]


def test_demo_report_prints_on_at_most_8_a4_pages(browser, demo_html, tmp_path):
    page, report = demo_html
    assert len(report.targets) == 4
    browser.open(page, 1280)
    pages = browser.pdf_pages(tmp_path / "report.pdf")
    assert 1 <= pages <= 8, pages


def test_headings_do_not_skip_levels(browser, demo_html):
    browser.open(demo_html[0], 1280)
    levels = browser.evaluate("[...document.querySelectorAll('h1,h2,h3,h4,h5,h6')].map(h => +h.tagName[1])")
    assert levels[0] == 1
    assert all(b <= a + 1 for a, b in zip(levels, levels[1:], strict=False)), levels


def test_portfolio_pages_fit_a_phone_worst_member_first(browser, portfolio):
    index = portfolio / "index.html"
    _fits(browser, index)
    # the first member row is the failing member (grade F), the unreachable one last
    names = browser.evaluate("[...document.querySelectorAll('#members tbody tr td:first-child a')]"
                             ".map(a => a.textContent.trim())")
    assert names[0] == "Académie qui échoue" and names[-1] == "Down Learning", names
    # the cross-member "what to fix first" opens the page, the critical failure first
    fixes = browser.evaluate("[...document.querySelectorAll('.fix-first li .fix-line')]"
                             ".map(p => p.textContent.replace(/\\s+/g, ' ').trim())")
    assert fixes and fixes[0].startswith("Critical severity T4"), fixes
    # the downloads are linked from the index
    links = browser.evaluate("[...document.querySelectorAll('a')].map(a => a.getAttribute('href'))")
    assert {"scan.json", "scan.csv", "scan.xlsx"} <= set(links)
    # chart labels are readable on a phone (at least 10 px as drawn)
    sizes = browser.evaluate("[...document.querySelectorAll('.chart-label')]"
                             ".map(t => t.getBoundingClientRect().height)")
    assert sizes and min(sizes) >= 10, sizes
    for member_page in ("failing.html", "ok-school.html", "unreachable.html", "diff.html"):
        _fits(browser, portfolio / member_page)
