"""Spreadsheet report (openpyxl): sheets Members, Targets and Findings, for the secretariat's follow-up.

Members: one row per member (grade, score, failing controls per area, warnings, not assessed, targets,
contact, change since the last run when the portfolio knows it). Targets: one row per target. Findings:
one row per failing or warning control, with what to do. What was not assessed is an empty cell, never 0.
Text from servers is stored as text, never as a formula (a leading ``=`` stays literal).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scanner.baseline import Baseline, grade_order
from scanner.models import Report, Status, TargetResult
from scanner.reporters import readable, report_baseline, severity_counts, top_finding
from scanner.reporters.stream import ReportStream, as_stream

MAX_CELL = 32_000  # Excel's limit is 32,767 characters per cell
DEFAULT_AREAS = ("T", "H", "C", "E", "D")


@dataclass(frozen=True)
class MemberExtra:
    """What a stored run knows beyond the report: the member's contact and its change since last run."""

    contact: str | None = None
    change: str | None = None


def _cell(value: Any) -> Any:
    """A value openpyxl can store: numbers as numbers, text without control characters, clipped."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    if value is None or isinstance(value, bool | int | float):
        return value
    return ILLEGAL_CHARACTERS_RE.sub("", str(value))[:MAX_CELL]


def _sheet(wb: Any, title: str, header: list[str], rows: list[list[Any]], widths: Mapping[int, int]) -> None:
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    ws = wb.create_sheet(title)
    ws.append(header)
    for c in ws[1]:
        c.font = Font(bold=True)
    for row in rows:
        ws.append([_cell(v) for v in row])
    for row_cells in ws.iter_rows(min_row=2):
        for c in row_cells:
            if c.data_type == "f":  # openpyxl reads "=..." as a formula: keep server text as text
                c.data_type = "s"
    ws.freeze_panes = "A2"
    if rows:
        ws.auto_filter.ref = ws.dimensions
    for i in range(1, len(header) + 1):
        ws.column_dimensions[get_column_letter(i)].width = widths.get(i, 14)


def _score(t: TargetResult) -> float | None:
    return t.score if t.decided else None


@dataclass
class _MemberTally:
    """What the Members sheet needs of one member's targets, accumulated one target at a time."""

    name: str | None
    grades: list[str]
    scores: list[float]
    failing: dict[str, int | None]
    warns: int = 0
    errors: int = 0
    targets: int = 0

    def add(self, t: TargetResult) -> None:
        self.grades.append(t.grade)
        score = _score(t)
        if score is not None:
            self.scores.append(score)
        for c in t.controls:
            if c.status in (Status.PASS, Status.WARN, Status.FAIL):
                self.failing[c.area] = (self.failing.get(c.area) or 0) + (c.status == Status.FAIL)
            self.warns += c.status == Status.WARN
            self.errors += c.status == Status.ERROR
        self.targets += 1


def _member_rows(tallies: Mapping[str | None, _MemberTally], areas: list[str],
                 extras: Mapping[str | None, MemberExtra]) -> list[list[Any]]:
    rows = []
    for mid, m in tallies.items():
        extra = extras.get(mid, MemberExtra())
        rows.append([mid, m.name or mid, Baseline.worst_grade(m.grades),
                     round(sum(m.scores) / len(m.scores), 1) if m.scores else None,
                     *[m.failing.get(a) for a in areas], m.warns, m.errors, m.targets, extra.contact,
                     extra.change])
    grade_rank = [*reversed(grade_order()), "?"]  # worst first; undecided last
    rows.sort(key=lambda r: (grade_rank.index(r[2]) if r[2] in grade_rank else 99, r[3] or 0))
    return rows


def _target_row(t: TargetResult) -> list[Any]:
    fails = severity_counts(t.controls, Status.FAIL)
    statuses = [c.status for c in t.controls]
    return [t.member, t.member_name, t.kind, t.target, t.grade, _score(t), t.decided, t.applicable,
            *fails.values(), statuses.count(Status.WARN), statuses.count(Status.ERROR), "; ".join(t.errors)]


def _finding_rows(t: TargetResult) -> list[list[Any]]:
    rows = []
    for c in t.controls:
        if c.status not in (Status.FAIL, Status.WARN):
            continue
        top = top_finding(c)
        title, detail, fix = (top.title, readable(top.detail or ""), top.remediation or "") if top \
            else ("", "", "")
        rows.append([t.member_name or t.member, t.target, c.id, c.title, c.area, c.status.value,
                     c.severity.value, title, detail, fix])
    return rows


def sheet_rows(report: Report | ReportStream, areas: list[str],
               extras: Mapping[str | None, MemberExtra]) -> tuple[list[list[Any]], ...]:
    """Rows of the Members, Targets and Findings sheets, in one pass over the targets (rows are small:
    the targets themselves are not kept)."""
    tallies: dict[str | None, _MemberTally] = {}
    targets: list[list[Any]] = []
    findings: list[list[Any]] = []
    for t in as_stream(report).targets():
        tally = tallies.get(t.member)
        if tally is None:
            tally = tallies[t.member] = _MemberTally(t.member_name, [], [], {a: None for a in areas})
        tally.add(t)
        targets.append(_target_row(t))
        findings.extend(_finding_rows(t))
    sev_rank = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
    findings.sort(key=lambda r: (r[5] != "fail", sev_rank.get(r[6], 9), r[2], str(r[1])))
    return _member_rows(tallies, areas, extras), targets, findings


def workbook(report: Report | ReportStream, extras: Mapping[str | None, MemberExtra] | None = None
             ) -> bytes:
    """The .xlsx file of ``report`` (``extras``: contact and change per member id, from the store)."""
    from openpyxl import Workbook

    stream = as_stream(report)
    report = stream.head
    baseline = report_baseline(report)
    areas = list(baseline.areas) if baseline else list(DEFAULT_AREAS)
    members, targets, findings = sheet_rows(stream, areas, extras or {})
    wb = Workbook()
    wb.remove(wb.active)
    area_names = dict(baseline.areas) if baseline else {}
    _sheet(wb, "Members",
           ["member", "name", "grade", "score",
            *[f"failing {a} ({area_names.get(a, a)})" for a in areas],
            "warnings", "not assessed", "targets", "contact", "since last run"],
           members, {1: 18, 2: 30, 4 + len(areas) + 4: 28,
                                                        4 + len(areas) + 5: 40})
    severities = list(severity_counts(()).keys())
    _sheet(wb, "Targets",
           ["member", "member name", "kind", "target", "grade", "score", "controls decided",
            "controls applicable", *[f"failing {s}" for s in severities], "warnings", "not assessed",
            "errors while scanning"],
           targets, {2: 26, 4: 44, 16: 60})
    _sheet(wb, "Findings",
           ["member", "target", "control", "control title", "area", "status", "severity", "finding",
            "detail", "what to do"],
           findings, {1: 26, 2: 44, 4: 34, 8: 50, 9: 50, 10: 70})
    wb.properties.title = f"pledgescan: baseline {report.baseline.id} v{report.baseline.version}"
    wb.properties.creator = f"{report.tool.name} {report.tool.version}"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


class XlsxReporter:
    """``--format xlsx``: a workbook with sheets Members, Targets and Findings."""

    format = "xlsx"
    extension = "xlsx"

    def render(self, report: Report | ReportStream) -> bytes:
        return workbook(report)
