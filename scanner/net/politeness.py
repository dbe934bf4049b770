"""Politeness per IP address: what a site owner feels is the load on their server, so the budget belongs
to each address and every prober (HTTP, exposure, the TLS prober, sslyze) draws on the same one.

``AddressBudget`` is the interface: a connection cap and a request rate per address. ``LocalAddressBudget``
is the in-process implementation (one scan on one machine); a Redis-backed one keeps the same promises
when several workers scan (``scanner.distributed.redis_budget``; the Protocol's docstrings are the
contract, tests/test_redis_budget.py holds it to them). ``SocketCap`` is separate: a cap on sockets in
flight that protects the scanning machine, never shared between machines.

What the rate means (``--rate-limit R``, ``rate_window(R) = (n, window)``: 100/s is 100 per second):
a request counts from the moment it may start until it ends, and one window after (``begin``/``end``;
a TLS handshake likewise, from its start until its connection closes). A request starts only while
fewer than n others count. So whatever moment the server takes as a request's time (when it reads it,
when it answers, when it writes its log line), and however late an HTTP/2 stream is answered, no window
of that length sees more than n requests of the scanner there: of the requests that meet a window, the
one that started last saw every other one counted when it started. That holds on its own, so starts are
not paced: a window's budget may be used at once (a host 50 ms away is not kept waiting for a budget
that is there), and the next n wait until the first ones have ended and one window has passed.
Bulk requests (``bulk=True``: the exposure probes of a target alone on its address) are at most
n - ``bulk_reserve(n)`` of a window (and all requests at most n): a burst of probes never makes the
target's TLS handshakes and HTTP chains, which go one step after the other, wait a whole window. Targets
sharing an address do not mark their probes bulk: they are bound by the address's budget, which they
use whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import itertools
import math
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

DEFAULT_PER_ADDRESS_CONNECTIONS = 4
DEFAULT_REQUESTS_PER_SECOND = 100.0
DEFAULT_SOCKET_CAP = 512
BULK_RESERVE_DIVISOR = 3  # a third of a window's requests is kept from bulk requests
OPEN_REQUEST_S = 120.0  # a request not ended after this long stops counting (its holder died)


@functools.lru_cache(maxsize=4096)  # every request asks (parsing was ~3% of a portfolio's CPU)
def address_key(address: str) -> str:
    """The canonical text of an IP address (IPv4-mapped IPv6 as IPv4), the key of its budget."""
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return address.lower()
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.compressed


def rate_window(requests_per_second: float) -> tuple[int, float]:
    """``(n, seconds)``: at most n requests in any sliding window of that many seconds.

    100/s is 100 per second; 2.5/s is 2 per 0.8 s; 0.5/s is 1 per 2 s.
    """
    n = max(1, math.floor(requests_per_second))
    return n, n / requests_per_second


def bulk_reserve(n: int) -> int:
    """Requests of a window that bulk requests leave to the others: bulk ones count at most n minus this
    (none when n is 1: bulk must go on)."""
    return min(n - 1, n // BULK_RESERVE_DIVISOR)


def tls_share(cap: int) -> int:
    """Connection slots of an address's cap for its TLS probers (the prober, sslyze): half, rounded up."""
    return max(1, (cap + 1) // 2)


def http_share(cap: int) -> int:
    """Connections an address's HTTP pool keeps: the rest of the cap (all of it when the cap is 1), so the
    HTTP probes and the TLS probers of one target run side by side without waiting for each other."""
    return max(1, cap - tls_share(cap))


@runtime_checkable
class AddressBudget(Protocol):
    """The politeness owed to each IP address, shared by every prober of every target on it."""

    per_address_connections: int  # the cap on open connections to one address (>= 1)
    requests_per_second: float  # request starts per second to one address (0 = unlimited)

    def connections(self, address: str, count: int = 1) -> AbstractAsyncContextManager[int]:
        """Hold ``count`` connection slots of ``address`` (clamped to 1..cap) for the ``async with`` block,
        which yields the number held. Taken all or nothing; multi-slot holders queue per address, so two
        of them never each hold part of the slots (no deadlock). Released on exit, error or cancellation."""
        ...

    async def begin(self, address: str, bulk: bool = False) -> RequestLease:
        """Wait until one more request may start to ``address`` and count it from now until the lease's
        ``end()`` and one window after (see the module's docstring: *what the rate means*). The request
        counts once this returns, whether or not it then succeeds; ``end()`` must follow (``finally``).
        A ``bulk`` request also counts among the bulk ones, at most n - ``bulk_reserve(n)``."""
        ...

    async def aclose(self) -> None:
        """Release what the budget holds (connections to a broker, and so on)."""
        ...


@runtime_checkable
class RequestLease(Protocol):
    """A request counted by its address's rate from its start until ``end()`` and one window after."""

    async def end(self) -> None:
        """The request is over (answered, failed or cancelled). Idempotent, never raises."""
        ...


@dataclass
class _Log:
    """Requests that count: running ones, and until when the ended ones count (as the Redis sorted set)."""

    counted: deque[float] = field(default_factory=deque)  # until when each ended request counts (sorted)
    running: dict[int, float] = field(default_factory=dict)  # requests not ended: token -> at most until
    # No running request stops counting before this (at most the earliest of their "until"s): ``size``
    # looks through them only from then, not at each of the address's requests (up to 64 running ones).
    running_from: float = math.inf

    def size(self, now: float) -> int:
        while self.counted and self.counted[0] <= now:
            self.counted.popleft()
        if self.running_from <= now:
            for token, until in list(self.running.items()):
                if until <= now:  # not ended after OPEN_REQUEST_S: no longer counted
                    del self.running[token]
            self.running_from = min(self.running.values(), default=math.inf)
        return len(self.counted) + len(self.running)

    def run(self, token: int, until: float) -> None:
        """Count a request from now until it ends, or ``until`` at most."""
        self.running[token] = until
        self.running_from = min(self.running_from, until)

    def first_out(self) -> float:
        """When the first of them stops counting, unless one ends before."""
        return min([*self.running.values(), *([self.counted[0]] if self.counted else [])])


@dataclass
class _AddressState:
    slots: asyncio.Semaphore
    multi: asyncio.Lock = field(default_factory=asyncio.Lock)
    every: _Log = field(default_factory=_Log)  # every request of the address
    bulk: _Log = field(default_factory=_Log)  # its bulk requests, also in ``every``
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # replaced by a new one when set
    rate_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    bulk_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # bulk waiters queue apart (no blocking)

    def wake(self) -> None:
        """A request ended: every waiter looks again (each waits on the event it saw before looking)."""
        ended, self.ended = self.ended, asyncio.Event()
        ended.set()


@dataclass
class _LocalLease:
    """A request of ``LocalAddressBudget`` not ended yet: ``end()`` moves it to the counted logs."""

    state: _AddressState
    logs: tuple[_Log, ...]
    token: int
    window: float

    async def end(self) -> None:
        now = time.monotonic()
        for log in self.logs:
            until = log.running.pop(self.token, None)
            if until is not None and until > now:
                log.counted.append(now + self.window)
        self.state.wake()


class _NoLease:
    """What ``begin`` gives when the rate is unlimited (nothing to end)."""

    async def end(self) -> None:
        return None


NO_LEASE: RequestLease = _NoLease()


class LocalAddressBudget:
    """``AddressBudget`` in one process, per address: a semaphore, the requests that count (running ones,
    and until when the ended ones count, as the Redis budget's sorted set)."""

    def __init__(self, per_address_connections: int = DEFAULT_PER_ADDRESS_CONNECTIONS,
                 requests_per_second: float = DEFAULT_REQUESTS_PER_SECOND) -> None:
        self.per_address_connections = max(1, per_address_connections)
        self.requests_per_second = max(0.0, requests_per_second)
        self._state: dict[str, _AddressState] = {}
        self._tokens = itertools.count()

    def _of(self, address: str) -> _AddressState:
        key = address_key(address)
        state = self._state.get(key)
        if state is None:
            state = self._state[key] = _AddressState(asyncio.Semaphore(self.per_address_connections))
        return state

    @contextlib.asynccontextmanager
    async def connections(self, address: str, count: int = 1) -> AsyncIterator[int]:
        count = min(max(1, count), self.per_address_connections)
        state = self._of(address)
        taken = 0
        try:
            if count == 1:
                await state.slots.acquire()
                taken = 1
            else:
                async with state.multi:
                    for _ in range(count):
                        await state.slots.acquire()
                        taken += 1
            yield count
        finally:
            for _ in range(taken):
                state.slots.release()

    async def begin(self, address: str, bulk: bool = False) -> RequestLease:
        return await self._start(address, open_s=OPEN_REQUEST_S, bulk=bulk)

    async def _start(self, address: str, open_s: float, bulk: bool = False) -> RequestLease:
        if not self.requests_per_second:
            return NO_LEASE
        n, window = rate_window(self.requests_per_second)
        state = self._of(address)
        logs = (state.every, state.bulk) if bulk else (state.every,)
        limits = (n, n - bulk_reserve(n))
        # FIFO within each kind: waiters start in the order they asked; a bulk waiter never holds the
        # others back.
        async with state.bulk_lock if bulk else state.rate_lock:
            while True:
                ended = state.ended
                now = time.monotonic()
                full = [log for log, limit in zip(logs, limits, strict=False) if log.size(now) >= limit]
                if not full:
                    token = next(self._tokens)
                    if not open_s:  # counted from now for one window
                        for log in logs:
                            log.counted.append(now + window)
                        return NO_LEASE
                    for log in logs:
                        log.run(token, now + open_s + window)
                    return _LocalLease(state, logs, token, window)
                wake = max(log.first_out() for log in full) - now  # until one runs out, or one ends
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ended.wait(), wake)

    async def aclose(self) -> None:
        self._state.clear()


class SocketCap:
    """At most ``limit`` sockets in flight from this process, whatever their address (protects the
    scanning machine: file descriptors, memory). Always local, even when the address budget is shared."""

    def __init__(self, limit: int = DEFAULT_SOCKET_CAP) -> None:
        self.limit = max(1, limit)
        self._sem = asyncio.Semaphore(self.limit)
        self.in_flight = 0
        self.peak = 0

    @contextlib.asynccontextmanager
    async def sockets(self, count: int = 1) -> AsyncIterator[None]:
        count = min(max(1, count), self.limit)
        taken = 0
        try:
            for _ in range(count):
                await self._sem.acquire()
                taken += 1
            self.in_flight += taken
            self.peak = max(self.peak, self.in_flight)
            yield
        finally:
            for _ in range(taken):
                self._sem.release()
            self.in_flight -= taken


Reclaimer = Callable[[str | None], Awaitable[None]]


class Politeness:
    """What probers use: the address budget first (may wait long), then the machine's socket cap (so a
    prober never holds machine sockets while it waits for a busy address).

    Kept-alive connections hold their slots while idle. So that they never starve another prober,
    ``reclaimers`` (the fetcher's "close idle connections") run when a prober would wait for an address
    (``None``: for the socket cap), and ``waiting`` tells the fetcher to close its idle connections to an
    address as soon as they turn idle.
    """

    def __init__(self, budget: AddressBudget, socket_cap: SocketCap) -> None:
        self.budget = budget
        self.socket_cap = socket_cap
        self.reclaimers: list[Reclaimer] = []
        self._waiting: Counter[str] = Counter()
        self._held: Counter[str] = Counter()

    @classmethod
    def local(cls, per_address_connections: int = DEFAULT_PER_ADDRESS_CONNECTIONS,
              requests_per_second: float = DEFAULT_REQUESTS_PER_SECOND,
              sockets: int = DEFAULT_SOCKET_CAP) -> Politeness:
        """In-process politeness (one scan on one machine)."""
        return cls(LocalAddressBudget(per_address_connections, requests_per_second), SocketCap(sockets))

    def waiting(self, address: str) -> bool:
        """Does a prober of this process wait for a slot of ``address`` (or for a machine socket)?"""
        return self._waiting[address_key(address)] > 0 or self._waiting[""] > 0

    async def _reclaim(self, address: str | None) -> None:
        for reclaim in self.reclaimers:
            await reclaim(address)

    @contextlib.asynccontextmanager
    async def connections(self, address: str, count: int = 1) -> AsyncIterator[int]:
        """``count`` connection slots of ``address`` and as many sockets of the machine."""
        key = address_key(address)
        count = min(max(1, count), self.budget.per_address_connections)
        self._waiting[key] += 1
        waiting = True
        try:
            if self._held[key] + count > self.budget.per_address_connections:
                await self._reclaim(address)
            async with self.budget.connections(address, count) as held:
                self._waiting[key] -= 1
                waiting = False
                self._held[key] += held
                try:
                    async with self._machine_sockets(held):
                        yield held
                finally:
                    self._held[key] -= held
        finally:
            if waiting:
                self._waiting[key] -= 1

    @contextlib.asynccontextmanager
    async def _machine_sockets(self, count: int) -> AsyncIterator[None]:
        if self.socket_cap.in_flight + count <= self.socket_cap.limit:
            async with self.socket_cap.sockets(count):
                yield
            return
        self._waiting[""] += 1
        waiting = True
        try:
            await self._reclaim(None)
            async with self.socket_cap.sockets(count):
                self._waiting[""] -= 1
                waiting = False
                yield
        finally:
            if waiting:
                self._waiting[""] -= 1

    async def begin(self, address: str, bulk: bool = False) -> RequestLease:
        return await self.budget.begin(address, bulk=bulk)

    @contextlib.asynccontextmanager
    async def connection(self, address: str) -> AsyncIterator[None]:
        """One connection that is one request (a TLS handshake): a slot of ``address`` and a request of its
        rate, both until the block ends."""
        async with self.connections(address):
            lease = await self.begin(address)
            try:
                yield
            finally:
                await lease.end()

    async def aclose(self) -> None:
        await self.budget.aclose()
