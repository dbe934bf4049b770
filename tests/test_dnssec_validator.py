"""ChainValidator (scanner/collectors/dnssec.py) over answers signed in the test with dnspython: valid,
expired signatures, bad signatures, a DS matching no DNSKEY, and a name server that times out."""

from __future__ import annotations

import time

import dns.dnssec
import dns.exception
import dns.message
import dns.name
import dns.rdatatype
import dns.rrset
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from scanner.collectors.dnssec import Anchor, ChainValidator

PARENT = dns.name.from_text("test.")
CHILD = dns.name.from_text("school.test.")
ALG = dns.dnssec.Algorithm.ECDSAP256SHA256
NOW = int(time.time())


class Zone:
    """One signed zone: a key, and signed SOA / DNSKEY / child DS answers."""

    def __init__(self, name: dns.name.Name) -> None:
        self.name = name
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.dnskey = dns.dnssec.make_dnskey(self.key.public_key(), ALG, flags=257)
        self.keys = dns.rrset.from_rdata(name, 300, self.dnskey)

    def sign(self, rrset: dns.rrset.RRset, inception: int = NOW - 3600,
             expiration: int = NOW + 86400) -> dns.rrset.RRset:
        sig = dns.dnssec.sign(rrset, self.key, self.name, self.dnskey, inception=inception,
                              expiration=expiration)
        return dns.rrset.from_rdata(rrset.name, rrset.ttl, sig)

    def soa(self) -> dns.rrset.RRset:
        soa = f"ns.{PARENT} host.{PARENT} 1 3600 600 86400 300"
        return dns.rrset.from_text(self.name, 300, "IN", "SOA", soa)


def answer(*rrsets: dns.rrset.RRset) -> dns.message.Message:
    msg = dns.message.Message()
    msg.answer = list(rrsets)
    return msg


def chain(*, child_soa_expiration: int = NOW + 86400, tamper_soa: bool = False,
          ds_of: Zone | None = None) -> tuple[ChainValidator, dict]:
    parent, child = Zone(PARENT), Zone(CHILD)
    ds_key = (ds_of or child).dnskey
    ds = dns.rrset.from_rdata(CHILD, 300, dns.dnssec.make_ds(CHILD, ds_key, "SHA256"))
    soa = child.soa()
    soa_sig = child.sign(soa, expiration=child_soa_expiration,
                         inception=min(NOW - 3600, child_soa_expiration - 7200))
    if tamper_soa:
        soa = dns.rrset.from_text(CHILD, 300, "IN", "SOA", f"ns.{PARENT} evil.{PARENT} 2 3600 600 86400 300")
    answers = {
        (PARENT, dns.rdatatype.DNSKEY): answer(parent.keys, parent.sign(parent.keys)),
        (CHILD, dns.rdatatype.DS): answer(ds, parent.sign(ds)),
        (CHILD, dns.rdatatype.DNSKEY): answer(child.keys, child.sign(child.keys)),
        (CHILD, dns.rdatatype.SOA): answer(soa, soa_sig),
    }

    async def query(name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> dns.message.Message:
        return answers[(name, rdtype)]

    anchor = Anchor(PARENT, ds=[dns.dnssec.make_ds(PARENT, parent.dnskey, "SHA256")])
    return ChainValidator(query, {PARENT: anchor}, "test anchor"), answers


async def test_signed_chain_is_secure():
    v, _ = chain()
    ev = await v.validate("school.test")
    assert ev.status == "secure", ev.reason
    assert [s.zone for s in ev.chain] == ["test.", "school.test."]


async def test_expired_signatures_are_bogus_with_the_reason():
    v, _ = chain(child_soa_expiration=NOW - 86400)
    ev = await v.validate("school.test")
    assert ev.status == "bogus" and "expired" in ev.reason and "SOA of school.test." in ev.reason


async def test_bad_signature_is_bogus():
    v, _ = chain(tamper_soa=True)
    ev = await v.validate("school.test")
    assert ev.status == "bogus" and "no valid signature over the SOA" in ev.reason


async def test_ds_matching_no_dnskey_is_bogus():
    v, _ = chain(ds_of=Zone(CHILD))  # the parent's DS is of another key
    ev = await v.validate("school.test")
    assert ev.status == "bogus" and "matches no DNSKEY" in ev.reason


@pytest.mark.parametrize("exc", [dns.exception.Timeout(), dns.exception.DNSException("SERVFAIL")])
async def test_lookup_failure_is_indeterminate_error(exc):
    async def query(name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> dns.message.Message:
        raise exc

    anchor = Anchor(PARENT, ds=[dns.dnssec.make_ds(PARENT, Zone(PARENT).dnskey, "SHA256")])
    ev = await ChainValidator(query, {PARENT: anchor}, "test anchor").validate("school.test")
    assert ev.status == "indeterminate" and ev.error
