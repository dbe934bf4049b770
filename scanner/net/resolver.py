"""Name resolution for a scan: dnspython once per name, honouring ``--resolve`` and ``--nameserver``."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from scanner.errors import ErrorKind, short_message
from scanner.net.error_kinds import dns_error_kind
from scanner.net.names import is_ip_literal
from scanner.settings import Settings

if TYPE_CHECKING:
    import dns.asyncresolver


class ResolutionError(Exception):
    """A name could not be resolved; ``reason`` is a short, human-readable cause, ``kind`` its kind."""

    def __init__(self, host: str, reason: str, kind: ErrorKind) -> None:
        super().__init__(f"{host}: {reason}")
        self.host = host
        self.reason = reason
        self.kind = kind  # an answer (dns_nxdomain, no_such_host) or a failure to get one (timeout, ...)


class Resolver:
    """Resolves names once per scan through dnspython, honouring ``--resolve`` and ``--nameserver``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._cache: dict[str, list[str] | ResolutionError] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._dns: dns.asyncresolver.Resolver | None = None

    @property
    def dns(self) -> dns.asyncresolver.Resolver:
        """The dnspython resolver, made at the first query: dnspython's resolver and query modules take
        ~50 ms to import, which a scan whose every name comes from ``--resolve`` never needs."""
        if self._dns is None:
            self._dns = self.make_dns_resolver()
        return self._dns

    def make_dns_resolver(self) -> dns.asyncresolver.Resolver:
        """A dnspython resolver using ``--nameserver`` when given, else the system configuration."""
        import dns.asyncresolver
        import dns.resolver

        if self.settings.nameservers:
            res = dns.asyncresolver.Resolver(configure=False)
            res.nameservers = [ns for ns, _ in self.settings.nameservers]
            res.port = self.settings.nameservers[0][1]
        else:
            try:
                res = dns.asyncresolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                res = dns.asyncresolver.Resolver(configure=False)
                res.nameservers = ["127.0.0.1"]
        res.timeout = self.settings.timeout
        res.lifetime = self.settings.timeout
        return res

    def override(self, host: str, port: int | None = None) -> str | None:
        """The ``--resolve`` address for host (and port, when given), if any."""
        host = host.lower().rstrip(".")
        if port is not None and (host, port) in self.settings.resolve:
            return self.settings.resolve[(host, port)]
        for (h, _p), addr in self.settings.resolve.items():
            if h == host:
                return addr
        return None

    def is_operator_address(self, addr: str) -> bool:
        """Addresses the operator named with ``--resolve`` are always allowed."""
        return addr in self.settings.resolve.values()

    async def resolve(self, host: str, port: int | None = None) -> list[str]:
        """Addresses of ``host`` (A then AAAA), cached. Raises ``ResolutionError``."""
        host = host.lower().rstrip(".").strip("[]")
        if is_ip_literal(host):
            return [host]
        forced = self.override(host, port)
        if forced:
            return [forced]
        lock = self._locks.setdefault(host, asyncio.Lock())
        async with lock:
            cached = self._cache.get(host)
            if cached is None:
                cached = await self._lookup(host)
                self._cache[host] = cached
        if isinstance(cached, ResolutionError):
            raise cached
        return list(cached)

    def answers(self) -> dict[str, list[str] | tuple[str, str]]:
        """The answers so far, picklable (for worker processes): addresses, or a failure's
        (reason, kind)."""
        return {h: (a.reason, a.kind.value) if isinstance(a, ResolutionError) else list(a)
                for h, a in self._cache.items()}

    def seed(self, answers: dict[str, list[str] | tuple[str, str]]) -> None:
        """Take ``answers`` (of another process's ``answers()``) as this resolver's own: no query again."""
        for host, a in answers.items():
            self._cache[host] = ResolutionError(host, a[0], ErrorKind(a[1])) if isinstance(a, tuple) \
                else list(a)

    async def _lookup(self, host: str) -> list[str] | ResolutionError:
        import dns.exception
        import dns.resolver

        addrs: list[str] = []
        errors: list[ResolutionError] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = await self.dns.resolve(host, rdtype)
                addrs.extend(r.to_text() for r in answer)
            except dns.resolver.NXDOMAIN as exc:
                return ResolutionError(host, "name does not exist (NXDOMAIN)", dns_error_kind(exc))
            except dns.resolver.NoAnswer:
                continue
            except dns.resolver.NoNameservers as exc:
                errors.append(ResolutionError(host, f"no name server answered ({short_message(exc)})",
                                              dns_error_kind(exc)))
            except dns.exception.Timeout as exc:
                errors.append(ResolutionError(host, "DNS query timed out", dns_error_kind(exc)))
            except dns.exception.DNSException as exc:
                errors.append(ResolutionError(host, f"DNS error: {short_message(exc)}", dns_error_kind(exc)))
        if addrs:
            return addrs
        if errors:
            return errors[0]
        return ResolutionError(host, "name has no A or AAAA record", ErrorKind.NO_SUCH_HOST)
