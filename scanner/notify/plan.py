"""What to say to each member: the failing controls of the latest run (items), sorted worst first, split
into new problems, reminders that are due, problems reported recently (not repeated yet) and fixes.

Reminder intervals by severity follow CERT-PL Artemis' autoreporter: an item already reported is said
again only when its interval has passed since it was last said. A member with nothing new and nothing
due gets no message; fixes wait for the next message. An item that could not be decided this run
(``error``) is neither fixed nor still open: what was said about it stays as it was.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from scanner.baseline import Baseline
from scanner.history.store import RunInfo, Store
from scanner.models import ControlResult, Severity, Status
from scanner.notify.sent import SentLog, SentRecord, SentState
from scanner.reporters import top_finding

#: Days before an item already reported is said again (Artemis' defaults).
DEFAULT_INTERVALS = {"critical": 60, "high": 60, "medium": 120, "low": 540, "info": 540}
HISTORY_RUNS = 60  # past runs read to find since when a problem has been open


@dataclass(frozen=True)
class CheckText:
    """The English texts of a check's metadata (translated at rendering through the catalogues)."""

    title: str
    risk: str
    remediation: str


@cache
def check_texts() -> dict[str, CheckText]:
    """Check ID -> metadata texts (``scanner.plugins.check_metadata``: data, not the check code)."""
    from scanner.plugins import check_metadata

    return {cid: CheckText(m.title, m.risk, m.remediation) for cid, m in check_metadata().items()}


@dataclass(frozen=True)
class Item:
    """One failing control on one target of a member."""

    key: str  # "<target key>|<control ID>"
    target: str
    control: str
    control_title: str
    severity: Severity
    check_title: str | None
    observed: str  # the finding's own words (English, quotes what the server sent)
    risk: str  # link-free explanation
    fix: str
    first_seen: datetime
    last_sent: datetime | None = None

    def days_open(self, now: datetime) -> int:
        return max(0, (now - self.first_seen).days)


@dataclass
class MemberPlan:
    """What one member is told (``new`` and ``due`` decide whether a message goes at all)."""

    member: dict[str, Any]
    run: RunInfo
    grade: str
    new: list[Item] = field(default_factory=list)
    due: list[Item] = field(default_factory=list)  # reported before, reminder interval passed
    waiting: list[Item] = field(default_factory=list)  # reported before, not due yet: counted only
    fixed: list[SentState] = field(default_factory=list)
    skipped: str | None = None  # why no message can go (opted out, no e-mail contact, not in the run)

    @property
    def id(self) -> str:
        return str(self.member["id"])

    @property
    def sends(self) -> bool:
        return self.skipped is None and bool(self.new or self.due)

    def records(self) -> list[SentRecord]:
        """What to record once the message is delivered."""
        out = [SentRecord(i.key, i.severity.value, "open", i.first_seen) for i in (*self.new, *self.due)]
        out += [SentRecord(s.item_key, s.severity, "fixed", s.first_seen) for s in self.fixed]
        return out


def worst_first(items: Iterable[Item]) -> list[Item]:
    return sorted(items, key=lambda i: (-i.severity.rank, i.first_seen, i.control, i.target))


def parse_intervals(values: Iterable[str]) -> dict[str, int]:
    """``high=30`` (repeatable or comma-separated) over the defaults; ``ValueError`` with one line."""
    out = dict(DEFAULT_INTERVALS)
    for v in values:
        for part in (p.strip() for p in v.split(",") if p.strip()):
            sev, sep, days = part.partition("=")
            sev = sev.strip().lower()
            if not sep or sev not in out or not days.strip().isdigit():
                raise ValueError(f"--remind {part!r}: expected SEVERITY=DAYS with a severity among "
                                 f"{', '.join(DEFAULT_INTERVALS)}, e.g. high=30")
            out[sev] = int(days)
    return out


def _control_items(control: ControlResult, target_key: str, target: str) -> Item | None:
    if control.status != Status.FAIL:
        return None
    top = top_finding(control)
    meta = check_texts().get(top.check) if top is not None else None
    fix = (top.remediation if top is not None and top.remediation else None) or (meta.remediation if meta
                                                                                   else "")
    return Item(key=f"{target_key}|{control.id}", target=target, control=control.id,
                control_title=control.title, severity=control.severity,
                check_title=meta.title if meta else None, observed=top.title if top is not None else "",
                risk=meta.risk if meta else "", fix=fix, first_seen=datetime.min.replace(tzinfo=UTC))


def _first_seen(store: Store, run: RunInfo, member: str) -> dict[str, datetime]:
    """Item key -> start of the oldest run of the unbroken streak of failures up to ``run``. A run where
    the control could not be decided (or the target was not scanned) does not break the streak."""
    since: dict[str, datetime] = {}
    broken: set[str] = set()
    for _run_id, started_at, summaries in store.member_history(member, run.id, HISTORY_RUNS):
        for s in summaries:
            for cid, (status, _sev) in s.controls.items():
                key = f"{s.target_key}|{cid}"
                if key in broken:
                    continue
                if status == Status.FAIL.value:
                    since[key] = started_at
                elif status in (Status.PASS.value, Status.WARN.value, Status.NOT_APPLICABLE.value):
                    broken.add(key)
    return since


def plan_member(store: Store, log: SentLog, run: RunInfo, member: dict[str, Any], now: datetime,
                intervals: dict[str, int] | None = None) -> MemberPlan:
    """What to tell one member (a members-file entry as JSON) about ``run``, at time ``now``."""
    intervals = intervals or DEFAULT_INTERVALS
    mid = str(member["id"])
    results = list(store.results(run.id, member=mid))
    plan = MemberPlan(member=member, run=run, grade=Baseline.worst_grade(r.grade for r in results))
    if not member.get("notify", True):
        plan.skipped = "opted out (notify: false)"
    elif "@" not in str(member.get("contact") or ""):
        plan.skipped = "no e-mail address in its contact"
    elif not results:
        plan.skipped = f"not scanned in run {run.id}"
    if not results:
        return plan
    since = _first_seen(store, run, mid)
    states = log.last_states(mid)
    failing: dict[str, Item] = {}
    decided: set[str] = set()
    for r in results:
        tkey = r.key
        for c in r.controls:
            key = f"{tkey}|{c.id}"
            if c.status in (Status.PASS, Status.WARN, Status.NOT_APPLICABLE):
                decided.add(key)
            item = _control_items(c, tkey, r.target)
            if item is not None:
                first = min(x for x in (since.get(key, run.started_at), run.started_at,
                                        states[key].first_seen if key in states and states[key].state ==
                                        "open" else None) if x is not None)
                failing[key] = Item(**{**item.__dict__, "first_seen": first})
    for key, item in failing.items():
        st = states.get(key)
        if st is None or st.state == "fixed":
            plan.new.append(item)
            continue
        item = Item(**{**item.__dict__, "last_sent": st.sent_at})
        days = intervals.get(item.severity.value, DEFAULT_INTERVALS["low"])
        (plan.due if now - st.sent_at >= timedelta(days=days) else plan.waiting).append(item)
    plan.fixed = [st for key, st in states.items() if st.state == "open" and key in decided]
    plan.new, plan.due, plan.waiting = worst_first(plan.new), worst_first(plan.due), worst_first(plan.waiting)
    plan.fixed.sort(key=lambda s: (-Severity(s.severity).rank, s.item_key))
    return plan


def plan_all(store: Store, log: SentLog, run: RunInfo, members: Iterable[dict[str, Any]], now: datetime,
             intervals: dict[str, int] | None = None) -> list[MemberPlan]:
    """One plan per member, in the members file's order."""
    return [plan_member(store, log, run, m, now, intervals) for m in members]
