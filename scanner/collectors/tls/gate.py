"""Every TLS connection that sslyze (and the fast prober, on sslyze's own connections) opens draws on the
address's politeness: a connection slot and a request of its rate budget, both held from before the
socket opens until it is closed, and an exact count per target.

sslyze opens its sockets in its own worker threads through one function, which the adapter hooks once
(``sslyze_adapter.install_socket_hook``); the hook consults the gate registered for the server's
(address, port, name) while a TLS collector runs, and is told when the socket closes. Sockets of servers
with no gate (sslyze used on its own) are opened exactly as before.

Slots are taken one connection at a time, so the TLS probers' threads use whatever part of the address's
cap the HTTP probes leave free at the moment (elastic), never more than the cap in all.

Several collectors of one (address, port, name) can run at once in one process: targets that differ only
in their path (``https://a/`` and ``https://a/b``), in-process or in the threads of one worker. A socket
only tells its server location, not its collector, so each such socket goes through the gate registered
last among those still running, and a gate that ends first leaves the others registered (each holds the
connections it let open until their sockets close: it waits for them before its collector returns).
Before, a plain dict with save-and-restore lost the other collector's gate when the first one ended: that
collector's connections then opened with no slot at all (tests/test_workers.py saw 3 connections open
with a cap of 2).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from scanner.collectors.tls import sslyze_adapter
from scanner.net.politeness import Politeness

GATE_WAIT_S = 600.0  # a wait for a slot and the rate longer than this is a failed connection for sslyze
GATE_DRAIN_S = 30.0  # at most this long, a gate that ends waits for the connections it holds to close

_lock = threading.Lock()
_gates: dict[tuple[str, int, str], list[Gate]] = {}  # the gates running, oldest first
_installed = False


@dataclass
class Gate:
    """The politeness of one TLS collector run, and the connections its probers opened."""

    address: str
    politeness: Politeness
    loop: asyncio.AbstractEventLoop
    connections: int = 0
    _open: set[asyncio.Event] = field(default_factory=set)  # connections holding a slot: set to end one
    _entering: int = 0  # connections given this gate by the hook, not yet holding (under ``_lock``)
    work: concurrent.futures.Future[Any] | None = None  # the collector's thread, when it runs in one
    refusing: bool = False  # its collector was cancelled while its thread runs on (under ``_lock``)
    # The collector's first handshake runs beside the prober's first ones: until it is decided
    # (``decide``), only ``ahead`` connections open; the others wait for it, and open only if it reached TLS.
    decided: threading.Event = field(default_factory=threading.Event)
    stopped: bool = False
    ahead: int | None = None  # None: nothing to wait for

    def decide(self, go_on: bool) -> None:
        """The first handshake is decided: the connections waiting for it open (``go_on``) or fail. Its
        word is final (``reached`` may have opened the way before)."""
        with _lock:
            self.stopped = not go_on
            self.decided.set()

    def reached(self) -> None:
        """A handshake of the prober reached TLS: the server speaks it, the others need not wait for the
        first handshake (which still decides whether the collection stops, if it fails after all)."""
        with _lock:
            if not self.decided.is_set():
                self.stopped = False
                self.decided.set()

    def _may_open(self) -> bool:
        """Blocking: may one more connection open (see ``ahead``)?"""
        if self.ahead is None or self.decided.is_set():
            return not self.stopped
        with _lock:
            early = self.ahead > 0
            if early:
                self.ahead -= 1
        if not early:
            self.decided.wait(GATE_WAIT_S)
        return not self.stopped

    def enter(self, counted: bool = False) -> Callable[[], None]:
        """Blocking (sslyze's threads): wait for a connection slot of the address and its rate budget,
        count the connection; the callable given back ends both (the socket closed), once. ``counted``:
        the hook counted it among the connections entering already (under ``_lock``, as it chose the gate)."""
        if not counted:
            with _lock:
                self._entering += 1
        if not self._may_open():
            self._entered()
            raise OSError("politeness gate: the first handshake did not reach TLS")
        got = threading.Event()
        done = asyncio.Event()
        try:
            future = asyncio.run_coroutine_threadsafe(self._hold(done, got), self.loop)
        except RuntimeError:  # the loop is closed
            self._entered()
            raise OSError("politeness gate: no connection slot") from None
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
        entered = False
        try:
            async with self.politeness.connection(self.address):
                self._open.add(done)
                self._entered()
                entered = True
                try:
                    got.set()
                    await done.wait()
                finally:
                    self._open.discard(done)
        finally:
            if not entered:
                self._entered()

    def _entered(self) -> None:
        """A connection the hook gave this gate holds its slot now, or never will (once per connection)."""
        with _lock:
            self._entering -= 1

    def _busy(self) -> bool:
        with _lock:
            return bool(self._open) or self._entering > 0

    async def drain(self, timeout: float = GATE_DRAIN_S) -> None:
        """In the loop, once the gate is no longer registered: wait until the connections it let open have
        closed (another collector's of the same server included), at most ``timeout``."""
        end = self.loop.time() + timeout
        while self._busy() and self.loop.time() < end:
            await asyncio.sleep(0.005)

    def close(self) -> None:
        """In the loop: end every connection still held (the collector is over, or was cancelled); what
        waits for the first handshake fails."""
        if self.ahead is not None and not self.decided.is_set():
            self.decide(False)
        for done in list(self._open):
            done.set()


def _hook(server_location: Any) -> Callable[[], None] | None:
    key = (server_location.ip_address or "", server_location.port, server_location.hostname)
    with _lock:
        gates = _gates.get(key)
        if not gates:
            return None  # sslyze used on its own: no politeness to keep
        gate = next((g for g in reversed(gates) if not g.refusing), None)
        if gate is None:  # only cancelled collectors' threads run on: never a connection without a slot
            raise OSError("politeness gate: the TLS collection was cancelled")
        gate._entering += 1  # counted before the gate can end: its drain waits for this connection
    return gate.enter(counted=True)


def _install() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        sslyze_adapter.install_socket_hook(_hook)
        _installed = True


def _unregister(key: tuple[str, int, str], gate: Gate) -> None:
    with _lock:
        gates = _gates[key]
        gates.remove(gate)
        if not gates:
            del _gates[key]


@contextlib.asynccontextmanager
async def gated(address: str, port: int, hostname: str, politeness: Politeness,
                loop: asyncio.AbstractEventLoop) -> AsyncIterator[Gate]:
    """While the block runs, sslyze's connections to (address, port, hostname) go through the gate (through
    the newest gate of that server, when collectors of it overlap). When the block ends, the gate waits
    for the connections it let open to close (unless cancelled), then frees what is still held. Set the
    gate's ``work`` to the thread's future: a cancelled block then leaves the gate refusing every new
    connection of that server's cancelled collectors until the thread ends."""
    _install()
    gate = Gate(address, politeness, loop)
    key = (address, port, hostname)
    with _lock:
        _gates.setdefault(key, []).append(gate)
    ended = False
    try:
        yield gate
        ended = True
    finally:
        work = gate.work
        if not ended and work is not None and not work.done():
            # Cancelled (a target's deadline) while the collector's thread runs on, as a thread does: the
            # gate stays registered, refusing, until the thread ends, so that its later sockets fail at
            # once instead of opening with no gate (no slot, no rate) at all.
            with _lock:
                gate.refusing = True
            work.add_done_callback(lambda _: _unregister(key, gate))
        else:
            _unregister(key, gate)
        try:
            if ended:  # not when cancelled (a target's deadline): that returns at once
                await gate.drain()
        finally:
            gate.close()
