"""Secure renegotiation and compression read from the ServerHello the prober already receives (issue 9):
no connection of their own. The renegotiation_info extension (RFC 5746) and the compression method a
server chooses are in its ServerHello to the legacy client (the client and protocol sslyze's commands
use; it offers DEFLATE). Against real local servers: an old server (a proxy in front of a current one that
answers DEFLATE-offering clients as servers before 2009 did, ``start_old_server_hello``) and current ones,
where sslyze's own commands give the same answers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from scanner.collectors import tls
from scanner.collectors.tls import sslyze_adapter as sa
from scanner.engine import Scanner
from scanner.models import Status
from scanner.targets import endpoint
from scanner.testbed.tls_servers import start_https_server, start_old_server_hello
from tests.testbed.tls import DOMAIN, TLS_PORT, TLSBed

NET = "127.9.0"  # this module's servers
UPSTREAM, NO_RENEG, DEFLATE = f"{NET}.2", f"{NET}.3", f"{NET}.4"


@pytest.fixture(scope="module")
def old_servers(tls_bed: TLSBed) -> Iterator[dict[str, str]]:
    """Two old servers in front of one current server: name -> address."""
    names = {f"noreneg.{DOMAIN}": NO_RENEG, f"deflate.{DOMAIN}": DEFLATE}
    issued = tls_bed.pki.leaf(list(names))
    server = start_https_server(UPSTREAM, TLS_PORT, issued.chain_pem, issued.key_pem)
    proxies = [start_old_server_hello(NO_RENEG, TLS_PORT, (UPSTREAM, TLS_PORT), no_renegotiation_info=True),
               start_old_server_hello(DEFLATE, TLS_PORT, (UPSTREAM, TLS_PORT), deflate=True)]
    yield names
    for p in proxies:
        p.stop()
    server.stop()


def _scan(bed: TLSBed, name: str, addr: str) -> object:
    return tls.scan_blocking(name, TLS_PORT, addr, bed.settings(per_host_connections=4))


def test_server_hello_read_from_the_wire(tls_bed: TLSBed, old_servers: dict[str, str]) -> None:
    # Given an old server's ServerHello to the legacy client, seen by a stopped handshake
    for name, addr in old_servers.items():
        location, network = sa.network(name, TLS_PORT, addr, 5.0)
        conn = sa.SslConnection(server_location=location, network_configuration=network,
                                tls_version=sa.tls_version("TLSv1.2"), should_ignore_client_auth=True,
                                should_use_legacy_openssl=True)
        try:
            assert sa.connect_until_decided(conn, sa.tls_version("TLSv1.2"))
            hello = sa.server_hello(conn.ssl_client)
        finally:
            conn.close()
        # Then what it says is read: no renegotiation_info, or DEFLATE chosen (the client offered it)
        assert hello is not None
        assert hello.renegotiation_info is (addr != NO_RENEG)
        assert hello.compression_method == (1 if addr == DEFLATE else 0)


def test_old_servers_fail_t6_without_connections_of_their_own(tls_bed: TLSBed,
                                                              old_servers: dict[str, str]) -> None:
    # Given the two old servers / When their TLS evidence is collected
    noreneg, deflate = (_scan(tls_bed, n, a) for n, a in old_servers.items())
    # Then the one without renegotiation_info has insecure renegotiation, the other compression, each
    # read from the prober's TLS 1.2 ServerHello (the note says so)
    v = noreneg.vulnerabilities  # type: ignore[attr-defined]
    assert v.insecure_renegotiation.value is True and v.compression.value is False
    assert "renegotiation_info absent" in v.insecure_renegotiation.note
    v = deflate.vulnerabilities  # type: ignore[attr-defined]
    assert v.insecure_renegotiation.value is False and v.compression.value is True
    assert "compression method 1" in v.compression.note
    dos = v.client_renegotiation_dos
    assert dos.value is None and dos.detail.startswith("not run")
    # and T6 fails on both, critical, through the engine
    resolve = {**tls_bed.resolve(), **{(n, TLS_PORT): a for n, a in old_servers.items()}}
    settings = tls_bed.settings(resolve=resolve)
    report = asyncio.run(Scanner(settings).run([endpoint(f"https://{n}:{TLS_PORT}/") for n in old_servers]))
    for t in report.targets:
        t6 = next(c for c in t.controls if c.id == "T6")
        assert t6.status == Status.FAIL
        tests = {f.evidence.get("test") for f in t6.findings if f.status == Status.FAIL}
        assert tests == ({"insecure_renegotiation"} if "noreneg" in t.target else {"compression"})


def test_current_server_answers_equal_sslyze_commands(tls_bed: TLSBed) -> None:
    # Given current servers (renegotiation_info sent, no compression)
    for key in ("good", "legacy", "rsa_kx"):
        s = tls_bed.sites[key]
        # When collected
        ours = tls.scan_blocking(s.name, TLS_PORT, s.address, tls_bed.settings(per_host_connections=4))
        theirs = sa.run_scan(s.name, TLS_PORT, s.address, 5.0, None,
                             {sa.ScanCommand.SESSION_RENEGOTIATION, sa.ScanCommand.TLS_COMPRESSION}, 4)
        # Then the answers are sslyze's own commands' answers
        scan = theirs.scan_result
        v = ours.vulnerabilities
        secure = scan.session_renegotiation.result.supports_secure_renegotiation
        assert v.insecure_renegotiation.value is (not secure) is False
        assert v.compression.value is scan.tls_compression.result.supports_compression is False
        assert "ServerHello" in (v.insecure_renegotiation.note or "")
