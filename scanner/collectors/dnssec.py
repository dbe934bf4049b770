"""DNSSEC chain-of-trust validation from a trust anchor down to a domain's zone (collector side, I/O).

dnspython verifies the signatures (``dns.dnssec.validate``) and computes DS digests (``make_ds``); what no
library here does for us is walk the chain through the scanner's own resolver settings, so that part is
written by hand: for each zone cut from the anchor down, the parent's signed DS must match a DNSKEY of
the child whose self-signature verifies; an unsigned child must be proven by the parent's signed
NSEC/NSEC3 denial of the DS. Queries set DO (to get signatures) and CD (so that a validating upstream
resolver hands us bogus data to judge instead of SERVFAIL).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import dns.dnssec
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.DNSKEY
import dns.rdtypes.ANY.DS
import dns.rrset
import dns.zonefile

from scanner.errors import short_message
from scanner.evidence.dns import DNSSECEvidence, DNSSECStep
from scanner.net.error_kinds import DNSFailure, dns_error_kind, rcode_kind

# The root zone's KSK-2017 and KSK-2024 as DS records (IANA root-anchors.xml).
ROOT_ANCHORS = """\
. IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D
. IN DS 38696 8 2 683D2D0ACB8C9B712A1948B27F741219298D0A450D612C483AF444A4C0FB2B16
"""


class AnchorError(ValueError):
    """A trust-anchor file could not be read."""


@dataclass
class Anchor:
    zone: dns.name.Name
    ds: list[dns.rdtypes.ANY.DS.DS] = field(default_factory=list)
    dnskeys: list[dns.rdtypes.ANY.DNSKEY.DNSKEY] = field(default_factory=list)


def parse_anchors(text: str) -> dict[dns.name.Name, Anchor]:
    """DS / DNSKEY records in zone-file presentation format (Unbound trust-anchor-file style)."""
    out: dict[dns.name.Name, Anchor] = {}
    try:
        rrsets = dns.zonefile.read_rrsets(text, origin=dns.name.root, relativize=False, rdclass=None,
                                           default_ttl=3600)
    except dns.exception.DNSException as exc:
        raise AnchorError(str(exc)) from exc
    for rrset in rrsets:
        a = out.setdefault(rrset.name, Anchor(rrset.name))
        if rrset.rdtype == dns.rdatatype.DS:
            a.ds.extend(rrset)  # type: ignore[arg-type]
        elif rrset.rdtype == dns.rdatatype.DNSKEY:
            a.dnskeys.extend(rrset)  # type: ignore[arg-type]
    return {k: v for k, v in out.items() if v.ds or v.dnskeys}


def load_anchors(paths: tuple[Path, ...]) -> tuple[dict[dns.name.Name, Anchor], str]:
    """The operator's anchors (replacing the root KSK), or the root KSK; and a label of the source."""
    if not paths:
        return parse_anchors(ROOT_ANCHORS), "root KSK"
    anchors: dict[dns.name.Name, Anchor] = {}
    for p in paths:
        try:
            text = Path(p).read_text("utf-8")
        except OSError as exc:
            raise AnchorError(f"{p}: {exc.strerror}") from exc
        for name, a in parse_anchors(text).items():
            merged = anchors.setdefault(name, Anchor(name))
            merged.ds.extend(a.ds)
            merged.dnskeys.extend(a.dnskeys)
    if not anchors:
        raise AnchorError("no DS or DNSKEY record in " + ", ".join(str(p) for p in paths))
    return anchors, "--trust-anchor " + ", ".join(Path(p).name for p in paths)


# A query function: (name, rdtype) -> the response message (any rcode), or raises DNSException.
QueryFunc = Callable[[dns.name.Name, dns.rdatatype.RdataType], Awaitable[dns.message.Message]]


def has_type(rdata: dns.rdata.Rdata, rdtype: dns.rdatatype.RdataType) -> bool:
    """Does an NSEC/NSEC3 record's type bitmap (RFC 4034 4.1.2: windows of 256 types) list ``rdtype``?"""
    window, offset = divmod(int(rdtype), 256)
    for number, bitmap in rdata.windows:  # type: ignore[attr-defined]
        if number == window:
            octet = offset // 8
            return octet < len(bitmap) and bool(bitmap[octet] & (0x80 >> (offset % 8)))
    return False


class Bogus(Exception):
    pass


class Insecure(Exception):
    pass


def _key_desc(k: dns.rdtypes.ANY.DNSKEY.DNSKEY) -> str:
    return f"{dns.dnssec.key_id(k)}/{dns.dnssec.algorithm_to_text(k.algorithm)}/{k.flags}"


def _sigs(msg: dns.message.Message, section: list[dns.rrset.RRset], name: dns.name.Name,
          covers: dns.rdatatype.RdataType) -> dns.rrset.RRset | None:
    for rrset in section:
        if rrset.name == name and rrset.rdtype == dns.rdatatype.RRSIG and rrset.covers == covers:
            return rrset
    return None


def _find(section: list[dns.rrset.RRset], name: dns.name.Name,
          rdtype: dns.rdatatype.RdataType) -> dns.rrset.RRset | None:
    for rrset in section:
        if rrset.name == name and rrset.rdtype == rdtype:
            return rrset
    return None


def _verify(rrset: dns.rrset.RRset, sigs: dns.rrset.RRset | None, signer: dns.name.Name,
            keys: dns.rrset.RRset, what: str) -> None:
    """Raise Bogus unless one signature over rrset by signer's keys verifies and is current."""
    if sigs is None or not len(sigs):
        raise Bogus(f"{what} is not signed (no RRSIG)")
    try:
        dns.dnssec.validate(rrset, sigs, {signer: keys})
    except dns.dnssec.ValidationFailure as exc:
        now = time.time()
        expired = [s for s in sigs if s.expiration < now]
        future = [s for s in sigs if s.inception > now]
        if expired and len(expired) == len(sigs):
            when = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(max(s.expiration for s in expired)))
            raise Bogus(f"the signatures over {what} expired ({when})") from exc
        if future and len(future) == len(sigs):
            raise Bogus(f"the signatures over {what} are not yet valid") from exc
        raise Bogus(f"no valid signature over {what}: {exc}") from exc


class ChainValidator:
    """Walks anchor -> ... -> the domain's zone through ``query``; the result is ``DNSSECEvidence``."""

    def __init__(self, query: QueryFunc, anchors: dict[dns.name.Name, Anchor], source: str) -> None:
        self.query = query
        self.anchors = anchors
        self.source = source
        self.steps: list[DNSSECStep] = []

    async def validate(self, domain: str) -> DNSSECEvidence:
        name = dns.name.from_text(domain)
        covering = [z for z in self.anchors if name.is_subdomain(z)]
        base = {"anchor_source": self.source}
        if not covering:
            return DNSSECEvidence(status="indeterminate", **base,
                                  error=f"no trust anchor covers {domain} ({self.source})")
        anchor = self.anchors[max(covering, key=lambda z: len(z.labels))]
        base["anchor"] = anchor.zone.to_text()
        try:
            zone = await self._zone_of(name)
            base["zone"] = zone.to_text()
            keys = await self._zone_keys(anchor.zone, anchor.ds, anchor.dnskeys, via="trust anchor")
            current = anchor.zone
            for depth in range(len(anchor.zone.labels) + 1, len(zone.labels) + 1):
                child = dns.name.Name(zone.labels[-depth:])
                ds = await self._signed_ds(child, current, keys, is_apex=child == zone)
                if ds is None:
                    continue  # not a zone cut: the child name is in the current zone
                keys = await self._zone_keys(child, list(ds), [], via=f"DS at {current.to_text()}")
                current = child
            await self._check_soa(zone, keys)
        except Bogus as exc:
            return DNSSECEvidence(status="bogus", reason=str(exc), chain=tuple(self.steps), **base)
        except Insecure as exc:
            return DNSSECEvidence(status="insecure", reason=str(exc), chain=tuple(self.steps), **base)
        except dns.exception.DNSException as exc:
            return DNSSECEvidence(status="indeterminate", error=f"DNS lookup failed: {short_message(exc)}",
                                  error_kind=dns_error_kind(exc), chain=tuple(self.steps), **base)
        return DNSSECEvidence(status="secure", reason=f"chain of trust validates down to {zone.to_text()}",
                              chain=tuple(self.steps), **base)

    async def _zone_of(self, name: dns.name.Name) -> dns.name.Name:
        """The apex of the zone holding ``name``: from the SOA answer or the negative answer's SOA."""
        msg = await self.query(name, dns.rdatatype.SOA)
        soa = _find(msg.answer, name, dns.rdatatype.SOA)
        if soa is not None:
            return name
        for rrset in msg.authority:
            if rrset.rdtype == dns.rdatatype.SOA and name.is_subdomain(rrset.name):
                return rrset.name
        cname = next((r for r in msg.answer if r.rdtype == dns.rdatatype.CNAME), None)
        if cname is not None:
            raise DNSFailure(f"{name} is a CNAME, not a zone name")
        raise DNSFailure(f"could not find the zone of {name} (rcode {dns.rcode.to_text(msg.rcode())})",
                         rcode_kind(msg.rcode()))

    async def _zone_keys(self, zone: dns.name.Name, ds: list[dns.rdtypes.ANY.DS.DS],
                         trusted: list[dns.rdtypes.ANY.DNSKEY.DNSKEY], via: str) -> dns.rrset.RRset:
        """The zone's DNSKEY RRset once a key vouched for by ``ds``/``trusted`` signs it."""
        step = {"zone": zone.to_text(), "ds": tuple(d.to_text() for d in ds)[:20]}
        msg = await self.query(zone, dns.rdatatype.DNSKEY)
        keys = _find(msg.answer, zone, dns.rdatatype.DNSKEY)
        if keys is None:
            self.steps.append(DNSSECStep(**step, note="no DNSKEY"))
            raise Bogus(f"{zone} has a DS ({via}) but publishes no DNSKEY")
        step["dnskeys"] = tuple(_key_desc(k) for k in keys)[:20]  # type: ignore[attr-defined]
        matched = []
        for k in keys:
            if k in trusted:
                matched.append(k)
                continue
            for d in ds:
                if d.key_tag != dns.dnssec.key_id(k) or d.algorithm != k.algorithm:
                    continue
                try:
                    if dns.dnssec.make_ds(zone, k, d.digest_type) == d:
                        matched.append(k)
                except (dns.dnssec.UnsupportedAlgorithm, ValueError):
                    continue
        tags = tuple(dns.dnssec.key_id(k) for k in matched)
        if not matched:
            self.steps.append(DNSSECStep(**step, note="no DNSKEY matches the DS"))
            ds_tags = ", ".join(str(d.key_tag) for d in ds) or "-"
            key_tags = ", ".join(str(dns.dnssec.key_id(k)) for k in keys)
            raise Bogus(f"the DS of {zone} ({via}; key tags {ds_tags}) matches no DNSKEY of the zone "
                        f"(key tags {key_tags})")
        anchor_keys = dns.rrset.from_rdata_list(zone, keys.ttl, matched)
        try:
            _verify(keys, _sigs(msg, msg.answer, zone, dns.rdatatype.DNSKEY), zone, anchor_keys,
                    f"the DNSKEY RRset of {zone}")
        except Bogus as exc:
            self.steps.append(DNSSECStep(**step, matched_keys=tags, note=str(exc)))
            raise
        self.steps.append(DNSSECStep(**step, matched_keys=tags, secure=True, note=f"vouched for by {via}"))
        return keys

    async def _signed_ds(self, child: dns.name.Name, parent: dns.name.Name, parent_keys: dns.rrset.RRset,
                         is_apex: bool) -> dns.rrset.RRset | None:
        """The child's DS, validated with the parent's keys; None if ``child`` is no zone cut.

        Raises Insecure for a proven unsigned delegation, Bogus when the proof is missing or broken.
        """
        msg = await self.query(child, dns.rdatatype.DS)
        ds = _find(msg.answer, child, dns.rdatatype.DS)
        if ds is not None:
            _verify(ds, _sigs(msg, msg.answer, child, dns.rdatatype.DS), parent, parent_keys,
                    f"the DS RRset of {child}")
            return ds
        if not is_apex:
            soa = await self.query(child, dns.rdatatype.SOA)
            if _find(soa.answer, child, dns.rdatatype.SOA) is None:
                return None
        self._prove_no_ds(msg, child, parent, parent_keys)
        self.steps.append(DNSSECStep(zone=child.to_text(), note=f"no DS at {parent} (proven by NSEC/NSEC3)"))
        raise Insecure(f"{child} is not signed: its parent {parent} publishes no DS (insecure delegation)")

    def _prove_no_ds(self, msg: dns.message.Message, child: dns.name.Name, parent: dns.name.Name,
                     parent_keys: dns.rrset.RRset) -> None:
        """The signed NSEC (owner = child, no DS bit) or NSEC3 (hash of child, no DS bit) denial."""
        for rrset in msg.authority:
            if rrset.rdtype == dns.rdatatype.NSEC and rrset.name == child:
                _verify(rrset, _sigs(msg, msg.authority, child, dns.rdatatype.NSEC), parent, parent_keys,
                        f"the NSEC denying the DS of {child}")
                if has_type(rrset[0], dns.rdatatype.DS):
                    raise Bogus(f"the NSEC of {child} claims a DS exists, yet none was returned")
                return
            if rrset.rdtype == dns.rdatatype.NSEC3:
                n3 = rrset[0]
                hashed = dns.dnssec.nsec3_hash(child, n3.salt, n3.iterations, n3.algorithm)
                if rrset.name.labels[0].decode().upper() != hashed.upper():
                    continue  # opt-out/closest-encloser proofs are not walked: see below
                _verify(rrset, _sigs(msg, msg.authority, rrset.name, dns.rdatatype.NSEC3), parent,
                        parent_keys, f"the NSEC3 denying the DS of {child}")
                if has_type(n3, dns.rdatatype.DS):
                    raise Bogus(f"the NSEC3 of {child} claims a DS exists, yet none was returned")
                return
        if self._prove_opt_out(msg, child, parent, parent_keys):
            return
        raise Bogus(f"{parent} returned no DS for {child} without a signed NSEC/NSEC3 proof")

    def _prove_opt_out(self, msg: dns.message.Message, child: dns.name.Name, parent: dns.name.Name,
                       parent_keys: dns.rrset.RRset) -> bool:
        """RFC 5155 8.6: no NSEC3 matches the child, but a closest encloser matches and the NSEC3
        covering the next closer name has the Opt-Out flag: an unsigned delegation (as under .com)."""
        n3sets = [r for r in msg.authority if r.rdtype == dns.rdatatype.NSEC3 and len(r)
                  and r.name.parent() == parent]
        if not n3sets:
            return False
        p = n3sets[0][0]

        def hashed(name: dns.name.Name) -> str:
            return dns.dnssec.nsec3_hash(name, p.salt, p.iterations, p.algorithm).upper()

        owners = {r.name.labels[0].decode().upper(): r for r in n3sets}
        closer, encloser = child, child.parent()
        while encloser.is_subdomain(parent) and hashed(encloser) not in owners:
            closer, encloser = encloser, encloser.parent()
        if not encloser.is_subdomain(parent):
            return False
        target = hashed(closer)
        for owner, rrset in owners.items():
            n3 = rrset[0]
            nxt = base64.b32hexencode(n3.next).decode().rstrip("=").upper()
            covers = owner < target < nxt if owner < nxt else (target > owner or target < nxt)
            if covers and n3.flags & 1:
                for r in (owners[hashed(encloser)], rrset):
                    _verify(r, _sigs(msg, msg.authority, r.name, dns.rdatatype.NSEC3), parent, parent_keys,
                            f"the NSEC3 opt-out proof for the DS of {child}")
                return True
        return False

    async def _check_soa(self, zone: dns.name.Name, keys: dns.rrset.RRset) -> None:
        """The zone's own data is signed by its keys (catches bad/expired ZSK signatures)."""
        msg = await self.query(zone, dns.rdatatype.SOA)
        soa = _find(msg.answer, zone, dns.rdatatype.SOA)
        if soa is None:
            raise DNSFailure(f"no SOA at {zone}")
        _verify(soa, _sigs(msg, msg.answer, zone, dns.rdatatype.SOA), zone, keys, f"the SOA of {zone}")
