"""All network plumbing shared by collectors: name resolution, address safety, politeness, HTTP fetches.

Every collector goes through this module, so ``--resolve``, ``--nameserver``, ``--ca-bundle``, the
timeouts, the per-host connection cap, the global rate limit and the response-size caps are enforced in
one place. Nothing a server sends is trusted: bodies and headers are bounded, and no request ever goes to
an internal address (loopback, private, link-local) unless the operator made it a target or mapped it
with ``--resolve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import dns.asyncresolver
import dns.exception
import dns.resolver
import httpx
from pydantic import Field

from scanner.models import Frozen
from scanner.settings import Settings


class ResolutionError(Exception):
    """A name could not be resolved; ``reason`` is a short, human-readable cause."""

    def __init__(self, host: str, reason: str, nxdomain: bool = False,
                 definitive: bool | None = None) -> None:
        super().__init__(f"{host}: {reason}")
        self.host = host
        self.reason = reason
        self.nxdomain = nxdomain
        # An answer (NXDOMAIN, no address record), as opposed to a failure to get one (timeout, SERVFAIL).
        self.definitive = nxdomain if definitive is None else definitive


class BlockedAddress(Exception):
    """A request would go to an internal address that is not in scope."""


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def is_internal_address(addr: str) -> bool:
    """True for loopback, private, link-local (cloud metadata), reserved, multicast and unspecified."""
    ip = ipaddress.ip_address(addr)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


class Resolver:
    """Resolves names once per scan through dnspython, honouring ``--resolve`` and ``--nameserver``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._cache: dict[str, list[str] | ResolutionError] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.dns = self.make_dns_resolver()

    def make_dns_resolver(self) -> dns.asyncresolver.Resolver:
        """A dnspython resolver using ``--nameserver`` when given, else the system configuration."""
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

    async def _lookup(self, host: str) -> list[str] | ResolutionError:
        addrs: list[str] = []
        errors: list[ResolutionError] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = await self.dns.resolve(host, rdtype)
                addrs.extend(r.to_text() for r in answer)
            except dns.resolver.NXDOMAIN:
                return ResolutionError(host, "name does not exist (NXDOMAIN)", nxdomain=True)
            except dns.resolver.NoAnswer:
                continue
            except dns.resolver.NoNameservers as exc:
                errors.append(ResolutionError(host, f"no name server answered ({_short(exc)})"))
            except dns.exception.Timeout:
                errors.append(ResolutionError(host, "DNS query timed out"))
            except dns.exception.DNSException as exc:
                errors.append(ResolutionError(host, f"DNS error: {_short(exc)}"))
        if addrs:
            return addrs
        if errors:
            return errors[0]
        return ResolutionError(host, "name has no A or AAAA record", definitive=True)


def _short(exc: BaseException, limit: int = 200) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= limit else text[:limit] + "..."


class RateLimiter:
    """A global token bucket: at most ``rate`` request starts per second (0 disables it)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self.interval
        if delay > 0:
            await asyncio.sleep(delay)


class HostLimiter:
    """At most ``per_host`` connections in flight to one address, for every kind of probe.

    ``slot`` is one connection; ``hold_all`` takes every slot of an address for a prober that opens up to
    ``per_host`` connections of its own (sslyze), so the cap holds across collectors.
    """

    def __init__(self, per_host: int) -> None:
        self.per_host = max(1, per_host)
        self._sems: dict[str, asyncio.Semaphore] = {}
        self._exclusive: dict[str, asyncio.Lock] = {}

    def slot(self, address: str) -> asyncio.Semaphore:
        return self._sems.setdefault(address, asyncio.Semaphore(self.per_host))

    @contextlib.asynccontextmanager
    async def hold_all(self, address: str) -> AsyncIterator[int]:
        """Every slot of ``address`` (yields how many). Multi-slot holders queue on a lock, so two of them
        can never each hold part of the slots and wait for the rest (no deadlock)."""
        sem = self.slot(address)
        taken = 0
        try:
            async with self._exclusive.setdefault(address, asyncio.Lock()):
                for _ in range(self.per_host):
                    await sem.acquire()
                    taken += 1
            yield self.per_host
        finally:
            for _ in range(taken):
                sem.release()


@dataclass
class ScanStats:
    """Counters for the scan's statistics (reported in JSON and the benchmark)."""

    http_requests: Counter[str] = field(default_factory=Counter)  # per host
    tls_connections: Counter[str] = field(default_factory=Counter)
    dns_queries: int = 0
    blocked: list[str] = field(default_factory=list)


class HttpResponse(Frozen):
    """One HTTP exchange as recorded evidence: bounded, decoded defensively, never followed."""

    url: str
    method: str = "GET"
    status: int | None = None
    http_version: str | None = None
    headers: tuple[tuple[str, str], ...] = ()  # in order, duplicates kept, names lower-cased
    body: bytes = b""
    body_truncated: bool = False
    address: str | None = None
    elapsed_ms: int | None = None
    tls_verified: bool | None = None  # https only: did the certificate validate?
    tls_error: str | None = None  # why it did not
    error: str | None = None  # the request failed: timeout, refused, reset, ...
    # timeout | connect | tls | protocol | blocked | dns (no answer) | no_such_host (NXDOMAIN, no address)
    error_kind: str | None = None

    model_config = Frozen.model_config | {"ser_json_bytes": "base64", "val_json_bytes": "base64"}

    def header(self, name: str) -> str | None:
        """First value of a header (case-insensitive), or None."""
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    @property
    def location(self) -> str | None:
        return self.header("location")

    @property
    def is_redirect(self) -> bool:
        return self.status in (301, 302, 303, 307, 308) and self.location is not None

    def text(self) -> str:
        """The body decoded as text (charset from Content-Type, else UTF-8), never raising."""
        ctype = self.header("content-type") or ""
        charset = "utf-8"
        for part in ctype.split(";")[1:]:
            k, _, v = part.strip().partition("=")
            if k.lower() == "charset" and v:
                charset = v.strip("\"' ")
        try:
            return self.body.decode(charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")


class FetchOptions(Frozen):
    method: str = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    max_bytes: int | None = None


def _bracket(addr: str) -> str:
    return f"[{addr}]" if ":" in addr else addr


class Fetcher:
    """HTTP(S) requests to an address of the scanner's choosing, keeping the name for SNI and Host.

    Only GET and HEAD. Redirects are never followed here: callers decide, with ``check_redirect``.
    A certificate that does not validate is recorded (``tls_verified=False``) and the page is fetched
    anyway, so header checks still run.
    """

    def __init__(self, settings: Settings, resolver: Resolver, limiter: HostLimiter,
                 rate: RateLimiter, stats: ScanStats, allowed_addresses: set[str] | None = None) -> None:
        self.settings = settings
        self.resolver = resolver
        self.limiter = limiter
        self.rate = rate
        self.stats = stats
        self.allowed_addresses = allowed_addresses if allowed_addresses is not None else set()
        timeout = httpx.Timeout(settings.timeout)
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        hooks = {"response": [_hide_location]}
        self._verified = httpx.AsyncClient(verify=self.ssl_context(verify=True), timeout=timeout,
                                           limits=limits, follow_redirects=False, trust_env=False,
                                           event_hooks=hooks)
        self._unverified = httpx.AsyncClient(verify=self.ssl_context(verify=False), timeout=timeout,
                                             limits=limits, follow_redirects=False, trust_env=False,
                                             event_hooks=hooks)

    def ssl_context(self, verify: bool) -> ssl.SSLContext:
        """Mozilla's store (certifi, as shipped with httpx) plus ``--ca-bundle``; or no verification."""
        if not verify:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            return ctx
        import certifi

        ctx = ssl.create_default_context(cafile=certifi.where())
        if self.settings.ca_bundle:
            ctx.load_verify_locations(cafile=str(self.settings.ca_bundle))
        return ctx

    async def aclose(self) -> None:
        await self._verified.aclose()
        await self._unverified.aclose()

    def address_allowed(self, addr: str) -> bool:
        """Public addresses always; internal ones only when they are targets or ``--resolve`` maps."""
        if not is_internal_address(addr):
            return True
        return addr in self.allowed_addresses or self.resolver.is_operator_address(addr)

    async def fetch(self, url: str, *, method: str = "GET", headers: dict[str, str] | None = None,
                    max_bytes: int | None = None) -> HttpResponse:
        """Fetch one URL (no redirects). Never raises for network trouble: errors are in the response."""
        if method not in ("GET", "HEAD"):
            raise ValueError("pledgescan only sends GET and HEAD")
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        if scheme not in ("http", "https") or not host:
            return HttpResponse(url=url, method=method, error="not an http(s) URL", error_kind="protocol")
        port = parts.port or (443 if scheme == "https" else 80)
        try:
            addrs = await self.resolver.resolve(host, port)
        except ResolutionError as exc:
            kind = "no_such_host" if exc.definitive else "dns"
            return HttpResponse(url=url, method=method, error=exc.reason, error_kind=kind)
        addr = addrs[0]
        if not self.address_allowed(addr):
            self.stats.blocked.append(url)
            return HttpResponse(url=url, method=method, address=addr, error_kind="blocked",
                                error=f"refused to connect to internal address {addr} (not a target)")
        netloc = f"{_bracket(addr)}:{port}"
        wire_url = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
        host_header = host if parts.port is None else f"{host}:{port}"
        req_headers = {"User-Agent": self.settings.effective_user_agent, "Accept": "*/*",
                       "Accept-Encoding": "identity", **(headers or {}), "Host": host_header}
        extensions = {"sni_hostname": host} if scheme == "https" and not is_ip_literal(host) else {}
        limit = max_bytes or self.settings.max_body_bytes
        await self.rate.wait()
        async with self.limiter.slot(addr):
            self.stats.http_requests[host] += 1
            if scheme == "https":
                resp = await self._send(self._verified, url, method, wire_url, req_headers, extensions,
                                        limit, addr)
                if resp.error_kind == "tls":
                    # Fetch anyway without verification so header checks can run; record why.
                    self.stats.http_requests[host] += 1
                    second = await self._send(self._unverified, url, method, wire_url, req_headers,
                                              extensions, limit, addr)
                    return second.model_copy(update={"tls_verified": False, "tls_error": resp.error})
                return resp.model_copy(update={"tls_verified": resp.error is None or None})
            return await self._send(self._verified, url, method, wire_url, req_headers, extensions,
                                    limit, addr)

    async def _send(self, client: httpx.AsyncClient, url: str, method: str, wire_url: str,
                    headers: dict[str, str], extensions: dict[str, str], limit: int,
                    addr: str) -> HttpResponse:
        started = time.monotonic()
        base = {"url": url, "method": method, "address": addr}
        try:
            async with asyncio.timeout(self.settings.timeout * 2):
                request = client.build_request(method, wire_url, headers=headers, extensions=extensions)
                response = await client.send(request, stream=True)
                try:
                    body, truncated = await _read_bounded(response, limit)
                finally:
                    await response.aclose()
                body, truncated = _decode_bounded(body, truncated, response.headers.get("content-encoding"),
                                                  limit)
        except (TimeoutError, httpx.TimeoutException):
            return HttpResponse(**base, error="timed out", error_kind="timeout")
        except httpx.ConnectError as exc:
            kind = "tls" if _is_tls_error(exc) else "connect"
            return HttpResponse(**base, error=_short(exc) or "connection failed", error_kind=kind)
        except (httpx.RemoteProtocolError, httpx.LocalProtocolError, httpx.DecodingError) as exc:
            return HttpResponse(**base, error=f"protocol error: {_short(exc)}", error_kind="protocol")
        except (httpx.HTTPError, OSError, ssl.SSLError) as exc:
            kind = "tls" if _is_tls_error(exc) else "connect"
            return HttpResponse(**base, error=_short(exc) or type(exc).__name__, error_kind=kind)
        except (httpx.InvalidURL, UnicodeError, ValueError) as exc:  # a URL or Host httpx cannot send
            return HttpResponse(**base, error=f"invalid request: {_short(exc)}", error_kind="protocol")
        header_list: list[tuple[str, str]] = []
        size = 0
        for k, v in response.extensions.get(_HEADERS_AS_SENT) or response.headers.multi_items():
            size += len(k) + len(v)
            if size > self.settings.max_header_bytes:
                break
            header_list.append((k.lower(), v[:8192]))
        return HttpResponse(
            **base,
            status=response.status_code,
            http_version=response.http_version,
            headers=tuple(header_list),
            body=body,
            body_truncated=truncated,
            elapsed_ms=int((time.monotonic() - started) * 1000),
        )


_HEADERS_AS_SENT = "pledgescan.headers"


async def _hide_location(response: httpx.Response) -> None:
    """Keep httpx from parsing a redirect's Location: even with ``follow_redirects=False`` it builds the
    next request and raises on a Location it cannot parse (``javascript:``, too long), losing the
    response. The callers follow redirects themselves from the headers kept here as sent."""
    if response.has_redirect_location:
        response.extensions[_HEADERS_AS_SENT] = response.headers.multi_items()
        del response.headers["location"]


def _is_tls_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError | ssl.CertificateError):
            return True
        text = str(seen)
        if "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in text or "certificate" in text:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _decode_bounded(body: bytes, truncated: bool, encoding: str | None, limit: int) -> tuple[bytes, bool]:
    """Undo gzip/deflate that a server sent despite ``Accept-Encoding: identity``, never inflating
    past ``limit`` bytes (a compression bomb stays bounded). Unknown or broken encodings stay raw."""
    import zlib

    enc = (encoding or "").strip().lower()
    if enc not in ("gzip", "x-gzip", "deflate"):
        return body, truncated
    wbits = 16 + zlib.MAX_WBITS if "gzip" in enc else zlib.MAX_WBITS
    try:
        d = zlib.decompressobj(wbits)
        out = d.decompress(body, limit)
    except zlib.error:
        try:  # raw deflate, as some servers send
            d = zlib.decompressobj(-zlib.MAX_WBITS)
            out = d.decompress(body, limit)
        except zlib.error:
            return body, truncated
    return out, truncated or bool(d.unconsumed_tail) or len(out) >= limit


async def _read_bounded(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            return b"".join(chunks)[:limit], True
    return b"".join(chunks), False


def registrable_domain(host: str) -> str:
    """The organisational (registrable) domain of a host name, from the public suffix list."""
    from publicsuffixlist import PublicSuffixList

    host = host.lower().rstrip(".")
    if is_ip_literal(host):
        return host
    psl = _psl(PublicSuffixList)
    return psl.privatesuffix(host) or host


_PSL = None


def _psl(factory):  # type: ignore[no-untyped-def]
    global _PSL
    if _PSL is None:
        _PSL = factory()
    return _PSL


def in_scope(host: str, scope: tuple[str, ...]) -> bool:
    """Is ``host`` one of the scope's names or below one of them?"""
    host = host.lower().rstrip(".").strip("[]")
    return any(host == s or host.endswith("." + s) for s in scope)


@dataclass
class ScanContext:
    """What collectors get: settings and the shared network plumbing of the scan."""

    settings: Settings
    resolver: Resolver
    fetcher: Fetcher
    limiter: HostLimiter
    rate: RateLimiter
    stats: ScanStats
    target_addresses: set[str] = field(default_factory=set)

    @classmethod
    def create(cls, settings: Settings) -> ScanContext:
        resolver = Resolver(settings)
        limiter = HostLimiter(settings.per_host_connections)
        rate = RateLimiter(settings.rate_limit)
        stats = ScanStats()
        allowed: set[str] = set()
        fetcher = Fetcher(settings, resolver, limiter, rate, stats, allowed)
        return cls(settings, resolver, fetcher, limiter, rate, stats, allowed)

    async def aclose(self) -> None:
        await self.fetcher.aclose()
