"""A certificate that breaks an RFC 5280 profile rule (trustme marks the subjectAltName critical while
the subject is not empty) but that OpenSSL and browsers accept: T4 says so as a warning, not an outage."""

from __future__ import annotations

import asyncio

import trustme

from scanner.engine import Scanner
from scanner.models import Status
from scanner.settings import Settings
from scanner.targets import endpoint
from scanner.testbed.tls_servers import start_https_server

ADDR, PORT, NAME = "127.0.62.1", 18443, "profile.tlsbed.test"


def test_critical_san_is_a_t4_warning_with_openssl_second_opinion(tmp_path):
    ca = trustme.CA()
    leaf = ca.issue_cert(NAME)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    chain = b"".join(b.bytes() for b in leaf.cert_chain_pems)
    srv = start_https_server(ADDR, PORT, chain, leaf.private_key_pem.bytes())
    try:
        settings = Settings(resolve={(NAME, PORT): ADDR}, ca_bundle=ca_file, only=frozenset({"T4"}),
                            rate_limit=0, timeout=5)
        report = asyncio.run(Scanner(settings).run([endpoint(f"https://{NAME}:{PORT}/")]))
    finally:
        srv.stop()
    (t,) = report.targets
    (t4,) = t.controls
    assert t4.status == Status.WARN, [(f.status, f.title, f.detail) for f in t4.findings]
    (f,) = t4.findings
    assert f.evidence["problem"] == "profile" and "critical" in f.detail
