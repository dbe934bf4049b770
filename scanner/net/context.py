"""What collectors get: the settings and the shared network plumbing of one scan."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scanner.net.memo import ResponseMemo
from scanner.net.names import address_allowed
from scanner.net.politeness import AddressBudget, LocalAddressBudget, Politeness, SocketCap
from scanner.net.resolver import Resolver
from scanner.net.stats import ScanStats
from scanner.settings import Settings

if TYPE_CHECKING:
    from scanner.net.fetcher import Fetcher


# At most this long work that can wait (a heavy import, the exposure catalogue's load) waits for a
# target's first HTTP connection to be under way (``ScanContext.http_under_way``).
UNDER_WAY_WAIT_S = 0.25


@dataclass
class ScanContext:
    """What collectors get: settings and the shared network plumbing of the scan. The HTTP fetcher is
    built at its first use: a scan of TLS controls alone seldom needs it, and building it imports the
    whole HTTP stack (httpx, httpcore, h2, anyio: about a quarter of a second of CPU)."""

    settings: Settings
    resolver: Resolver
    politeness: Politeness
    stats: ScanStats
    target_addresses: set[str] = field(default_factory=set)
    owns_budget: bool = True
    in_flight: Counter[str] = field(default_factory=Counter)  # targets being scanned, per address
    memos: dict[str, ResponseMemo] = field(default_factory=dict)  # per target being collected
    tls_alone: bool = False  # no HTTP-family collector runs in this scan
    # HTTP-family collectors running per address, and per "family@address"
    http_users: Counter[str] = field(default_factory=Counter)
    _fetcher: Fetcher | None = None

    @property
    def fetcher(self) -> Fetcher:
        """The scan's HTTP fetcher (built now if nothing used it yet)."""
        if self._fetcher is None:
            from scanner.net.fetcher import Fetcher

            self._fetcher = Fetcher(self.settings, self.resolver, self.politeness, self.stats,
                                    self.target_addresses)
        return self._fetcher

    async def http_under_way(self, timeout: float = UNDER_WAY_WAIT_S) -> None:
        """Until the scan's first HTTP connection is being opened or its first fetch has ended (``Fetcher.
        under_way``), at most ``timeout`` seconds: CPU work that can wait (a heavy import) then runs during
        that connection's round trips (TCP, TLS) instead of before them."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.fetcher.under_way.wait(), timeout)

    def network_stats(self) -> dict[str, Any]:
        """The scan's network counters so far, as its report's statistics give them."""
        return {
            "http_requests": sum(self.stats.http_requests.values()),
            "http_requests_per_host": dict(self.stats.http_requests),
            "http_connections": sum(self.stats.http_connections.values()),
            "tls_connections": sum(self.stats.tls_connections.values()),
            "peak_sockets": self.politeness.socket_cap.peak,
            "blocked_requests": list(self.stats.blocked)[:100],
        }

    def address_allowed(self, addr: str) -> bool:
        """May the scan connect to ``addr`` (the fetcher's rule, without building the fetcher)?"""
        return address_allowed(addr, self.target_addresses, self.resolver.is_operator_address)

    def memo(self, target_key: str) -> ResponseMemo:
        """The answers shared by the collectors of this target (a memo of their own when the target is
        collected one family at a time, as workers do)."""
        return self.memos.get(target_key) or ResponseMemo()

    @contextlib.contextmanager
    def sharing(self, target_key: str) -> Iterator[ResponseMemo]:
        """The collectors of one target share their answers while this block runs."""
        memo = self.memos[target_key] = ResponseMemo()
        try:
            yield memo
        finally:
            self.memos.pop(target_key, None)

    @contextlib.asynccontextmanager
    async def using_http(self, addresses: Iterable[str], family: str) -> AsyncIterator[None]:
        """An HTTP-family collector (``family``) runs on these addresses; when the last one of an address
        ends, the address's idle HTTP connections close, so the TLS probers get their slots at once."""
        addrs = tuple(addresses)
        for addr in addrs:
            self.http_users[addr] += 1
            self.http_users[f"{family}@{addr}"] += 1
        try:
            yield
        finally:
            for addr in addrs:
                self.http_users[f"{family}@{addr}"] -= 1
                self.http_users[addr] -= 1
                if self.http_users[addr] <= 0 and self._fetcher is not None:
                    with contextlib.suppress(Exception):
                        await self.fetcher.close_idle(addr, done=True)
            self.http_users += Counter()  # drops the counts at zero

    def alone(self, addr: str, family: str) -> bool:
        """Is this the only collector of ``family`` running on ``addr`` (the caller's own)?"""
        return self.http_users[f"{family}@{addr}"] <= 1

    async def target_done(self, addresses: Iterable[str]) -> None:
        """A target is finished: an address with no target left in flight gets its connections closed."""
        for addr in addresses:
            self.in_flight[addr] -= 1
            if self.in_flight[addr] <= 0:
                del self.in_flight[addr]
                if self._fetcher is not None:
                    await self._fetcher.release(addr)

    @classmethod
    def create(cls, settings: Settings, budget: AddressBudget | None = None) -> ScanContext:
        """The scan's plumbing; ``budget`` is the per-address politeness (in-process when None, or a
        shared one such as the workers' Redis budget, which the caller then closes)."""
        resolver = Resolver(settings)
        owns = budget is None
        if budget is None:
            budget = LocalAddressBudget(settings.per_host_connections, settings.rate_limit)
        politeness = Politeness(budget, SocketCap(settings.max_sockets))
        return cls(settings, resolver, politeness, ScanStats(), set(), owns)

    async def close_http(self) -> None:
        """Close the fetcher's connections (it stays usable), if it was built."""
        if self._fetcher is not None:
            await self._fetcher.aclose()

    async def aclose(self) -> None:
        await self.close_http()
        if self.owns_budget:
            await self.politeness.aclose()
