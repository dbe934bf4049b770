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


def _sheet(wb: Any, title: str, header: list[str], widths: Mapping[int, int]) -> Any:
    """A write-only sheet (rows go to its file as they are appended, never kept as cells): bold header,
    frozen under it, column widths (all of which openpyxl needs before the first row)."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    ws = wb.create_sheet(title)
    for i in range(1, len(header) + 1):
        ws.column_dimensions[get_column_letter(i)].width = widths.get(i, 14)
    ws.freeze_panes = "A2"
    bold = Font(bold=True)
    cells = []
    for h in header:
        c = WriteOnlyCell(ws, value=h)
        c.font = bold
        cells.append(c)
    ws.append(cells)
    return ws


def _append(ws: Any, row: list[Any]) -> None:
    """One row of values; text is stored as text, never as a formula (a leading ``=`` stays literal)."""
    from openpyxl.cell import WriteOnlyCell

    values = []
    for v in row:
        v = _cell(v)
        if isinstance(v, str) and v.startswith("=") and len(v) > 1:  # what openpyxl would make a formula
            c = WriteOnlyCell(ws, value=v)
            c.data_type = "s"
            v = c
        values.append(v)
    ws.append(values)


def _filter(ws: Any, columns: int, rows: int) -> None:
    """The autofilter over the header and ``rows`` rows (written after the rows, when the sheet closes)."""
    from openpyxl.utils import get_column_letter

    if rows:
        ws.auto_filter.ref = f"A1:{get_column_letter(columns)}{rows + 1}"


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


_SEV_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}


def _finding_key(r: list[Any]) -> tuple[Any, ...]:
    return (r[5] != "fail", _SEV_RANK.get(r[6], 9), r[2], str(r[1]))


def sheet_rows(report: Report | ReportStream, areas: list[str],
               extras: Mapping[str | None, MemberExtra]) -> tuple[list[list[Any]], ...]:
    """Rows of the Members, Targets and Findings sheets, in one pass over the targets (rows are small:
    the targets themselves are not kept)."""
    targets: list[list[Any]] = []
    members, findings = _pass(as_stream(report), areas, extras, targets.append)
    return members, targets, findings


def _pass(stream: ReportStream, areas: list[str], extras: Mapping[str | None, MemberExtra],
          target_row: Any) -> tuple[list[list[Any]], list[list[Any]]]:
    """One pass over the targets: each target's row goes to ``target_row`` as it is read; the Members
    rows (tallied) and the Findings rows (sorted: failing first, heaviest, by control and target) come
    back at the end."""
    tallies: dict[str | None, _MemberTally] = {}
    findings: list[list[Any]] = []
    for t in stream.targets():
        tally = tallies.get(t.member)
        if tally is None:
            tally = tallies[t.member] = _MemberTally(t.member_name, [], [], {a: None for a in areas})
        tally.add(t)
        target_row(_target_row(t))
        findings.extend(_finding_rows(t))
    findings.sort(key=_finding_key)
    return _member_rows(tallies, areas, extras), findings


def workbook(report: Report | ReportStream, extras: Mapping[str | None, MemberExtra] | None = None
             ) -> bytes:
    """The .xlsx file of ``report`` (``extras``: contact and change per member id, from the store).

    openpyxl's write-only mode: each target's row goes to the Targets sheet's file as the target is
    read, and no row is ever held as cells (the normal mode kept every cell of every sheet until the
    save, so memory grew with the inventory). Only the Members rows (sorted by grade) and the Findings
    rows (sorted by severity) wait, as plain lists, until every target has been read."""
    from openpyxl import Workbook

    stream = as_stream(report)
    report = stream.head
    baseline = report_baseline(report)
    areas = list(baseline.areas) if baseline else list(DEFAULT_AREAS)
    area_names = dict(baseline.areas) if baseline else {}
    severities = list(severity_counts(()).keys())
    wb = Workbook(write_only=True)
    sheets = [
        (["member", "name", "grade", "score", *[f"failing {a} ({area_names.get(a, a)})" for a in areas],
          "warnings", "not assessed", "targets", "contact", "since last run"],
         {1: 18, 2: 30, 4 + len(areas) + 4: 28, 4 + len(areas) + 5: 40}),
        (["member", "member name", "kind", "target", "grade", "score", "controls decided",
          "controls applicable", *[f"failing {s}" for s in severities], "warnings", "not assessed",
          "errors while scanning"], {2: 26, 4: 44, 16: 60}),
        (["member", "target", "control", "control title", "area", "status", "severity", "finding",
          "detail", "what to do"], {1: 26, 2: 44, 4: 34, 8: 50, 9: 50, 10: 70}),
    ]
    ws_members, ws_targets, ws_findings = (_sheet(wb, title, header, widths) for title, (header, widths)
                                           in zip(("Members", "Targets", "Findings"), sheets, strict=True))
    count = [0]

    def target_row(row: list[Any]) -> None:
        _append(ws_targets, row)
        count[0] += 1

    members, findings = _pass(stream, areas, extras or {}, target_row)
    for ws, rows in ((ws_members, members), (ws_findings, findings)):
        for row in rows:
            _append(ws, row)
    for ws, (header, _w), rows in zip((ws_members, ws_targets, ws_findings), sheets,
                                      (len(members), count[0], len(findings)), strict=True):
        _filter(ws, len(header), rows)
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
