"""What changed, per target identity: each target (member id + target) of a run is compared with its
own last *decided* result (the last run, up to the reference run, in which it was reached and at least
one control could be assessed), whatever else changed in the inventory. A target that no longer answers
is *unreachable* (a state of its own: never a fix, never a regression, kept out of grade and score
comparisons); members and targets that joined or left are *new* or *removed*, never a change of grade.

Works on stored summaries (statuses and grades, no evidence), so comparing runs of hundreds of targets
stays cheap.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from scanner import i18n
from scanner.baseline import grade_order
from scanner.history.store import Observation, ResultSummary, RunInfo, Store, StoreError

GRADES = list(grade_order())
BADNESS = {"pass": 0, "warn": 1, "fail": 2}  # error / not_applicable are undecided: never a regression
ChangeKind = Literal["newly_failing", "regressed", "fixed", "improved", "changed"]
# assessed: reached now and before; back: reached again after being unreachable; new: never assessed
# before; unreachable: assessed before, not now; not_assessed: never reached; removed: left the inventory
TargetState = Literal["assessed", "back", "new", "unreachable", "not_assessed", "removed"]
MemberState = Literal["assessed", "new", "unreachable", "removed"]


def grade_worse(before: str | None, after: str | None) -> bool:
    return before in GRADES and after in GRADES and GRADES.index(after) > GRADES.index(before)


def grade_better(before: str | None, after: str | None) -> bool:
    return before in GRADES and after in GRADES and GRADES.index(after) < GRADES.index(before)


@dataclass(frozen=True)
class ControlChange:
    target: str
    kind_of_target: str
    control: str
    title: str
    before: str
    after: str
    severity: str
    change: ChangeKind

    @property
    def worse(self) -> bool:
        return self.change in ("newly_failing", "regressed")


@dataclass(frozen=True)
class TargetGrade:
    """A target's state in the later run against its own past (only notable ones are listed)."""

    target: str
    grade_before: str | None  # its last decided result's grade (None: never assessed before)
    grade_after: str | None  # now (None: removed, or not reached now)
    score_before: int | None
    score_after: int | None
    state: TargetState = "assessed"
    compared_run: int | None = None  # the run of the result it is compared with
    last_assessed: datetime | None = None  # when that result was taken
    unreachable_since: datetime | None = None  # unreachable / back: first run it did not answer

    @property
    def worse(self) -> bool:
        return self.state in ("assessed", "back") and grade_worse(self.grade_before, self.grade_after)


@dataclass
class MemberDiff:
    member: str | None
    name: str
    grade_before: str | None  # worst grade over the targets assessed in both (None: nothing comparable)
    grade_after: str | None
    score_before: float | None  # mean score over the same targets
    score_after: float | None
    controls: list[ControlChange] = field(default_factory=list)
    targets: list[TargetGrade] = field(default_factory=list)  # notable target states (see TargetState)
    state: MemberState = "assessed"

    @property
    def newly_failing(self) -> list[ControlChange]:
        return [c for c in self.controls if c.change == "newly_failing"]

    @property
    def fixed(self) -> list[ControlChange]:
        return [c for c in self.controls if c.change == "fixed"]

    @property
    def unreachable(self) -> list[TargetGrade]:
        return [t for t in self.targets if t.state == "unreachable"]

    @property
    def regressed(self) -> bool:
        """Anything worse among the targets assessed in both: a control, a target's or the member's grade."""
        return (any(c.worse for c in self.controls) or grade_worse(self.grade_before, self.grade_after)
                or any(t.worse for t in self.targets))

    @property
    def changed(self) -> bool:
        return bool(self.controls or self.targets or self.grade_before != self.grade_after
                    or self.state != "assessed")


@dataclass
class RunDiff:
    run_a: RunInfo | None
    run_b: RunInfo
    members: list[MemberDiff]

    @property
    def regressed(self) -> bool:
        return any(m.regressed for m in self.members)

    @property
    def unreachable(self) -> list[TargetGrade]:
        """Targets that answered before and do not now (``--fail-on-unreachable``)."""
        return [t for m in self.members for t in m.unreachable]

    def counts(self) -> dict[str, int]:
        out = {"newly_failing": 0, "regressed": 0, "fixed": 0, "improved": 0, "changed": 0}
        for m in self.members:
            for c in m.controls:
                out[c.change] += 1
        states = [t.state for m in self.members for t in m.targets]
        out["unreachable"] = states.count("unreachable")
        out["back"] = states.count("back")
        out["not_assessed"] = states.count("not_assessed")
        out["targets_added"] = states.count("new")
        out["targets_removed"] = states.count("removed")
        out["members_worse"] = sum(1 for m in self.members if grade_worse(m.grade_before, m.grade_after))
        out["members_better"] = sum(1 for m in self.members if grade_better(m.grade_before, m.grade_after))
        out["members_added"] = sum(1 for m in self.members if m.state == "new")
        out["members_removed"] = sum(1 for m in self.members if m.state == "removed")
        out["members_unreachable"] = sum(1 for m in self.members if m.state == "unreachable")
        return out

    def to_json(self) -> dict[str, Any]:
        def run(r: RunInfo | None) -> dict[str, Any] | None:
            return None if r is None else {"id": r.id, "started_at": r.started_at.isoformat(),
                                           "status": r.status, "baseline": r.baseline}

        def target(t: TargetGrade) -> dict[str, Any]:
            d = asdict(t)
            for k in ("last_assessed", "unreachable_since"):
                d[k] = d[k].isoformat() if d[k] else None
            return d

        return {
            "run_a": run(self.run_a), "run_b": run(self.run_b), "regressed": self.regressed,
            "comparison": "per target: each target with its own last decided result up to run_a",
            "counts": self.counts(),
            "members": [{
                "member": m.member, "name": m.name, "state": m.state, "grade_before": m.grade_before,
                "grade_after": m.grade_after, "score_before": m.score_before, "score_after": m.score_after,
                "regressed": m.regressed,
                "controls": [asdict(c) for c in m.controls],
                "targets": [target(t) for t in m.targets],
            } for m in self.members if m.changed],
        }


def _grade_and_mean(rows: list[ResultSummary]) -> tuple[str | None, float | None]:
    from scanner.baseline import Baseline

    if not rows:
        return None, None
    scores = [r.score for r in rows if r.decided]
    mean = round(sum(scores) / len(scores), 1) if scores else None
    return Baseline.worst_grade(r.grade for r in rows), mean


def _classify(before: str, after: str) -> ChangeKind:
    if before in BADNESS and after in BADNESS:
        if BADNESS[after] > BADNESS[before]:
            return "newly_failing" if after == "fail" else "regressed"
        return "fixed" if before == "fail" else "improved"
    return "changed"


def _control_changes(ra: ResultSummary, rb: ResultSummary, titles: dict[str, str],
                     earlier: dict[str, tuple[str, str]] | None = None) -> list[ControlChange]:
    """Control by control; a control undecided in ``ra`` (error) is compared with its last decided
    status before it (``earlier``), like the target itself."""
    out = []
    for cid, (st_b, sev_b) in rb.controls.items():
        st_a, sev_a = ra.controls.get(cid, (None, None))
        if st_a not in BADNESS and st_b in BADNESS and earlier and cid in earlier:
            st_a, sev_a = earlier[cid]
        if st_a is None or st_a == st_b:
            continue
        out.append(ControlChange(
            target=rb.target, kind_of_target=rb.kind, control=cid, title=titles.get(cid, cid),
            before=st_a, after=st_b, severity=sev_b if st_b in ("fail", "warn") else str(sev_a),
            change=_classify(st_a, st_b)))
    return out


def _earlier_controls(store: Store, run_a: RunInfo, run_b: RunInfo,
                      pairs: list[tuple[ResultSummary, ResultSummary]]
                      ) -> dict[tuple[str | None, str], dict[str, tuple[str, str]]]:
    """For controls decided now but not in the result compared with: their last decided status."""
    wanted: dict[tuple[str | None, str], set[str]] = {}
    for ra, rb in pairs:
        for c, (st, _sev) in rb.controls.items():
            if st in BADNESS and ra.controls.get(c, ("", ""))[0] not in BADNESS:
                wanted.setdefault((rb.member, rb.target_key), set()).add(c)
    out: dict[tuple[str | None, str], dict[str, tuple[str, str]]] = {}
    if not wanted:
        return out
    for o in store.observations(upto=run_a.id, selection=run_b.selection, with_controls=True,
                                target_keys={k for _m, k in wanted}):
        for cid in wanted.get((o.member, o.target_key), ()):
            st = o.controls.get(cid)
            if st is not None and st[0] in BADNESS:
                out.setdefault((o.member, o.target_key), {})[cid] = st  # oldest first: the last one wins
    return out


@dataclass(frozen=True)
class _Past:
    """What the store knows of one target before the later run."""

    reference: Observation | None  # last decided result up to the reference run
    seen: bool  # any earlier result at all
    down_since: datetime | None  # first result after the reference in which it was not reached


def _pasts(store: Store, run_a: RunInfo | None, run_b: RunInfo,
           identities: set[tuple[str | None, str]]) -> dict[tuple[str | None, str], _Past]:
    if run_a is None:
        return {}
    history: dict[tuple[str | None, str], list[Observation]] = {}
    for o in store.observations(upto=run_b.id - 1, selection=run_b.selection,
                                target_keys={k for _m, k in identities}):
        if (o.member, o.target_key) in identities:
            history.setdefault((o.member, o.target_key), []).append(o)
    out = {}
    for ident, obs in history.items():
        upto_a = [o for o in obs if o.run_id <= run_a.id]
        ref = next((o for o in reversed(upto_a) if o.reached), None)
        after_ref = [o for o in obs if ref is None or o.run_id > ref.run_id]
        down = next((o.started_at for o in after_ref if not o.reached), None)
        out[ident] = _Past(ref, bool(upto_a), down)
    return out


def compare_runs(store: Store, run_a: RunInfo | None, run_b: RunInfo,
                 names: dict[str | None, str] | None = None,
                 titles: dict[str, str] | None = None) -> list[MemberDiff]:
    """Member by member, each target of ``run_b`` against its own past up to ``run_a`` (None: all new).
    Targets ``run_b`` has not reached yet (an unfinished run) are left out, not removed."""
    names = names or {}
    titles = titles or {}
    after = store.summaries(run_b.id)
    identities = {(r.member, r.target_key) for r in after}
    pasts = _pasts(store, run_a, run_b, identities)
    refs = store.summaries_by_id(p.reference.result_id for p in pasts.values() if p.reference)
    by_member: dict[str | None, list[ResultSummary]] = {}
    for r in after:
        by_member.setdefault(r.member, []).append(r)
    removed: dict[str | None, list[ResultSummary]] = {}
    # "removed" only between runs of one inventory, or of two members files (a portfolio compared with
    # an earlier one-URL scan does not "remove" that URL)
    if run_a is not None and (run_a.inventory == run_b.inventory or (run_a.members and run_b.members)):
        planned = set(store.plan_keys(run_b.id))
        for r in store.summaries(run_a.id):
            if (r.member, r.target_key) not in planned:
                removed.setdefault(r.member, []).append(r)
    pairs = [(refs[p.reference.result_id], rb) for rb in after if rb.decided
             for p in [pasts.get((rb.member, rb.target_key))] if p and p.reference
             and p.reference.result_id in refs]
    earlier = _earlier_controls(store, run_a, run_b, pairs) if run_a is not None else {}
    out = []
    for member in [*by_member, *(m for m in removed if m not in by_member)]:
        rows = by_member.get(member, [])
        md = MemberDiff(member=member, name=names.get(member) or member or "(no member)",
                        grade_before=None, grade_after=None, score_before=None, score_after=None)
        compared_a: list[ResultSummary] = []
        compared_b: list[ResultSummary] = []
        for rb in rows:
            past = pasts.get((member, rb.target_key), _Past(None, False, None))
            ref = past.reference
            ra = refs.get(ref.result_id) if ref else None
            if rb.decided and ra is not None:
                back = past.down_since is not None
                if back or ra.grade != rb.grade:
                    md.targets.append(TargetGrade(rb.target, ra.grade, rb.grade, ra.score, rb.score,
                                                  "back" if back else "assessed", ref.run_id if ref else None,
                                                  ref.started_at if ref else None, past.down_since))
                md.controls.extend(_control_changes(ra, rb, titles, earlier.get((member, rb.target_key))))
                compared_a.append(ra)
                compared_b.append(rb)
            elif rb.decided:
                md.targets.append(TargetGrade(rb.target, None, rb.grade, None, rb.score, "new"))
            elif ra is not None and ref is not None:
                since = past.down_since or run_b.started_at
                md.targets.append(TargetGrade(rb.target, ra.grade, None, ra.score, None, "unreachable",
                                              ref.run_id, ref.started_at, since))
            else:
                md.targets.append(TargetGrade(rb.target, None, None, None, None,
                                              "not_assessed" if past.seen else "new"))
        for ra in removed.get(member, []):
            md.targets.append(TargetGrade(ra.target, ra.grade, None, ra.score, None, "removed", run_a.id
                                          if run_a else None))
        md.grade_before, md.score_before = _grade_and_mean(compared_a)
        md.grade_after, md.score_after = _grade_and_mean(compared_b)
        states = {t.state for t in md.targets} if not compared_b else set()
        if not rows:
            md.state = "removed"
        elif states and states <= {"new"}:
            md.state = "new"
        elif "unreachable" in states and states <= {"unreachable", "not_assessed"}:
            md.state = "unreachable"
        out.append(md)
    return out


def diff_runs(store: Store, run_a: RunInfo | None, run_b: RunInfo) -> RunDiff:
    """Compare ``run_b`` with the past up to ``run_a`` (``run_a`` None: everything in ``run_b`` is new)."""
    from scanner.baseline import load_baseline

    titles = {c.id: c.title for c in load_baseline().controls}
    names: dict[str | None, str] = {}
    for r in (run_a, run_b):
        for m in (r.members if r else []):
            names[m.get("id")] = m.get("name") or m.get("id")
    return RunDiff(run_a, run_b, compare_runs(store, run_a, run_b, names, titles))


def default_pair(store: Store, a: str | None = None, b: str | None = None) -> tuple[RunInfo, RunInfo]:
    """``diff`` without arguments: the latest run and the previous complete run of the same inventory
    (else the run before it), with the same check selection. With one argument: that run and its
    predecessor. Each target is then compared with its last decided result up to that run."""
    if a is not None and b is not None:
        return store.run(a), store.run(b)
    run_b = store.run(a if a is not None else "latest")
    prev = store.previous_run(run_b.id) or store.previous_run(run_b.id, same_inventory=False)
    if prev is None:
        raise StoreError(f"run {run_b.id} has no earlier complete run to compare with")
    return prev, run_b


def print_diff(diff: RunDiff, console: Any = None) -> None:
    """The terminal table: one row per changed control, grouped by member."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    if console is None:
        console = Console()
        if not console.is_terminal:  # a log file or a pipe: whole URLs and changes, not 80 columns
            console = Console(width=200)
    a = f"run {diff.run_a.id}" if diff.run_a else "nothing"
    console.print(f"Changes from {a} to run {diff.run_b.id}")
    b = diff.run_b
    if b.status != "complete":
        console.print(f"run {b.id} is {b.status} ({b.targets_done}/{b.targets_total} targets): "
                      "only the targets it scanned are compared")
    table = Table(show_lines=False)
    for col in ("Member", "Grade", "Target", "Control", "Change"):
        table.add_column(col)
    style = {"newly_failing": "bold red", "regressed": "red", "fixed": "green", "improved": "green",
             "changed": "yellow"}
    states = {"new": "new member", "removed": "left the inventory", "unreachable": "unreachable"}
    rows = 0
    for m in diff.members:
        if not m.changed:
            continue
        grade = f"{m.grade_before or '-'} -> {m.grade_after or '-'}" if m.grade_before != m.grade_after \
            else (m.grade_after or states.get(m.state, "-"))
        first = True
        for t in m.targets:
            table.add_row(m.name if first else "", grade if first else "", t.target, "",
                          Text(target_state(t, "en"), style="red" if t.worse else ""))
            first, rows = False, rows + 1
        for c in m.controls:
            table.add_row(m.name if first else "", grade if first else "", c.target,
                          f"{c.control} {c.title}",
                          Text(f"{c.change.replace('_', ' ')}: {c.before} -> {c.after}",
                               style=style[c.change]))
            first, rows = False, rows + 1
        if first:
            table.add_row(m.name, grade, "", "", "")
            rows += 1
    if rows:
        console.print(table)
    counts = diff.counts()
    console.print(summary_line(counts, "en"))


def summary_line(counts: dict[str, int], lang: str | None = None) -> str:
    """The one-line count of a diff (terminal, HTML) in ``lang`` (default: the current language); new
    and removed are named only when there are any."""
    _ = i18n.gettext_for(lang or i18n.current())
    line = _("%(newly_failing)d newly failing, %(regressed)d regressed, %(fixed)d fixed, "
             "%(improved)d improved; %(unreachable)d unreachable") % counts
    if counts["back"]:
        line += ", " + _("%(back)d reachable again") % counts
    parts = [line]
    if counts["targets_added"] or counts["targets_removed"]:
        parts.append(_("targets: %(targets_added)d new, %(targets_removed)d removed") % counts)
    members = _("members: %(members_worse)d worse, %(members_better)d better") % counts
    if counts["members_added"] or counts["members_removed"]:
        members += ", " + _("%(members_added)d new, %(members_removed)d removed") % counts
    return "; ".join([*parts, members])


def _day(when: datetime | None) -> str:
    return f"{when:%Y-%m-%d}" if when else "?"


def target_state(t: TargetGrade, lang: str | None = None) -> str:
    """A target's state in words, in ``lang`` (default: the current language): 'unreachable since
    2026-09-01 (last assessed 2026-08-25: grade A+)'."""
    _ = i18n.gettext_for(lang or i18n.current())
    values = {"since": _day(t.unreachable_since), "date": _day(t.last_assessed), "before": t.grade_before,
              "after": t.grade_after}
    if t.state == "unreachable":
        return _("unreachable since %(since)s (last assessed %(date)s: grade %(before)s)") % values
    if t.state == "back":
        if t.grade_before != t.grade_after:
            return _("reachable again (unreachable since %(since)s); grade %(before)s -> %(after)s") % values
        return _("reachable again (unreachable since %(since)s); grade %(after)s") % values
    if t.state == "new":
        return _("new target, grade %(after)s") % values if t.grade_after else _("new target, not reachable")
    if t.state == "removed":
        return _("removed from the inventory")
    if t.state == "not_assessed":
        return _("not assessed (never reached)")
    return _("grade %(before)s -> %(after)s") % values
