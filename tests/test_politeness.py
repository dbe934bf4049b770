"""The politeness cap holds across every collector: while a full endpoint scan (TLS prober and sslyze,
HTTP, exposure probes) runs against a real local server, the scanner never has more than
``--per-host-connections`` sockets open to it.

The count is taken on the client side (every ``socket.connect`` to the server's address and the matching
``close``), which is exact; a server-side count lags by however long the server takes to notice a close.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest

from scanner.engine import Scanner
from scanner.settings import Settings
from scanner.targets import endpoint
from scanner.testbed.certs import TestPKI
from scanner.testbed.tls_servers import HttpResponseSpec, start_https_server

ADDR, PORT, NAME = "127.0.63.1", 18443, "polite.tlsbed.test"
NOT_FOUND = HttpResponseSpec(status=404, reason="Not Found", body=b"<h1>Not found</h1>")


class OpenSockets:
    """Sockets of this process connected (or connecting) to one peer, and the most ever open at once."""

    def __init__(self, peer: tuple[str, int]) -> None:
        self.peer = peer
        self.open: set[int] = set()
        self.peak = 0
        self.total = 0
        self.lock = threading.Lock()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real_connect, real_close = socket.socket.connect, socket.socket.close
        counter = self

        def connect(sock: socket.socket, address: object) -> None:
            mine = isinstance(address, tuple) and tuple(address[:2]) == counter.peer
            if mine:
                with counter.lock:
                    counter.open.add(id(sock))
                    counter.total += 1
                    counter.peak = max(counter.peak, len(counter.open))
            try:
                real_connect(sock, address)
            except BlockingIOError:  # non-blocking connect in progress: still open
                raise
            except OSError:
                if mine:
                    with counter.lock:
                        counter.open.discard(id(sock))
                raise

        def close(sock: socket.socket) -> None:
            with counter.lock:
                counter.open.discard(id(sock))
            real_close(sock)

        monkeypatch.setattr(socket.socket, "connect", connect)
        monkeypatch.setattr(socket.socket, "close", close)


@pytest.mark.parametrize("cap", [1, 2, 3])
def test_sockets_to_one_host_never_exceed_the_cap(tmp_path, monkeypatch, cap):
    pki = TestPKI.create("politeness")
    ca = pki.write_ca_bundle(tmp_path / "ca.pem")
    leaf = pki.leaf([NAME])
    srv = start_https_server(ADDR, PORT, leaf.chain_pem, leaf.key_pem, response=NOT_FOUND)
    counter = OpenSockets((ADDR, PORT))
    counter.install(monkeypatch)
    try:
        settings = Settings(resolve={(NAME, PORT): ADDR, (NAME, 18099): ADDR}, ca_bundle=ca, timeout=5,
                            rate_limit=0, per_host_connections=cap, exposure_max_requests=40)
        target = endpoint(f"https://{NAME}:{PORT}/").model_copy(update={"http_port": 18099})
        report = asyncio.run(Scanner(settings).run([target]))
    finally:
        srv.stop()
    (t,) = report.targets
    assert t.decided > 10  # the scan really ran: TLS, HTTP and exposure controls were decided
    assert counter.total > 20
    assert counter.peak <= cap, f"{counter.peak} sockets open at once with a cap of {cap}"
