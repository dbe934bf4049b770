"""A connection's slot of its address is released only once its socket is really closed: even with bytes
still queued for a server that reads nothing (its window full), closing the stream closes the socket at
once (anyio aborts the transport), well before ``CLOSE_WAIT_S``, the fetcher's bound for a starved loop.
A local listener on 127.15.1.1 that accepts and never reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

import httpcore

from scanner.net.fetcher import _PoliteStream

ADDR = "127.15.1.1"


def test_slot_is_released_when_the_socket_is_closed_even_with_unsent_bytes():
    listener = socket.create_server((ADDR, 0))
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    port = listener.getsockname()[1]
    accepted: list[socket.socket] = []

    async def go() -> tuple[bool, bool]:
        inner = await httpcore.AnyIOBackend().connect_tcp(ADDR, port, timeout=5)
        accepted.append(listener.accept()[0])  # and never read from it
        released: list[bool] = []
        sock = inner.get_extra_info("socket")

        async def release() -> None:
            released.append(sock.fileno() == -1)  # was the socket closed when its slot was freed?

        stream = _PoliteStream(inner, release, None, port)  # type: ignore[arg-type]
        # The server's window and the kernel's buffer fill; megabytes stay queued in asyncio's transport.
        with contextlib.suppress(httpcore.WriteTimeout):
            await stream.write(b"x" * (16 << 20), timeout=0.3)
        await stream.aclose()
        return released == [True], sock.fileno() == -1

    try:
        closed_at_release, closed = asyncio.run(go())
    finally:
        for s in (*accepted, listener):
            s.close()
    # Released after the socket closed, so within CLOSE_WAIT_S (past it, the slot would have been freed
    # with the socket still open).
    assert closed_at_release and closed
