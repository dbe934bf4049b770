"""JSON report: the machine-readable result, shaped by the committed JSON Schema
``scanner/schemas/report.schema.json`` (draft 2020-12).

Stable fields (issue 2): ``schema_version``, ``tool``, ``baseline``, ``generated_at``, ``targets`` with
``member``, ``kind``, ``target``, ``addresses``, ``grade``, ``score``, ``controls``, ``findings``,
``errors``. Extra fields are additions only; nothing stable is renamed or removed.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any, TextIO

from scanner.models import ControlResult, Finding, Report, TargetResult
from scanner.reporters import finding_severity, jsonable
from scanner.reporters.stream import ReportStream, as_stream, dump_indented, json_splice, slot

SCHEMA_RESOURCE = ("schemas", "report.schema.json")


def finding_dict(finding: Finding, control: ControlResult | None) -> dict[str, Any]:
    """One finding; ``severity`` is resolved (the finding's own, else its control's)."""
    sev = finding_severity(finding, control)
    return {
        "check": finding.check,
        "control": finding.control,
        "status": finding.status.value,
        "severity": sev.value if sev else None,
        "title": finding.title,
        "detail": finding.detail,
        "evidence": jsonable(finding.evidence),
        "remediation": finding.remediation,
        "error_kind": finding.error_kind.value if finding.error_kind else None,
    }


def control_dict(control: ControlResult) -> dict[str, Any]:
    return {
        "id": control.id,
        "title": control.title,
        "area": control.area,
        "status": control.status.value,
        "severity": control.severity.value,
        "findings": [finding_dict(f, control) for f in control.findings],
    }


def target_dict(result: TargetResult) -> dict[str, Any]:
    by_id = {c.id: c for c in result.controls}
    return {
        "member": result.member,
        "member_name": result.member_name,
        "kind": result.kind,
        "target": result.target,
        "addresses": list(result.addresses),
        "grade": result.grade,
        "score": result.score,
        "decided": result.decided,
        "applicable": result.applicable,
        "controls": [control_dict(c) for c in result.controls],
        "findings": [finding_dict(f, by_id.get(f.control)) for f in result.findings],
        "errors": [str(e) for e in result.errors],
        "started_at": result.started_at.isoformat() if result.started_at else None,
        "duration_s": result.duration_s,
        "stats": jsonable(result.stats),
    }


def report_dict(report: Report, targets: Any = None) -> dict[str, Any]:
    """The whole report as plain JSON data (no bytes, no enums, no datetimes); ``targets`` replaces the
    list of targets (the stream slot)."""
    extra = {"comparison": [c.model_dump(mode="json") for c in report.comparison]} \
        if report.comparison else {}  # reports of stored runs only
    return {
        "schema_version": report.schema_version,
        "tool": {"name": report.tool.name, "version": report.tool.version},
        "baseline": {"id": report.baseline.id, "version": report.baseline.version},
        "generated_at": report.generated_at.isoformat(),
        "run_id": report.run_id,
        "targets": [target_dict(t) for t in report.targets] if targets is None else targets,
        "stats": jsonable(report.stats),
        **extra,
    }


@cache
def load_schema() -> dict[str, Any]:
    """The committed JSON Schema of this report."""
    text = resources.files("scanner").joinpath(*SCHEMA_RESOURCE).read_text("utf-8")
    return json.loads(text)


def validate(document: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` when ``document`` does not follow the schema."""
    from jsonschema import Draft202012Validator, FormatChecker

    Draft202012Validator(load_schema(), format_checker=FormatChecker()).validate(document)


class JsonReporter:
    """``--format json``: indented UTF-8 JSON following the committed schema."""

    format = "json"
    extension = "json"

    def render(self, report: Report) -> str:
        return dump_indented(report_dict(report)) + "\n"

    def write(self, report: Report | ReportStream, out: TextIO) -> None:
        """The same text as ``render``, written one target at a time."""
        stream = as_stream(report)
        json_splice(out, report_dict(stream.head, slot()), "targets", 2,
                    (target_dict(t) for t in stream.targets()))
