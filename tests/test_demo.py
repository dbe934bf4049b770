"""``pledgescan demo``: the built-in testbed gives the verdicts a newcomer should see (``demo_report``:
the demo's scan, shared with the browser tests, tests/testbed/demo.py)."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from scanner.models import Status
from tests.testbed.cli import pledgescan


def by_label(report, label: str):
    (t,) = [t for t in report.targets if f"//{label}." in t.target]
    return t, {c.id: c for c in t.controls}


def test_good_site_passes_everything(demo_report):
    t, controls = by_label(demo_report, "good")
    assert t.grade == "A+", {c.id: c.status.value for c in t.controls if c.status != Status.PASS}


def test_legacy_site_shows_the_classic_failures(demo_report):
    t, c = by_label(demo_report, "legacy")
    assert t.grade == "F"
    for cid in ("T2", "H1", "H9", "H10", "C1", "E1"):
        assert c[cid].status == Status.FAIL, cid
    leaked = [f for f in c["E1"].findings if f.status == Status.FAIL]
    assert leaked
    # Secrets are never copied into the report.
    assert "hunter2-demo" not in str([f.evidence for f in leaked])


def test_certificate_problems(demo_report):
    for label in ("expired", "wronghost"):
        t, c = by_label(demo_report, label)
        assert c["T4"].status == Status.FAIL and t.grade == "F"


def test_demo_command_writes_a_report(tmp_path: Path):
    out = tmp_path / "report.html"
    r = pledgescan("demo", "-o", str(out), timeout=300)
    assert r.returncode == 0, r.stderr
    assert str(out) in r.stdout

    class Titles(HTMLParser):
        h = 0
        text: list[str] = []

        def handle_data(self, data: str) -> None:
            self.text.append(data)

    p = Titles()
    p.feed(out.read_text())
    page = " ".join(p.text)
    assert "good.demo.pledgescan.test" in page and "legacy.demo.pledgescan.test" in page
