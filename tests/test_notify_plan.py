"""Reminders without repeats: what each member is told over a sequence of runs, dates injected."""

from __future__ import annotations

import pytest

from scanner.history.store import Store
from scanner.notify.plan import DEFAULT_INTERVALS, parse_intervals, plan_member
from scanner.notify.sent import SentLog
from tests.notify_helpers import day, members, record_run


def tell(store: Store, log: SentLog, run_id: int, when, intervals=None, member: int = 0):
    plan = plan_member(store, log, store.run(run_id), members()[member], when, intervals)
    if plan.sends:  # as `notify --send` does once the server accepted the message
        log.record(plan.id, plan.records(), sent_at=when, run_id=run_id, recipient="rssi@lycee.example",
                   message_id=f"<{run_id}@test>")
    return plan


def controls(items) -> list[str]:
    return [i.control if hasattr(i, "control") else i.item_key.rpartition("|")[2] for i in items]


def test_interval_logic_over_a_sequence_of_runs(store: Store) -> None:
    log = SentLog(store)
    # day 0: three problems, all new, worst first (T4 critical, H2 medium, H10 low)
    p = tell(store, log, record_run(store, day(0), {"T4": "fail", "H2": "fail", "H10": "fail"}), day(0))
    assert p.sends and controls(p.new) == ["T4", "H2", "H10"] and p.due == p.fixed == []
    assert p.grade == "F"  # T4 is critical
    # day 10: H2 fixed, C1 new; T4 and H10 reported 10 days ago are not repeated
    p = tell(store, log, record_run(store, day(10), {"T4": "fail", "H10": "fail", "C1": "fail"}), day(10))
    assert p.sends and controls(p.new) == ["C1"] and p.due == []
    assert controls(p.waiting) == ["T4", "H10"] and controls(p.fixed) == ["H2"]
    # day 20: nothing new, nothing due: no message at all (and nothing recorded)
    p = tell(store, log, record_run(store, day(20), {"T4": "fail", "H10": "fail", "C1": "fail"}), day(20))
    assert not p.sends and p.new == p.due == p.fixed == []
    # day 40: T4 could not be decided (error): neither fixed nor repeated; still open afterwards
    p = tell(store, log, record_run(store, day(40), {"T4": "error", "H10": "fail", "C1": "fail"}), day(40))
    assert not p.sends and p.fixed == [] and "T4" not in controls(p.waiting)
    # day 61: the critical T4 is due again (60 days); C1 (medium, day 10) is not; H10 (low) waits 540 days
    p = tell(store, log, record_run(store, day(61), {"T4": "fail", "H10": "fail", "C1": "fail"}), day(61))
    assert p.sends and p.new == [] and controls(p.due) == ["T4"]
    assert controls(p.waiting) == ["C1", "H10"]
    [t4] = p.due
    assert t4.days_open(day(61)) == 61 and t4.last_sent == day(0)  # open since day 0, error did not reset
    # day 75 with a shorter interval for low: H10 (said on day 0) is due; T4 (day 61) and the medium C1
    # (day 10, 120 days) are not
    p = tell(store, log, record_run(store, day(75), {"T4": "fail", "H10": "fail", "C1": "fail"}), day(75),
             parse_intervals(["low=70"]))
    assert controls(p.due) == ["H10"] and controls(p.waiting) == ["T4", "C1"]
    # day 80: H2 is back: said again as new (it was thanked for), first seen again today
    p = tell(store, log, record_run(store, day(80), {"T4": "fail", "H10": "fail", "C1": "fail",
                                                     "H2": "fail"}), day(80))
    assert controls(p.new) == ["H2"] and p.new[0].days_open(day(80)) == 0
    states = [s for _, key, s in log.history("lycee") if key.endswith("|H2")]
    assert states == ["open", "fixed", "open"]


def test_opted_out_member_is_scanned_but_gets_no_message(store: Store) -> None:
    log = SentLog(store)
    run = record_run(store, day(0), {"H2": "fail"}, quiet={"H2": "fail", "T4": "fail"})
    p = plan_member(store, log, store.run(run), members()[1], day(0))
    assert not p.sends and p.skipped == "opted out (notify: false)"
    assert controls(p.new) == ["T4", "H2"]  # its problems are known, only not sent
    assert store.summaries(run, member="quiet")  # it was scanned


def test_intervals_parse_and_refuse_nonsense() -> None:
    assert parse_intervals([]) == DEFAULT_INTERVALS
    assert parse_intervals(["high=30,low=100", "medium=7"])["high"] == 30
    with pytest.raises(ValueError, match="SEVERITY=DAYS"):
        parse_intervals(["urgent=3"])
    with pytest.raises(ValueError, match="SEVERITY=DAYS"):
        parse_intervals(["high=-1"])


def test_member_history_is_the_members_own_runs_up_to_the_planned_one(store: Store) -> None:
    first = record_run(store, day(0), {"T4": "fail"})
    second = record_run(store, day(7), {"H2": "fail"})
    record_run(store, day(14), {"C1": "fail"})  # newer than the run planned below: not read
    history = store.member_history("lycee", second, limit=5)
    assert [(run_id, started) for run_id, started, _ in history] == [(second, day(7)), (first, day(0))]
    [(_, _, [latest])] = history[:1]
    assert latest.member == "lycee" and latest.controls["H2"][0] == "fail"
    assert latest.controls["T4"][0] == "pass"
    assert [run_id for run_id, _, _ in store.member_history("lycee", second, limit=1)] == [second]
    assert store.member_history("nobody", second, limit=5) == []
