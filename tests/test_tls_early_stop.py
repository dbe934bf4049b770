"""Handshakes stopped where an acceptance question is decided (``sslyze_adapter.connect_until_decided``,
issue 9), against the real testbed servers: what the server's first flight says (the suite it picked, its
ephemeral key, its chain) is what a completed handshake says; refusals are the same refusals."""

from __future__ import annotations

import pytest

from scanner.collectors.tls import sslyze_adapter as sa
from tests.testbed.tls import TLSBed


def _connection(bed: TLSBed, key: str, protocol: str, ciphers: str | None = None, legacy: bool = False):
    s = bed.sites[key]
    location, network = sa.network(s.name, s.port, s.address, 5.0)
    conn = sa.SslConnection(server_location=location, network_configuration=network,
                            tls_version=sa.tls_version(protocol), should_ignore_client_auth=False,
                            should_use_legacy_openssl=legacy)
    if ciphers:
        conn.ssl_client.set_cipher_list(ciphers)
    return conn, sa.tls_version(protocol)


def _answer(made, early: bool):
    conn, version = made
    try:
        stopped = sa.connect_until_decided(conn, version) if early else conn.connect() or False
        c = conn.ssl_client
        key = c.get_ephemeral_key()  # fresh each time: its kind and size, not its bytes
        kind = (key.type_name, key.size, getattr(key, "curve_name", None)) if key else None
        return stopped, c.get_current_cipher_name(), kind, c.get_received_chain()
    finally:
        conn.close()


@pytest.mark.parametrize("key,protocol,legacy", [
    ("rsa_kx", "TLSv1.2", True),  # RSA key exchange: no ephemeral key
    ("good", "TLSv1.2", False),  # ECDHE
    ("legacy", "TLSv1.0", True),
    ("cbc_only", "TLSv1.2", False),
])
def test_first_flight_says_what_a_full_handshake_says(tls_bed: TLSBed, key: str, protocol: str,
                                                      legacy: bool) -> None:
    # Given a server accepting the protocol / When asked with the handshake stopped, and completed
    stopped, *early = _answer(_connection(tls_bed, key, protocol, legacy=legacy), early=True)
    done, *full = _answer(_connection(tls_bed, key, protocol, legacy=legacy), early=False)
    # Then it stopped before the client's key exchange, and knew the same suite, key and chain
    assert stopped is True and done is False
    assert early == full and early[2]  # the chain was received
    assert (early[1] is None) == (key == "rsa_kx")  # an ephemeral key unless RSA key exchange


def test_refusals_are_the_same(tls_bed: TLSBed) -> None:
    # Given a TLS 1.2-only server with RSA key exchange / When offered suites it refuses, or TLS 1.1
    for protocol, ciphers, legacy in (("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256", False),
                                      ("TLSv1.1", None, True)):
        for early in (True, False):
            # Then both ways end in sslyze's refusal
            with pytest.raises(sa.ServerRejectedTlsHandshake):
                _answer(_connection(tls_bed, "rsa_kx", protocol, ciphers, legacy), early)


def test_tls13_completes(tls_bed: TLSBed) -> None:
    # Given TLS 1.3 (the certificate comes encrypted after the ServerHello) / Then it is not cut short
    stopped, cipher, _key, chain = _answer(_connection(tls_bed, "good", "TLSv1.3"), early=True)
    assert stopped is False and cipher.startswith("TLS_") and chain
