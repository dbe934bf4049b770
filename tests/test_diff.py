"""What changed between two runs: newly failing, fixed, grade changes, added and removed targets."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from scanner.history.diff import default_pair, diff_runs, grade_worse, print_diff
from scanner.history.store import Store, StoreError
from tests.testbed.portfolio import make_result, make_target, record_run

A1 = make_target("https://a.example/", "alpha")
A2 = make_target("a.example", "alpha")
B1 = make_target("https://b.example/", "beta")
C1 = make_target("https://c.example/", "gamma")


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'h.sqlite3'}")
    yield s
    s.close()


def record(store: Store, results) -> int:
    return record_run(store, results, [{"id": "alpha", "name": "Alpha Org"}])


def test_regression_fix_and_grade_changes(store: Store) -> None:
    # Given a first run where alpha's endpoint lacks HSTS and beta is clean
    r1 = record(store, [make_result(A1, {"H2": "fail"}), make_result(A2),
                        make_result(B1), make_result(C1, {"H7": "warn"})])
    # When alpha fixes HSTS but beta's certificate expires, and gamma's check errors
    r2 = record(store, [make_result(A1), make_result(A2),
                        make_result(B1, {"T4": "fail"}), make_result(C1, {"H7": "error"})])
    a, b = default_pair(store)
    assert (a.id, b.id) == (r1, r2)
    diff = diff_runs(store, a, b)
    by = {m.member: m for m in diff.members}
    # Then beta newly fails T4 and drops to F; alpha's H2 is fixed and its grade improves
    [t4] = by["beta"].newly_failing
    assert (t4.control, t4.before, t4.after, t4.severity, t4.title) == \
        ("T4", "pass", "fail", "critical", "Trusted certificate")
    assert (by["beta"].grade_before, by["beta"].grade_after) == ("A+", "F") and by["beta"].regressed
    [h2] = by["alpha"].fixed
    assert h2.control == "H2" and not by["alpha"].regressed
    assert by["alpha"].name == "Alpha Org"
    assert grade_worse("B", "A") is False and grade_worse("A", "B") is True
    # An error is a change, never a regression
    [h7] = by["gamma"].controls
    assert h7.change == "changed" and not by["gamma"].regressed
    assert diff.regressed
    js = diff.to_json()
    assert js["counts"]["newly_failing"] == 1 and js["counts"]["fixed"] == 1
    assert {m["member"] for m in js["members"]} == {"alpha", "beta", "gamma"}


def test_added_and_removed_targets(store: Store) -> None:
    r1 = record(store, [make_result(A1), make_result(B1)])
    r2 = record(store, [make_result(A1), make_result(C1)])
    diff = diff_runs(store, store.run(r1), store.run(r2))
    by = {m.member: m for m in diff.members}
    assert by["gamma"].targets[0].grade_before is None and by["gamma"].targets[0].grade_after == "A+"
    assert by["beta"].targets[0].grade_after is None
    assert not by["alpha"].changed
    assert not diff.regressed


def test_targets_an_interrupted_run_has_not_reached_are_not_removed(store: Store) -> None:
    # Given a complete run, then a run interrupted after its first target
    record(store, [make_result(A1, {"H2": "fail"}), make_result(B1)])
    with store.start_run([A1, B1], baseline_id="pledge4", baseline_version="1", tool_version="0") as rec:
        rec.on_result(make_result(A1), None)
        rec.lock.release()  # the process died: nobody marks the run
    run_b = store.run(rec.run_id)
    assert run_b.status == "incomplete"
    # Then the diff compares what was scanned, and says the run is incomplete
    diff = diff_runs(store, *default_pair(store))
    assert [m.member for m in diff.members if m.changed] == ["alpha"]
    assert all(t.grade_after is not None for m in diff.members for t in m.targets)
    assert [c.change for m in diff.members for c in m.controls] == ["fixed"]
    buf = io.StringIO()
    print_diff(diff, Console(file=buf, width=160))
    assert "removed" not in buf.getvalue() and "run 2 is incomplete (1/2 targets)" in buf.getvalue()
    from html.parser import HTMLParser

    from scanner.history.portfolio import render_diff

    class Text(HTMLParser):
        chunks: list[str] = []

        def handle_data(self, data: str) -> None:
            self.chunks.append(data)

    page = Text()
    page.feed(render_diff(diff))
    text = " ".join(" ".join(page.chunks).split())
    assert "Run 2 is incomplete" in text and "removed" not in text


def test_terminal_table(store: Store) -> None:
    record(store, [make_result(A1, {"H2": "fail"}), make_result(B1)])
    record(store, [make_result(A1), make_result(B1, {"T4": "fail"})])
    buf = io.StringIO()
    print_diff(diff_runs(store, *default_pair(store)), Console(file=buf, width=160))
    out = buf.getvalue()
    assert "newly failing: pass -> fail" in out and "fixed: fail -> pass" in out
    assert "1 newly failing, 0 regressed, 1 fixed" in out


def test_diff_needs_two_runs(store: Store) -> None:
    record(store, [make_result(A1)])
    with pytest.raises(StoreError, match="no earlier complete run"):
        default_pair(store)
