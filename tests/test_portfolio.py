"""Portfolio rendering from a store: index, member pages, trend, distribution, escaping, atomic files."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser

import pytest

from scanner.history.diff import default_pair, diff_runs
from scanner.history.portfolio import TABLE_JS_HASH, iter_history, render_diff, write_portfolio
from scanner.history.store import Store
from tests.testbed.portfolio import make_result, make_target, record_run

A1 = make_target("https://a.example/", "alpha")
A2 = make_target("a.example", "alpha")
B1 = make_target("https://b.example/", "beta")
EVIL = make_target("https://evil.example/", "evil")
MEMBERS = [{"id": "alpha", "name": "Alpha Schools", "contact": "sec@a.example"},
           {"id": "beta", "name": "Beta Learning", "contact": None},
           {"id": "evil", "name": "<script>alert(1)</script>", "contact": "\"><img src=x>"}]


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'h.sqlite3'}")
    yield s
    s.close()


def record(store: Store, results) -> int:
    return record_run(store, results, MEMBERS)


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self._in = False

    def handle_starttag(self, tag, attrs) -> None:
        self._in = tag == "script"

    def handle_endtag(self, tag) -> None:
        self._in = False

    def handle_data(self, data) -> None:
        if self._in:
            self.scripts.append(data)


def test_portfolio_of_two_runs(store: Store, tmp_path) -> None:
    # Given two runs: beta's certificate breaks, alpha fixes HSTS
    record(store, [make_result(A1, {"H2": "fail"}), make_result(A2), make_result(B1), make_result(EVIL)])
    run2 = record(store, [make_result(A1), make_result(A2), make_result(B1, {"T4": "fail", "H5": "fail"}),
                          make_result(EVIL, {"E1": "fail"})])
    out = tmp_path / "site"
    # When the portfolio of the second run is written
    paths = write_portfolio(store, run2, out)
    # Then there is an index, one page per member, scan.json, scan.csv and scan.xlsx, and no temporary file
    assert sorted(p.name for p in paths) == ["alpha.html", "beta.html", "evil.html", "index.html",
                                             "scan.csv", "scan.json", "scan.xlsx"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    index = (out / "index.html").read_text()
    # the member rows, worst first, with failing controls per area and the change since last run
    assert index.index("Beta Learning") < index.index("Alpha Schools")
    assert "A+ → F" in index or "A+ \u2192 F" in index
    assert "2 newly failing" in index and "1 fixed" in index
    assert 'href="beta.html"' in index
    # charts are inline SVG; the trend has a point per run
    assert index.count("<svg") >= 2 and "#1" in index and "#2" in index
    # the script is allowed by its CSP hash and nothing else
    [script] = _script_bodies(index)
    digest = "sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert digest == TABLE_JS_HASH and f"script-src '{TABLE_JS_HASH}'" in index
    # hostile member names and contacts are escaped
    assert "<script>alert(1)</script>" not in index and "&lt;script&gt;alert(1)" in index
    assert '"><img src=x>' not in index
    assert not re.search(r"(src|href)=\"https?://", index)  # no external asset
    beta = (out / "beta.html").read_text()
    assert "Since the last scan" in beta and "newly failing" in beta and "T4" in beta
    assert "What to do:" in beta and "Fix it." in beta
    alpha = (out / "alpha.html").read_text()
    assert "sec@a.example" in alpha and "fixed" in alpha
    doc = json.loads((out / "scan.json").read_text())
    assert {t["member"] for t in doc["targets"]} == {"alpha", "beta", "evil"}
    assert doc["run_id"] == str(run2)
    assert (out / "scan.csv").read_text().count("\n") > 10


def _script_bodies(html: str) -> list[str]:
    p = _Scripts()
    p.feed(html)
    return p.scripts


def test_diff_html_and_history(store: Store) -> None:
    record(store, [make_result(A1, {"H2": "fail"}), make_result(B1)])
    record(store, [make_result(A1), make_result(B1, {"T4": "fail"})])
    html = render_diff(diff_runs(store, *default_pair(store)))
    assert "1 newly failing, 0 regressed, 1 fixed" in html and "Trusted certificate" in html
    assert "<script" not in html
    rows = list(iter_history(store))
    assert [r["run"] for r in rows] == [2, 1]
    assert rows[0]["grades"] == {"alpha": "A+", "beta": "F"} and rows[0]["status"] == "complete"
    assert list(iter_history(store, member="beta"))[1]["grades"] == {"beta": "A+"}


def test_history_trend_is_not_moved_by_a_member_that_stops_answering(store: Store) -> None:
    # Given a run where both members answer, then one where alpha's only target is unreachable
    record(store, [make_result(A1), make_result(B1, {"T4": "fail", "H2": "fail"})])
    record(store, [make_result(A1, default="error"), make_result(B1, {"T4": "fail", "H2": "fail"})])
    newest, oldest = iter_history(store)
    # Then the plain mean jumps to beta's score alone, but the chain-linked trend stays where it was
    assert newest["score"] != oldest["score"]
    assert oldest["trend"] == oldest["score"] and newest["trend"] == oldest["trend"]
    # And a change of beta's own score moves the trend by that change
    record(store, [make_result(A1, default="error"), make_result(B1, {"T4": "fail"})])
    latest = next(iter_history(store))
    assert latest["trend"] == pytest.approx(oldest["trend"] + latest["score"] - newest["score"], abs=0.11)


def _cli(*args: str) -> int:
    from scanner.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(list(args))
    return int(exc.value.code or 0)


def test_report_and_diff_that_cannot_write_are_one_line_exit_2(store: Store, tmp_path, capsys) -> None:
    # Given two stored runs and an output path that cannot be a directory or a file
    record(store, [make_result(A1, {"H2": "fail"}), make_result(B1)])
    record(store, [make_result(A1), make_result(B1, {"T4": "fail"})])
    afile = tmp_path / "afile"
    afile.write_text("")
    capsys.readouterr()
    # Then report and diff say so in one line with exit 2 (not an "internal error", exit 3 = store busy)
    for args in (("report", "1", "-o", str(afile)),
                 ("diff", "--format", "html", "-o", str(afile / "d.html"))):
        assert _cli(*args, "--store", store.url) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("pledgescan: error: cannot write"), err


def test_diff_table_is_not_truncated_when_piped(store: Store, capsys, monkeypatch) -> None:
    # Given a change on a long URL, and the diff going to a log file (not a terminal, no COLUMNS)
    monkeypatch.delenv("COLUMNS", raising=False)
    long = make_target("https://learning-platform.some-long-member-name.example/moodle/", "alpha")
    record(store, [make_result(long)])
    record(store, [make_result(long, {"H2": "fail"})])
    capsys.readouterr()
    assert _cli("diff", "--store", store.url) == 0
    # Then the whole URL and the whole change are in the log
    out = capsys.readouterr().out
    assert "https://learning-platform.some-long-member-name.example/moodle/" in out
    assert "newly failing: pass -> fail" in out
