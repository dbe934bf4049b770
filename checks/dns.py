"""Domain and e-mail checks (D1-D6): pure functions of the DNS evidence recorded by the dns collector.

The collector did the lookups (SPF include trees resolved and counted through checkdmarc, DMARC parsed by
checkdmarc, DNSSEC chains validated with dnspython); these checks only judge what was recorded.
"""

from __future__ import annotations

from typing import Any

from checks.lib import N_
from scanner.errors import ErrorKind
from scanner.evidence.dns import DNSAnswer, DNSEvidence
from scanner.models import Finding, Severity, Status
from scanner.plugins import CheckMeta, check

SPF_LOOKUP_LIMIT = 10


def _answer(a: DNSAnswer | None) -> dict[str, Any] | None:
    return a.model_dump(exclude_defaults=True) if a else None


def tag_values(record: str) -> dict[str, str]:
    """Tag=value pairs of a DMARC / MTA-STS / TLS-RPT TXT record (RFC 7489 6.4), keys lower-cased."""
    out: dict[str, str] = {}
    for part in record.split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip():
            out.setdefault(key.strip().lower(), value.strip())
    return out


# ---------------------------------------------------------------------------------------------- D1 SPF

@check("dns-spf", needs="dns")
def spf(ev: DNSEvidence, meta: CheckMeta) -> list[Finding]:
    s = ev.spf
    if s is None:
        return meta.errors("SPF was not looked up")
    if s.error:
        return meta.errors(s.error, {"lookup": _answer(s.lookup)})
    domain = ev.domain
    evidence: dict[str, Any] = {"domain": domain, "records": list(s.records)}
    if not s.records:
        why = "the domain does not exist" if s.lookup and s.lookup.rcode == "NXDOMAIN" else \
            "no TXT record starting with v=spf1"
        return [meta.finding(Status.FAIL, "No SPF record", f"{domain}: {why}.", evidence=evidence,
                             remediation=_spf_fix(domain))]
    if len(s.records) > 1:
        return [meta.finding(Status.FAIL, "More than one SPF record",
                             "RFC 7208 4.5: several v=spf1 records are a permanent error; receivers "
                             "ignore them all.", evidence=evidence,
                             remediation=N_("Merge them into one v=spf1 TXT record ending in -all."))]
    evidence.update({"dns_lookups": s.dns_lookups, "void_lookups": s.void_lookups, "all": s.all,
                     "redirect": s.redirect, "terms": list(s.terms[:20])})
    if s.warnings:
        evidence["warnings"] = list(s.warnings[:10])
    if s.problem_kind in ("SPFTooManyDNSLookups",) or (s.dns_lookups or 0) > SPF_LOOKUP_LIMIT:
        evidence["problem"] = s.problem
        return [meta.finding(Status.FAIL, "SPF needs more than 10 DNS lookups",
                             f"Evaluating the record takes {s.dns_lookups or 'more than 10'} DNS-querying "
                             "terms (limit 10, RFC 7208 4.6.4): receivers return permerror, as if there "
                             "were no SPF.", evidence=evidence,
                             remediation=N_("Reduce the include/a/mx/ptr/exists/redirect terms to at most "
                                            "10 in total, e.g. by replacing nested includes with ip4:/ip6: "
                                            "ranges."))]
    if s.problem:
        evidence["problem"] = s.problem
        evidence["problem_kind"] = s.problem_kind
        return [meta.finding(Status.FAIL, "SPF record is invalid", s.problem, evidence=evidence)]
    if s.all in ("fail", "softfail"):
        q = "-all" if s.all == "fail" else "~all"
        detail = f"SPF ends in {q} within {s.dns_lookups} DNS lookup(s)."
        return [meta.finding(Status.PASS, f"SPF published and ends in {q}", detail, evidence=evidence)]
    q = {"pass": "+all", "neutral": "?all (or no all)"}.get(s.all or "neutral", str(s.all))
    return [meta.finding(Status.FAIL, f"SPF ends in {q}",
                         f"An SPF record ending in {q} lets any server send mail as {domain}.",
                         evidence=evidence,
                         remediation=f"End the SPF record of {domain} with -all (or ~all while testing); for "
                                     f"a domain that sends no mail publish: {domain}. TXT \"v=spf1 -all\"")]


def _spf_fix(domain: str) -> str:
    return (f"Publish one SPF record listing your mail senders and ending in -all, e.g. "
            f"{domain}. TXT \"v=spf1 include:<your mail provider> -all\"; if {domain} sends no mail: "
            f"{domain}. TXT \"v=spf1 -all\"")


# -------------------------------------------------------------------------------------------- D2 DMARC

def _dmarc_fix(domain: str) -> str:
    return (f"Publish _dmarc.{domain}. TXT \"v=DMARC1; p=reject; rua=mailto:dmarc-reports@{domain}\" "
            f"(p=quarantine while rolling out; pct 100). A domain that sends no mail: "
            f"_dmarc.{domain}. TXT \"v=DMARC1; p=reject;\"")


@check("dns-dmarc", needs="dns")
def dmarc(ev: DNSEvidence, meta: CheckMeta) -> list[Finding]:
    d = ev.dmarc
    if d is None:
        return meta.errors("DMARC was not looked up")
    if d.error:
        return meta.errors(d.error, {"lookup": _answer(d.lookup), "org_lookup": _answer(d.org_lookup)})
    domain = ev.domain
    evidence: dict[str, Any] = {"domain": domain, "location": d.location, "records": list(d.records),
                                "organisational_domain": d.org_domain}
    if not d.records:
        where = f"_dmarc.{domain}"
        if d.org_domain and d.org_domain != domain:
            where += f" nor _dmarc.{d.org_domain}"
        return [meta.finding(Status.FAIL, "No DMARC record", f"No v=DMARC1 record at {where}.",
                             evidence=evidence, remediation=_dmarc_fix(domain))]
    if len(d.records) > 1:
        return [meta.finding(Status.FAIL, "More than one DMARC record",
                             f"{d.location} has {len(d.records)} v=DMARC1 records: receivers apply none.",
                             evidence=evidence, remediation=_dmarc_fix(domain))]
    if d.problem:
        evidence.update(problem=d.problem, problem_kind=d.problem_kind)
        return [meta.finding(Status.FAIL, "DMARC record is invalid", d.problem, evidence=evidence,
                             remediation=_dmarc_fix(domain))]
    raw = tag_values(d.records[0])
    inherited = d.location is not None and d.location != f"_dmarc.{domain}"
    # RFC 7489 6.6.3: a subdomain covered by its organisational domain's record gets sp (default p).
    if inherited:
        policy = (raw.get("sp") or raw.get("p") or d.tags.get("sp") or d.tags.get("p") or "").lower()
        tag = "sp"
    else:
        policy = (raw.get("p") or d.tags.get("p") or "").lower()
        tag = "p"
    pct_text = raw.get("pct", "100")
    if not (pct_text.isdigit() and 0 <= int(pct_text) <= 100):
        evidence["pct"] = pct_text
        return [meta.finding(Status.FAIL, "DMARC record is invalid",
                             f"pct={pct_text!r} is not a number from 0 to 100 (RFC 7489 6.3).",
                             evidence=evidence, remediation=_dmarc_fix(domain))]
    pct = int(pct_text)
    evidence.update(policy=policy, policy_tag=tag, pct=pct, inherited=inherited)
    if d.warnings:
        evidence["warnings"] = list(d.warnings[:10])
    if policy not in ("none", "quarantine", "reject"):
        return [meta.finding(Status.FAIL, "DMARC record is invalid", f"{tag}={policy!r} is not a policy.",
                             evidence=evidence, remediation=_dmarc_fix(domain))]
    if policy == "none":
        return [meta.finding(Status.WARN, f"DMARC policy is monitoring only ({tag}=none)",
                             "Spoofed mail is reported but still delivered.", evidence=evidence,
                             remediation=_dmarc_fix(domain))]
    if pct < 100:
        return [meta.finding(Status.WARN, f"DMARC applies to {pct}% of mail only",
                             f"pct={pct}: the {policy} policy covers only part of the failing mail.",
                             evidence=evidence, remediation=_dmarc_fix(domain))]
    src = f" (inherited from {d.location})" if inherited else ""
    return [meta.finding(Status.PASS, f"DMARC {tag}={policy}, pct=100{src}", evidence=evidence)]


# ------------------------------------------------------------------------------------------- D3 DNSSEC

@check("dns-dnssec", needs="dns")
def dnssec(ev: DNSEvidence, meta: CheckMeta) -> list[Finding]:
    d = ev.dnssec
    if d is None:
        return meta.errors("DNSSEC was not assessed")
    evidence = {"status": d.status, "reason": d.reason, "anchor": d.anchor, "anchor_source": d.anchor_source,
                "zone": d.zone, "chain": [s.model_dump(exclude_defaults=True) for s in d.chain[:20]]}
    if d.error or d.status == "indeterminate":
        return meta.errors(d.error or d.reason or "DNSSEC could not be assessed", evidence)
    if d.status == "secure":
        return [meta.finding(Status.PASS, "DNSSEC chain of trust validates",
                             f"Validated from the {d.anchor_source} anchor at {d.anchor} down to {d.zone}",
                             evidence=evidence)]
    if d.status == "insecure":
        return [meta.finding(Status.FAIL, "Zone is not signed (insecure delegation)", d.reason,
                             evidence=evidence)]
    return [meta.finding(Status.FAIL, "DNSSEC is bogus: the chain of trust is broken", d.reason,
                         evidence=evidence,
                         remediation=N_("Validating resolvers refuse to resolve a bogus zone. Publish at the "
                                        "parent a DS that matches the zone's current KSK (or remove the DS), "
                                        "and keep signatures refreshed before they expire."))]


# ---------------------------------------------------------------------------------------------- D4 CAA

@check("dns-caa", needs="dns")
def caa(ev: DNSEvidence, meta: CheckMeta) -> list[Finding]:
    c = ev.caa
    if c is None:
        return meta.errors("CAA was not looked up")
    if c.error:
        return meta.errors(c.error, {"lookups": [_answer(a) for a in c.lookups]})
    domain = ev.domain
    fix = (f"Publish CAA records naming your CAs, e.g. {domain}. CAA 0 issue \"letsencrypt.org\" and "
           f"{domain}. CAA 0 iodef \"mailto:security@{domain}\"")
    evidence = {"domain": domain, "found_at": c.found_at, "records": list(c.records),
                "climbed": [a.name for a in c.lookups]}
    if not c.found_at:
        return [meta.finding(Status.FAIL, "No CAA record", f"No CAA RRset at {domain} or above it: any CA "
                             "may issue certificates for it.", evidence=evidence, remediation=fix)]
    tags = {_caa_tag(r) for r in c.records}
    if not tags & {"issue", "issuewild"}:
        return [meta.finding(Status.FAIL, "CAA does not restrict issuance",
                             "The CAA RRset has no issue or issuewild property.", evidence=evidence,
                             remediation=fix)]
    where = "" if c.found_at == domain else f" (inherited from {c.found_at})"
    return [meta.finding(Status.PASS, f"CAA restricts issuance{where}", evidence=evidence)]


def _caa_tag(record: str) -> str:
    parts = record.split()
    return parts[1].lower() if len(parts) >= 3 else ""


# ----------------------------------------------------------------------------------------- D5 MTA-STS

def parse_sts_policy(text: str) -> dict[str, Any]:
    """An MTA-STS policy file (RFC 8461 3.2): key: value lines; mx may repeat."""
    out: dict[str, Any] = {"mx": []}
    for line in text.splitlines()[:200]:
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key == "mx":
            out["mx"].append(value)
        else:
            out.setdefault(key, value)
    return out


def _txt_with(answer: DNSAnswer | None, version: str) -> list[str]:
    if answer is None or not answer.exists:
        return []
    return [r for r in answer.records if tag_values(r).get("v", "").lower() == version.lower()]


@check("dns-mta-sts", needs="dns")
def mta_sts(ev: DNSEvidence, meta: CheckMeta) -> list[Finding]:
    m = ev.mail
    if m is None or m.mx is None:
        return meta.errors("MX was not looked up")
    if m.error or m.mx.error:
        return meta.errors(m.error or m.mx.error or "MX lookup failed", {"mx": _answer(m.mx)})
    domain = ev.domain
    mx_hosts = [r.split()[-1].rstrip(".") for r in m.mx.records if len(r.split()) == 2]
    if not m.mx.exists or mx_hosts in ([""], []):
        return [meta.finding(Status.NOT_APPLICABLE, "No MX: the domain receives no mail",
                             evidence={"mx": _answer(m.mx)})]
    evidence: dict[str, Any] = {"mx": mx_hosts}
    fix = meta.remediation.replace("<domain>", domain)

    def fail(title: str, detail: str) -> list[Finding]:
        return [meta.finding(Status.FAIL, title, detail, evidence=evidence, remediation=fix)]

    for name, a in (("mta_sts", m.mta_sts), ("tls_rpt", m.tls_rpt)):
        if a is None or a.error:
            return meta.errors(f"{name} lookup failed: {a.error if a else 'not looked up'}", evidence)
    sts = _txt_with(m.mta_sts, "STSv1")
    rpt = [r for r in _txt_with(m.tls_rpt, "TLSRPTv1") if tag_values(r).get("rua")]
    evidence.update(mta_sts_txt=list(sts), tls_rpt_txt=list(rpt))
    missing = []
    if len(sts) != 1 or not tag_values(sts[0]).get("id"):
        missing.append(f"_mta-sts.{domain} TXT \"v=STSv1; id=...\"")
    if len(rpt) != 1:
        missing.append(f"_smtp._tls.{domain} TXT \"v=TLSRPTv1; rua=mailto:...\"")
    if missing:
        return fail("MTA-STS / TLS-RPT not published", "Missing or invalid: " + "; ".join(missing) + ".")
    p = m.policy
    if p is None:
        return meta.errors("the MTA-STS policy was not fetched", evidence)
    evidence["policy_url"] = p.url
    if p.error:
        evidence.update(policy_error=p.error, policy_error_kind=p.error_kind)
        if p.error_kind == ErrorKind.TIMEOUT:
            return meta.errors(f"fetching the MTA-STS policy timed out ({p.url})", evidence)
        if p.error_kind in (ErrorKind.BLOCKED, ErrorKind.DNS, ErrorKind.DNS_SERVFAIL):
            # A DNS timeout/SERVFAIL, or a connection we refused to make, decides nothing about the policy.
            return meta.errors(f"the MTA-STS policy could not be fetched ({p.url}): {p.error}", evidence)
        return fail("MTA-STS policy cannot be fetched", f"{p.url}: {p.error}")
    if p.tls_verified is False:
        evidence["tls_error"] = p.tls_error
        return fail("MTA-STS policy host has an invalid certificate",
                    f"RFC 8461 3.3 requires a valid certificate: {p.tls_error}")
    if p.status != 200:
        evidence["policy_status"] = p.status
        return fail("MTA-STS policy not served",
                    f"{p.url} answered HTTP {p.status}.")
    pol = parse_sts_policy(p.body)
    evidence["policy"] = {k: (v[:20] if isinstance(v, list) else v) for k, v in pol.items()}
    mode = str(pol.get("mode", "")).lower()
    if pol.get("version") != "STSv1" or mode not in ("enforce", "testing", "none") \
            or not str(pol.get("max_age", "")).isdigit() or not pol["mx"]:
        return fail("MTA-STS policy is invalid",
                    "The policy needs version: STSv1, mode, max_age and at least one mx line.")
    if mode == "none":
        return fail("MTA-STS policy mode is none", "The policy is withdrawn.")
    if mode == "testing":
        return [meta.finding(Status.WARN, "MTA-STS in testing mode",
                             "Senders report failures but still deliver without TLS.", evidence=evidence,
                             remediation=N_("Switch the policy to mode: enforce once TLS-RPT reports are "
                                            "clean."))]
    return [meta.finding(Status.PASS, "MTA-STS (enforce) and TLS-RPT published", evidence=evidence)]


# ------------------------------------------------------------------------------------- D6 dangling DNS

@check("dns-dangling-cname", needs="dns")
def dangling_cname(ev: DNSEvidence, meta: CheckMeta) -> list[Finding]:
    if ev.cname_error:
        return meta.errors(ev.cname_error)
    chains = [c.model_dump(exclude_defaults=True) for c in ev.cnames[:50]]
    dangling = [c for c in ev.cnames if c.dangling]
    if dangling:
        out = []
        for c in dangling:
            path = " -> ".join((c.name, *c.chain))
            out.append(meta.finding(Status.FAIL, f"Dangling CNAME: {c.name}",
                                    f"{path} does not exist (NXDOMAIN): subdomain takeover risk.",
                                    severity=Severity.HIGH,
                                    evidence={"name": c.name, "found_as": c.why, "chain": list(c.chain),
                                              "terminal_rcode": c.terminal_rcode},
                                    remediation=f"Delete the CNAME record at {c.name} (it points to "
                                                f"{c.chain[-1] if c.chain else '?'}), or reclaim its "
                                                "target."))
        return out
    failed = [c for c in ev.cnames if c.error]
    if failed:
        return meta.errors(f"CNAME chain of {failed[0].name} could not be followed: {failed[0].error}",
                           {"chains": chains})
    return [meta.finding(Status.PASS, "No dangling CNAME",
                         f"{len(ev.cnames)} name(s) checked.", evidence={"chains": chains})]

