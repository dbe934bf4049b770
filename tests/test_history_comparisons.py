"""History that tells the truth: each target against its own last decided result, through inventory
edits and outages, on real SQLite and PostgreSQL stores (results constructed through the real baseline)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from rich.console import Console

from scanner.history.control_history import histories, member_histories
from scanner.history.diff import diff_runs, print_diff, target_state
from scanner.history.portfolio import chain_linked, reference_run, write_portfolio
from scanner.history.store import Observation, Store
from scanner.reporters.json_report import validate
from tests.testbed.portfolio import make_result, make_target

A1 = make_target("https://alpha.example/", "alpha")
B1 = make_target("https://beta.example/", "beta")
C1 = make_target("https://gamma.example/", "gamma")
MEMBERS = [{"id": "alpha", "name": "Alpha Schools"}, {"id": "beta", "name": "Beta Learning"},
           {"id": "gamma", "name": "Gamma"}]
INVENTORY = "members:/srv/pledgescan/members.yaml"


def record(store: Store, results, inventory: str = INVENTORY) -> int:
    targets = [make_target(r.target, r.member) for r in results]
    with store.start_run(targets, baseline_id="pledge4", baseline_version="1", tool_version="0",
                         members=MEMBERS, inventory=inventory) as rec:
        for r in results:
            rec.on_result(r, None)
    return rec.run_id


def down(target):
    """The result of a target that did not answer: no control could be assessed."""
    return make_result(target, default="error")


def latest_diff(store: Store):
    run = store.run("latest")
    return diff_runs(store, reference_run(store, run), run)


def test_an_edited_members_file_keeps_its_history(store: Store) -> None:
    # Given a weekly run of alpha and beta
    record(store, [make_result(A1), make_result(B1)])
    # When the members file gains gamma (another target set) and beta loses HSTS in the same week
    record(store, [make_result(A1), make_result(B1, {"H2": "fail"}), make_result(C1, {"T4": "fail"})])
    d = latest_diff(store)
    by = {m.member: m for m in d.members}
    # Then beta is still compared with its own past: a regression, which --fail-on-regression sees
    assert [c.control for c in by["beta"].newly_failing] == ["H2"] and d.regressed
    # and gamma is a new member with a new target, never a regression or a grade change
    assert by["gamma"].state == "new" and not by["gamma"].regressed
    assert [(t.state, t.grade_after) for t in by["gamma"].targets] == [("new", "F")]
    assert d.counts()["members_added"] == 1 and d.counts()["members_worse"] == 1
    # When gamma leaves again, it is listed as removed, not as a fix
    record(store, [make_result(A1), make_result(B1, {"H2": "fail"})])
    d = latest_diff(store)
    by = {m.member: m for m in d.members}
    assert by["gamma"].state == "removed" and [t.state for t in by["gamma"].targets] == ["removed"]
    assert d.counts()["members_better"] == 0 and d.counts()["fixed"] == 0 and not d.regressed


def test_unreachable_for_one_run_then_back_with_a_regression(store: Store) -> None:
    # Given alpha assessed A+, then not answering for one run
    r1 = record(store, [make_result(A1), make_result(B1)])
    record(store, [down(A1), make_result(B1)])
    d = latest_diff(store)
    [t] = d.unreachable
    # Then it is unreachable: neither better nor worse, no control listed as pass -> error
    assert t.state == "unreachable" and t.grade_before == "A+" and t.compared_run == r1
    assert not d.regressed and d.counts()["unreachable"] == 1 and d.counts()["members_better"] == 0
    assert [m.controls for m in d.members if m.member == "alpha"] == [[]]
    assert {m.member: m.state for m in d.members}["alpha"] == "unreachable"
    assert target_state(t).startswith("unreachable since ") and "grade A+" in target_state(t)
    buf = io.StringIO()
    print_diff(d, Console(file=buf, width=200))
    assert "1 unreachable" in buf.getvalue() and "0 worse" in buf.getvalue()
    # When it answers again with an untrusted certificate
    record(store, [make_result(A1, {"T4": "fail"}), make_result(B1)])
    d = latest_diff(store)
    alpha = next(m for m in d.members if m.member == "alpha")
    # Then it is compared with its last decided result (A+ in run 1): a regression, back after the outage
    assert [c.control for c in alpha.newly_failing] == ["T4"] and d.regressed
    [back] = alpha.targets
    assert (back.state, back.grade_before, back.grade_after, back.compared_run) == ("back", "A+", "F", r1)
    assert (alpha.grade_before, alpha.grade_after) == ("A+", "F") and d.counts()["members_worse"] == 1


def test_unreachable_for_two_runs_keeps_its_first_date(store: Store) -> None:
    r1 = record(store, [make_result(A1, {"H2": "fail"}), make_result(B1)])
    r2 = record(store, [down(A1), make_result(B1)])
    record(store, [down(A1), make_result(B1)])
    d = latest_diff(store)
    [t] = d.unreachable
    # Then it is unreachable since run 2 (not since the latest run), last assessed in run 1 with grade B
    assert t.unreachable_since == store.run(r2).started_at
    assert t.last_assessed == store.run(r1).started_at and t.grade_before == "B"
    assert not d.regressed and d.counts()["unreachable"] == 1
    # and the JSON says so
    js = d.to_json()
    [member] = js["members"]
    assert member["state"] == "unreachable" and member["targets"][0]["state"] == "unreachable"
    assert member["targets"][0]["unreachable_since"] == store.run(r2).started_at.isoformat()
    assert js["counts"]["unreachable"] == 1


def test_portfolio_shows_unreachable_neutral_and_keeps_it_out_of_the_trend(store: Store, tmp_path) -> None:
    # Given alpha (score 100) and beta (a failing control) assessed, then alpha not answering
    record(store, [make_result(A1), make_result(B1, {"H2": "fail"})])
    run2 = record(store, [down(A1), make_result(B1, {"H2": "fail"})])
    write_portfolio(store, run2, tmp_path / "site", formats=("json", "csv"))
    index = (tmp_path / "site" / "index.html").read_text()
    # Then alpha's row says unreachable, in the neutral style, not "A+ -> ?" in the better style
    assert 'class="unreachable">unreachable since' in index and "(last assessed" in index
    assert "A+ → ?" not in index and 'class="better"' not in index
    # and the trend does not move because alpha left the average (beta's score is unchanged)
    mean = round((100 + store.member_scores([run2 - 1])[run2 - 1]["beta"][1]) / 2, 1)
    assert f"Mean member score per run: #{run2 - 1} {mean}, #{run2} {mean}" in index
    # scan.json and scan.csv carry each target's state against its past (and follow the schema)
    doc = json.loads((tmp_path / "site" / "scan.json").read_text())
    validate(doc)
    states = {c["member"]: c for c in doc["comparison"]}
    assert states["alpha"]["state"] == "unreachable" and states["alpha"]["grade_before"] == "A+"
    assert states["alpha"]["compared_run"] == str(run2 - 1) and states["beta"]["state"] == "assessed"
    rows = list(csv.DictReader(io.StringIO((tmp_path / "site" / "scan.csv").read_text("utf-8-sig"))))
    alpha_rows = [r for r in rows if r["member"] == "alpha"]
    assert alpha_rows and {r["target_state"] for r in alpha_rows} == {"unreachable"}
    assert alpha_rows[0]["target_history"].startswith("unreachable since")


def test_chain_linked_trend() -> None:
    # an unreachable member leaves no gap in the line; one that comes back worse moves it by its change
    assert chain_linked([{"a": 100, "b": 58}, {"a": None, "b": 58}, {"a": 30, "b": 58, "c": 90}]) == \
        [79.0, 79.0, 44.0]
    assert chain_linked([{"a": None}, {"a": 50}]) == [None, 50.0]


def test_control_history_failing_since_and_fixed_on(store: Store) -> None:
    ids = [record(store, [make_result(A1, {"H2": h2, "H5": h5}) if up else down(A1), make_result(B1)])
           for h2, h5, up in (("pass", "fail", True), ("fail", "fail", True), ("fail", "fail", False),
                              ("fail", "pass", True), ("fail", "pass", True))]
    runs = {i: store.run(i) for i in ids}
    hist = {h.control: h for h in member_histories(store, runs[ids[-1]], "alpha")}
    # H2 fails since run 2, three assessed scans (the outage neither breaks nor counts)
    h2 = hist["H2"]
    assert (h2.status, h2.since, h2.scans) == ("fail", runs[ids[1]].started_at, 3)
    assert h2.describe() == f"failing since {runs[ids[1]].started_at:%Y-%m-%d}, 3 scans"
    # H5 failed from run 1 and was fixed in run 4
    h5 = hist["H5"]
    assert (h5.status, h5.fixed_on, h5.first_failed) == ("pass", runs[ids[3]].started_at,
                                                         runs[ids[0]].started_at)
    assert set(hist) == {"H2", "H5"}  # controls that never failed have no story to tell


def test_control_history_counts_from_observations() -> None:
    def obs(run: int, status: str, reached: bool = True) -> Observation:
        return Observation(result_id=run, run_id=run, started_at=datetime(2026, 9, run, tzinfo=UTC),
                           member="m", target_key="endpoint:https://x/", grade="F", score=0,
                           decided=1 if reached else 0, controls={"T4": (status, "critical")})

    [h] = histories([obs(1, "fail"), obs(2, "pass"), obs(3, "fail"), obs(4, "error"), obs(5, "fail")], 5)
    assert (h.since.day, h.scans, h.first_failed.day) == (3, 2, 1)
    assert h.describe() == "failing since 2026-09-03, 2 scans (first seen failing 2026-09-01)"


def test_a_run_of_selected_checks_is_not_a_reference(store: Store) -> None:
    from scanner.settings import Settings

    record(store, [make_result(A1), make_result(B1)])
    with store.start_run([A1, B1], baseline_id="pledge4", baseline_version="1", tool_version="0",
                         settings=Settings(only=frozenset({"H2"})), inventory=INVENTORY) as rec:
        for t in (A1, B1):
            rec.on_result(make_result(t), None)
    assert reference_run(store, store.run(rec.run_id)) is None


def test_resume_alone_skips_a_run_another_process_is_running(store: Store) -> None:
    # Given an interrupted one-URL run, then a portfolio run in progress
    with pytest.raises(KeyboardInterrupt), store.start_run([A1, B1], baseline_id="pledge4",
                                                           baseline_version="1", tool_version="0") as rec:
        rec.on_result(make_result(A1), None)
        raise KeyboardInterrupt
    running = store.start_run([C1], baseline_id="pledge4", baseline_version="1", tool_version="0",
                              inventory=INVENTORY)
    try:
        # When --resume alone is asked for, Then it takes the interrupted run, at once
        with store.resume_run(wait=0) as again:
            assert again.run_id == rec.run_id and [t.key for t in again.pending] == [B1.key]
            again.on_result(make_result(B1), None)
        # and a --members --resume of the running file waits for it (here: refused at once)
        from scanner.history.store import StoreBusy

        with pytest.raises(StoreBusy, match=f"in progress: run {running.run_id} "):
            store.start_run([C1], baseline_id="pledge4", baseline_version="1", tool_version="0",
                            inventory=INVENTORY, resume_unfinished=True)
    finally:
        running.finish()
    assert store.run(rec.run_id).status == "complete"


def test_a_control_that_errored_last_time_is_compared_with_its_last_decided_status(store: Store) -> None:
    # Given T4 passing, then undecided (the handshake timed out) while the target answered otherwise
    record(store, [make_result(A1), make_result(B1)])
    record(store, [make_result(A1, {"T4": "error"}), make_result(B1)])
    # When T4 fails next time
    record(store, [make_result(A1, {"T4": "fail"}), make_result(B1)])
    d = latest_diff(store)
    # Then that is a regression against its last decided status (pass), not an "error -> fail" change
    [t4] = [c for m in d.members for c in m.controls]
    assert (t4.control, t4.before, t4.after, t4.change) == ("T4", "pass", "fail", "newly_failing")
    assert d.regressed


def test_a_first_portfolio_after_a_one_url_scan_removes_nothing(tmp_path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'h.sqlite3'}")
    try:
        # Given a member's one-URL self-assessment, then the first portfolio run on the same store
        solo = make_target("https://self.example/")
        with store.start_run([solo], baseline_id="pledge4", baseline_version="1", tool_version="0") as rec:
            rec.on_result(make_result(solo), None)
        record(store, [make_result(A1), make_result(B1)])
        d = latest_diff(store)
        # Then the self-assessed URL is not "removed" from the portfolio, and every member is new
        assert d.counts()["targets_removed"] == 0 and {m.state for m in d.members} == {"new"}
    finally:
        store.close()
