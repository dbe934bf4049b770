"""Every TLS connection that sslyze (and the fast prober, on sslyze's own connections) opens draws on the
address's politeness: a connection slot and a request of its rate budget, both held from before the
socket opens until it is closed, and an exact count per target.

sslyze opens its sockets in its own worker threads through one function, which the adapter hooks once
(``sslyze_adapter.install_socket_hook``); the hook consults the gate registered for the server's
(address, port, name) while a TLS collector runs, and is told when the socket closes. Sockets of servers
with no gate (sslyze used on its own) are opened exactly as before.

Slots are taken one connection at a time, so the TLS probers' threads use whatever part of the address's
cap the HTTP probes leave free at the moment (elastic), never more than the cap in all.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from scanner.collectors.tls import sslyze_adapter
from scanner.net.politeness import Politeness

GATE_WAIT_S = 600.0  # a wait for a slot and the rate longer than this is a failed connection for sslyze

_lock = threading.Lock()
_gates: dict[tuple[str, int, str], Gate] = {}
_installed = False


@dataclass
class Gate:
    """The politeness of one TLS collector run, and the connections its probers opened."""

    address: str
    politeness: Politeness
    loop: asyncio.AbstractEventLoop
    connections: int = 0
    slots: bool = True  # False: the collector holds the slots; each connection takes only its rate
    _open: set[asyncio.Event] = field(default_factory=set)  # connections holding a slot: set to end one

    def enter(self) -> Callable[[], None]:
        """Blocking (sslyze's threads): wait for a connection slot of the address and its rate budget,
        count the connection; the callable given back ends both (the socket closed), once."""
        got = threading.Event()
        done = asyncio.Event()
        future = asyncio.run_coroutine_threadsafe(self._hold(done, got), self.loop)
        future.add_done_callback(lambda _: got.set())  # failed or cancelled before it held anything
        if not got.wait(GATE_WAIT_S) or future.done():
            future.cancel()  # an endless wait or a stopped loop: a failed connection, not a hang
            raise OSError("politeness gate: no connection slot")
        with _lock:
            self.connections += 1
        ended = False

        def end() -> None:
            nonlocal ended
            if not ended:
                ended = True
                with contextlib.suppress(RuntimeError):  # the loop is gone: nothing is held any more
                    self.loop.call_soon_threadsafe(done.set)

        return end

    async def _hold(self, done: asyncio.Event, got: threading.Event) -> None:
        async with self.politeness.connection(self.address, slot=self.slots):
            self._open.add(done)
            try:
                got.set()
                await done.wait()
            finally:
                self._open.discard(done)

    def close(self) -> None:
        """In the loop: end every connection still held (the collector is over, or was cancelled)."""
        for done in list(self._open):
            done.set()


def _hook(server_location: Any) -> Callable[[], None] | None:
    key = (server_location.ip_address or "", server_location.port, server_location.hostname)
    with _lock:
        gate = _gates.get(key)
    return gate.enter() if gate is not None else None


def _install() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        sslyze_adapter.install_socket_hook(_hook)
        _installed = True


@contextlib.contextmanager
def gated(address: str, port: int, hostname: str, politeness: Politeness,
          loop: asyncio.AbstractEventLoop, slots: bool = True) -> Iterator[Gate]:
    """While the block runs, sslyze's connections to (address, port, hostname) go through the gate."""
    _install()
    gate = Gate(address, politeness, loop, slots=slots)
    key = (address, port, hostname)
    with _lock:
        previous = _gates.get(key)
        _gates[key] = gate
    try:
        yield gate
    finally:
        with _lock:
            if previous is not None:
                _gates[key] = previous
            else:
                _gates.pop(key, None)
        gate.close()
