"""SARIF 2.1.0 report, for code-scanning dashboards and CI.

One result per ``fail`` finding (level from its severity: critical/high ``error``, medium ``warning``,
low/info ``note``) and per ``warn`` finding (one level lower than a fail of the same severity). Rules
are the checks that produced results (``ruleId`` = check ID); their descriptions come from the
baseline controls they feed, since reporters do not know check metadata. The location of a result is
the target (URL of an endpoint, name of a domain). Targets that could not be assessed are reported as
tool execution notifications, never as results.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

from scanner.baseline import Baseline
from scanner.models import ControlResult, Finding, Report, Severity, Status, TargetResult
from scanner.reporters import finding_severity, jsonable, report_baseline
from scanner.reporters.stream import ReportStream, as_stream, json_splice, slot

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
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


class SarifReporter:
    """``--format sarif``: a SARIF 2.1.0 log with one run."""

    format = "sarif"
    extension = "sarif"

    def render(self, report: Report) -> str:
        return json.dumps(self.document(report), indent=2, ensure_ascii=False, allow_nan=False) + "\n"

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
        rules: dict[str, dict[str, Any]] = {}
        notifications: list[dict[str, Any]] = []
        listed: list[dict[str, Any]] = []
        for target in stream.targets():
            for control in target.controls:
                for f in control.findings:
                    if f.status in (Status.FAIL, Status.WARN):
                        self._rule(rules, f, control, baseline)
            for err in target.errors:
                notifications.append({
                    "level": "error",
                    "message": {"text": f"{target.target}: {err}"},
                    "locations": [self._location(target)],
                })
            listed.append({"target": target.target, "kind": target.kind, "member": target.member,
                           "grade": target.grade, "score": target.score})

        def results() -> Iterator[dict[str, Any]]:
            for target in stream.targets():
                for control in target.controls:
                    for f in control.findings:
                        if f.status in (Status.FAIL, Status.WARN):
                            yield self._result(target, control, f, rules[f.check])

        run: dict[str, Any] = {
            "tool": {"driver": {
                "name": report.tool.name,
                "version": report.tool.version,
                "semanticVersion": report.tool.version,
                "informationUri": INFORMATION_URI,
                "rules": [self._rule_object(k, v) for k, v in rules.items()],
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
        return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}, results()

    @staticmethod
    def _rule(rules: dict[str, dict[str, Any]], f: Finding, control: ControlResult,
              baseline: Baseline | None) -> dict[str, Any]:
        """Create or extend the rule of ``f``'s check (controls fed, heaviest severity seen)."""
        sev = finding_severity(f, control) or Severity.MEDIUM
        rule = rules.get(f.check)
        if rule is None:
            rule = rules[f.check] = {"index": len(rules), "controls": {}, "severity": sev,
                                     "remediation": f.remediation}
        if control.id not in rule["controls"]:
            requirement = None
            if baseline is not None:
                try:
                    requirement = baseline.control(control.id).requirement
                except KeyError:
                    requirement = None
            rule["controls"][control.id] = (control.title, requirement)
        if sev.rank > rule["severity"].rank:
            rule["severity"] = sev
        rule["remediation"] = rule["remediation"] or f.remediation
        return rule

    @staticmethod
    def _rule_object(check: str, rule: dict[str, Any]) -> dict[str, Any]:
        controls: dict[str, tuple[str, str | None]] = rule["controls"]
        short = "; ".join(f"{cid}: {title}" for cid, (title, _) in controls.items())
        out: dict[str, Any] = {
            "id": check,
            "name": check,
            "shortDescription": {"text": short},
            "properties": {"controls": list(controls), "tags": ["security", "pledge4"],
                           "security-severity": _SECURITY_SEVERITY[rule["severity"]]},
        }
        reqs = " ".join(f"{cid}: {req}" for cid, (_, req) in controls.items() if req)
        if reqs:
            out["fullDescription"] = {"text": reqs}
        if rule["remediation"]:
            out["help"] = {"text": rule["remediation"]}
        return out

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
                rule: dict[str, Any]) -> dict[str, Any]:
        sev = finding_severity(f, control)
        text = f.title if not f.detail else f"{f.title}: {f.detail}"
        digest = hashlib.sha256(
            "\x1f".join((target.kind, target.target, f.check, f.control, f.title)).encode()).hexdigest()
        return {
            "ruleId": f.check,
            "ruleIndex": rule["index"],
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
