"""D1-D6 against a real Knot DNS server (tests/testbed/knot.py), through the engine and the CLI."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanner import targets
from scanner.engine import Scanner
from scanner.models import Report, Status, Target
from scanner.settings import Settings
from tests.testbed.cli import pledgescan
from tests.testbed.knot import MTA_STS_ADDR, PARENT, KnotServer, MtaStsServer, require_knot, start_knot

MTA_STS_HOST = f"mta-sts.good.{PARENT}"


@pytest.fixture(scope="session")
def knot() -> Iterator[KnotServer]:
    require_knot()
    server = start_knot()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mta_sts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MtaStsServer]:
    d = tmp_path_factory.mktemp("mta-sts")
    server = MtaStsServer(d / "ca.pem", d).start()
    try:
        yield server
    finally:
        server.stop()


def settings(knot: KnotServer, mta: MtaStsServer | None = None, **kw: object) -> Settings:
    base: dict = dict(nameservers=(("127.0.40.1", 53),), trust_anchors=(knot.trust_anchor,), timeout=2.0)
    if mta:
        base.update(resolve={(MTA_STS_HOST, 443): MTA_STS_ADDR}, ca_bundle=mta.ca_pem)
    base.update(kw)
    return Settings(**base)


async def scan(s: Settings, tlist: list[Target]) -> Report:
    return await Scanner(s).run(tlist)


def table(report: Report) -> dict[str, dict[str, str]]:
    return {t.target: {c.id: c.status.value for c in t.controls} for t in report.targets}


EXPECTED = {
    # SPF mx -all, DMARC reject, CAA, MTA-STS enforce + TLS-RPT, signed with DS in the signed parent
    f"good.{PARENT}": dict(D1="pass", D2="pass", D3="pass", D4="pass", D5="pass", D6="pass"),
    # SPF +all, DMARC p=none pct=10, MX without MTA-STS; inside the signed parent zone
    f"weak.{PARENT}": dict(D1="fail", D2="warn", D3="pass", D4="fail", D5="fail", D6="pass"),
    # SPF chain of 12 includes
    f"overlimit.{PARENT}": dict(D1="fail", D2="fail", D3="pass", D4="fail", D5="not_applicable", D6="pass"),
    # unsigned delegated zone with no records at all
    f"nothing.{PARENT}": dict(D1="fail", D2="fail", D3="fail", D4="fail", D5="not_applicable", D6="pass"),
    # the parent's DS matches no DNSKEY of the child
    f"bogus.{PARENT}": dict(D1="pass", D2="fail", D3="fail", D4="fail", D5="not_applicable", D6="pass"),
    # mta-sts.dangling CNAME gone.pledge.test (NXDOMAIN)
    f"dangling.{PARENT}": dict(D1="pass", D2="fail", D3="pass", D4="fail", D5="not_applicable", D6="fail"),
}


async def test_zones_give_the_spec_statuses(knot, mta_sts):
    # Given the testbed zones, When each domain is scanned through our name server and trust anchor
    report = await scan(settings(knot, mta_sts), [targets.domain(d) for d in EXPECTED])
    # Then every D control has the spec's status
    assert table(report) == EXPECTED
    findings = {t.target: {f.control: f for f in t.findings} for t in report.targets}
    # with evidence that tells the cases apart
    assert findings[f"overlimit.{PARENT}"]["D1"].evidence["dns_lookups"] > 10
    assert "matches no DNSKEY" in findings[f"bogus.{PARENT}"]["D3"].detail
    assert "insecure delegation" in findings[f"nothing.{PARENT}"]["D3"].title
    assert findings[f"dangling.{PARENT}"]["D6"].evidence["chain"] == [f"gone.{PARENT}"]
    assert 'v=spf1 -all' in findings[f"nothing.{PARENT}"]["D1"].remediation
    assert "v=DMARC1; p=reject" in findings[f"nothing.{PARENT}"]["D2"].remediation
    good = findings[f"good.{PARENT}"]
    assert good["D3"].evidence["chain"][-1]["zone"] == f"good.{PARENT}."
    assert good["D5"].evidence["policy"]["mode"] == "enforce"


async def test_dangling_endpoint_host_under_the_domain(knot):
    # Given a domain whose endpoint host is a two-hop CNAME chain to a deleted name
    t = targets.domain(f"dangling.{PARENT}").model_copy(
        update={"related_hosts": (f"shop.dangling.{PARENT}", f"www.dangling.{PARENT}")})
    report = await scan(settings(knot), [t])
    d6 = [f for f in report.targets[0].findings if f.control == "D6"]
    # Then D6 fails for it (and for mta-sts), with the whole chain as evidence; the healthy one passes by
    chains = {f.evidence["name"]: f.evidence["chain"] for f in d6}
    assert all(f.status is Status.FAIL for f in d6)
    assert chains[f"shop.dangling.{PARENT}"] == [f"hop.dangling.{PARENT}", f"deleted-app.{PARENT}"]
    assert f"www.dangling.{PARENT}" not in chains


async def test_silent_name_server_gives_error_never_fail(knot):
    # Given a name server that never answers
    s = settings(knot, nameservers=(("127.0.40.9", 53),), timeout=0.5)
    report = await scan(s, [targets.domain(f"good.{PARENT}")])
    # Then every D control is error (not fail), and the grade is not lowered by it
    assert set(table(report)[f"good.{PARENT}"].values()) == {"error"}
    assert report.targets[0].errors


def test_cli_json_and_html(knot, mta_sts, tmp_path: Path):
    # Given the CLI with the user-facing options
    out = tmp_path / "out"
    args = ["scan", "--domain", f"good.{PARENT}",
           "--domain", f"weak.{PARENT}", "--nameserver", knot.nameserver, "--trust-anchor",
           str(knot.trust_anchor), "--resolve", f"{MTA_STS_HOST}:443:{MTA_STS_ADDR}", "--ca-bundle",
           str(mta_sts.ca_pem), "--timeout", "2", "--format", "json", "--format", "html", "-o", str(out),
           "--quiet"]
    proc = pledgescan(*args)
    assert proc.returncode in (0, 1, 2), proc.stderr
    # Then the JSON report has the spec's statuses, and the HTML report shows the remediation records
    data = json.loads(next(out.glob("*.json")).read_text())
    got = {t["target"]: {c["id"]: c["status"] for c in t["controls"]} for t in data["targets"]}
    assert got[f"good.{PARENT}"] == EXPECTED[f"good.{PARENT}"]
    assert got[f"weak.{PARENT}"] == EXPECTED[f"weak.{PARENT}"]
    html = next(out.glob("*.html")).read_text()
    assert "v=spf1 -all" in html and "CAA 0 issue" in html


async def test_dnskey_trust_anchor_and_wrong_anchor(knot, tmp_path: Path):
    # Given the parent's DNSKEY (not its DS) as anchor, Unbound trust-anchor-file style
    out = subprocess.run(["kdig", "@127.0.40.1", "+short", f"{PARENT}.", "DNSKEY"], capture_output=True,
                         text=True, check=True).stdout.strip()
    ta = tmp_path / "dnskey.txt"
    lines = "".join(f"{PARENT}. 3600 IN DNSKEY {ln}\n" for ln in out.splitlines())
    ta.write_text("; DNSKEY anchor\n" + lines)
    report = await scan(settings(knot, trust_anchors=(ta,)), [targets.domain(f"good.{PARENT}")])
    assert table(report)[f"good.{PARENT}"]["D3"] == "pass"
    # Given an anchor that matches no key of the parent, Then the chain is bogus
    wrong = tmp_path / "wrong.txt"
    wrong.write_text(f"{PARENT}. IN DS 12345 13 2 {'CD' * 32}\n")
    report = await scan(settings(knot, trust_anchors=(wrong,)), [targets.domain(f"good.{PARENT}")])
    assert table(report)[f"good.{PARENT}"]["D3"] == "fail"
    # Given no anchor covering the domain (the default root KSK; the testbed serves no root), Then error
    report = await scan(settings(knot, trust_anchors=()), [targets.domain(f"good.{PARENT}")])
    assert table(report)[f"good.{PARENT}"]["D3"] == "error"


async def test_nsec3_opt_out_unsigned_delegation_is_insecure_not_bogus(knot):
    # Given an unsigned child of an NSEC3 opt-out zone (as under .com): no NSEC3 matches its name, the
    # missing DS is proven by the closest encloser and an opt-out span covering the next closer name
    report = await scan(settings(knot), [targets.domain(f"unsigned.optout.{PARENT}")])
    d3 = next(f for f in report.targets[0].findings if f.control == "D3")
    # Then D3 fails as an insecure delegation (RFC 5155 7.2.4 / 8.6), not as bogus
    assert d3.status is Status.FAIL and "insecure delegation" in d3.title, d3.detail


async def test_spf_redirect_uses_the_redirected_all_unless_the_record_has_its_own(knot):
    # Given a record that is only a redirect (to a record ending in -all), and one with its own -all
    # followed by a redirect to a +all record (RFC 7208 6.1: the redirect is then ignored)
    report = await scan(settings(knot), [targets.domain(f"redirect.{PARENT}"),
                                         targets.domain(f"allredirect.{PARENT}")])
    d1 = {t.target: next(f for f in t.findings if f.control == "D1") for t in report.targets}
    # Then both end in -all and pass
    redirect = d1[f"redirect.{PARENT}"]
    assert redirect.status is Status.PASS and redirect.evidence["all"] == "fail"
    assert d1[f"allredirect.{PARENT}"].status is Status.PASS, d1[f"allredirect.{PARENT}"].title


async def test_domain_that_does_not_exist_is_error_not_fail(knot):
    # Given a domain name that does not exist (NXDOMAIN) in a signed parent
    report = await scan(settings(knot), [targets.domain(f"absent.{PARENT}")])
    # Then no D control passes or fails on it (the parent's DNSSEC, say, is not the domain's): all error
    assert set(table(report)[f"absent.{PARENT}"].values()) == {"error"}
    assert "does not exist" in report.targets[0].findings[0].detail


async def test_spf_include_of_a_name_without_spf_is_a_permerror(knot):
    # Given an SPF record ending in -all whose include: target publishes no SPF record
    report = await scan(settings(knot), [targets.domain(f"badinclude.{PARENT}")])
    d1 = next(f for f in report.targets[0].findings if f.control == "D1")
    # Then D1 fails: RFC 7208 5.2 makes the include, and so the whole evaluation, a permerror
    assert d1.status is Status.FAIL and f"nospf.spf.{PARENT}" in d1.detail, d1.title


def test_fetcher_tells_nxdomain_from_silence(knot: KnotServer):
    """Through the real server: a name that does not exist is an answer (dns_nxdomain), a silent
    name server is not (timeout); D5 relies on the difference (fail versus error)."""
    import asyncio

    from scanner.net.context import ScanContext
    from scanner.settings import Settings

    async def kind(nameserver: str, name: str) -> str | None:
        addr, port = nameserver.rsplit(":", 1)
        ctx = ScanContext.create(Settings(nameservers=((addr, int(port)),), timeout=1.0))
        try:
            return (await ctx.fetcher.fetch(f"https://{name}/")).error_kind
        finally:
            await ctx.aclose()

    assert asyncio.run(kind(knot.nameserver, f"missing.good.{PARENT}")) == "dns_nxdomain"
    assert asyncio.run(kind(knot.silent_nameserver, f"missing.good.{PARENT}")) == "timeout"
