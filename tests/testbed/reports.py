"""Constructed ``Report`` objects for reporter tests (no scan needed).

``make_report()`` covers every status, both kinds of target, member set and null, target-level
errors and nested evidence; ``make_target()`` builds one target from {control ID: findings}.
The baseline aggregates and grades them exactly as a scan would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

from scanner.baseline import load_baseline
from scanner.models import (
    SCHEMA_VERSION,
    BaselineRef,
    Finding,
    Report,
    Severity,
    Status,
    TargetKind,
    TargetResult,
    ToolInfo,
)
from scanner.plugins import load_checks

GENERATED_AT = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)


def finding(check: str, control: str, status: str, title: str, detail: str = "", *,
            severity: str | None = None, evidence: dict[str, Any] | None = None,
            remediation: str | None = None) -> Finding:
    st = Status(status)
    if remediation is None and st in (Status.FAIL, Status.WARN):
        remediation = f"Fix {title.lower()}."
    return Finding(check=check, control=control, status=st,
                   severity=Severity(severity) if severity else None, title=title, detail=detail,
                   evidence=evidence or {}, remediation=remediation)


@cache
def _feeding() -> dict[str, list[str]]:
    return load_checks().by_control()


def feeding(control: str) -> str:
    """The first installed check that feeds a control (the ID a constructed finding carries)."""
    return next(iter(_feeding().get(control, ())), "pledgescan")


def make_target(kind: TargetKind, target: str, by_control: Mapping[str, Sequence[Finding]], *,
                member: str | None = None, member_name: str | None = None,
                addresses: tuple[str, ...] = ("127.0.0.1",), errors: tuple[str, ...] = (),
                default: str = "pass") -> TargetResult:
    """A graded target: controls of ``kind`` get the given findings, the rest one ``default`` finding."""
    baseline = load_baseline()
    controls = []
    for c in baseline.controls_for(kind):
        fs = list(by_control.get(c.id, ()))
        if not fs:
            check = feeding(c.id)
            fs = [finding(check, c.id, default, f"{c.title}: {default}")]
        controls.append(baseline.control_result(c, fs))
    grade, score, decided, applicable = baseline.grade(controls)
    return TargetResult(
        member=member, member_name=member_name, kind=kind, target=target, addresses=addresses,
        grade=grade, score=score, decided=decided, applicable=applicable, controls=tuple(controls),
        findings=tuple(f for c in controls for f in c.findings), errors=errors,
        started_at=GENERATED_AT, duration_s=1.25, stats={"http_requests": 3},
    )


def make_report(*targets: TargetResult, stats: dict[str, Any] | None = None) -> Report:
    if not targets:
        targets = default_targets()
    return Report(
        schema_version=SCHEMA_VERSION, tool=ToolInfo(version="0.1.0"),
        baseline=BaselineRef(id="pledge4", version="1"), generated_at=GENERATED_AT,
        targets=tuple(targets), run_id="run-1",
        stats=stats if stats is not None else {"duration_s": 2.5, "targets": len(targets),
                                               "http_requests": 12, "tls_connections": 4,
                                               "blocked_requests": []},
    )


def default_targets() -> tuple[TargetResult, ...]:
    """An endpoint of a member with every status, a member-less domain, and an unreachable endpoint."""
    endpoint = make_target("endpoint", "https://www.school.example/", {
        "T2": [finding("tls-protocols", "T2", "warn", "TLS 1.3 not offered",
                       evidence={"offered": ["TLSv1.2"], "rejected": ["SSLv3", "TLSv1.0"]})],
        "T3": [finding("tls-ciphers", "T3", "fail", "Cipher suites without forward secrecy",
                       "2 suites use RSA key exchange.", severity="medium",
                       evidence={"suites": [{"name": "TLS_RSA_WITH_AES_128_GCM_SHA256", "fs": False},
                                            {"name": "TLS_RSA_WITH_AES_256_GCM_SHA384", "fs": False}]})],
        "T4": [finding("tls-cert-trust", "T4", "error", "Could not be assessed: timeout",
                       "timeout after 10s")],
        "H2": [finding("http-hsts", "H2", "fail", "HSTS missing", evidence={
            "header": None, "response": {"status": 200, "headers": {"server": "nginx"}}})],
        "H10": [finding("http-version-disclosure", "H10", "fail", "Server discloses nginx/1.22.1",
                        severity="low", evidence={"header": "Server", "value": "nginx/1.22.1",
                                                  "long": "x" * 2000})],
        "C1": [finding("cookie-secure", "C1", "not_applicable", "No cookies set")],
    }, member="m-001", member_name="Example School", addresses=("127.0.0.1", "::1"))
    domain = make_target("domain", "school.example", {
        "D1": [finding("dns-spf", "D1", "fail", "SPF ends in +all", severity="medium",
                       evidence={"record": "v=spf1 +all"})],
        "D5": [finding("dns-mta-sts", "D5", "not_applicable", "No MX records")],
    })
    unreachable = make_target("endpoint", "https://down.school.example/", {}, member="m-002",
                              default="error", errors=("host not resolved: NXDOMAIN",), addresses=())
    return endpoint, domain, unreachable
