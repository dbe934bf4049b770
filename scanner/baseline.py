"""The baseline as data: controls, how statuses aggregate and how grades cap. Which checks feed a control
is said once, by each check's metadata (``controls:``); the registry derives the reverse mapping.

The rules live in ``scanner/baselines/<id>-v<version>.json`` so the coalition can revise them and keep
old reports reproducible; this module only interprets that file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from importlib import resources

from pydantic import Field

from scanner.models import ControlResult, Finding, Frozen, Severity, Status, TargetKind

DEFAULT_BASELINE = "pledge4-v1"


class Control(Frozen):
    id: str
    area: str
    scope: TargetKind
    severity: Severity
    title: str
    requirement: str
    references: tuple[str, ...] = ()


class Grading(Frozen):
    status_credit: dict[str, float]
    severity_weight: dict[str, float]
    letters: tuple[tuple[str, float], ...]
    fail_caps: dict[str, str]
    warn_cap: str
    a_plus: str
    undecided_grade: str = "?"

    @property
    def order(self) -> tuple[str, ...]:
        """The grades from best to worst: A+ (every decided control passes), then the letters."""
        return ("A+", *(name for name, _ in self.letters))


class Aggregation(Frozen):
    precedence: tuple[Status, ...]


class Baseline(Frozen):
    id: str
    version: str
    title: str
    description: str
    areas: dict[str, str]
    controls: tuple[Control, ...]
    aggregation: Aggregation
    grading: Grading
    notes: dict[str, str] = Field(default_factory=dict)

    def control(self, cid: str) -> Control:
        for c in self.controls:
            if c.id == cid:
                return c
        raise KeyError(cid)

    def controls_for(self, kind: TargetKind) -> list[Control]:
        return [c for c in self.controls if c.scope == kind]

    # -- aggregation ---------------------------------------------------------------------------
    def control_result(self, control: Control, findings: Iterable[Finding],
                       unavailable: str | None = None) -> ControlResult:
        """Aggregate the findings of one control on one target into its status and severity."""
        found = tuple(findings)
        if unavailable and not found:
            err = Finding(check="pledgescan", control=control.id, status=Status.ERROR,
                          title="Not assessed", detail=unavailable)
            found = (err,)
        statuses = {f.status for f in found}
        status = next((s for s in self.aggregation.precedence if s in statuses), Status.ERROR)
        if not found:
            found = (Finding(check="pledgescan", control=control.id, status=Status.ERROR,
                             title="No check produced a result", detail="internal: no finding"),)
        severity = control.severity
        if status in (Status.FAIL, Status.WARN):
            sevs = [f.severity or control.severity for f in found if f.status == status]
            severity = max(sevs, key=lambda s: s.rank)
        return ControlResult(id=control.id, title=control.title, area=control.area, status=status,
                             severity=severity, findings=found)

    # -- grading -------------------------------------------------------------------------------
    def grade(self, results: Iterable[ControlResult]) -> tuple[str, int, int, int]:
        """(letter, score 0-100, decided controls, applicable controls) per the grading table."""
        g = self.grading
        decided = [r for r in results if r.status in (Status.PASS, Status.WARN, Status.FAIL)]
        applicable = [r for r in results if r.status != Status.NOT_APPLICABLE] if results else []
        applicable_n = len([r for r in results if r.status != Status.NOT_APPLICABLE])
        if not decided:
            return g.undecided_grade, 0, 0, applicable_n
        weights = [g.severity_weight[self.control(r.id).severity.value] for r in decided]
        credit = [g.status_credit[r.status.value] for r in decided]
        total = sum(weights) or 1.0
        score = round(100 * sum(w * c for w, c in zip(weights, credit, strict=True)) / total)
        letter = next((name for name, minimum in g.letters if score >= minimum), g.letters[-1][0])
        order = g.order
        caps = [g.fail_caps[r.severity.value] for r in decided if r.status == Status.FAIL]
        if any(r.status == Status.WARN for r in decided):
            caps.append(g.warn_cap)
        if all(r.status == Status.PASS for r in decided):
            letter = "A+"
        for cap in caps:
            if order.index(cap) > order.index(letter):
                letter = cap
        del applicable
        return letter, int(score), len(decided), applicable_n

    @staticmethod
    def worst_grade(grades: Iterable[str]) -> str:
        """A member's grade: the worst of its targets' ('?' only when nothing was decided)."""
        order = grade_order()
        known = [g for g in grades if g in order]
        return max(known, key=order.index) if known else load_baseline().grading.undecided_grade


def grade_order() -> tuple[str, ...]:
    """The grades from best to worst, as the bundled baseline's grading table defines them."""
    return load_baseline().grading.order


@cache
def load_baseline(name: str = DEFAULT_BASELINE) -> Baseline:
    """Load and validate a bundled baseline by name (``pledge4-v1``)."""
    text = resources.files("scanner").joinpath("baselines", f"{name}.json").read_text("utf-8")
    return Baseline.model_validate(json.loads(text))
