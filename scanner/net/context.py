"""What collectors get: the settings and the shared network plumbing of one scan."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field

from scanner.net.fetcher import Fetcher
from scanner.net.memo import ResponseMemo
from scanner.net.politeness import AddressBudget, LocalAddressBudget, Politeness, SocketCap
from scanner.net.resolver import Resolver
from scanner.net.stats import ScanStats
from scanner.settings import Settings


@dataclass
class ScanContext:
    """What collectors get: settings and the shared network plumbing of the scan."""

    settings: Settings
    resolver: Resolver
    fetcher: Fetcher
    politeness: Politeness
    stats: ScanStats
    target_addresses: set[str] = field(default_factory=set)
    owns_budget: bool = True
    in_flight: Counter[str] = field(default_factory=Counter)  # targets being scanned, per address
    memos: dict[str, ResponseMemo] = field(default_factory=dict)  # per target being collected
    tls_alone: bool = False  # no HTTP-family collector runs in this scan
    # HTTP-family collectors running per address, and per "family@address"
    http_users: Counter[str] = field(default_factory=Counter)

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
                if self.http_users[addr] <= 0:
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
                await self.fetcher.release(addr)

    @classmethod
    def create(cls, settings: Settings, budget: AddressBudget | None = None) -> ScanContext:
        """The scan's plumbing; ``budget`` is the per-address politeness (in-process when None, or a
        shared one such as the workers' Redis budget, which the caller then closes)."""
        resolver = Resolver(settings)
        owns = budget is None
        if budget is None:
            budget = LocalAddressBudget(settings.per_host_connections, settings.rate_limit)
        politeness = Politeness(budget, SocketCap(settings.max_sockets))
        stats = ScanStats()
        allowed: set[str] = set()
        fetcher = Fetcher(settings, resolver, politeness, stats, allowed)
        return cls(settings, resolver, fetcher, politeness, stats, allowed, owns)

    async def aclose(self) -> None:
        await self.fetcher.aclose()
        if self.owns_budget:
            await self.politeness.aclose()
