"""The fast TLS prober (scanner/collectors/tls/prober.py) against the real testbed servers: it finds exactly
the protocols each site offers, and the evidence it yields is the same as sslyze's full enumeration."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator

import pytest

import tests.testbed.tls as testbed_tls
from scanner.collectors import tls
from scanner.collectors.tls import prober as tls_probe
from scanner.collectors.tls.prober import Chain
from scanner.evidence.tls import PROTOCOLS
from scanner.testbed.tls_servers import RunningServer, make_server_context
from tests.testbed.tls import TLSBed

PROBE_NET = "127.0.11"  # the extra "wide" server of this module


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
    skip = {"protocols", "connections", "scanned_at", "prober", "vulnerabilities"}
    assert fast.model_dump(exclude=skip) == full.model_dump(exclude=skip)
    # the same vulnerability verdicts (the fast one says how ROBOT ran when it stopped after one attempt,
    # and that renegotiation and compression were read from its TLS 1.2 ServerHello); the client-initiated
    # renegotiation test, which no control judges, is not run
    no_note = {"robot": {"note"}, "insecure_renegotiation": {"note"}, "compression": {"note"},
               "client_renegotiation_dos": True}
    fast_v, full_v = fast.vulnerabilities, full.vulnerabilities
    assert fast_v.model_dump(exclude=no_note) == full_v.model_dump(exclude=no_note)
    if "TLSv1.2" in OFFERED[key]:
        assert "ServerHello" in (fast_v.compression.note or "")
        assert fast_v.client_renegotiation_dos.value is None
        assert (fast_v.client_renegotiation_dos.detail or "").startswith("not run")
    # and far fewer connections were needed
    assert fast.connections * 3 < full.connections


@pytest.fixture(scope="module")
def wide_site(tls_bed: TLSBed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A server accepting everything its OpenSSL has at security level 0 (TLS 1.0-1.3, about 100 suites:
    RSA, DHE with 2048-bit parameters, ECDHE, CBC, CAMELLIA, ARIA ...): many suites for both of sslyze's
    TLS 1.2 clients, and long eliminations that split."""
    name, addr = "wide.tlsbed.test", f"{PROBE_NET}.30"
    issued = tls_bed.pki.leaf([name])
    ctx = make_server_context(issued.chain_pem, issued.key_pem, tls_min=testbed_tls.TLS1_0,
                              ciphers="ALL:COMPLEMENTOFALL", weak=True)
    openssl = shutil.which("openssl")
    if openssl:  # without it the site simply has no DHE suites
        dh = tmp_path_factory.mktemp("dh") / "dh2048.pem"
        cmd = [openssl, "dhparam", "-dsaparam", "-out", str(dh), "2048"]
        subprocess.run(cmd, check=True, capture_output=True)
        ctx.load_dh_params(dh)

    def handle(conn: socket.socket, _stop: threading.Event) -> None:
        conn.settimeout(10)
        with ctx.wrap_socket(conn, server_side=True) as tls_conn:
            tls_conn.recv(1024)

    server = RunningServer(addr, testbed_tls.TLS_PORT, handle, "wide")
    yield name, addr
    server.stop()


def test_fast_evidence_equals_sslyze_on_a_server_accepting_everything(
    wide_site: tuple[str, str], tls_bed: TLSBed
) -> None:
    # Given a server accepting about a hundred suites / When scanned both ways
    name, addr = wide_site
    settings = tls_bed.settings(per_host_connections=5)
    fast = tls.scan_blocking(name, testbed_tls.TLS_PORT, addr, settings, fast=True)
    full = tls.scan_blocking(name, testbed_tls.TLS_PORT, addr, settings, fast=False)
    # Then every accepted suite (and ephemeral key) is found, as sslyze finds them one by one
    assert set(fast.accepted_protocols) == {"TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"}
    assert len(fast.protocol("TLSv1.2").suites) > 40  # type: ignore[union-attr]
    assert fast.protocols == full.protocols
    assert fast.groups == full.groups
    assert fast.connections < full.connections


def _verdicts(ev, site_target) -> dict[str, tuple[set[str], set[str]]]:
    """Per TLS check: the statuses and the weak-suite reasons (or problems) its findings name."""
    from checks import tls as T
    from scanner.evidence import Snapshot

    snap = Snapshot(target=site_target, addresses=(ev.address,), tls=ev)
    out = {}
    for chk in (T.handshake, T.protocols, T.ciphers, T.cert_trust, T.cert_hygiene, T.vulnerabilities):
        findings = chk.run(snap)
        named = {str(f.evidence.get("reason") or f.evidence.get("problem") or "") for f in findings}
        out[chk.id] = ({str(f.status) for f in findings}, named)
    return out


@pytest.mark.parametrize("key", [*OFFERED, "wide"])
def test_class_listing_decides_as_the_full_listing(
    tls_bed: TLSBed, wide_site: tuple[str, str], key: str
) -> None:
    """Issue 9 item 4: one handshake per suite class gives the same T verdicts (and names the same weak
    classes) as listing every accepted suite, with fewer handshakes; the evidence says the list is cut."""
    if key == "wide":
        name, addr, port = *wide_site, testbed_tls.TLS_PORT
        target = tls_bed.sites["good"].target().model_copy(update={"host": name})
    else:
        s = tls_bed.sites[key]
        name, addr, port, target = s.name, s.address, s.port, s.target()
    settings = tls_bed.settings(per_host_connections=5)
    by_class = tls.scan_blocking(name, port, addr, settings, listing="classes")
    full = tls.scan_blocking(name, port, addr, settings, listing="all")
    assert by_class.error is None and by_class.accepted_protocols == full.accepted_protocols
    assert _verdicts(by_class, target) == _verdicts(full, target)
    assert any(not p.suites_complete for p in by_class.protocols) and not by_class.groups.complete
    assert any("one per suite class" in n for n in by_class.notes)
    listed = sum(len(p.suites) for p in by_class.protocols)
    assert listed <= sum(len(p.suites) for p in full.protocols)
    if key == "wide":
        assert listed < 40 < sum(len(p.suites) for p in full.protocols)


def _probe_result(outcome: str, *names: str) -> tls_probe.ProtocolProbe:
    from types import SimpleNamespace

    accepted = tuple(SimpleNamespace(cipher_suite=SimpleNamespace(name=n)) for n in names)
    return tls_probe.ProtocolProbe("x", outcome, accepted, enumerated=True)  # type: ignore[arg-type]


def test_only_the_sslyze_commands_that_can_apply_run() -> None:
    """ROBOT needs an RSA key exchange suite; Heartbleed, CCS, renegotiation and compression a protocol
    below TLS 1.3; TLS_FALLBACK_SCSV one older than TLS 1.2. Unsettled protocols keep every test."""
    from scanner.collectors.tls import _not_applicable

    rejected = {p: _probe_result("rejected") for p in PROTOCOLS}
    only13 = {**rejected, "TLSv1.3": _probe_result("accepted", "TLS_AES_128_GCM_SHA256")}
    skip = _not_applicable(only13, tls_probe.settled(only13))
    assert set(skip) == {"heartbleed", "ccs_injection", "insecure_renegotiation", "client_renegotiation_dos",
                         "compression", "fallback_scsv", "robot"}
    rsa12 = {**only13, "TLSv1.2": _probe_result("accepted", "TLS_RSA_WITH_AES_128_GCM_SHA256")}
    assert set(_not_applicable(rsa12, tls_probe.settled(rsa12))) == {"fallback_scsv"}
    ecdhe10 = {**only13, "TLSv1.0": _probe_result("accepted", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA")}
    assert set(_not_applicable(ecdhe10, tls_probe.settled(ecdhe10))) == {"robot"}
    unsure = {**only13, "TLSv1.2": tls_probe.ProtocolProbe("TLSv1.2", "error")}
    assert set(_not_applicable(unsure, tls_probe.settled(unsure))) == {"fallback_scsv"}


@pytest.mark.parametrize("key", ["stall", "closed"])
def test_trouble_is_an_error_never_a_rejection(tls_bed: TLSBed, key: str) -> None:
    # Given a server that stalls the handshake, or nothing listening / When probed
    probes = _probe(tls_bed, key, timeout=1.0)
    # Then no protocol is called rejected: sslyze is left to decide each one
    assert {r.outcome for r in probes.values()} == {"error"}
    assert tls_probe.settled(probes) == frozenset()


def test_merge_needs_every_client_to_agree() -> None:
    # Given TLS 1.2's two chains (modern and legacy client)
    def chain(outcome: str, failed: str | None = None) -> Chain:
        return Chain("TLSv1.2", False, outcome=outcome, failed=failed)  # type: ignore[arg-type]

    # Then one error makes the protocol an error, whatever the other said
    errored = tls_probe._merge("TLSv1.2", [chain("rejected"), chain("error")], True)
    assert errored.outcome == "error"
    # and an unfinished elimination leaves the suites to sslyze, though the protocol is accepted
    unfinished = tls_probe._merge("TLSv1.2", [chain("accepted", "DH key too small"), chain("rejected")], True)
    assert (unfinished.outcome, unfinished.enumerated) == ("accepted", False)
    assert tls_probe.settled({"TLSv1.2": unfinished}) == frozenset()
    # and only both rejections reject it
    assert tls_probe._merge("TLSv1.2", [chain("rejected"), chain("rejected")], True).outcome == "rejected"
    done = tls_probe._merge("TLSv1.2", [chain("accepted"), chain("rejected")], True)
    assert done.enumerated and tls_probe.settled({"TLSv1.2": done}) == {"TLSv1.2"}


def _models(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _models(sub)


def test_sslyze_json_models_are_built_on_first_use() -> None:
    """sslyze's JSON output models (its command line's, never pledgescan's) are not built when sslyze is
    imported (pydantic's ``defer_build``, set for that import only): pledgescan's models are built as
    before, and a model of sslyze's is built and validates when used after all."""
    import pydantic

    from scanner.collectors.tls import sslyze_adapter  # noqa: F401 (sslyze imported)
    from scanner.evidence.tls import TLSEvidence

    assert "defer_build" not in pydantic.BaseModel.model_config
    models = set(_models(pydantic.BaseModel))
    deferred = {m for m in models if m.model_config.get("defer_build")}
    assert {m.__module__.split(".")[0] for m in deferred} == {"sslyze"}
    assert TLSEvidence.__pydantic_complete__
    as_json = next(m for m in deferred if m.__name__ == "CompressionScanResultAsJson")
    assert as_json.model_validate({"supports_compression": True}).supports_compression is True
    with pytest.raises(pydantic.ValidationError):
        as_json.model_validate({"supports_compression": True, "unknown": 1})  # extra="forbid" kept
