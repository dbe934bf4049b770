"""SARIF 2.1.0 report, for code-scanning dashboards and CI.

One result per ``fail`` finding (level from its severity: critical/high ``error``, medium ``warning``,
low/info ``note``) and per ``warn`` finding (one level lower than a fail of the same severity). Rules
are the checks that produced results (``ruleId`` = check ID), described by one function (``rule``) from
the check's metadata (read as data) and the requirements of the baseline controls it feeds. The
location of a result is the target (URL of an endpoint, name of a domain). Targets that could not be
assessed are reported as tool execution notifications, never as results.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

from scanner.baseline import Baseline
from scanner.models import ControlResult, Finding, Report, Severity, Status, TargetResult
from scanner.plugins import CheckMeta, check_metadata
from scanner.reporters import finding_severity, jsonable, report_baseline
from scanner.reporters.stream import ReportStream, as_stream, dump_indented, json_splice, slot

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = f"https://json.schemastore.org/sarif-{SARIF_VERSION}.json"
INFORMATION_URI = "https://github.com/pledgescan/pledgescan"
_FAIL_LEVEL = {Severity.CRITICAL: "error", Severity.HIGH: "error", Severity.MEDIUM: "warning",
               Severity.LOW: "note", Severity.INFO: "note"}
_WARN_LEVEL = {Severity.CRITICAL: "warning", Severity.HIGH: "warning", Severity.MEDIUM: "note",
               Severity.LOW: "note", Severity.INFO: "note"}
# GitHub code scanning reads a numeric "security-severity" (0-10) on rules.
_SECURITY_SEVERITY = {Severity.CRITICAL: "9.5", Severity.HIGH: "7.5", Severity.MEDIUM: "5.0",
                      Severity.LOW: "2.5", Severity.INFO: "0.0"}


def level(finding: Finding, control: ControlResult | None) -> str:
    sev = finding_severity(finding, control) or Severity.MEDIUM
    return (_FAIL_LEVEL if finding.status == Status.FAIL else _WARN_LEVEL)[sev]


def _utc(moment: datetime) -> str:
    """SARIF times are UTC, ``YYYY-MM-DDTHH:MM:SSZ`` (a naive time is taken as UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def rule(check: str, meta: CheckMeta | None, baseline: Baseline | None,
         seen_on: ControlResult) -> dict[str, Any]:
    """The SARIF rule of one check: title, description, remediation, severity and controls from its
    metadata, each control's requirement from the baseline. A check without metadata here (a plugin
    that is not installed, in a stored run) is described by the control it was seen on."""
    controls = meta.controls if meta else (seen_on.id,)
    severity = meta.severity if meta else seen_on.severity
    requirements = []
    for cid in controls:
        try:
            requirements.append(f"{cid}: {baseline.control(cid).requirement}" if baseline else "")
        except KeyError:
            continue
    out: dict[str, Any] = {
        "id": check,
        "name": check,
        "shortDescription": {"text": meta.title if meta else f"{seen_on.id}: {seen_on.title}"},
        "properties": {"controls": list(controls), "tags": ["security", "pledge4"],
                       "security-severity": _SECURITY_SEVERITY[severity]},
    }
    full = " ".join(x for x in (meta.description if meta else "", *requirements) if x)
    if full:
        out["fullDescription"] = {"text": full}
    if meta:
        out["help"] = {"text": meta.remediation}
    return out


class SarifReporter:
    """``--format sarif``: a SARIF 2.1.0 log with one run."""

    format = "sarif"
    extension = "sarif"

    def render(self, report: Report) -> str:
        return dump_indented(self.document(report)) + "\n"

    def document(self, report: Report) -> dict[str, Any]:
        doc, results = self._head(ReportStream.of(report))
        doc["runs"][0]["results"] = list(results)
        return doc

    def write(self, report: Report | ReportStream, out: TextIO) -> None:
        """The same text as ``render``, in two passes over the targets: rules, errors and the target
        list first (small), then the results written one at a time."""
        doc, results = self._head(as_stream(report))
        json_splice(out, doc, "results", 6, results)

    def _head(self, stream: ReportStream) -> tuple[dict[str, Any], Iterator[dict[str, Any]]]:
        """The log with a slot for its results, and the results (a second pass over the targets)."""
        report = stream.head
        baseline = report_baseline(report)
        metadata = check_metadata()
        rules: dict[str, dict[str, Any]] = {}
        notifications: list[dict[str, Any]] = []
        listed: list[dict[str, Any]] = []
        for target in stream.targets():
            for control in target.controls:
                for f in control.findings:
                    if f.status in (Status.FAIL, Status.WARN) and f.check not in rules:
                        rules[f.check] = rule(f.check, metadata.get(f.check), baseline, control)
            for err in target.errors:
                notifications.append({
                    "level": "error",
                    "message": {"text": f"{target.target}: {err}"},
                    "locations": [self._location(target)],
                })
            listed.append({"target": target.target, "kind": target.kind, "member": target.member,
                           "grade": target.grade, "score": target.score})
        index = {check: i for i, check in enumerate(rules)}

        def results() -> Iterator[dict[str, Any]]:
            for target in stream.targets():
                for control in target.controls:
                    for f in control.findings:
                        if f.status in (Status.FAIL, Status.WARN):
                            yield self._result(target, control, f, index[f.check])

        run: dict[str, Any] = {
            "tool": {"driver": {
                "name": report.tool.name,
                "version": report.tool.version,
                "semanticVersion": report.tool.version,
                "informationUri": INFORMATION_URI,
                "rules": list(rules.values()),
            }},
            "invocations": [{
                "executionSuccessful": True,
                "startTimeUtc": _utc(report.generated_at),
                "toolExecutionNotifications": notifications,
            }],
            "results": slot(),
            "properties": {
                "baseline": {"id": report.baseline.id, "version": report.baseline.version},
                "schema_version": report.schema_version,
                "targets": listed,
            },
        }
        if report.run_id:
            run["automationDetails"] = {"id": f"pledgescan/{report.run_id}"}
        return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}, results()

    @staticmethod
    def _location(target: TargetResult) -> dict[str, Any]:
        return {
            "physicalLocation": {"artifactLocation": {"uri": target.target}},
            "logicalLocations": [{
                "name": target.target,
                "kind": "resource" if target.kind == "endpoint" else "namespace",
                "fullyQualifiedName": f"{target.member or '-'}/{target.kind}/{target.target}",
            }],
        }

    def _result(self, target: TargetResult, control: ControlResult, f: Finding,
                rule_index: int) -> dict[str, Any]:
        sev = finding_severity(f, control)
        text = f.title if not f.detail else f"{f.title}: {f.detail}"
        digest = hashlib.sha256(
            "\x1f".join((target.kind, target.target, f.check, f.control, f.title)).encode()).hexdigest()
        return {
            "ruleId": f.check,
            "ruleIndex": rule_index,
            "kind": "fail",
            "level": level(f, control),
            "message": {"text": text},
            "locations": [self._location(target)],
            "partialFingerprints": {"pledgescanFinding/v1": digest},
            "properties": {
                "control": f.control,
                "status": f.status.value,
                "severity": sev.value if sev else None,
                "member": target.member,
                "grade": target.grade,
                "remediation": f.remediation,
                "evidence": jsonable(f.evidence),
            },
        }
