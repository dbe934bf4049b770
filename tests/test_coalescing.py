"""HTTP/2 connection coalescing (shared hosting): names on one address whose verified certificate covers
them share an HTTP/2 connection, each request still reaching its own virtual host; a name the
certificate does not cover gets its own connection; a server that answers 421 (Misdirected Request) to a
coalesced request gets it again on a connection of the request's own name. One real nginx (127.15.0.0/16);
nginx logs each request's connection serial number, SNI and Host.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from scanner.net.coalesce import covers
from scanner.net.fetcher import Fetcher
from scanner.net.politeness import Politeness
from scanner.net.resolver import Resolver
from scanner.net.stats import ScanStats
from scanner.settings import Settings
from scanner.testbed.certs import TestPKI
from tests.testbed.nginx import NginxServer, require_nginx

ADDR, PORT = "127.15.0.1", 18443
SHARED = ["a.shared.test", "b.shared.test", "c.shared.test"]  # one certificate covers them ...
MISDIRECTED = "m.shared.test"  # ... and this one, whose server refuses a request whose SNI differs
OWN = "own.other.test"  # its own certificate, not covered by the shared one


def test_covers_matches_as_openssl_does():
    names = ("a.example.test", "*.wild.example.test")
    assert covers(names, "a.example.test") and covers(names, "A.Example.Test.")
    assert covers(names, "x.wild.example.test")
    assert not covers(names, "wild.example.test")  # a wildcard stands for exactly one label
    assert not covers(names, "y.x.wild.example.test")
    assert not covers(names, "b.example.test")
    assert not covers(("*.test",), "a.test")  # never over a bare suffix
    assert not covers(("a.example.test",), "127.0.0.1")


def _server(name: str, chain: Path, key: Path, log: Path, misdirected: bool = False) -> str:
    check = "if ($ssl_server_name != $host) { return 421; }" if misdirected else ""
    return f"""
    server {{
        listen {ADDR}:{PORT} ssl http2;
        server_name {name};
        ssl_certificate {chain};
        ssl_certificate_key {key};
        access_log {log} seen;
        keepalive_requests 1000;
        default_type text/plain;
        {check}
        location / {{ return 200 "site:{name}"; }}
    }}
"""


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory):
    require_nginx()
    tmp = tmp_path_factory.mktemp("coalesce")
    pki = TestPKI.create("coalescing")
    ca = pki.write_ca_bundle(tmp / "ca.pem")
    shared = pki.leaf([*SHARED, MISDIRECTED]).write(tmp, "shared")
    own = pki.leaf([OWN]).write(tmp, "own")
    log = tmp / "requests.log"
    conf = "    log_format seen '$connection $ssl_server_name $host $server_protocol $status';\n"
    conf += "".join(_server(n, *shared, log) for n in SHARED)
    conf += _server(MISDIRECTED, *shared, log, misdirected=True) + _server(OWN, *own, log)
    with NginxServer(conf, name="pledgescan-coalesce", listen=[(ADDR, PORT)], workdir=tmp / "nginx"):
        yield ca, log


def _fetch_all(ca: Path, urls_in_order: list[list[str]], coalesce: bool = True) -> tuple[list, ScanStats]:
    """Fetch each group of URLs at once, the groups one after the other, through one fetcher."""
    async def go() -> list:
        names = [*SHARED, MISDIRECTED, OWN]
        settings = Settings(resolve={(n, PORT): ADDR for n in names}, ca_bundle=ca, timeout=5,
                            coalesce=coalesce)
        f = Fetcher(settings, Resolver(settings), Politeness.local(4, 0), stats)
        try:
            out = []
            for group in urls_in_order:
                out += await asyncio.gather(*(f.fetch(u) for u in group))
            return out
        finally:
            await f.aclose()

    stats = ScanStats()
    return asyncio.run(go()), stats


def _logged(log: Path, since: int) -> list[list[str]]:
    return [line.split() for line in log.read_text().splitlines()[since:] if line.strip()]


def _lines(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_names_covered_by_one_certificate_share_an_http2_connection(bed):
    ca, log = bed
    since = _lines(log)
    first = [f"https://{SHARED[0]}:{PORT}/"]
    rest = [f"https://{n}:{PORT}/p{i}" for n in SHARED for i in range(4)]
    responses, stats = _fetch_all(ca, [first, rest])
    assert all(r.error is None and r.status == 200 and r.http_version == "HTTP/2" for r in responses)
    assert all(r.tls_verified for r in responses)
    for r in responses:  # every request reached its own virtual host, each with its own Host
        assert r.text() == f"site:{r.url.split('/')[2].split(':')[0]}"
    seen = _logged(log, since)
    assert {(f[2], f[4]) for f in seen} == {(n, "200") for n in SHARED}
    connections = {f[0] for f in seen}
    assert len(connections) < len(SHARED), f"{len(connections)} connections for {len(SHARED)} names"
    assert sum(stats.http_connections.values()) == len(connections)
    # Coalesced requests went out with the connection's SNI and their own Host (:authority).
    assert any(f[1] != f[2] for f in seen)


def test_with_coalescing_off_each_name_has_its_own_connections(bed):
    ca, log = bed
    since = _lines(log)
    responses, stats = _fetch_all(ca, [[f"https://{SHARED[0]}:{PORT}/"],
                                       [f"https://{n}:{PORT}/p{i}" for n in SHARED for i in range(2)]],
                                  coalesce=False)
    assert all(r.error is None and r.status == 200 and r.tls_verified for r in responses)
    seen = _logged(log, since)
    by_name = {n: {f[0] for f in seen if f[2] == n} for n in SHARED}
    assert all(by_name.values())
    assert all(not by_name[a] & by_name[b] for a in SHARED for b in SHARED if a < b)  # none shared
    assert all(f[1] == f[2] for f in seen)  # every request under its own SNI
    assert sum(stats.http_connections.values()) == len({f[0] for f in seen})


def test_a_name_the_certificate_does_not_cover_gets_its_own_connection(bed):
    ca, log = bed
    since = _lines(log)
    responses, _ = _fetch_all(ca, [[f"https://{SHARED[0]}:{PORT}/"],
                                   [f"https://{OWN}:{PORT}/x{i}" for i in range(3)]
                                   + [f"https://{SHARED[1]}:{PORT}/y{i}" for i in range(3)]])
    assert all(r.error is None and r.status == 200 and r.tls_verified for r in responses)
    assert {r.text() for r in responses if OWN in r.url} == {f"site:{OWN}"}
    seen = _logged(log, since)
    own = {f[0] for f in seen if f[2] == OWN}
    shared = {f[0] for f in seen if f[2] in SHARED}
    assert own and not own & shared  # never over the shared certificate's connection
    assert {f[1] for f in seen if f[2] == OWN} == {OWN}  # its own SNI, its own certificate


def test_a_misdirected_request_is_sent_again_on_its_own_connection(bed):
    ca, log = bed
    since = _lines(log)
    responses, stats = _fetch_all(ca, [[f"https://{SHARED[0]}:{PORT}/"],
                                       [f"https://{MISDIRECTED}:{PORT}/"],
                                       [f"https://{MISDIRECTED}:{PORT}/again{i}" for i in range(3)]])
    assert all(r.error is None and r.status == 200 for r in responses)
    assert [r.text() for r in responses[1:]] == [f"site:{MISDIRECTED}"] * 4
    seen = _logged(log, since)
    refused = [f for f in seen if f[2] == MISDIRECTED and f[4] == "421"]
    answered = [f for f in seen if f[2] == MISDIRECTED and f[4] == "200"]
    assert len(refused) == 1 and refused[0][1] == SHARED[0]  # coalesced once, refused, never again
    assert len(answered) == 4 and {f[1] for f in answered} == {MISDIRECTED}
    assert refused[0][0] not in {f[0] for f in answered}
    # The retry is a request of its own: counted like any other.
    assert stats.http_requests[MISDIRECTED] == 5
