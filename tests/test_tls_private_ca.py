"""A private CA whose basicConstraints is not marked critical (what many ``openssl req`` configurations
produce), given with --ca-bundle: OpenSSL, curl and Python's ssl validate its chain, so T4 passes (issue 11).
cryptography's strict verifier rejects it ("Certificate extension has incorrect criticality"); that is a
CA/Browser Forum profile rule for public CAs, never "untrusted". A real TLS server on 127.0.120.2."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from scanner.engine import Scanner
from scanner.models import Status
from scanner.settings import Settings
from scanner.targets import endpoint
from scanner.testbed.tls_servers import RunningServer, make_server_context

ADDR, PORT, HOST = "127.0.120.2", 18610, "private-ca.pledge.test"


def _pem(c: x509.Certificate) -> bytes:
    return c.public_bytes(serialization.Encoding.PEM)


def private_pki() -> tuple[bytes, bytes, bytes]:
    """(CA PEM, leaf chain PEM, leaf key PEM): the CA's basicConstraints CA:TRUE is not critical."""
    now = dt.datetime.now(dt.UTC)
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "School private CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=365))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=False)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       key_cert_sign=True, crl_sign=True, encipher_only=False,
                                       decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])).issuer_name(ca_name)
            .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    key = leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    return _pem(ca), _pem(leaf), key


@pytest.fixture(scope="module")
def bed(tmp_path_factory) -> Iterator[Settings]:
    ca_pem, chain_pem, key_pem = private_pki()
    ca_file: Path = tmp_path_factory.mktemp("private-ca") / "ca.pem"
    ca_file.write_bytes(ca_pem)
    ctx = make_server_context(chain_pem, key_pem)

    def handle(conn: socket.socket, stop: threading.Event) -> None:
        conn.settimeout(10)
        with ctx.wrap_socket(conn, server_side=True) as tls:
            tls.recv(4096)
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    server = RunningServer(ADDR, PORT, handle, "private-ca")
    yield Settings(resolve={(HOST, PORT): ADDR}, ca_bundle=ca_file, timeout=5.0, rate_limit=0,
                   only=frozenset({"T4"}))
    server.stop()


def test_private_ca_without_critical_basic_constraints_is_trusted(bed: Settings) -> None:
    report = asyncio.run(Scanner(bed).run([endpoint(f"https://{HOST}:{PORT}/")]))
    (t,) = report.targets
    (t4,) = [c for c in t.controls if c.id == "T4"]
    assert t4.status == Status.PASS, [(f.status, f.title, f.detail) for f in t.findings]
    assert not any("not issued by a trusted CA" in f.title for f in t.findings)
