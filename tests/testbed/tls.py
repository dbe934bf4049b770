"""TLS testbed fixtures: Python TLS servers (and hostile ones) on 127.0.10.0/24, certificates minted here.

Every weak case the T controls need runs in Python's ``ssl`` at OpenSSL security level 0 (TLS 1.0/1.1,
RSA key exchange, CBC-only, RSA-1024 and SHA-1 certificates all load there), so nginx is only used for
one cross-check against a real web server (``tls_nginx_legacy``). Import the fixtures into a test module:

    from tests.testbed.tls import tls_bed  # noqa: F401
"""

from __future__ import annotations

import ssl
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from scanner.models import Target
from scanner.settings import Settings
from scanner.targets import endpoint
from scanner.testbed.certs import Issued, TestPKI
from scanner.testbed.tls_servers import (
    HttpResponseSpec,
    RunningServer,
    start_garbage_server,
    start_http_server,
    start_https_server,
    start_stalling_server,
)

NET = "127.0.10"
TLS_PORT = 18443
HTTP_PORT = 18080  # the sites' plain-HTTP port (Target.http_port), so no root is needed
DOMAIN = "tlsbed.test"
MOZILLA_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM"

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    TLS1_0 = ssl.TLSVersion.TLSv1


@dataclass(frozen=True)
class Site:
    key: str
    name: str
    address: str
    port: int = TLS_PORT
    http_port: int = HTTP_PORT

    @property
    def url(self) -> str:
        return f"https://{self.name}:{self.port}/"

    def target(self) -> Target:
        return endpoint(self.url).model_copy(update={"http_port": self.http_port})


@dataclass
class TLSBed:
    """The running TLS testbed: sites by key, the CA bundle that trusts the private CA."""

    pki: TestPKI
    ca_bundle: Path
    sites: dict[str, Site] = field(default_factory=dict)
    servers: list[RunningServer] = field(default_factory=list)

    def resolve(self) -> dict[tuple[str, int], str]:
        out = {}
        for s in self.sites.values():
            out[(s.name, s.port)] = s.address
            out[(s.name, s.http_port)] = s.address
        return out

    def settings(self, **kw: object) -> Settings:
        base: dict[str, object] = {"resolve": self.resolve(), "ca_bundle": self.ca_bundle, "timeout": 5.0,
                                   "target_deadline": 60.0, "rate_limit": 0.0, "concurrency": 8,
                                   "only": frozenset({"T1", "T2", "T3", "T4", "T5", "T6"})}
        base.update(kw)
        return Settings(**base)  # type: ignore[arg-type]

    def resolve_args(self, *keys: str) -> list[str]:
        args = []
        for k in keys:
            s = self.sites[k]
            args += ["--resolve", f"{s.name}:{s.port}:{s.address}",
                     "--resolve", f"{s.name}:{s.http_port}:{s.address}"]
        return args

    def stop(self) -> None:
        for srv in reversed(self.servers):
            srv.stop()


# key -> (last octet, description)
SITES: dict[str, int] = {
    "good": 1, "legacy": 2, "rsa_kx": 3, "cbc_only": 4, "expired": 5, "self_signed": 6, "wrong_host": 7,
    "missing_intermediate": 8, "rsa1024": 9, "sha1": 10, "expiring": 11, "closed": 12, "closed_http": 13,
    "stall": 14, "garbage": 15,
}


def start_tls_bed(workdir: Path) -> TLSBed:
    """Start every TLS testbed server; the caller stops them with ``bed.stop()``."""
    pki = TestPKI.create("pledgescan tls tests")
    bed = TLSBed(pki=pki, ca_bundle=pki.write_ca_bundle(workdir / "ca.pem"))
    for key, octet in SITES.items():
        bed.sites[key] = Site(key, f"{key.replace('_', '-')}.{DOMAIN}", f"{NET}.{octet}")

    def https(key: str, issued: Issued, **kw: object) -> None:
        s = bed.sites[key]
        kw.setdefault("ciphers", MOZILLA_CIPHERS)
        bed.servers.append(start_https_server(s.address, s.port, issued.chain_pem, issued.key_pem,
                                              response=HttpResponseSpec(), **kw))  # type: ignore[arg-type]

    try:
        name = {k: s.name for k, s in bed.sites.items()}
        https("good", pki.leaf([name["good"]]))
        https("legacy", pki.leaf([name["legacy"]]), tls_min=TLS1_0, ciphers="ECDHE+AESGCM:ECDHE+AES")
        https("rsa_kx", pki.leaf([name["rsa_kx"]]), tls_max=ssl.TLSVersion.TLSv1_2,
              ciphers="AES128-GCM-SHA256:AES256-GCM-SHA384")
        https("cbc_only", pki.leaf([name["cbc_only"]]), tls_max=ssl.TLSVersion.TLSv1_2,
              ciphers="ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA")
        https("expired", pki.leaf([name["expired"]], days=(-90, -3)))
        https("self_signed", pki.leaf([name["self_signed"]], self_signed=True))
        https("wrong_host", pki.leaf([f"elsewhere.{DOMAIN}"]))
        https("missing_intermediate", pki.leaf([name["missing_intermediate"]], include_intermediate=False))
        https("rsa1024", pki.leaf([name["rsa1024"]], key="rsa1024"), weak=True)
        https("sha1", pki.leaf_sha1([name["sha1"]]), weak=True)
        https("expiring", pki.leaf([name["expiring"]], days=(-80, 5)))
        ch = bed.sites["closed_http"]
        bed.servers.append(start_http_server(ch.address, ch.http_port))
        st, gb = bed.sites["stall"], bed.sites["garbage"]
        bed.servers.append(start_stalling_server(st.address, st.port))
        bed.servers.append(start_garbage_server(gb.address, gb.port))
    except BaseException:
        bed.stop()
        raise
    return bed


@pytest.fixture(scope="session")
def tls_bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSBed]:
    bed = start_tls_bed(tmp_path_factory.mktemp("tlsbed"))
    yield bed
    bed.stop()
