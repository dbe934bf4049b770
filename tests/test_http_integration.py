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


def test_a_stored_scan_reports_the_same_bytes_from_the_store(http_testbed, tmp_path):
    """Given a whole-baseline scan whose results stream to the history store (the engine keeps none)
    When its reports are written from the store, a batch of targets at a time
    Then JSON, CSV and SARIF are byte for byte those of the same results held in memory."""
    from scanner import __version__
    from scanner.baseline import load_baseline
    from scanner.history.portfolio import run_stream
    from scanner.history.store import Store
    from scanner.reporters import render_all

    settings = Settings(resolve=http_testbed.resolve(), ca_bundle=http_testbed.ca_path, timeout=5)
    targets = [endpoint(SITES[n].url) for n in ("good", "bare")]
    store = Store(f"sqlite:///{tmp_path / 'history.db'}")
    b = load_baseline()
    rec = store.start_run(targets, baseline_id=b.id, baseline_version=b.version, tool_version=__version__,
                          settings=settings)
    kept = asyncio.run(Scanner(settings).run(targets, on_result=rec.on_result))
    run = rec.finish(kept.stats)
    streamed = run_stream(store, run, kept.model_copy(update={"targets": ()}))
    for fmt in ("json", "csv", "sarif"):
        a = render_all(kept, [fmt], tmp_path / f"memory.{fmt}")[0].read_bytes()
        b_ = render_all(streamed, [fmt], tmp_path / f"store.{fmt}")[0].read_bytes()
        assert a == b_, fmt
    assert [t.target for t in streamed.targets()] == [t.target for t in kept.targets]
    store.close()


def test_probes_of_one_host_share_one_http2_connection(http_testbed):
    """Given nginx offering HTTP/2 (ALPN h2) on the good site
    When its whole baseline is scanned with the default politeness
    Then every https:// request is HTTP/2, the probes share few connections (server side), and no URL
    is asked twice with the same method (the http:// chain and the exposure landing reuse answers)."""
    log = http_testbed.workdir / "requests.log"
    before = log.stat().st_size if log.exists() else 0
    site = SITES["good"]
    settings = Settings(resolve=http_testbed.resolve(), ca_bundle=http_testbed.ca_path, timeout=5)
    report = asyncio.run(Scanner(settings).run([endpoint(site.url)]))
    with log.open() as fh:
        fh.seek(before)
        lines = [ln.split() for ln in fh if ln.startswith(site.address + " ")]
    assert report.targets[0].decided > 20
    assert len(lines) > 100, len(lines)
    assert {ln[3] for ln in lines} == {"HTTP/2.0", "HTTP/1.1"}  # http:// is HTTP/1.1, https:// is h2
    h2 = [ln for ln in lines if ln[3] == "HTTP/2.0"]
    connections = {ln[1] for ln in h2}
    assert len(connections) <= 2, connections  # the address's HTTP share: one h2 connection in practice
    assert len(h2) >= 50 * len(connections)
    asked = [(ln[4], ln[5]) for ln in h2]
    assert asked.count(("GET", "/")) == 3  # the landing page once, and the two CORS probes (Origin)
    assert report.stats["http_requests"] == len(lines)


def test_a_url_asked_with_two_limits_is_one_request_when_read_whole(http_testbed):
    """Given the good site's landing page (a few hundred bytes)
    When one target's collectors ask for it at once through their shared memo, the exposure landing
    probe's 64 KB limit first and the http collector's 512 KB page fetch second (the order the first
    target of a scan may take)
    Then the server sees one request and both get the whole page; with a first limit smaller than the
    page (the first answer truncated) the larger fetch goes out again."""
    from scanner.net.context import ScanContext
    from scanner.net.memo import ResponseMemo

    log = http_testbed.workdir / "requests.log"
    site = SITES["good"]
    settings = Settings(resolve=http_testbed.resolve(), ca_bundle=http_testbed.ca_path, timeout=5)

    async def ask(first_limit: int, path: str):
        ctx = ScanContext.create(settings)
        try:
            memo = ResponseMemo()
            url = site.url.rstrip("/") + path
            return await asyncio.gather(memo.fetch(ctx.fetcher, url, max_bytes=first_limit),
                                        memo.fetch(ctx.fetcher, url, max_bytes=512_000))
        finally:
            await ctx.aclose()

    def asked(before: int, path: str) -> int:
        with log.open() as fh:
            fh.seek(before)
            lines = [ln.split() for ln in fh if ln.startswith(site.address + " ")]
        return sum(1 for ln in lines if ln[4:6] == ["GET", path])

    before = log.stat().st_size if log.exists() else 0
    small, big = asyncio.run(ask(64_000, "/"))
    assert small.status == big.status == 200
    assert big.body == small.body and len(big.body) > 10 and not big.body_truncated
    assert asked(before, "/") == 1

    before = log.stat().st_size
    small, big = asyncio.run(ask(10, "/"))
    assert small.body_truncated and len(small.body) == 10
    assert not big.body_truncated and len(big.body) > 10
    assert asked(before, "/") == 2
