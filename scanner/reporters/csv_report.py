"""CSV report: one row per target and control, for spreadsheets.

UTF-8 with a byte-order mark, so that Excel reads accented names right ("Académie", not "AcadÃ©mie");
what was not assessed is an empty cell, never 0 (a score of 0 is a real, very bad score).

Cells are protected against CSV/formula injection (OWASP): a text cell that starts with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return is prefixed with a single quote, since server-controlled text
(titles quoting headers, cookie names) ends up in these cells.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from scanner.models import Report
from scanner.reporters import top_finding

COLUMNS = (
    "member", "member_name", "kind", "target", "grade", "score", "control", "control_title", "area",
    "status", "severity", "finding", "remediation", "target_state", "target_history", "error_kind",
)
BOM = "\ufeff"
_DANGEROUS_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """Neutralise a text cell a spreadsheet would read as a formula; numbers pass unchanged."""
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return value
    text = str(value)
    return "'" + text if text.startswith(_DANGEROUS_START) else text


class CsvReporter:
    """``--format csv``: RFC 4180 CSV (CRLF line ends, header row), UTF-8 with a byte-order mark."""

    format = "csv"
    extension = "csv"

    def render(self, report: Report) -> str:
        buf = io.StringIO()
        buf.write(BOM)
        writer = csv.writer(buf)
        writer.writerow(COLUMNS)
        history = {(c.member, c.target): c for c in report.comparison}
        for t in report.targets:
            past = history.get((t.member, t.target))
            for c in t.controls:
                top = top_finding(c)
                row = (
                    t.member, t.member_name, t.kind, t.target, t.grade, t.score if t.decided else None,
                    c.id, c.title, c.area,
                    c.status.value, c.severity.value,
                    top.title if top else "",
                    (top.remediation or "") if top and c.status.value in ("fail", "warn") else "",
                    past.state if past else "", past.summary if past else "",
                    top.error_kind.value if top and top.error_kind and c.status.value == "error" else "",
                )
                writer.writerow([safe_cell(v) for v in row])
        return buf.getvalue()
