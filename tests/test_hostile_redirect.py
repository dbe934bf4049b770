"""A hostile redirect must not disable a target's HTTP checks (issue 11): a Location that httpx refuses
to build, or that is no URL at all, is a recorded hop error and every control the response that carried
it still decides is decided. Real TLS servers on 127.0.120.0/24 with a minted certificate."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest

from scanner.engine import Scanner
from scanner.models import Status
from scanner.settings import Settings
from scanner.targets import endpoint
from scanner.testbed.certs import TestPKI
from scanner.testbed.tls_servers import RunningServer, make_server_context

ADDR = "127.0.120.1"
CLOSED_HTTP = 18699
HTTP_ONLY = frozenset({"H1", "H2", "H5", "H10", "C1", "C2"})
LOCATIONS = {  # name: (port, Location bytes as sent)
    "js": (18601, b"javascript:alert(1)"),
    "idn": (18602, "https://\u00e4.redirect.test/".encode("latin-1")),  # httpx cannot encode the Host
    "long": (18603, b"https://long.redirect.test:18603/" + b"a" * 70_000),  # httpx: URL too long
}


def _read_head(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 16384:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def redirecting(location: bytes):
    def handle(conn: socket.socket, stop: threading.Event) -> None:
        _read_head(conn)
        conn.sendall(b"HTTP/1.1 302 Found\r\n"
                     b"Strict-Transport-Security: max-age=63072000\r\nServer: nginx/1.2.3\r\n"
                     b"Set-Cookie: sid=1; Secure; HttpOnly; SameSite=Lax; Path=/\r\n"
                     b"Content-Length: 0\r\nConnection: close\r\nLocation: " + location + b"\r\n\r\n")
    return handle


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Iterator[Settings]:
    pki = TestPKI.create("redirect")
    ca = pki.write_ca_bundle(tmp_path_factory.mktemp("redirect") / "ca.pem")
    servers = []
    for name, (port, location) in LOCATIONS.items():
        leaf = pki.leaf([f"{name}.redirect.test"])
        ctx = make_server_context(leaf.chain_pem, leaf.key_pem)
        handler = redirecting(location)

        def handle(conn: socket.socket, stop: threading.Event, ctx=ctx, handler=handler) -> None:
            conn.settimeout(10)
            with ctx.wrap_socket(conn, server_side=True) as tls:
                handler(tls, stop)

        servers.append(RunningServer(ADDR, port, handle, f"redirect-{name}"))
    resolve = {(f"{n}.redirect.test", p): ADDR for n, (p, _) in LOCATIONS.items()}
    resolve.update({(f"{n}.redirect.test", CLOSED_HTTP): ADDR for n in LOCATIONS})
    resolve[("\u00e4.redirect.test", 443)] = ADDR
    yield Settings(resolve=resolve, ca_bundle=ca, timeout=2.0, target_deadline=30, rate_limit=0,
                   max_header_bytes=200_000,  # so that the 70 KB Location reaches the redirect logic
                   only=HTTP_ONLY)
    for s in servers:
        s.stop()


@pytest.mark.parametrize("name", sorted(LOCATIONS))
def test_hostile_location_is_a_hop_error_and_controls_are_decided(settings, name, capfd):
    port = LOCATIONS[name][0]
    t = endpoint(f"https://{name}.redirect.test:{port}/").model_copy(update={"http_port": CLOSED_HTTP})
    snaps = []
    report = asyncio.run(Scanner(settings).run([t], on_result=lambda _r, snap: snaps.append(snap)))
    (res,) = report.targets
    c = {x.id: x for x in res.controls}
    # The 302 that carried the Location decides these: HSTS, the banner, the cookie.
    assert c["H2"].status == Status.PASS, c["H2"]
    assert c["H10"].status in (Status.FAIL, Status.WARN), c["H10"]
    assert c["C1"].status == Status.PASS and c["C2"].status == Status.PASS, (c["C1"], c["C2"])
    chain = snaps[0].http.https
    assert chain.hops[0].status == 302 and chain.stop_reason, chain
    assert chain.hops[-1].not_followed == chain.stop_reason
    err = capfd.readouterr().err
    assert "Traceback" not in err and "socket.send() raised exception" not in err, err[-2000:]
