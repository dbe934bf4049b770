"""The scanner's requests are anonymous: a cookie a site sets is recorded (the C checks read Set-Cookie from
the responses) but never sent back, neither by the fetcher nor by any collector of a whole scan. A real
local HTTPS server (127.0.64.0/24) sets a cookie on every answer and records every request head."""

from __future__ import annotations

import asyncio
import socket
import threading
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
from scanner.testbed.tls_servers import MAX_REQUEST_HEAD, RunningServer, make_server_context

ADDR = "127.0.64.1"
NAME = "cookies.anon.test"
TLS_PORT, HTTP_PORT = 18443, 18080
COOKIE = "sid=s3cr3t-value; Path=/; Secure; HttpOnly"
PAGE = b"<!doctype html><title>anon</title><p>hello</p>"


class Recorder:
    """Request heads received, in order (thread-safe: one handler thread per connection)."""

    def __init__(self) -> None:
        self.heads: list[str] = []
        self._lock = threading.Lock()

    def add(self, head: bytes) -> None:
        with self._lock:
            self.heads.append(head.decode("latin-1"))

    def cookie_headers(self) -> list[str]:
        with self._lock:
            return [line for head in self.heads for line in head.split("\r\n")[1:]
                    if line.lower().startswith(("cookie:", "cookie2:"))]


def _serve(conn: socket.socket, recorder: Recorder) -> None:
    """HTTP/1.1 with keep-alive: every request recorded, every answer sets the cookie."""
    conn.settimeout(10)
    data = b""
    while True:
        while b"\r\n\r\n" not in data:
            if len(data) > MAX_REQUEST_HEAD:
                return
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
        head, _, data = data.partition(b"\r\n\r\n")
        recorder.add(head)
        path = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b"/"
        status, body = (b"200 OK", PAGE) if path == b"/" else (b"404 Not Found", b"not here")
        body_out = b"" if head.startswith(b"HEAD ") else body
        conn.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Type: text/html\r\nSet-Cookie: "
                     + COOKIE.encode() + b"\r\nContent-Length: " + str(len(body)).encode()
                     + b"\r\n\r\n" + body_out)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> tuple[Path, Recorder]:
    pki = TestPKI.create("anonymous requests")
    ca = pki.write_ca_bundle(tmp_path_factory.mktemp("ca") / "ca.pem")
    leaf = pki.leaf([NAME])
    ctx = make_server_context(leaf.chain_pem, leaf.key_pem)
    recorder = Recorder()

    def https(conn: socket.socket, _stop: threading.Event) -> None:
        conn.settimeout(10)
        with ctx.wrap_socket(conn, server_side=True) as tls:
            _serve(tls, recorder)

    def plain(conn: socket.socket, _stop: threading.Event) -> None:
        _serve(conn, recorder)

    servers = [RunningServer(ADDR, TLS_PORT, https, "anon-https"),
               RunningServer(ADDR, HTTP_PORT, plain, "anon-http")]
    yield ca, recorder
    for s in servers:
        s.stop()


def _settings(ca: Path, **kw: object) -> Settings:
    return Settings(ca_bundle=ca, resolve={(NAME, p): ADDR for p in (TLS_PORT, HTTP_PORT)}, **kw)


def test_fetcher_records_set_cookie_and_never_sends_it_back(site):
    ca, recorder = site
    before = len(recorder.heads)

    async def go() -> list:
        settings = _settings(ca)
        f = Fetcher(settings, Resolver(settings), Politeness.local(2, 0), ScanStats())
        try:
            out = [await f.fetch(f"https://{NAME}:{TLS_PORT}/")]
            out += await asyncio.gather(*(f.fetch(f"https://{NAME}:{TLS_PORT}/p{i}") for i in range(3)))
            out.append(await f.fetch(f"http://{NAME}:{HTTP_PORT}/"))
            out.append(await f.fetch(f"http://{NAME}:{HTTP_PORT}/again"))
            return out
        finally:
            await f.aclose()

    responses = asyncio.run(go())
    assert all(r.error is None for r in responses)
    assert all(r.header_all("set-cookie") == [COOKIE] for r in responses)
    assert len(recorder.heads) - before == len(responses)
    assert recorder.cookie_headers() == []


def test_a_whole_scan_sends_no_cookie_and_the_cookie_checks_still_see_them(site):
    ca, recorder = site
    before = len(recorder.heads)
    target = endpoint(f"https://{NAME}:{TLS_PORT}/").model_copy(update={"http_port": HTTP_PORT})
    settings = _settings(ca, only=("C1", "C2", "C3", "C4", "E1", "E2", "E3", "E4"))
    report = asyncio.run(Scanner(settings).run([target]))
    (result,) = report.targets
    assert len(recorder.heads) - before >= 50  # the http and exposure collectors' requests
    assert recorder.cookie_headers() == []
    cookie_controls = [c for c in result.controls if c.id.startswith("C")]
    assert cookie_controls
    # The cookie was read from the answers: C1 judges its attributes instead of finding no cookie.
    c1 = next(c for c in cookie_controls if c.id == "C1")
    assert c1.status not in (Status.NOT_APPLICABLE, Status.ERROR)
    assert any("sid" in str(f.model_dump()) for c in cookie_controls for f in c.findings)
