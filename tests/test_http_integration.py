"""Integration: the real http collector and checks against real nginx sites on 127.0.20.0/24.

One nginx serves every situation (tests/testbed/http_sites.py); one scan covers all sites, and one CLI
run checks the user-facing path (--resolve, --ca-bundle, --format json).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanner.engine import Scanner
from scanner.models import TargetResult
from scanner.settings import Settings
from scanner.targets import endpoint
from tests.testbed.cli import pledgescan
from tests.testbed.http_sites import SITES, Testbed, start_testbed
from tests.testbed.nginx import require_nginx

CONTROLS = ("H1", "H2", "H3", "H4", "H5", "H6", "H7", "H8", "H9", "H10", "H11", "C1", "C2", "C3", "C4")
SCANNED = ("good", "bare", "weak", "cors", "mixed", "hop")


@pytest.fixture(scope="session")
def http_testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    require_nginx()
    yield from start_testbed(tmp_path_factory.mktemp("http-testbed"))


@pytest.fixture(scope="session")
def results(http_testbed: Testbed) -> dict[str, TargetResult]:
    settings = Settings(resolve=http_testbed.resolve(), ca_bundle=http_testbed.ca_path, timeout=5,
                        rate_limit=0, only=frozenset(CONTROLS))
    targets = [endpoint(SITES[n].url) for n in SCANNED]
    report = asyncio.run(Scanner(settings).run(targets))
    return {n: t for n, t in zip(SCANNED, report.targets, strict=True)}


def statuses(result: TargetResult) -> dict[str, str]:
    return {c.id: c.status.value for c in result.controls}


def findings(result: TargetResult, control: str):
    return next(c for c in result.controls if c.id == control).findings


def test_all_protections_on(results):
    assert statuses(results["good"]) == {c: "pass" for c in CONTROLS}


def test_no_headers_plain_http_and_banners(results):
    got = statuses(results["bare"])
    assert got["H1"] == "fail" and got["H2"] == "fail" and got["H3"] == "fail"
    assert got["H4"] == "fail" and got["H5"] == "fail" and got["H6"] == "warn" and got["H7"] == "warn"
    assert got["H10"] == "fail" and got["H11"] == "fail"
    banners = {f.evidence["header"]: f.evidence["value"] for f in findings(results["bare"], "H10")}
    assert banners["x-powered-by"] == "PHP/8.1.2" and banners["server"].startswith("nginx/")
    # PHPSESSID on a login page: session cookie, no Secure/HttpOnly/SameSite.
    assert got["C1"] == got["C2"] == got["C3"] == "fail"
    c1 = [f for f in findings(results["bare"], "C1") if f.status.value == "fail"]
    assert c1[0].severity.value == "high" and "session_rule" in c1[0].evidence


def test_weak_hsts_unsafe_csp_bad_cookies(results):
    got = statuses(results["weak"])
    assert got["H1"] == "pass"
    h2 = findings(results["weak"], "H2")[0]
    assert got["H2"] == "fail" and h2.evidence["max_age"] == 86400  # quoted max-age parsed
    codes = {f.evidence.get("problem") for f in findings(results["weak"], "H3")}
    assert {"unsafe-inline", "unsafe-eval", "script-https", "script-data", "object-src",
            "missing-base-uri", "deprecated"} <= codes
    assert got["H4"] == got["H5"] == got["H6"] == got["H7"] == "fail"
    assert got["C1"] == got["C2"] == got["C3"] == got["C4"] == "fail"
    c4 = findings(results["weak"], "C4")[0]
    assert c4.evidence["cookie"] == "__HOST-pref"  # prefix matched case-insensitively


def test_reflected_origin_cors_with_credentials(results):
    got = statuses(results["cors"])
    assert got["H8"] == "fail"
    kinds = {f.evidence["origin_sent"] for f in findings(results["cors"], "H8")}
    assert "null" in kinds and any(k.startswith("https://") for k in kinds)


def test_mixed_content(results):
    assert statuses(results["mixed"])["H9"] == "fail"
    titles = {f.title for f in findings(results["mixed"], "H9")}
    assert "http:// scripts on an HTTPS page" in titles
    assert "http:// stylesheets on an HTTPS page" in titles
    assert "Form posts to http://" in titles
    assert "http:// images or media on an HTTPS page" in titles


def test_redirect_chain_through_other_host(http_testbed: Testbed):
    from scanner.collectors.http import collect
    from scanner.net.context import ScanContext

    settings = Settings(resolve=http_testbed.resolve(), ca_bundle=http_testbed.ca_path, timeout=5,
                        rate_limit=0)

    async def run():
        ctx = ScanContext.create(settings)
        try:
            return await collect(endpoint(SITES["hop"].url), ctx, (), {})
        finally:
            await ctx.aclose()

    ev = asyncio.run(run())
    hops = ev.https.hops
    assert [h.url for h in hops] == ["https://hop.pledge.test/", "https://www.pledge.test/landing",
                                     "https://outside.example.org/elsewhere"]
    assert hops[1].fetched and hops[1].status == 302  # in scope: followed
    assert not hops[2].fetched and "scope" in hops[2].not_followed  # out of scope: recorded only
    assert [h.set_cookies for h in hops[:2]] == [["hopsess=1; Path=/"], ["wwwcookie=1; Secure; SameSite=Lax"]]


def test_redirect_to_ip_literal_is_recorded_not_followed(http_testbed: Testbed):
    """evil.pledge.test redirects to the cloud metadata address: recorded, never fetched."""
    from scanner.collectors.http import collect
    from scanner.net.context import ScanContext

    settings = Settings(resolve=http_testbed.resolve(), ca_bundle=http_testbed.ca_path, timeout=5,
                        rate_limit=0)

    async def run():
        ctx = ScanContext.create(settings)
        try:
            return await collect(endpoint(SITES["evil"].url), ctx, (), {}), ctx.stats.http_requests
        finally:
            await ctx.aclose()

    ev, requests = asyncio.run(run())
    last = ev.https.hops[-1]
    assert last.url.startswith("https://169.254.169.254/") and not last.fetched
    assert "IP address" in last.not_followed
    assert "169.254.169.254" not in requests


def test_unreachable_endpoint_is_error_never_fail():
    down = "down.pledge.test"
    settings = Settings(resolve={(down, 443): "127.0.20.99", (down, 80): "127.0.20.99"},
                        timeout=2, rate_limit=0, only=frozenset(CONTROLS))
    report = asyncio.run(Scanner(settings).run([endpoint("https://down.pledge.test/")]))
    assert set(statuses(report.targets[0]).values()) == {"error"}


def test_cli_json(http_testbed: Testbed, tmp_path: Path):
    site = SITES["weak"]
    out = tmp_path / "r.json"
    args = ["scan", site.url,
           "--resolve", f"{site.host}:443:{site.address}",
           "--resolve", f"{site.host}:80:{site.address}", "--ca-bundle", str(http_testbed.ca_path),
           "--format", "json", "-o", str(out), "--only", ",".join(CONTROLS), "-q", "--rate-limit", "0"]
    proc = pledgescan(*args)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    got = {c["id"]: c["status"] for c in data["targets"][0]["controls"]}
    assert got["H2"] == "fail" and got["H3"] == "fail" and got["C4"] == "fail" and got["H1"] == "pass"
