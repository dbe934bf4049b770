"""Hostile and broken web servers: every probe stays bounded in time and size, and an undecidable
control is ``error``, never ``fail``. Real TLS servers on 127.0.61.0/24 with a minted certificate."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scanner.engine import Scanner
from scanner.models import Status
from scanner.net.fetcher import Fetcher
from scanner.net.politeness import Politeness
from scanner.net.resolver import Resolver
from scanner.net.stats import ScanStats
from scanner.settings import Settings
from scanner.targets import endpoint
from scanner.testbed.certs import TestPKI
from scanner.testbed.tls_servers import RunningServer, make_server_context

ADDR = "127.0.61.1"
HTTP_ONLY = frozenset({"H1", "H2", "H5", "H10", "C1"})


def _read_head(conn: socket.socket) -> bytes:
    data = b""
    conn.settimeout(5)
    while b"\r\n\r\n" not in data and len(data) < 16384:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def drip(conn: socket.socket, stop: threading.Event) -> None:
    """Headers, then a body one byte every 0.2 s, forever (slow-loris in reverse)."""
    _read_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100000000\r\n\r\n")
    while not stop.is_set():
        conn.sendall(b"x")
        time.sleep(0.2)


def huge_headers(conn: socket.socket, stop: threading.Event) -> None:
    _read_head(conn)
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-Junk-%d: %s\r\n" % (i, b"a" * 1000) for i in range(2000))
    conn.sendall(head + b"Content-Length: 2\r\n\r\nok")


def crowded_headers(conn: socket.socket, stop: threading.Event) -> None:
    """80 KB of junk headers (more than the header budget) before the headers that matter."""
    _read_head(conn)
    junk = b"".join(b"X-Junk-%d: %s\r\n" % (i, b"a" * 1000) for i in range(80))
    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Big: " + b"b" * 20000 + b"\r\n" + junk
                 + b"Strict-Transport-Security: max-age=31536000\r\nSet-Cookie: sid=1; Secure; HttpOnly\r\n"
                 + b"Content-Length: 2\r\n\r\nok")


def not_http(conn: socket.socket, stop: threading.Event) -> None:
    _read_head(conn)
    conn.sendall(b"\x00\xff SSH-2.0-garbage \x00" * 50)


def redirect_loop(conn: socket.socket, stop: threading.Event) -> None:
    head = _read_head(conn)
    path = head.split(b" ")[1] if b" " in head else b"/"
    nxt = path + b"a" if len(path) < 200 else b"/"
    conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: " + nxt + b"\r\nContent-Length: 0\r\n\r\n")


def enormous_body(conn: socket.socket, stop: threading.Event) -> None:
    _read_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n")
    chunk = b"<p>" + b"y" * 65536
    for _ in range(800):  # ~50 MB if anyone read it all
        if stop.is_set():
            return
        conn.sendall(chunk)


SERVERS: dict[str, tuple[int, Callable[[socket.socket, threading.Event], None]]] = {
    "drip": (18501, drip),
    "headers": (18502, huge_headers),
    "nothttp": (18503, not_http),
    "loop": (18504, redirect_loop),
    "huge": (18505, enormous_body),
    "crowded": (18506, crowded_headers),
}


def tls_server(name: str, port: int, handler, pki: TestPKI) -> RunningServer:
    leaf = pki.leaf([f"{name}.hostile.test"])
    ctx = make_server_context(leaf.chain_pem, leaf.key_pem)

    def handle(conn: socket.socket, stop: threading.Event) -> None:
        conn.settimeout(10)
        with ctx.wrap_socket(conn, server_side=True) as tls:
            handler(tls, stop)

    return RunningServer(ADDR, port, handle, f"hostile-{name}")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Iterator[tuple[Settings, Path]]:
    pki = TestPKI.create("hostile")
    ca = pki.write_ca_bundle(tmp_path_factory.mktemp("hostile") / "ca.pem")
    servers = [tls_server(n, p, h, pki) for n, (p, h) in SERVERS.items()]
    resolve = {(f"{n}.hostile.test", p): ADDR for n, (p, _) in SERVERS.items()}
    resolve.update({(f"{n}.hostile.test", 18599): ADDR for n in SERVERS})  # closed plain-HTTP port
    settings = Settings(resolve=resolve, ca_bundle=ca, timeout=2.0, target_deadline=30, rate_limit=0,
                        max_body_bytes=200_000, only=HTTP_ONLY)
    yield settings, ca
    for s in servers:
        s.stop()


def target(name: str):
    port = SERVERS[name][0]
    return endpoint(f"https://{name}.hostile.test:{port}/").model_copy(update={"http_port": 18599})


def fetch(settings: Settings, url: str):
    async def go():
        f = Fetcher(settings, Resolver(settings), Politeness.local(2, 0), ScanStats())
        try:
            return await f.fetch(url)
        finally:
            await f.aclose()

    return asyncio.run(go())


def scan(settings: Settings, name: str):
    report = asyncio.run(Scanner(settings).run([target(name)]))
    (t,) = report.targets
    return t, {c.id: c for c in t.controls}


def test_drip_fed_body_is_cut_off_by_the_timeout(hostile):
    settings, _ = hostile
    started = time.monotonic()
    r = fetch(settings, "https://drip.hostile.test:18501/")
    assert time.monotonic() - started < 4 * settings.timeout + 2
    assert r.status is None and r.error_kind == "timeout"


def test_drip_fed_site_gives_errors_not_fails(hostile):
    settings, _ = hostile
    t, c = scan(settings, "drip")
    for cid in ("H2", "H5", "H10", "C1"):
        assert c[cid].status == Status.ERROR, (cid, c[cid].status)
    assert t.duration_s is not None and t.duration_s < settings.target_deadline


def test_huge_header_block_is_bounded(hostile):
    settings, _ = hostile
    r = fetch(settings, "https://headers.hostile.test:18502/")
    if r.status is not None:  # accepted: then the recorded headers are capped
        assert sum(len(k) + len(v) for k, v in r.headers) <= settings.max_header_bytes
    else:
        assert r.error_kind == "protocol"


def test_junk_headers_beyond_the_budget_do_not_hide_the_small_ones_after_them(hostile):
    # Given a server that sends more junk headers than the header budget, then HSTS and a cookie
    settings, _ = hostile
    r = fetch(settings, "https://crowded.hostile.test:18506/")
    names = [k for k, _ in r.headers]
    # Then the record stays within the budget, in the order sent
    assert sum(len(k) + len(v) for k, v in r.headers) <= settings.max_header_bytes
    assert names.index("x-junk-0") < names.index("x-junk-1") < names.index("strict-transport-security")
    # And the headers after the junk are kept: the largest ones were left out, not the last ones
    assert ("strict-transport-security", "max-age=31536000") in r.headers
    assert ("set-cookie", "sid=1; Secure; HttpOnly") in r.headers
    assert "x-big" not in names and "x-junk-79" not in names and "x-junk-0" in names


def test_non_http_answer_is_a_protocol_error_and_controls_error(hostile):
    settings, _ = hostile
    r = fetch(settings, "https://nothttp.hostile.test:18503/")
    assert r.status is None and r.error_kind == "protocol"
    _, c = scan(settings, "nothttp")
    assert {c[cid].status for cid in ("H2", "H5", "H10")} == {Status.ERROR}


def test_endless_redirects_stop_at_the_cap(hostile):
    settings, _ = hostile
    report = asyncio.run(Scanner(settings).run([target("loop")]))
    (t,) = report.targets
    c = {x.id: x for x in t.controls}
    # The site answers (with a redirect and no HSTS): a real answer, so a real verdict.
    assert c["H2"].status == Status.FAIL
    # The HTTPS chain, the security.txt and CORS probes each stop at max_redirects hops.
    assert 0 < report.stats["http_requests"] <= 4 * (settings.max_redirects + 2)


def test_enormous_body_is_truncated(hostile):
    settings, _ = hostile
    r = fetch(settings, "https://huge.hostile.test:18505/")
    assert r.status == 200 and r.body_truncated and len(r.body) == settings.max_body_bytes
