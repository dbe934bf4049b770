"""What changed between two runs: per member, target and control, what newly fails, what was fixed,
and grade changes. Works on stored summaries (statuses and grades, no evidence), so diffing two runs
of hundreds of targets stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from scanner.baseline import grade_order
from scanner.store import ResultSummary, RunInfo, Store, StoreError

GRADES = list(grade_order())
BADNESS = {"pass": 0, "warn": 1, "fail": 2}  # error / not_applicable are undecided: never a regression
ChangeKind = Literal["newly_failing", "regressed", "fixed", "improved", "changed"]


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
    target: str
    grade_before: str | None  # None: the target is new
    grade_after: str | None  # None: the target was removed
    score_before: int | None
    score_after: int | None


@dataclass
class MemberDiff:
    member: str | None
    name: str
    grade_before: str | None
    grade_after: str | None
    score_before: float | None
    score_after: float | None
    controls: list[ControlChange] = field(default_factory=list)
    targets: list[TargetGrade] = field(default_factory=list)  # grade changes, added and removed targets

    @property
    def newly_failing(self) -> list[ControlChange]:
        return [c for c in self.controls if c.change == "newly_failing"]

    @property
    def fixed(self) -> list[ControlChange]:
        return [c for c in self.controls if c.change == "fixed"]

    @property
    def regressed(self) -> bool:
        """Anything worse: a control, a target's grade or the member's grade."""
        return (any(c.worse for c in self.controls)
                or grade_worse(self.grade_before, self.grade_after)
                or any(grade_worse(t.grade_before, t.grade_after) for t in self.targets))

    @property
    def changed(self) -> bool:
        return bool(self.controls or self.targets or self.grade_before != self.grade_after)


@dataclass
class RunDiff:
    run_a: RunInfo | None
    run_b: RunInfo
    members: list[MemberDiff]

    @property
    def regressed(self) -> bool:
        return any(m.regressed for m in self.members)

    def counts(self) -> dict[str, int]:
        out = {"newly_failing": 0, "regressed": 0, "fixed": 0, "improved": 0, "changed": 0}
        for m in self.members:
            for c in m.controls:
                out[c.change] += 1
        out["members_worse"] = sum(1 for m in self.members if grade_worse(m.grade_before, m.grade_after))
        out["members_better"] = sum(1 for m in self.members if grade_better(m.grade_before, m.grade_after))
        return out

    def to_json(self) -> dict[str, Any]:
        def run(r: RunInfo | None) -> dict[str, Any] | None:
            return None if r is None else {"id": r.id, "started_at": r.started_at.isoformat(),
                                           "status": r.status, "baseline": r.baseline}

        return {
            "run_a": run(self.run_a), "run_b": run(self.run_b), "regressed": self.regressed,
            "counts": self.counts(),
            "members": [{
                "member": m.member, "name": m.name, "grade_before": m.grade_before,
                "grade_after": m.grade_after, "score_before": m.score_before, "score_after": m.score_after,
                "regressed": m.regressed,
                "controls": [asdict(c) for c in m.controls],
                "targets": [asdict(t) for t in m.targets],
            } for m in self.members if m.changed],
        }


def _member_grade(rows: list[ResultSummary]) -> tuple[str | None, float | None]:
    from scanner.baseline import Baseline

    if not rows:
        return None, None
    scores = [r.score for r in rows if r.decided]
    mean = round(sum(scores) / len(scores), 1) if scores else None
    return Baseline.worst_grade(r.grade for r in rows), mean


def compare_summaries(before: Iterable[ResultSummary], after: Iterable[ResultSummary],
                      names: dict[str | None, str] | None = None,
                      titles: dict[str, str] | None = None) -> list[MemberDiff]:
    """Member-by-member changes from ``before`` to ``after`` (members in ``after`` order first)."""
    names = names or {}
    titles = titles or {}
    by_member: dict[str | None, tuple[list[ResultSummary], list[ResultSummary]]] = {}
    for r in after:
        by_member.setdefault(r.member, ([], []))[1].append(r)
    for r in before:
        by_member.setdefault(r.member, ([], []))[0].append(r)
    out = []
    for member, (rows_a, rows_b) in by_member.items():
        ga, sa = _member_grade(rows_a)
        gb, sb = _member_grade(rows_b)
        md = MemberDiff(member=member, name=names.get(member) or member or "(no member)",
                        grade_before=ga, grade_after=gb, score_before=sa, score_after=sb)
        old = {r.target_key: r for r in rows_a}
        new_keys = {r.target_key for r in rows_b}
        for rb in rows_b:
            ra = old.get(rb.target_key)
            if ra is None:
                md.targets.append(TargetGrade(rb.target, None, rb.grade, None, rb.score))
                continue
            if ra.grade != rb.grade:
                md.targets.append(TargetGrade(rb.target, ra.grade, rb.grade, ra.score, rb.score))
            for cid, (st_b, sev_b) in rb.controls.items():
                st_a = ra.controls.get(cid, (None, None))[0]
                if st_a is None or st_a == st_b:
                    continue
                md.controls.append(ControlChange(
                    target=rb.target, kind_of_target=rb.kind, control=cid, title=titles.get(cid, cid),
                    before=st_a, after=st_b, severity=sev_b if st_b in ("fail", "warn") else
                    ra.controls[cid][1], change=_classify(st_a, st_b)))
        for ra in rows_a:
            if ra.target_key not in new_keys:
                md.targets.append(TargetGrade(ra.target, ra.grade, None, ra.score, None))
        out.append(md)
    return out


def _classify(before: str, after: str) -> ChangeKind:
    if before in BADNESS and after in BADNESS:
        if BADNESS[after] > BADNESS[before]:
            return "newly_failing" if after == "fail" else "regressed"
        return "fixed" if before == "fail" else "improved"
    return "changed"


def diff_runs(store: Store, run_a: RunInfo | None, run_b: RunInfo) -> RunDiff:
    """Compare two stored runs (``run_a`` None: everything in ``run_b`` is new)."""
    from scanner.baseline import load_baseline

    titles = {c.id: c.title for c in load_baseline().controls}
    names: dict[str | None, str] = {}
    for r in (run_a, run_b):
        for m in (r.members if r else []):
            names[m.get("id")] = m.get("name") or m.get("id")
    before = store.summaries(run_a.id) if run_a else []
    after = store.summaries(run_b.id)
    if run_b.status != "complete":  # targets it has not reached yet are not "removed"
        scanned = {r.target_key for r in after}
        before = [r for r in before if r.target_key in scanned]
    return RunDiff(run_a, run_b, compare_summaries(before, after, names, titles))


def default_pair(store: Store, a: str | None = None, b: str | None = None) -> tuple[RunInfo, RunInfo]:
    """``diff`` without arguments: the latest run and the previous run of the same inventory (else the
    run before it). With one argument: that run and its predecessor."""
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
    rows = 0
    for m in diff.members:
        if not m.changed:
            continue
        grade = f"{m.grade_before or '-'} -> {m.grade_after or '-'}" if m.grade_before != m.grade_after \
            else (m.grade_after or "-")
        first = True
        for t in m.targets:
            what = "added" if t.grade_before is None else "removed" if t.grade_after is None else \
                f"grade {t.grade_before} -> {t.grade_after}"
            table.add_row(m.name if first else "", grade if first else "", t.target, "", what)
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
    console.print(f"{counts['newly_failing']} newly failing, {counts['regressed']} regressed, "
                  f"{counts['fixed']} fixed, {counts['improved']} improved; members: "
                  f"{counts['members_worse']} worse, {counts['members_better']} better")
