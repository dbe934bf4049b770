"""Evidence recorded by the dns collector about one domain: the answers behind controls D1-D6.

Every part has its own ``error`` (timeout, SERVFAIL, no name server answered): the checks turn those into
``error`` findings, never ``fail``. NXDOMAIN and NODATA are answers, recorded in ``rcode``. Strings from
name servers are bounded by the collector (``bound``/``bound_list``) before they land here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from scanner.errors import ErrorKind
from scanner.evidence.base import Evidence
from scanner.models import Frozen

MAX_TEXT = 2048  # one record's text
MAX_ITEMS = 50  # records in one RRset, hops in one chain, names checked
MAX_POLICY = 8192  # MTA-STS policy body kept

Rcode = Literal["NOERROR", "NXDOMAIN", "NODATA", ""]


def bound(text: str | None, limit: int = MAX_TEXT) -> str | None:
    """Truncate a server-supplied string."""
    if text is None:
        return None
    return text if len(text) <= limit else text[:limit] + "..."


def bound_list(items: list[str] | tuple[str, ...], limit: int = MAX_ITEMS) -> tuple[str, ...]:
    return tuple(bound(i) or "" for i in list(items)[:limit])


class DNSAnswer(Frozen):
    """One lookup: its answer (``records`` in presentation format) or why there is none."""

    name: str = ""
    rdtype: str = ""
    rcode: Rcode = ""  # NXDOMAIN/NODATA are answers; "" when ``error`` is set
    records: tuple[str, ...] = ()
    error: str | None = None  # timeout, SERVFAIL, refused: could not decide
    error_kind: ErrorKind | None = None

    @property
    def exists(self) -> bool:
        return self.error is None and self.rcode == "NOERROR" and bool(self.records)


class SPFEvidence(Frozen):
    """The SPF record at the domain and checkdmarc's evaluation of it (lookups resolved for real)."""

    lookup: DNSAnswer | None = None  # TXT at the domain
    records: tuple[str, ...] = ()  # the v=spf1 strings among them
    dns_lookups: int | None = None  # RFC 7208 4.6.4 terms, counted by resolving them
    void_lookups: int | None = None
    all: str | None = None  # effective qualifier of 'all' (checkdmarc: pass/fail/softfail/neutral)
    redirect: str | None = None
    terms: tuple[str, ...] = ()  # mechanisms, as 'include:x', 'a', 'ip4:...'
    problem: str | None = None  # checkdmarc error message (syntax, too many lookups, loop ...)
    problem_kind: str | None = None  # its class name, e.g. SPFSyntaxError, SPFTooManyDNSLookups
    warnings: tuple[str, ...] = ()
    error: str | None = None  # a lookup timed out / SERVFAIL: undecidable
    error_kind: ErrorKind | None = None


class DMARCEvidence(Frozen):
    """The DMARC policy at _dmarc.<domain>, else at the organisational domain (RFC 7489 6.6.3)."""

    lookup: DNSAnswer | None = None  # TXT _dmarc.<domain>
    org_domain: str | None = None
    org_lookup: DNSAnswer | None = None  # TXT _dmarc.<org domain>, when asked
    location: str | None = None  # the name the policy was found at
    records: tuple[str, ...] = ()  # v=DMARC1 strings found there
    tags: dict[str, str] = Field(default_factory=dict)  # effective tag values (defaults applied)
    explicit: tuple[str, ...] = ()  # tags set in the record
    problem: str | None = None  # syntax error etc. (checkdmarc)
    problem_kind: str | None = None
    warnings: tuple[str, ...] = ()
    error: str | None = None
    error_kind: ErrorKind | None = None


DNSSECStatus = Literal["secure", "insecure", "bogus", "indeterminate"]


class DNSSECStep(Frozen):
    """One zone of the chain of trust, from the anchor down."""

    zone: str
    ds: tuple[str, ...] = ()  # DS records the parent (or the anchor) vouches for
    dnskeys: tuple[str, ...] = ()  # 'tag/algorithm/flags' of the zone's DNSKEYs
    matched_keys: tuple[int, ...] = ()  # key tags matched by a DS/anchor
    secure: bool = False
    note: str = ""


class DNSSECEvidence(Frozen):
    """Result of validating the chain of trust from an anchor to the domain's zone."""

    status: DNSSECStatus = "indeterminate"
    reason: str = ""
    anchor: str | None = None  # zone of the trust anchor used
    anchor_source: str = "root KSK"  # or the --trust-anchor files
    zone: str | None = None  # zone holding the domain
    chain: tuple[DNSSECStep, ...] = ()
    error: str | None = None
    error_kind: ErrorKind | None = None


class CAAEvidence(Frozen):
    """CAA found by climbing the tree (RFC 8659 section 3)."""

    found_at: str | None = None
    records: tuple[str, ...] = ()
    lookups: tuple[DNSAnswer, ...] = ()
    error: str | None = None
    error_kind: ErrorKind | None = None


class PolicyFetch(Frozen):
    """The MTA-STS policy fetched over HTTPS."""

    url: str = ""
    status: int | None = None
    content_type: str | None = None
    body: str = ""  # bounded
    tls_verified: bool | None = None
    tls_error: str | None = None
    error: str | None = None
    error_kind: ErrorKind | None = None


class MailEvidence(Frozen):
    """MX, MTA-STS (RFC 8461) and TLS-RPT (RFC 8460) records."""

    mx: DNSAnswer | None = None
    mta_sts: DNSAnswer | None = None  # TXT _mta-sts.<domain>
    tls_rpt: DNSAnswer | None = None  # TXT _smtp._tls.<domain>
    policy: PolicyFetch | None = None
    error: str | None = None
    error_kind: ErrorKind | None = None


class CNAMEChain(Frozen):
    """The CNAME chain starting at one of the member's names."""

    name: str
    why: str = ""  # domain | endpoint | mx | mta-sts
    chain: tuple[str, ...] = ()  # the CNAME targets, in order
    terminal_rcode: Rcode = ""  # answer at the last name of the chain
    dangling: bool = False  # a CNAME whose target does not exist (NXDOMAIN)
    error: str | None = None
    error_kind: ErrorKind | None = None


class DNSEvidence(Evidence):
    """What the dns collector recorded about one domain target."""

    domain: str = ""
    spf: SPFEvidence | None = None
    dmarc: DMARCEvidence | None = None
    dnssec: DNSSECEvidence | None = None
    caa: CAAEvidence | None = None
    mail: MailEvidence | None = None
    cnames: tuple[CNAMEChain, ...] = ()
    cname_error: str | None = None
    queries: int = 0
