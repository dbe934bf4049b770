"""A request whose HTTP/2 connection closes before its headers leave goes to another connection instead of
failing (scanner/net/coalesce.py). Both ways it can happen are forced here, step by step, against a real
nginx that allows one stream per connection (127.19.0.0/16):

- the request waits for a stream slot while the connection is closed (the pool closing it as idle, its
  last registered stream having ended): h2 then refuses its headers ("SEND_HEADERS in state CLOSED",
  or "Max outbound streams is 1, 1 open" when the earlier response's last frame was still unread, as
  under load in session 10's suite), which the connection turns into httpcore's
  ``ConnectionNotAvailable`` so the pool reassigns it (seen under load in session 8 as an H2-H4
  ``error``);
- the request waits for its rate (``BEFORE_STREAM``) while the connection is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpcore
import pytest

from scanner.net.coalesce import BEFORE_STREAM, Coalescing, CoalescingPool
from scanner.testbed.certs import TestPKI
from tests.testbed.nginx import NginxServer, require_nginx

ADDR, PORT, NAME = "127.19.0.1", 18443, "race.coalesce.test"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory):
    require_nginx()
    tmp = tmp_path_factory.mktemp("coalesce-race")
    www = Path(tempfile.mkdtemp(prefix="pledgescan-race-www-"))  # nginx's workers read it (pytest's
    www.chmod(0o755)                                              # own temporary folders are private)
    pki = TestPKI.create("coalescing race")
    bundle = pki.write_ca_bundle(tmp / "ca.pem")
    chain, key = pki.leaf([NAME]).write(tmp, "leaf")
    conf = f"""
    server {{
        listen {ADDR}:{PORT} ssl http2;
        server_name {NAME};
        ssl_certificate {chain};
        ssl_certificate_key {key};
        http2_max_concurrent_streams 1;
        access_log off;
        default_type text/plain;
        location = /big {{ alias {www / "big.txt"}; }}
        location / {{ return 200 "site:$uri"; }}
    }}
"""
    # more than h2's initial flow-control window (64 KiB): its last frame waits for the client to read
    (www / "big.txt").write_bytes(b"x" * (1 << 20))
    (www / "big.txt").chmod(0o644)
    try:
        with NginxServer(conf, name="pledgescan-coalesce-race", listen=[(ADDR, PORT)], workdir=tmp / "nginx"):
            yield bundle
    finally:
        shutil.rmtree(www, ignore_errors=True)


def _request(path: str, before: Callable[[], Awaitable[None]] | None = None) -> httpcore.Request:
    ext: dict = {"sni_hostname": NAME, "timeout": {"connect": 5, "read": 5, "write": 5, "pool": 5}}
    if before is not None:
        ext[BEFORE_STREAM] = before
    return httpcore.Request("GET", f"https://{ADDR}:{PORT}{path}", headers=[(b"host", NAME.encode())],
                            extensions=ext)


def _pool(ca: Path) -> CoalescingPool:
    return CoalescingPool(Coalescing(lambda host, port: True), http1=False, http2=True, max_connections=4,
                          ssl_context=ssl.create_default_context(cafile=ca))


async def _body(response: httpcore.Response) -> bytes:
    try:
        return b"".join([chunk async for chunk in response.aiter_stream()])
    finally:
        await response.aclose()


@pytest.mark.parametrize("first_path", ["/first", "/big"], ids=["response-read", "response-unread"])
def test_a_request_waiting_for_a_stream_slot_on_a_connection_then_closed_goes_to_another(ca, first_path):
    """``/big``: the first response's last frame is still at the server when the connection closes, so h2
    counts its stream as open and refuses the waiting request's as one too many, not as closed."""

    async def go() -> tuple[int, bytes, int]:
        pool = _pool(ca)
        async with pool:
            first = await pool.handle_async_request(_request(first_path))  # holds the one stream slot
            assert first.status == 200
            (conn,) = pool.connections
            assert "HTTP/2" in conn.info()
            second = asyncio.create_task(pool.handle_async_request(_request("/second")))
            await asyncio.sleep(0.3)
            # The server allows one stream: the second request waits on the first one's connection
            assert not second.done() and pool.connections == [conn]
            await conn.aclose()  # closed under it, as the pool closes an idle connection
            with contextlib.suppress(Exception):
                await first.aclose()  # frees the stream slot: the second request sends its headers now
            response = await asyncio.wait_for(second, 10)
            body = await _body(response)
            return response.status, body, len([c for c in pool.connections if c is not conn])

    status, body, others = asyncio.run(go())
    assert (status, body) == (200, b"site:/second")
    assert others == 1  # on a new connection


def test_a_request_waiting_for_its_rate_on_a_connection_then_closed_goes_to_another(ca):
    async def go() -> tuple[int, bytes, int]:
        pool = _pool(ca)
        async with pool:
            await _body(await pool.handle_async_request(_request("/first")))
            (conn,) = pool.connections
            assert "HTTP/2" in conn.info()
            waiting, go_on = asyncio.Event(), asyncio.Event()

            async def rate() -> None:  # stands for the address's rate budget
                waiting.set()
                await go_on.wait()

            second = asyncio.create_task(pool.handle_async_request(_request("/second", before=rate)))
            await asyncio.wait_for(waiting.wait(), 5)  # the request went to the open connection
            await conn.aclose()
            go_on.set()
            response = await asyncio.wait_for(second, 10)
            body = await _body(response)
            return response.status, body, len([c for c in pool.connections if c is not conn])

    status, body, others = asyncio.run(go())
    assert (status, body) == (200, b"site:/second")
    assert others == 1
