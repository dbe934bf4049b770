"""HTML report: one self-contained file (inline CSS and SVG, no script, no external asset).

Rendered with Jinja2 from the installed ``templates`` package with autoescaping on: everything that
came from a server (titles quoting headers, cookie names, evidence) is escaped by the template engine.
Python builds a small view model (grouping, counts, bounded evidence trees); the templates only lay
it out. ``make_environment`` is shared with the other HTML reports (portfolio, member, diff).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from scanner.baseline import Baseline
from scanner.models import ControlResult, Finding, Report, Severity, Status, TargetResult
from scanner.reporters import finding_severity, jsonable, report_baseline, severity_counts, top_finding

TEMPLATE_PACKAGE = "templates"
MAX_TEXT = 500  # characters of one evidence string shown
MAX_ITEMS = 50  # entries of one evidence list or mapping shown
MAX_DEPTH = 6  # nesting of evidence shown
MAX_NODES = 1500  # evidence nodes shown per finding
DEFAULT_AREAS = {"T": "Encrypted transport", "H": "HTTPS enforcement and browser protections",
                 "C": "Cookies", "E": "Exposed surfaces", "D": "Domain and e-mail"}
STATUS_LABELS = {"pass": "Pass", "warn": "Warning", "fail": "Fail", "error": "Not assessed",
                 "not_applicable": "Not applicable"}
STATUS_ICONS = {"pass": "✓", "warn": "!", "fail": "✗", "error": "?", "not_applicable": "–"}


# -- bounded evidence trees ---------------------------------------------------------------------

@dataclass
class EvNode:
    """One node of an evidence tree, ready for the ``evidence`` macro.

    kind: ``text`` (``text``, ``clipped`` characters cut), ``none``, ``map`` (``entries``: key, node),
    ``list`` (``values``), ``table`` (``columns``, ``rows`` of nodes); ``more``: entries not shown.
    """

    kind: str
    text: str = ""
    clipped: int = 0
    entries: list[tuple[str, EvNode]] = field(default_factory=list)
    values: list[EvNode] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    rows: list[list[EvNode]] = field(default_factory=list)
    more: int = 0


def clip(text: Any, limit: int = MAX_TEXT) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis (the template escapes it)."""
    s = "" if text is None else str(text)
    return s if len(s) <= limit else s[:limit] + "…"


def shape_evidence(value: Any, *, max_text: int = MAX_TEXT, max_items: int = MAX_ITEMS,
                   max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES) -> EvNode:
    """Turn arbitrary JSON evidence into a bounded tree of ``EvNode`` (text is never marked safe)."""
    budget = [max_nodes]

    def text(v: Any) -> EvNode:
        if v is None:
            return EvNode("none", "—")
        s = ("yes" if v else "no") if isinstance(v, bool) else str(v)
        if len(s) > max_text:
            return EvNode("text", s[:max_text], clipped=len(s) - max_text)
        return EvNode("text", s)

    def scalar(v: Any) -> bool:
        return not isinstance(v, Mapping | list)

    def walk(v: Any, depth: int) -> EvNode:
        budget[0] -= 1
        if budget[0] < 0:
            return EvNode("text", "…", clipped=0)
        if scalar(v):
            return text(v)
        if depth >= max_depth:
            return EvNode("text", clip(repr(v), max_text))
        if isinstance(v, Mapping):
            items = list(v.items())
            node = EvNode("map", more=max(0, len(items) - max_items))
            node.entries = [(clip(k, 120), walk(x, depth + 1)) for k, x in items[:max_items]]
            return node
        shown = v[:max_items]
        more = max(0, len(v) - max_items)
        if len(shown) >= 2 and all(isinstance(x, Mapping) for x in shown):
            cols = list(dict.fromkeys(str(k) for x in shown for k in x))
            if len(cols) <= 8 and all(scalar(y) for x in shown for y in x.values()):
                rows = []
                for x in shown:
                    row_map = {str(k): y for k, y in x.items()}
                    rows.append([walk(row_map.get(c), depth + 1) if c in row_map else EvNode("none", "")
                                 for c in cols])
                return EvNode("table", columns=[clip(c, 120) for c in cols], rows=rows, more=more)
        return EvNode("list", values=[walk(x, depth + 1) for x in shown], more=more)

    return walk(jsonable(value), 0)


# -- view model ---------------------------------------------------------------------------------

@dataclass
class FindingView:
    finding: Finding
    severity: Severity | None
    evidence: EvNode | None
    show_remediation: bool


@dataclass
class ControlView:
    result: ControlResult
    anchor: str
    requirement: str | None
    references: tuple[str, ...]
    findings: list[FindingView]
    top: Finding | None

    @property
    def open(self) -> bool:
        return self.result.status in (Status.FAIL, Status.WARN, Status.ERROR)


@dataclass
class AreaView:
    code: str
    name: str
    controls: list[ControlView]

    @property
    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in Status}
        for c in self.controls:
            out[c.result.status.value] += 1
        return out


@dataclass
class TargetView:
    result: TargetResult
    anchor: str
    areas: list[AreaView]
    priorities: list[ControlView]  # failing then warning controls, heaviest first
    fails: dict[str, int]
    warns: int
    not_assessed: int
    not_applicable: int
    grade_note: str | None = None  # why the grade is lower than the score alone would give

    @property
    def undecided(self) -> int:
        return max(0, self.result.applicable - self.result.decided)


@dataclass
class MemberView:
    id: str | None
    name: str
    grade: str
    targets: list[TargetView]


def area_names(baseline: Baseline | None) -> dict[str, str]:
    return dict(baseline.areas) if baseline is not None else dict(DEFAULT_AREAS)


def target_view(result: TargetResult, index: int, baseline: Baseline | None) -> TargetView:
    anchor = f"t{index}"
    names = area_names(baseline)
    views: list[ControlView] = []
    for c in result.controls:
        requirement, references = None, ()
        if baseline is not None:
            try:
                bc = baseline.control(c.id)
                requirement, references = bc.requirement, bc.references
            except KeyError:
                pass
        findings = [
            FindingView(
                finding=f,
                severity=finding_severity(f, c),
                evidence=shape_evidence(f.evidence) if f.evidence else None,
                show_remediation=bool(f.remediation) and f.status in (Status.FAIL, Status.WARN),
            )
            for f in _ordered(c.findings)
        ]
        views.append(ControlView(result=c, anchor=f"{anchor}-{c.id}", requirement=requirement,
                                 references=tuple(references), findings=findings, top=top_finding(c)))
    order = list(names) + sorted({v.result.area for v in views} - set(names))
    areas = [AreaView(code=a, name=names.get(a, a), controls=[v for v in views if v.result.area == a])
             for a in order]
    priorities = sorted((v for v in views if v.result.status in (Status.FAIL, Status.WARN)),
                        key=lambda v: (v.result.status != Status.FAIL, -v.result.severity.rank))
    statuses = [c.status for c in result.controls]
    return TargetView(
        result=result, anchor=anchor, areas=[a for a in areas if a.controls], priorities=priorities,
        fails=severity_counts(result.controls, Status.FAIL), warns=statuses.count(Status.WARN),
        not_assessed=statuses.count(Status.ERROR), not_applicable=statuses.count(Status.NOT_APPLICABLE),
        grade_note=grade_note(result, baseline),
    )


def grade_note(result: TargetResult, baseline: Baseline | None) -> str | None:
    """Explain a grade capped below what the score gives (e.g. score 82 but a critical fail: F)."""
    if baseline is None or result.grade in ("A+", "?"):
        return None
    g = baseline.grading
    by_score = next((name for name, minimum in g.letters if result.score >= minimum), g.letters[-1][0])
    if by_score == result.grade:
        return None
    causes = [c for c in result.controls if c.status == Status.FAIL
              and g.fail_caps.get(c.severity.value) == result.grade]
    if causes:
        names = ", ".join(f"{c.id} {c.title}" for c in causes[:5]) + (" ..." if len(causes) > 5 else "")
        kind = f"{causes[0].severity.value} failure{'s' if len(causes) > 1 else ''}"
        return (f"A score of {result.score} alone would give {by_score}; the {kind} ({names}) "
                f"cap{'s' if len(causes) == 1 else ''} the grade at {result.grade}.")
    if g.warn_cap == result.grade and any(c.status == Status.WARN for c in result.controls):
        return (f"A score of {result.score} alone would give {by_score}; warnings cap the grade at "
                f"{result.grade}.")
    return None


def _ordered(findings: Iterable[Finding]) -> list[Finding]:
    rank = {s: i for i, s in enumerate((Status.FAIL, Status.ERROR, Status.WARN, Status.PASS,
                                        Status.NOT_APPLICABLE))}
    return sorted(findings, key=lambda f: rank[f.status])


def member_views(targets: list[TargetView]) -> list[MemberView]:
    """Targets grouped by member (only members that are set), member grade = worst of its targets."""
    groups: dict[str, list[TargetView]] = {}
    for t in targets:
        if t.result.member is not None:
            groups.setdefault(t.result.member, []).append(t)
    return [MemberView(id=mid, name=ts[0].result.member_name or mid,
                       grade=Baseline.worst_grade(t.result.grade for t in ts), targets=ts)
            for mid, ts in groups.items()]


def report_context(report: Report) -> dict[str, Any]:
    """Everything ``report.html`` needs."""
    baseline = report_baseline(report)
    targets = [target_view(t, i, baseline) for i, t in enumerate(report.targets, start=1)]
    grades: dict[str, int] = {}
    for t in report.targets:
        grades[t.grade] = grades.get(t.grade, 0) + 1
    return {
        "report": report,
        "baseline": baseline,
        "baseline_title": baseline.title if baseline else f"Baseline {report.baseline.id}",
        "targets": targets,
        "members": member_views(targets),
        "grades": dict(sorted(grades.items(), key=lambda kv: _GRADE_ORDER.index(kv[0])
                              if kv[0] in _GRADE_ORDER else 99)),
        "stats": shape_evidence(report.stats) if report.stats else None,
    }


_GRADE_ORDER = ["A+", "A", "B", "C", "D", "E", "F", "?"]


# -- environment --------------------------------------------------------------------------------

def grade_class(grade: str) -> str:
    """CSS class of a grade: ``g-Aplus``, ``g-A`` ... ``g-F``, ``g-unknown``."""
    safe = {"A+": "Aplus", "A": "A", "B": "B", "C": "C", "D": "D", "E": "E", "F": "F"}
    return "g-" + safe.get(str(grade), "unknown")


def format_datetime(value: datetime | None) -> str:
    if value is None:
        return "—"
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return value.strftime("%Y-%m-%d %H:%M")


def make_environment() -> Environment:
    """The Jinja2 environment of every HTML report: package templates, autoescape always on,
    undefined variables are errors, and the filters/globals the macros use."""
    env = Environment(
        loader=PackageLoader(TEMPLATE_PACKAGE, "."),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["clip"] = clip
    env.filters["grade_class"] = grade_class
    env.filters["datetime"] = format_datetime
    env.globals["STATUS_LABELS"] = STATUS_LABELS
    env.globals["STATUS_ICONS"] = STATUS_ICONS
    env.globals["shape_evidence"] = shape_evidence
    return env


class HtmlReporter:
    """``--format html``: the report a member's engineer reads."""

    format = "html"
    extension = "html"
    template = "report.html"

    def __init__(self, environment: Environment | None = None) -> None:
        self._env = environment

    @property
    def environment(self) -> Environment:
        if self._env is None:
            self._env = make_environment()
        return self._env

    def render(self, report: Report) -> str:
        return self.environment.get_template(self.template).render(**report_context(report))
