"""TLS controls T1-T6 against real local servers (tests/testbed/tls.py), through the engine and the CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from scanner.engine import Scanner
from scanner.models import Report, Status
from tests.testbed.tls import TLSBed

P, W, F, E = Status.PASS, Status.WARN, Status.FAIL, Status.ERROR

# site -> expected status of T1..T6
EXPECTED: dict[str, tuple[Status, ...]] = {
    "good": (P, P, P, P, P, P),
    "legacy": (P, F, F, P, P, P),  # TLS 1.0/1.1 on; their CBC suites also fail T3 (no AEAD)
    "rsa_kx": (P, W, F, P, P, P),  # no forward secrecy; TLS 1.2 only -> T2 warn
    "cbc_only": (P, W, F, P, P, P),
    "expired": (P, P, P, F, F, P),
    "self_signed": (P, P, P, F, P, P),
    "wrong_host": (P, P, P, F, P, P),
    "missing_intermediate": (P, P, P, F, P, P),
    "rsa1024": (P, P, P, P, F, P),
    "sha1": (P, P, P, F, F, P),  # cryptography's verifier rejects SHA-1 too
    "expiring": (P, P, P, P, F, P),
    "closed": (E, E, E, E, E, E),  # nothing listening anywhere: unreachable
    "closed_http": (F, E, E, E, E, E),  # answers plain HTTP, no TLS: T1 fails
    "stall": (E, E, E, E, E, E),
    "garbage": (E, E, E, E, E, E),
}
CONTROLS = ("T1", "T2", "T3", "T4", "T5", "T6")


@pytest.fixture(scope="module")
def report(tls_bed: TLSBed) -> Report:  # noqa: F811
    targets = [tls_bed.sites[k].target() for k in EXPECTED]
    return asyncio.run(Scanner(tls_bed.settings()).run(targets))


def _result(report: Report, bed: TLSBed, key: str):
    url = bed.sites[key].url
    return next(t for t in report.targets if t.target == url)


@pytest.mark.parametrize("key", list(EXPECTED))
def test_t_controls_per_site(report: Report, tls_bed: TLSBed, key: str) -> None:  # noqa: F811
    # Given the site's server / When scanned through the engine / Then each T control has the expected status
    res = _result(report, tls_bed, key)
    got = {c.id: c.status for c in res.controls}
    assert got == dict(zip(CONTROLS, EXPECTED[key], strict=True)), [
        (f.control, f.status.value, f.title) for f in res.findings if f.status != P
    ]
    for f in res.findings:
        if f.status in (F, W):
            assert f.remediation, f


@pytest.mark.parametrize(
    "key,problem",
    [
        ("expired", "expired"),
        ("self_signed", "self_signed"),
        ("wrong_host", "hostname_mismatch"),
        ("missing_intermediate", "missing_intermediate"),
    ],
)
def test_t4_names_the_problem_and_the_store(report: Report, tls_bed: TLSBed, key: str, problem: str) -> None:  # noqa: F811
    t4 = next(c for c in _result(report, tls_bed, key).controls if c.id == "T4")
    problems = {f.evidence.get("problem") for f in t4.findings if f.status == F}
    assert problems == {problem}
    assert all("--ca-bundle" in f.detail for f in t4.findings if f.status == F)


def test_good_site_evidence_shows_chain_and_store(report: Report, tls_bed: TLSBed) -> None:  # noqa: F811
    res = _result(report, tls_bed, "good")
    t4 = next(c for c in res.controls if c.id == "T4").findings[0]
    assert t4.evidence["validated_by"] == ["--ca-bundle"]
    assert t4.evidence["certificate"]["sans"] == [tls_bed.sites["good"].name]
    assert len(t4.evidence["chain"]) == 2
    assert report.stats["tls_connections"] > 0


def test_hostile_servers_error_with_reason(report: Report, tls_bed: TLSBed) -> None:  # noqa: F811
    reasons, kinds = {}, {}
    for key in ("closed", "stall", "garbage"):
        t1 = next(c for c in _result(report, tls_bed, key).controls if c.id == "T1")
        reasons[key] = t1.findings[0].detail
        kinds[key] = t1.findings[0].evidence.get("error_kind")
    assert "refused" in reasons["closed"]
    assert "stalled" in reasons["stall"]
    assert "not TLS" in reasons["garbage"]
    # errors as data (issue 12): the kind comes from the exception class and OpenSSL's reason code
    assert kinds == {"closed": "refused", "stall": "timeout", "garbage": "protocol"}


def test_stalling_server_respects_target_deadline(tls_bed: TLSBed) -> None:  # noqa: F811
    # Given a server that never answers and a timeout longer than the deadline
    settings = tls_bed.settings(timeout=30.0, target_deadline=2.0)
    rep = asyncio.run(Scanner(settings).run([tls_bed.sites["stall"].target()]))
    # Then every T control is an error (never a fail), and the reason says why
    statuses = {c.id: c.status for c in rep.targets[0].controls}
    assert set(statuses.values()) == {E}
    assert any("deadline" in e for e in rep.targets[0].errors)


def _cli(bed: TLSBed, keys: list[str], out: Path, *extra: str) -> dict:
    urls = [bed.sites[k].url for k in keys]
    cmd = [
        sys.executable,
        "-m",
        "scanner",
        "scan",
        *urls,
        *bed.resolve_args(*keys),
        "--ca-bundle",
        str(bed.ca_bundle),
        "--format",
        "json",
        "-o",
        str(out),
        "--only",
        "T1,T2,T3,T4,T5,T6",
        "--timeout",
        "5",
        "-q",
        "--rate-limit",
        "0",
        *extra,
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(out.read_text())


def test_cli_json_report(tls_bed: TLSBed, tmp_path: Path) -> None:  # noqa: F811
    # Given three sites / When scanned with the real command line / Then the JSON report has their T statuses
    keys = ["good", "expired", "legacy"]
    data = _cli(tls_bed, keys, tmp_path / "out.json")
    by_url = {t["target"]: t for t in data["targets"]}
    for key in keys:
        got = {c["id"]: c["status"] for c in by_url[tls_bed.sites[key].url]["controls"]}
        assert got == {c: s.value for c, s in zip(CONTROLS, EXPECTED[key], strict=True)}


def test_cli_without_ca_bundle_reports_untrusted(tls_bed: TLSBed, tmp_path: Path) -> None:  # noqa: F811
    s = tls_bed.sites["good"]
    cmd = [
        sys.executable,
        "-m",
        "scanner",
        "scan",
        s.url,
        *tls_bed.resolve_args("good"),
        "--format",
        "json",
        "-o",
        str(tmp_path / "o.json"),
        "--only",
        "T4",
        "--timeout",
        "5",
        "-q",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    t4 = json.loads((tmp_path / "o.json").read_text())["targets"][0]["controls"][0]
    assert t4["status"] == "fail"
    assert t4["findings"][0]["evidence"]["problem"] == "untrusted"
