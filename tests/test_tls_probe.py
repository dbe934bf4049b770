"""The fast TLS prober (scanner/collectors/tls_probe.py) against the real testbed servers: it finds exactly
the protocols each site offers, and the evidence it yields is the same as sslyze's full enumeration."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import tests.testbed.tls as testbed_tls
from scanner.collectors import tls, tls_probe
from scanner.collectors.tls_probe import Chain, ProtocolProbe
from scanner.evidence.tls import PROTOCOLS
from tests.testbed.tls import TLSBed, start_tls_bed

PROBE_NET = "127.0.11"  # the same servers as tests/testbed/tls.py, on addresses of their own


@pytest.fixture(scope="module")
def tls_bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSBed]:
    """The TLS testbed on 127.0.11.0/24: test_tls_integration's session-scoped copy of tests/testbed/tls.py's
    fixture holds 127.0.10.x for the whole run, and a fixture imported into two modules starts twice."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(testbed_tls, "NET", PROBE_NET)
        bed = start_tls_bed(tmp_path_factory.mktemp("tlsprobe"))
    yield bed
    bed.stop()

OFFERED: dict[str, set[str]] = {
    "good": {"TLSv1.2", "TLSv1.3"},
    "legacy": {"TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"},
    "rsa_kx": {"TLSv1.2"},
    "cbc_only": {"TLSv1.2"},
}


def _probe(bed: TLSBed, key: str, timeout: float = 5.0, enumerate_suites: bool = True):
    s = bed.sites[key]
    return tls_probe.probe(s.name, s.port, s.address, timeout, 5, enumerate_suites=enumerate_suites)


@pytest.mark.parametrize("key", list(OFFERED))
def test_protocol_probe_finds_exactly_the_offered_protocols(tls_bed: TLSBed, key: str) -> None:
    # Given a site offering some protocols / When probed with one handshake per protocol and client
    probes = _probe(tls_bed, key, enumerate_suites=False)
    # Then exactly those are accepted, every other one is cleanly rejected, in 7 handshakes
    assert {p for p, r in probes.items() if r.outcome == "accepted"} == OFFERED[key]
    assert {p for p, r in probes.items() if r.outcome == "rejected"} == set(PROTOCOLS) - OFFERED[key]
    assert sum(r.connections for r in probes.values()) == 7  # TLS 1.2 twice: modern and legacy client
    assert tls_probe.settled(probes) == set(PROTOCOLS) - OFFERED[key]  # sslyze enumerates the rest


@pytest.mark.parametrize("key", list(OFFERED))
def test_fast_evidence_equals_sslyze_full_enumeration(tls_bed: TLSBed, key: str) -> None:
    # Given a site / When scanned with the fast prober and with sslyze enumerating every suite
    s = tls_bed.sites[key]
    settings = tls_bed.settings(per_host_connections=5)
    fast = tls.scan_blocking(s.name, s.port, s.address, settings, fast=True)
    full = tls.scan_blocking(s.name, s.port, s.address, settings, fast=False)
    # Then protocols, accepted suites (with their ephemeral keys) and everything else are identical
    assert fast.error is None and full.error is None
    assert set(fast.accepted_protocols) == OFFERED[key]
    assert fast.protocols == full.protocols
    for proto in OFFERED[key]:
        assert fast.protocol(proto).suites  # type: ignore[union-attr]
    assert fast.groups == full.groups  # curves by elimination == sslyze's one connection per curve
    assert fast.groups.error is None and bool(fast.groups.curves) == (key != "rsa_kx")
    skip = {"protocols", "connections", "scanned_at", "prober"}
    assert fast.model_dump(exclude=skip) == full.model_dump(exclude=skip)
    # and far fewer connections were needed
    assert fast.connections * 3 < full.connections


@pytest.mark.parametrize("key", ["stall", "closed"])
def test_trouble_is_an_error_never_a_rejection(tls_bed: TLSBed, key: str) -> None:
    # Given a server that stalls the handshake, or nothing listening / When probed
    probes = _probe(tls_bed, key, timeout=1.0)
    # Then no protocol is called rejected: sslyze is left to decide each one
    assert {r.outcome for r in probes.values()} == {"error"}
    assert tls_probe.settled(probes) == frozenset()


def test_merge_needs_every_client_to_agree() -> None:
    # Given TLS 1.2's two chains (modern and legacy client)
    def chain(outcome: str, complete: bool = True, reason: str | None = None) -> Chain:
        return Chain("TLSv1.2", False, outcome=outcome, complete=complete, reason=reason)  # type: ignore[arg-type]

    # Then one error makes the protocol an error, whatever the other said
    errored = tls_probe._merge("TLSv1.2", [chain("rejected"), chain("error", False, "timeout")], True)
    assert errored.outcome == "error"
    # and an unfinished elimination leaves the suites to sslyze, though the protocol is accepted
    unfinished = tls_probe._merge("TLSv1.2", [chain("accepted", False, "DH"), chain("rejected")], True)
    assert (unfinished.outcome, unfinished.enumerated) == ("accepted", False)
    assert tls_probe.settled({"TLSv1.2": unfinished}) == frozenset()
    # and only both rejections reject it
    assert tls_probe._merge("TLSv1.2", [chain("rejected"), chain("rejected")], True).outcome == "rejected"
    done = ProtocolProbe("TLSv1.2", "accepted", enumerated=True)
    assert tls_probe.settled({"TLSv1.2": done}) == {"TLSv1.2"}
