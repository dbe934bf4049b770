"""Unit tests of the D1-D6 checks over constructed (recorded-style) DNS evidence."""

from __future__ import annotations

from typing import Any

import pytest

from checks import dns as checks
from scanner.evidence import Snapshot
from scanner.evidence.dns import (
    CAAEvidence,
    CNAMEChain,
    DMARCEvidence,
    DNSAnswer,
    DNSEvidence,
    DNSSECEvidence,
    DNSSECStep,
    MailEvidence,
    PolicyFetch,
    SPFEvidence,
)
from scanner.models import Status, Target
from scanner.plugins import checks_in

DOMAIN = "school.example"
TARGET = Target(kind="domain", target=DOMAIN, host=DOMAIN, scope=(DOMAIN,))


def snap(**parts: Any) -> Snapshot:
    return Snapshot(target=TARGET, dns=DNSEvidence(domain=DOMAIN, **parts))


def statuses(findings: list) -> list[Status]:
    return [f.status for f in findings]


def txt(name: str, *records: str, rcode: str = "NOERROR") -> DNSAnswer:
    return DNSAnswer(name=name, rdtype="TXT", rcode=rcode, records=records)


# ------------------------------------------------------------------------------------------ common


@pytest.mark.parametrize("chk", checks_in(checks), ids=lambda c: c.id)
def test_every_check_errors_when_dns_evidence_failed(chk):
    # Given a DNS collection that timed out / was never run
    for s in (Snapshot(target=TARGET, dns=DNSEvidence(error="DNS query timed out")), Snapshot(target=TARGET)):
        # When the check runs, Then it reports error (never fail) on each of its controls
        out = chk.run(s)
        assert statuses(out) == [Status.ERROR] * len(chk.meta.controls)


def test_check_ids_and_controls():
    ids = {c.id: c.meta.controls for c in checks_in(checks)}
    assert ids == {"dns-spf": ("D1",), "dns-dmarc": ("D2",), "dns-dnssec": ("D3",), "dns-caa": ("D4",),
                   "dns-mta-sts": ("D5",), "dns-dangling-cname": ("D6",)}
    assert all(c.meta.target_kind == "domain" for c in checks_in(checks))


# --------------------------------------------------------------------------------------------- D1


def spf_ev(record: str | None, **kw: Any) -> SPFEvidence:
    recs = (record,) if record else ()
    return SPFEvidence(lookup=txt(DOMAIN, *recs), records=recs, **kw)


@pytest.mark.parametrize("record,allq,status", [
    ("v=spf1 -all", "fail", Status.PASS),
    ("v=spf1 mx ~all", "softfail", Status.PASS),
    ("v=spf1 +all", "pass", Status.FAIL),
    ("v=spf1 ?all", "neutral", Status.FAIL),
    ("v=spf1 ip4:192.0.2.1", "neutral", Status.FAIL),
])
def test_spf_all_qualifier(record, allq, status):
    out = checks.spf.run(snap(spf=spf_ev(record, all=allq, dns_lookups=1, void_lookups=0)))
    assert statuses(out) == [status]
    if status is Status.FAIL:
        assert "v=spf1 -all" in out[0].remediation


def test_spf_missing_fails_with_record_to_publish():
    out = checks.spf.run(snap(spf=SPFEvidence(lookup=txt(DOMAIN, rcode="NODATA"))))
    assert statuses(out) == [Status.FAIL]
    assert f'{DOMAIN}. TXT "v=spf1 -all"' in out[0].remediation


def test_spf_over_lookup_limit_fails():
    ev = spf_ev("v=spf1 include:a include:b -all", all="fail", dns_lookups=12,
                problem="requires 12/10 maximum DNS lookups", problem_kind="SPFTooManyDNSLookups")
    out = checks.spf.run(snap(spf=ev))
    assert statuses(out) == [Status.FAIL] and "10 DNS lookups" in out[0].title
    assert out[0].evidence["dns_lookups"] == 12


def test_spf_syntax_error_and_duplicates_fail():
    bad = spf_ev("v=spf1 foo:bar -all", problem="Expected ...", problem_kind="SPFSyntaxError")
    assert statuses(checks.spf.run(snap(spf=bad))) == [Status.FAIL]
    two = SPFEvidence(records=("v=spf1 -all", "v=spf1 ~all"))
    assert statuses(checks.spf.run(snap(spf=two))) == [Status.FAIL]


def test_spf_lookup_timeout_is_error():
    ev = SPFEvidence(error="DNS lookup of include.example TXT timed out")
    assert statuses(checks.spf.run(snap(spf=ev))) == [Status.ERROR]


# --------------------------------------------------------------------------------------------- D2


def dmarc_ev(record: str | None, location: str | None = None, **kw: Any) -> DMARCEvidence:
    recs = (record,) if record else ()
    return DMARCEvidence(lookup=txt(f"_dmarc.{DOMAIN}", *recs), records=recs,
                         location=location or (f"_dmarc.{DOMAIN}" if record else None), **kw)


@pytest.mark.parametrize("record,status", [
    ("v=DMARC1; p=reject", Status.PASS),
    ("v=DMARC1; p=quarantine; pct=100; rua=mailto:d@school.example", Status.PASS),
    ("v=DMARC1; p=none", Status.WARN),
    ("v=DMARC1; p=reject; pct=10", Status.WARN),
    ("v=DMARC1; p=bogus", Status.FAIL),
    ("v=DMARC1; p=reject; pct=ten", Status.FAIL),
    ("v=DMARC1; p=reject; pct=150", Status.FAIL),  # RFC 7489 6.3: pct is 0 to 100
    ("v=DMARC1; p=reject; pct=-1", Status.FAIL),
    ("v=DMARC1; p=reject; pct=0", Status.WARN),
])
def test_dmarc_policy(record, status):
    assert statuses(checks.dmarc.run(snap(dmarc=dmarc_ev(record)))) == [status]


def test_dmarc_missing_fails_with_record_to_publish():
    out = checks.dmarc.run(snap(dmarc=DMARCEvidence(lookup=txt(f"_dmarc.{DOMAIN}", rcode="NXDOMAIN"))))
    assert statuses(out) == [Status.FAIL]
    assert "v=DMARC1; p=reject" in out[0].remediation


def test_dmarc_inherited_from_org_domain_uses_sp():
    # Given a subdomain with no record of its own, and the organisational domain's p=reject, sp=none
    ev = dmarc_ev("v=DMARC1; p=reject; sp=none", location="_dmarc.example", org_domain="example")
    out = checks.dmarc.run(snap(dmarc=ev))
    # Then the subdomain policy (sp) applies
    assert statuses(out) == [Status.WARN] and out[0].evidence["policy_tag"] == "sp"
    ev = dmarc_ev("v=DMARC1; p=reject", location="_dmarc.example", org_domain="example")
    assert statuses(checks.dmarc.run(snap(dmarc=ev))) == [Status.PASS]


def test_dmarc_invalid_and_error():
    bad = dmarc_ev("v=DMARC1; p=reject; foo", problem="syntax", problem_kind="DMARCSyntaxError")
    assert statuses(checks.dmarc.run(snap(dmarc=bad))) == [Status.FAIL]
    assert statuses(checks.dmarc.run(snap(dmarc=DMARCEvidence(error="SERVFAIL")))) == [Status.ERROR]


# --------------------------------------------------------------------------------------------- D3


@pytest.mark.parametrize("status,expected", [
    ("secure", Status.PASS), ("insecure", Status.FAIL), ("bogus", Status.FAIL),
    ("indeterminate", Status.ERROR),
])
def test_dnssec_statuses(status, expected):
    ev = DNSSECEvidence(status=status, reason="because", anchor="example.", zone=f"{DOMAIN}.",
                        chain=(DNSSECStep(zone="example.", secure=True),))
    out = checks.dnssec.run(snap(dnssec=ev))
    assert statuses(out) == [expected]
    if status == "bogus":
        assert "bogus" in out[0].title.lower() and out[0].detail == "because"


# --------------------------------------------------------------------------------------------- D4


def test_caa_found_inherited_missing_and_useless():
    ok = CAAEvidence(found_at="example", records=('0 issue "letsencrypt.org"',))
    out = checks.caa.run(snap(caa=ok))
    assert statuses(out) == [Status.PASS] and "inherited" in out[0].title
    out = checks.caa.run(snap(caa=CAAEvidence()))
    assert statuses(out) == [Status.FAIL] and 'CAA 0 issue "letsencrypt.org"' in out[0].remediation
    iodef_only = CAAEvidence(found_at=DOMAIN, records=('0 iodef "mailto:x@example"',))
    assert statuses(checks.caa.run(snap(caa=iodef_only))) == [Status.FAIL]
    assert statuses(checks.caa.run(snap(caa=CAAEvidence(error="timeout")))) == [Status.ERROR]


# --------------------------------------------------------------------------------------------- D5

MX = DNSAnswer(name=DOMAIN, rdtype="MX", rcode="NOERROR", records=(f"10 mx.{DOMAIN}.",))
POLICY = "version: STSv1\nmode: enforce\nmx: mx.school.example\nmax_age: 604800\n"


def mail(body: str = POLICY, **kw: Any) -> MailEvidence:
    base: dict[str, Any] = dict(
        mx=MX,
        mta_sts=txt(f"_mta-sts.{DOMAIN}", "v=STSv1; id=2024"),
        tls_rpt=txt(f"_smtp._tls.{DOMAIN}", "v=TLSRPTv1; rua=mailto:t@school.example"),
        policy=PolicyFetch(url="https://mta-sts.school.example/.well-known/mta-sts.txt", status=200,
                           body=body, tls_verified=True),
    )
    base.update(kw)
    return MailEvidence(**base)


def test_mta_sts_pass_warn_fail():
    assert statuses(checks.mta_sts.run(snap(mail=mail()))) == [Status.PASS]
    testing = POLICY.replace("enforce", "testing")
    assert statuses(checks.mta_sts.run(snap(mail=mail(testing)))) == [Status.WARN]
    no_rpt = mail(tls_rpt=txt(f"_smtp._tls.{DOMAIN}", rcode="NXDOMAIN"))
    out = checks.mta_sts.run(snap(mail=no_rpt))
    assert statuses(out) == [Status.FAIL] and "_smtp._tls" in out[0].detail
    unserved = mail(policy=PolicyFetch(url="u", error="name does not exist", error_kind="no_such_host"))
    assert statuses(checks.mta_sts.run(snap(mail=unserved))) == [Status.FAIL]
    timeout = mail(policy=PolicyFetch(url="u", error="timed out", error_kind="timeout"))
    assert statuses(checks.mta_sts.run(snap(mail=timeout))) == [Status.ERROR]
    # the policy host's name could not be resolved for lack of an answer (not NXDOMAIN): error, not fail
    for err in ("DNS query timed out", "no name server answered (SERVFAIL)"):
        dns_fail = mail(policy=PolicyFetch(url="u", error=err, error_kind="dns"))
        assert statuses(checks.mta_sts.run(snap(mail=dns_fail))) == [Status.ERROR], err
    blocked = mail(policy=PolicyFetch(url="u", error="refused to connect to internal address",
                                      error_kind="blocked"))
    assert statuses(checks.mta_sts.run(snap(mail=blocked))) == [Status.ERROR]
    no_host = mail(policy=PolicyFetch(url="u", error="name has no A or AAAA record",
                                     error_kind="no_such_host"))
    assert statuses(checks.mta_sts.run(snap(mail=no_host))) == [Status.FAIL]
    badcert = mail(policy=PolicyFetch(url="u", status=200, body=POLICY, tls_verified=False, tls_error="x"))
    assert statuses(checks.mta_sts.run(snap(mail=badcert))) == [Status.FAIL]


def test_mta_sts_not_applicable_without_mx():
    for mx in (DNSAnswer(name=DOMAIN, rdtype="MX", rcode="NODATA"),
               DNSAnswer(name=DOMAIN, rdtype="MX", rcode="NOERROR", records=("0 .",))):
        out = checks.mta_sts.run(snap(mail=MailEvidence(mx=mx)))
        assert statuses(out) == [Status.NOT_APPLICABLE]
    out = checks.mta_sts.run(snap(mail=MailEvidence(mx=DNSAnswer(name=DOMAIN, error="timed out"))))
    assert statuses(out) == [Status.ERROR]


# --------------------------------------------------------------------------------------------- D6


def test_dangling_cname():
    ok = (CNAMEChain(name=DOMAIN, why="domain", terminal_rcode="NOERROR"),
          CNAMEChain(name=f"www.{DOMAIN}", why="endpoint", chain=("cdn.example",), terminal_rcode="NOERROR"))
    assert statuses(checks.dangling_cname.run(snap(cnames=ok))) == [Status.PASS]
    bad = (*ok, CNAMEChain(name=f"shop.{DOMAIN}", why="endpoint", chain=("a.example", "gone.saas.example"),
                           terminal_rcode="NXDOMAIN", dangling=True))
    out = checks.dangling_cname.run(snap(cnames=bad))
    assert statuses(out) == [Status.FAIL]
    assert out[0].evidence["chain"] == ["a.example", "gone.saas.example"]
    assert "gone.saas.example" in out[0].remediation
    err = (*ok, CNAMEChain(name=f"x.{DOMAIN}", error="timed out"))
    assert statuses(checks.dangling_cname.run(snap(cnames=err))) == [Status.ERROR]
