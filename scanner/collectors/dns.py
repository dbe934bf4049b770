"""The dns collector: every lookup behind controls D1-D6 for one domain target.

All queries go through the scanner's resolver configuration (``--nameserver``, timeouts) and are counted
in ``ctx.stats.dns_queries``; the MTA-STS policy is fetched through ``ctx.fetcher`` (``--resolve``,
``--ca-bundle``, size caps). Timeouts and SERVFAIL are recorded as errors; NXDOMAIN/NODATA are answers.

SPF and DMARC are evaluated with checkdmarc (syntax, the all-qualifier, the RFC 7208 10-lookup limit
counted by resolving include/redirect/a/mx/ptr/exists for real). checkdmarc is synchronous, so it runs in
a worker thread with a dnspython resolver that copies our configuration: the same name servers *and
port* (checkdmarc accepts a ``resolver=`` object, and ``dns.nameserver.Do53Nameserver`` objects carry a
port for the few calls that take only ``nameservers=``), so ``--nameserver ADDR:PORT`` is honoured.
"""

from __future__ import annotations

import asyncio
from typing import Any

import checkdmarc.dmarc
import checkdmarc.spf
import checkdmarc.utils
import dns.asyncquery
import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.nameserver
import dns.rcode
import dns.rdatatype
import dns.resolver

from scanner.collectors.dnssec import AnchorError, ChainValidator, load_anchors
from scanner.errors import ErrorKind, short_message
from scanner.evidence.dns import (
    MAX_ITEMS,
    MAX_POLICY,
    CAAEvidence,
    CNAMEChain,
    DMARCEvidence,
    DNSAnswer,
    DNSEvidence,
    DNSSECEvidence,
    MailEvidence,
    PolicyFetch,
    SPFEvidence,
    bound,
    bound_list,
)
from scanner.models import Target
from scanner.net.context import ScanContext
from scanner.net.error_kinds import DNSFailure, dns_error_kind, rcode_kind
from scanner.net.names import registrable_domain

# checkdmarc keeps a process-wide answer cache keyed by name only (not by name server): wrong for a
# scanner whose name servers are a per-scan setting. Turn it off; our own stats count every query.
checkdmarc.utils.DNS_CACHE = None

MAX_CNAME_HOPS = 10


def _txt(rdata: Any) -> str:
    return b"".join(rdata.strings).decode("utf-8", errors="replace")


class Lookups:
    """Counted lookups through the scan's resolver configuration, answers recorded as ``DNSAnswer``."""

    def __init__(self, ctx: ScanContext) -> None:
        self.ctx = ctx
        base = ctx.resolver.dns
        self.res = base
        self.servers = [(str(ns), base.port) for ns in base.nameservers]
        self.timeout = ctx.settings.timeout

    def count(self, n: int = 1) -> None:
        self.ctx.stats.dns_queries += n

    async def answer(self, name: str, rdtype: str) -> DNSAnswer:
        self.count()
        base = {"name": name, "rdtype": rdtype}
        try:
            ans = await self.res.resolve(name, rdtype, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return DNSAnswer(**base, rcode="NXDOMAIN")
        except dns.exception.Timeout as exc:
            return DNSAnswer(**base, error=f"DNS query {name} {rdtype} timed out",
                             error_kind=dns_error_kind(exc))
        except dns.resolver.NoNameservers as exc:
            return DNSAnswer(**base, error=f"no name server answered {name} {rdtype} ({short_message(exc)})",
                             error_kind=dns_error_kind(exc))
        except dns.exception.DNSException as exc:
            return DNSAnswer(**base, error=f"DNS error on {name} {rdtype}: {short_message(exc)}",
                             error_kind=dns_error_kind(exc))
        if ans.rrset is None:
            return DNSAnswer(**base, rcode="NODATA")
        records = [_txt(r) if rdtype == "TXT" else r.to_text() for r in ans.rrset]
        return DNSAnswer(**base, rcode="NOERROR", records=bound_list(records))

    async def raw(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> dns.message.Message:
        """One DO+CD query (for DNSSEC), trying each name server; raises DNSException."""
        query = dns.message.make_query(name, rdtype, want_dnssec=True, payload=1232)
        query.flags |= dns.flags.CD
        last: dns.exception.DNSException = DNSFailure("no name server configured")
        for addr, port in self.servers:
            self.count()
            try:
                resp, _tcp = await dns.asyncquery.udp_with_fallback(query, addr, timeout=self.timeout,
                                                                    port=port)
            except dns.exception.Timeout as exc:
                last = DNSFailure(f"DNS query {name} {dns.rdatatype.to_text(rdtype)} timed out",
                                  dns_error_kind(exc))
                continue
            except (OSError, dns.exception.DNSException) as exc:
                last = DNSFailure(f"{addr}: {short_message(exc)}", dns_error_kind(exc))
                continue
            if resp.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                return resp
            what = f"{name} {dns.rdatatype.to_text(rdtype)}"
            last = DNSFailure(f"{addr} answered {dns.rcode.to_text(resp.rcode())} for {what}",
                              rcode_kind(resp.rcode()))
        raise last

    def sync_resolver(self) -> _CountingResolver:
        res = _CountingResolver(configure=False)
        res.nameservers = [str(ns) for ns in self.res.nameservers]
        res.port = self.res.port
        res.timeout = self.timeout
        res.lifetime = self.timeout
        return res

    def checkdmarc_nameservers(self) -> list[dns.nameserver.Nameserver]:
        return [dns.nameserver.Do53Nameserver(addr, port) for addr, port in self.servers]


class _CountingResolver(dns.resolver.Resolver):
    """A synchronous resolver for checkdmarc that counts its queries and remembers failures."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queries = 0
        self.failures: list[tuple[str, ErrorKind]] = []

    def resolve(self, qname: Any, rdtype: Any = dns.rdatatype.A, *args: Any, **kwargs: Any) -> Any:
        self.queries += 1
        try:
            return super().resolve(qname, rdtype, *args, **kwargs)
        except dns.exception.Timeout as exc:
            self.failures.append((f"DNS query {qname} {rdtype} timed out", dns_error_kind(exc)))
            raise
        except dns.resolver.NoNameservers as exc:
            self.failures.append((f"no name server answered {qname} {rdtype} ({short_message(exc, 120)})",
                                  dns_error_kind(exc)))
            raise


# --------------------------------------------------------------------------------------------- SPF

async def collect_spf(domain: str, look: Lookups) -> SPFEvidence:
    lookup = await look.answer(domain, "TXT")
    if lookup.error:
        return SPFEvidence(lookup=lookup, error=lookup.error, error_kind=lookup.error_kind)
    records = tuple(r for r in lookup.records
                    if r.strip().lower() == "v=spf1" or r.strip().lower().startswith("v=spf1 "))
    if len(records) != 1:
        return SPFEvidence(lookup=lookup, records=records)
    resolver = look.sync_resolver()
    result = await asyncio.to_thread(_parse_spf, records[0], domain, resolver, look)
    look.count(resolver.queries)
    failures = resolver.failures
    if failures:
        why, kind = failures[0]
        return SPFEvidence(lookup=lookup, records=records, error=f"SPF evaluation incomplete: {why}",
                           error_kind=kind)
    return SPFEvidence(lookup=lookup, records=records, **result)


def _parse_spf(record: str, domain: str, resolver: dns.resolver.Resolver, look: Lookups) -> dict[str, Any]:
    try:
        res = checkdmarc.spf.parse_spf_record(record, domain, resolver=resolver,
                                              nameservers=look.checkdmarc_nameservers(),
                                              timeout=look.timeout, retries=0)
    except checkdmarc.spf.SPFError as exc:
        data = getattr(exc, "data", None) or {}
        return {"problem": bound(short_message(exc, 500)), "problem_kind": type(exc).__name__,
                "dns_lookups": data.get("dns_lookups"), "void_lookups": data.get("void_dns_lookups")}
    parsed = res.get("parsed", {})
    missing = _include_without_record(parsed)
    if missing:
        # checkdmarc only warns; RFC 7208 5.2 makes it a permerror of the whole evaluation.
        return {"problem": f"include:{bound(missing, 255)} has no SPF record: permerror (RFC 7208 5.2)",
                "problem_kind": "SPFIncludeWithoutRecord", "dns_lookups": res.get("dns_lookups"),
                "void_lookups": res.get("void_dns_lookups")}
    terms = [f"{m.get('mechanism')}:{m.get('value')}" if m.get("value") else str(m.get("mechanism"))
             for m in parsed.get("mechanisms", [])]
    redirect = parsed.get("redirect")
    all_q = parsed.get("all")
    lookups, voids = res.get("dns_lookups"), res.get("void_dns_lookups")
    own_all = _own_all(record)
    if own_all is not None:
        # RFC 7208 6.1: with an 'all' mechanism the redirect modifier is ignored (checkdmarc still
        # follows it, overwriting 'all' and counting its lookups): the record's own 'all' decides.
        all_q = own_all
        if isinstance(redirect, dict) and isinstance(lookups, int) and isinstance(voids, int):
            lookups -= int(redirect.get("dns_lookups") or 0)
            voids -= int(redirect.get("void_dns_lookups") or 0)
    elif isinstance(redirect, dict):
        # A redirect hands evaluation to the target record: its 'all' is the effective one.
        all_q = (redirect.get("parsed") or {}).get("all", all_q)
    if isinstance(redirect, dict):
        redirect = redirect.get("domain")
    return {"dns_lookups": lookups, "void_lookups": voids,
            "all": all_q, "redirect": bound(str(redirect)) if redirect else None,
            "terms": bound_list(terms), "warnings": bound_list(res.get("warnings", []), 20)}


def _include_without_record(parsed: dict[str, Any], depth: int = 0) -> str | None:
    """The first include: (at any depth) whose target has no SPF record, as checkdmarc parsed it."""
    for m in parsed.get("mechanisms", []) if depth < 12 else []:
        if not isinstance(m, dict) or m.get("mechanism") != "include":
            continue
        value = str(m.get("value") or "")
        if m.get("record") is None and "%" not in value:
            return value
        found = _include_without_record(m.get("parsed") or {}, depth + 1)
        if found:
            return found
    redirect = parsed.get("redirect")
    if isinstance(redirect, dict) and depth < 12:
        return _include_without_record(redirect.get("parsed") or {}, depth + 1)
    return None


_ALL_RESULT = {"+": "pass", "": "pass", "-": "fail", "~": "softfail", "?": "neutral"}


def _own_all(record: str) -> str | None:
    """The result of the record's own 'all' mechanism (checkdmarc's words), or None without one."""
    for term in record.split()[1:]:
        q, name = (term[0], term[1:]) if term[:1] in ("+", "-", "~", "?") else ("", term)
        if name.lower() == "all":
            return _ALL_RESULT[q]
    return None


# ------------------------------------------------------------------------------------------- DMARC

def _dmarc_records(a: DNSAnswer) -> tuple[str, ...]:
    return tuple(r for r in a.records if r.strip().lower().startswith("v=dmarc1"))


async def collect_dmarc(domain: str, look: Lookups) -> DMARCEvidence:
    lookup = await look.answer(f"_dmarc.{domain}", "TXT")
    if lookup.error:
        return DMARCEvidence(lookup=lookup, error=lookup.error, error_kind=lookup.error_kind)
    org = registrable_domain(domain)
    records, location, org_lookup = _dmarc_records(lookup), f"_dmarc.{domain}", None
    if not records and org != domain:
        org_lookup = await look.answer(f"_dmarc.{org}", "TXT")
        if org_lookup.error:
            return DMARCEvidence(lookup=lookup, org_domain=org, org_lookup=org_lookup, error=org_lookup.error,
                                 error_kind=org_lookup.error_kind)
        records, location = _dmarc_records(org_lookup), f"_dmarc.{org}"
    base: dict[str, Any] = {"lookup": lookup, "org_domain": org, "org_lookup": org_lookup}
    if not records:
        return DMARCEvidence(**base)
    base.update(location=location, records=records)
    if len(records) > 1:
        return DMARCEvidence(**base)
    resolver = look.sync_resolver()
    at = location.removeprefix("_dmarc.")
    parsed = await asyncio.to_thread(_parse_dmarc, records[0], at, resolver, look)
    look.count(resolver.queries)
    return DMARCEvidence(**base, **parsed)


def _parse_dmarc(record: str, domain: str, resolver: dns.resolver.Resolver, look: Lookups) -> dict[str, Any]:
    try:
        res = checkdmarc.dmarc.parse_dmarc_record(record, domain, resolver=resolver,
                                                  nameservers=look.checkdmarc_nameservers(),
                                                  timeout=look.timeout, retries=0)
    except checkdmarc.dmarc.DMARCError as exc:
        return {"problem": bound(short_message(exc, 500)), "problem_kind": type(exc).__name__}
    tags: dict[str, str] = {}
    explicit = []
    for key, tag in list(res.get("tags", {}).items())[:MAX_ITEMS]:
        value = tag.get("value")
        if isinstance(value, list):
            value = ",".join(str(v.get("address", v)) if isinstance(v, dict) else str(v) for v in value)
        tags[str(key)] = bound(str(value), 512) or ""
        if tag.get("explicit"):
            explicit.append(str(key))
    return {"tags": tags, "explicit": tuple(explicit), "warnings": bound_list(res.get("warnings", []), 20)}


# --------------------------------------------------------------------------------------------- CAA

async def collect_caa(domain: str, look: Lookups) -> CAAEvidence:
    """RFC 8659 section 3: the first CAA RRset found climbing from the domain towards the root.

    The climb stops at the organisational domain: public suffixes (TLDs, registry suffixes) publish no
    CAA for their registrants, and asking about them would leave the member's scope.
    """
    org = registrable_domain(domain)
    labels = domain.split(".")
    names = [".".join(labels[i:]) for i in range(len(labels))]
    names = names[: names.index(org) + 1] if org in names else names[:1]
    lookups = []
    for name in names:
        a = await look.answer(name, "CAA")
        lookups.append(a)
        if a.error:
            return CAAEvidence(lookups=tuple(lookups), error=a.error, error_kind=a.error_kind)
        if a.exists:
            return CAAEvidence(found_at=name, records=a.records, lookups=tuple(lookups))
    return CAAEvidence(lookups=tuple(lookups))


# ------------------------------------------------------------------------------------ MX / MTA-STS

async def collect_mail(domain: str, look: Lookups, ctx: ScanContext) -> MailEvidence:
    mx, sts, rpt = await asyncio.gather(look.answer(domain, "MX"), look.answer(f"_mta-sts.{domain}", "TXT"),
                                        look.answer(f"_smtp._tls.{domain}", "TXT"))
    policy = None
    if mx.exists and sts.exists:
        url = f"https://mta-sts.{domain}/.well-known/mta-sts.txt"
        resp = await ctx.fetcher.fetch(url, max_bytes=65536)
        policy = PolicyFetch(url=url, status=resp.status,
                             content_type=bound(resp.header("content-type"), 200),
                             body=bound(resp.text(), MAX_POLICY) or "", tls_verified=resp.tls_verified,
                             tls_error=bound(resp.tls_error, 500), error=bound(resp.error, 500),
                             error_kind=resp.error_kind)
    return MailEvidence(mx=mx, mta_sts=sts, tls_rpt=rpt, policy=policy)


# ------------------------------------------------------------------------------------------- CNAME

def related_names(target: Target, domain: str, mail: MailEvidence | None) -> dict[str, str]:
    """The member's names at or under the domain that the scan touches, with why each is checked."""
    names = {domain: "domain"}

    def under(h: str) -> bool:
        return h == domain or h.endswith("." + domain)

    for h in target.related_hosts:
        if under(h):
            names.setdefault(h, "endpoint")
    if mail and mail.mx and mail.mx.exists:
        for r in mail.mx.records:
            host = r.split()[-1].rstrip(".").lower()
            if host and under(host):
                names.setdefault(host, "mx")
    names.setdefault(f"mta-sts.{domain}", "mta-sts")
    return dict(list(names.items())[:MAX_ITEMS])


async def follow_cname(name: str, why: str, look: Lookups) -> CNAMEChain:
    hops: list[str] = []
    current = name
    for _ in range(MAX_CNAME_HOPS):
        a = await look.answer(current, "CNAME")
        if a.error:
            return CNAMEChain(name=name, why=why, chain=tuple(hops), error=a.error, error_kind=a.error_kind)
        if a.exists:
            current = a.records[0].rstrip(".").lower()
            hops.append(bound(current, 255) or "")
            continue
        return CNAMEChain(name=name, why=why, chain=tuple(hops), terminal_rcode=a.rcode,
                          dangling=bool(hops) and a.rcode == "NXDOMAIN")
    return CNAMEChain(name=name, why=why, chain=tuple(hops), error_kind=ErrorKind.TOO_LARGE,
                      error=f"CNAME chain longer than {MAX_CNAME_HOPS} hops (or a loop)")


# ------------------------------------------------------------------------------------------ DNSSEC

async def collect_dnssec(domain: str, look: Lookups, ctx: ScanContext) -> DNSSECEvidence:
    try:
        anchors, source = load_anchors(tuple(ctx.settings.trust_anchors))
    except AnchorError as exc:
        return DNSSECEvidence(status="indeterminate", error=f"trust anchor unusable: {exc}",
                              error_kind=ErrorKind.UNKNOWN)
    return await ChainValidator(look.raw, anchors, source).validate(domain)


# ------------------------------------------------------------------------------------------- entry

async def collect(target: Target, ctx: ScanContext, addresses: tuple[str, ...],
                  prior: dict[str, Any]) -> DNSEvidence:
    """Gather SPF, DMARC, DNSSEC, CAA, MX/MTA-STS/TLS-RPT and CNAME chains of one domain."""
    domain = target.host.lower().rstrip(".")
    look = Lookups(ctx)
    before = ctx.stats.dns_queries
    spf, dmarc, dnssec, caa, mail = await asyncio.gather(
        collect_spf(domain, look), collect_dmarc(domain, look), collect_dnssec(domain, look, ctx),
        collect_caa(domain, look), collect_mail(domain, look, ctx))
    names = related_names(target, domain, mail)
    cnames = await asyncio.gather(*(follow_cname(n, why, look) for n, why in names.items()))
    parts_failed = [spf.error, dmarc.error, caa.error, mail.mx.error if mail.mx else "x"]
    error, kind = None, None
    if all(parts_failed) and (dnssec.error or dnssec.status == "indeterminate"):
        error, kind = f"no usable DNS answer for {domain}: {spf.error}", spf.error_kind
    elif any(c.why == "domain" and not c.chain and c.terminal_rcode == "NXDOMAIN" for c in cnames):
        # Unresolvable is error, never fail: a name that does not exist has no SPF/DMARC/CAA of its own,
        # and the parent zone's DNSSEC or CAA are not its. (A dangling CNAME at the domain is D6's fail.)
        error, kind = f"{domain} does not exist (NXDOMAIN): check the domain name", ErrorKind.DNS_NXDOMAIN
    return DNSEvidence(error=error, error_kind=kind, domain=domain, spf=spf, dmarc=dmarc, dnssec=dnssec,
                       caa=caa, mail=mail, cnames=tuple(cnames), queries=ctx.stats.dns_queries - before)
