"""The example plugin's report format: ``--format markdown``, one table row per target."""

from __future__ import annotations

from scanner.models import Report


class MarkdownReporter:
    format = "markdown"
    extension = "md"

    def render(self, report: Report) -> str:
        rows = ["| target | grade | failed controls |", "| --- | --- | --- |"]
        for t in report.targets:
            failed = ", ".join(c.id for c in t.controls if c.status.value == "fail") or "none"
            rows.append(f"| {t.target.replace('|', '%7C')} | {t.grade} | {failed} |")
        return "\n".join(rows) + "\n"
