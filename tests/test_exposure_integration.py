"""Integration: the real exposure collector and checks against real nginx and Apache (phpMyAdmin, Adminer,
server-status) over HTTPS, reached through --resolve and --ca-bundle."""

from __future__ import annotations

import asyncio
import json

import pytest

from scanner.engine import Scanner
from scanner.models import Report, Status
from scanner.settings import Settings
from scanner.targets import endpoint
from tests.testbed.cli import pledgescan
from tests.testbed.exposure import FAKE_ENV, UNREACHABLE, ExposureBed, exposure_apache, exposure_nginx

__all__ = ["exposure_apache", "exposure_nginx"]
E_CONTROLS = frozenset({"E1", "E2", "E3", "E4"})


def scan(bed: ExposureBed, host: str, **kw) -> Report:
    settings = Settings(ca_bundle=bed.ca_file, resolve=bed.resolve, rate_limit=0, timeout=5,
                        only=E_CONTROLS, **kw)
    return asyncio.run(Scanner(settings).run([endpoint(bed.url(host))]))


def fails(report: Report) -> set[tuple[str, str, str]]:
    return {(f.control, f.evidence.get("catalogue_entry", ""), f.evidence.get("path", ""))
            for t in report.targets for f in t.findings if f.status in (Status.FAIL, Status.WARN)}


@pytest.fixture(scope="module")
def expose_report(exposure_nginx: ExposureBed) -> Report:
    return scan(exposure_nginx, "expose.test")


def test_planted_exposures_are_found(expose_report: Report):
    got = fails(expose_report)
    assert ("E1", "git-head", "/.git/HEAD") in got
    assert ("E1", "git-config", "/.git/config") in got
    assert ("E1", "dotenv", "/.env") in got
    assert ("E1", "database-dump", "/dump.sql") in got
    assert ("E4", "listing-nginx", "/backup/") in got
    assert ("E4", "listing-nginx", "/media/") in got  # linked from the landing page, not a common name
    assert {c for c, _, _ in got} == {"E1", "E4"}, got


def test_nginx_stub_status_at_apache_path_is_found(exposure_nginx: ExposureBed):
    # issue 11: every status signature is matched at every status path of its family
    report = scan(exposure_nginx, "stubstatus.test")
    got = fails(report)
    assert ("E3", "nginx-stub-status", "/server-status") in got, [
        (f.control, f.status, f.title, f.detail) for f in report.targets[0].findings]


def test_secrets_are_masked_in_findings(expose_report: Report):
    env = next(f for f in expose_report.targets[0].findings if f.evidence.get("path") == "/.env")
    assert "DB_PASSWORD=h*****" in env.evidence["secrets"]
    dumped = expose_report.model_dump_json()
    for line in FAKE_ENV.splitlines():
        assert line.split("=", 1)[1] not in dumped
    assert "ghp_fakeToken123" not in dumped
    git = next(f for f in expose_report.targets[0].findings if f.evidence.get("path") == "/.git/config")
    assert git.status == Status.FAIL and git.remediation and git.evidence["signals"][0] == "status 200"


def test_requests_are_bounded_and_counted(expose_report: Report):
    per_host = expose_report.stats["http_requests_per_host"]["expose.test"]
    assert per_host <= 150
    passed = [f for f in expose_report.targets[0].findings if f.control in ("E2", "E3")]
    assert {f.status for f in passed} == {Status.PASS}
    assert passed[0].evidence["requests"] <= passed[0].evidence["request_budget"] == 150


def test_small_budget_is_respected(exposure_nginx: ExposureBed):
    report = scan(exposure_nginx, "expose.test", exposure_max_requests=20)
    assert report.stats["http_requests_per_host"]["expose.test"] <= 20
    e2 = next(f for f in report.targets[0].findings if f.control == "E2")
    assert e2.evidence["requests"] <= 20 and e2.evidence["paths_not_probed"]


def test_unreachable_host_is_an_error(exposure_nginx: ExposureBed):
    report = scan(exposure_nginx, UNREACHABLE[0])
    findings = report.targets[0].findings
    assert {f.control for f in findings} == E_CONTROLS
    assert {f.status for f in findings} == {Status.ERROR}


def test_cli_json(exposure_nginx: ExposureBed, tmp_path):
    """Once through the CLI, as a user would run it."""
    out = tmp_path / "report.json"
    args = ["scan", exposure_nginx.url("expose.test"),
           *exposure_nginx.resolve_args(), "--ca-bundle", str(exposure_nginx.ca_file), "--format", "json",
           "-o", str(out), "--store", f"sqlite:///{tmp_path / 'history.db'}", "--rate-limit", "0",
           "--only", "E1,E2,E3,E4", "-q"]
    proc = pledgescan(*args, timeout=240, cwd=tmp_path)
    assert out.exists(), proc.stderr[-2000:]
    data = json.loads(out.read_text())
    findings = [f for t in data["targets"] for f in t["findings"]]
    bad = {(f["control"], f["evidence"].get("path")) for f in findings if f["status"] == "fail"}
    assert {("E1", "/.git/HEAD"), ("E1", "/.env"), ("E4", "/backup/")} <= bad
    assert "hunter2" not in out.read_text()
    assert data["stats"]["http_requests_per_host"]["expose.test"] <= 150


# ---- Apache: phpMyAdmin, Adminer, server-status --------------------------------------------------

@pytest.fixture(scope="module")
def pma_report(exposure_apache: ExposureBed) -> Report:
    return scan(exposure_apache, "pma.test")


def test_phpmyadmin_adminer_and_server_status_are_found(pma_report: Report):
    got = fails(pma_report)
    entries = {e for _, e, _ in got}
    assert {"phpmyadmin", "adminer", "apache-server-status"} <= entries, got
    by_entry = {f.evidence["catalogue_entry"]: f for f in pma_report.targets[0].findings
                if f.status == Status.FAIL}
    assert by_entry["phpmyadmin"].control == "E2" and by_entry["adminer"].control == "E2"
    assert by_entry["apache-server-status"].control == "E3"
    assert by_entry["adminer"].evidence.get("version")
    assert len(by_entry["phpmyadmin"].evidence["signals"]) >= 2
    assert not [c for c, _, _ in got if c in ("E1", "E4")], got
