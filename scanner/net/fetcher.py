"""The HTTP(S) fetcher every collector uses: bounded, polite, resolved by the scan's resolver.

Every HTTP request goes through this module, so ``--resolve``, ``--nameserver``, ``--ca-bundle``, the
timeouts, the per-address budget (connections open at once, requests in any sliding second: a request
counts from its start until its answer is read, see ``scanner.net.politeness``), the machine-wide socket
cap and the response-size caps are enforced in one place. Nothing a server sends is trusted: bodies and
headers are bounded, and no request ever goes to an internal address (loopback, private, link-local)
unless the operator made it a target or mapped it with ``--resolve``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import http.cookiejar
import logging
import os
import ssl
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import anyio
import anyio.abc
import anyio.streams.tls
import h2.exceptions
import hpack.hpack
import httpcore
import httpx
from httpcore._backends.anyio import AnyIOStream
from httpcore._utils import is_socket_readable
from httpx._transports.default import map_httpcore_exceptions
from pydantic import Field

from scanner.errors import ErrorKind, short_message
from scanner.models import Frozen
from scanner.net.coalesce import BEFORE_STREAM, COALESCED, Coalescing, CoalescingPool, is_http2
from scanner.net.error_kinds import KindedError, transport_error_kind
from scanner.net.names import address_allowed
from scanner.net.politeness import (
    LocalAddressBudget,
    Politeness,
    RequestLease,
    address_key,
    http_share,
    tls_share,
)
from scanner.net.resolver import ResolutionError, Resolver
from scanner.net.stats import ScanStats
from scanner.settings import Settings


def _memoised_huffman(decode: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    """hpack's Huffman decoder (pure Python, bit by bit), remembering short strings: a server sends the
    same header values with every answer (nginx as literals, never indexed: server, content-type, its
    security headers), and decoding them was ~100 us of the ~180 us each HTTP/2 answer's headers cost.
    At most 2,048 strings of 256 bytes or less are kept; longer ones are decoded every time."""
    known = functools.lru_cache(maxsize=2048)(decode)

    def decode_huffman(data: bytes) -> bytes:
        return known(data) if len(data) <= 256 else decode(data)

    decode_huffman.memoised = True  # type: ignore[attr-defined]
    return decode_huffman


# hpack offers no hook for this: its module-level function is wrapped, once, and only where it exists
# (another hpack version without it decodes as it always did)
_huffman = getattr(hpack.hpack, "decode_huffman", None)
if callable(_huffman) and not getattr(_huffman, "memoised", False):
    hpack.hpack.decode_huffman = _memoised_huffman(_huffman)


class Refused(httpcore.ConnectError, KindedError):
    """A connection the fetcher would not open (internal address) or could not address (resolution)."""

    def __init__(self, message: str, kind: ErrorKind) -> None:
        super().__init__(message)
        self.kind = kind


def load_backend() -> None:
    """Import anyio's asyncio backend, which httpcore loads at the first connection: a scan with HTTP work
    calls this before its targets start. Loaded at the first connection, it held the event loop 85-130 ms
    (the TLS collector's import thread competing for the GIL) just before the first HTTPS handshake.
    Mozilla's store starts loading first, on a thread, for the next fetcher made (``_take_store``): OpenSSL
    reads it without the GIL while this import runs."""
    global _STORE
    if _STORE is None:
        _STORE = _in_thread(_mozilla_store)
    import anyio._backends._asyncio  # noqa: F401


T = TypeVar("T")
_STORE: concurrent.futures.Future[ssl.SSLContext] | None = None  # loading since load_backend, for one fetcher


def _mozilla_store() -> ssl.SSLContext:
    """A verifying context trusting Mozilla's store (certifi, as shipped with httpx): 25-75 ms."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def _take_store() -> concurrent.futures.Future[ssl.SSLContext] | None:
    """The store ``load_backend`` started loading, for the fetcher that calls this (no other gets it)."""
    global _STORE
    store, _STORE = _STORE, None
    return store


def _forget_store() -> None:
    """In a forked child: the parent's store may still be loading on a thread the child does not have."""
    global _STORE
    _STORE = None


os.register_at_fork(after_in_child=_forget_store)


def _in_thread(work: Callable[[], T]) -> concurrent.futures.Future[T]:
    """``work()`` on a daemon thread of its own; its result or exception in the future returned."""
    done: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        try:
            done.set_result(work())
        except BaseException as exc:  # handed to whoever waits for it
            done.set_exception(exc)

    threading.Thread(target=run, name="ca-store", daemon=True).start()
    return done


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
    error_kind: ErrorKind | None = None  # why, as data (set from exception types, see net.error_kinds)

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


# HTTP/2 where the server offers it (ALPN "h2" on both contexts; httpx with the h2 package): the probes of
# one host then share one connection, many requests in flight on it.
HTTP2 = True
KEEPALIVE_S = 5.0  # idle connections are also closed at once when another prober waits for their slot
# Requests of one origin in flight at once (HTTP/2 streams; with HTTP/1.1 they queue for the pool's
# connections, and draw on the rate only once sent): a window's bulk share in one or two round trips.
MAX_IN_FLIGHT = 64
# At most this long for a closed connection's socket to be released by asyncio. The slot is normally freed
# only once the socket is closed: anyio's aclose aborts the transport (queued bytes dropped), so asyncio
# closes the socket at its next loop turn whatever the peer does; the bound is reached only by a loop
# starved for a whole second (tests/test_connection_close.py).
CLOSE_WAIT_S = 1.0


# A failed handshake on the verifying context: the first request of a host is repeated without verifying.
# RESET is among them: a legacy server may close silently (EOF, no alert) when the strict context offers
# nothing it speaks, and the lenient one (older protocols, SECLEVEL=0) then succeeds; a plain TCP reset of
# the first request costs one more attempt.
TLS_KINDS = (ErrorKind.CERTIFICATE, ErrorKind.TLS_ALERT, ErrorKind.TLS, ErrorKind.RESET)


_UNKNOWN = object()


class _AnyIOStream(AnyIOStream):
    """httpcore's ``AnyIOStream`` (the same anyio stream, the same errors raised), bounding each read and
    write with ``asyncio.timeout``: httpcore enters two generator context managers and an anyio cancel
    scope (``fail_after``) per read and per write (about five of them a request): ~9 us against ~3 us."""

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await self._stream.receive(max_bytes)
        except anyio.EndOfStream:
            return b""
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(exc) from exc
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise httpcore.ReadError(exc) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            async with asyncio.timeout(timeout):
                await self._stream.send(buffer)
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(exc) from exc
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise httpcore.WriteError(exc) from exc

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                tls = await anyio.streams.tls.TLSStream.wrap(
                    self._stream, ssl_context=ssl_context, hostname=server_hostname,
                    standard_compatible=False, server_side=False)
        except TimeoutError as exc:
            await self.aclose()
            raise httpcore.ConnectTimeout(exc) from exc
        except (anyio.BrokenResourceError, anyio.EndOfStream, ssl.SSLError) as exc:
            await self.aclose()
            raise httpcore.ConnectError(exc) from exc
        except Exception:  # as httpcore: closed on an error (on cancellation, the polite stream closes it)
            await self.aclose()
            raise
        return _AnyIOStream(tls)


async def _connect_tcp(host: str, port: int, timeout: float | None, local_address: str | None,
                       socket_options: Iterable[Any] | None) -> _AnyIOStream:
    """httpcore's ``AnyIOBackend.connect_tcp`` (the same errors), giving an ``_AnyIOStream``."""
    try:
        async with asyncio.timeout(timeout):
            stream = await anyio.connect_tcp(host, port, local_host=local_address)
    except TimeoutError as exc:
        raise httpcore.ConnectTimeout(exc) from exc
    except (OSError, anyio.BrokenResourceError) as exc:
        raise httpcore.ConnectError(exc) from exc
    sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    for option in socket_options or ():
        sock.setsockopt(*option)
    return _AnyIOStream(stream)


class _PoliteStream(httpcore.AsyncNetworkStream):
    """A connection that holds its address's politeness slot until it is closed."""

    def __init__(self, inner: httpcore.AsyncNetworkStream, release: Callable[[], Awaitable[object]],
                 fetcher: Fetcher, port: int) -> None:
        self._inner = inner
        self._release = release
        self._fetcher = fetcher
        self._port = port
        self._socket: Any = _UNKNOWN
        # Reads and writes go to the inner stream's own methods: no coroutine of ours between (about five
        # reads and writes a request).
        self.read = inner.read  # type: ignore[method-assign]
        self.write = inner.write  # type: ignore[method-assign]

    async def aclose(self) -> None:
        sock = self._inner.get_extra_info("socket")
        try:
            await self._inner.aclose()
            # asyncio closes the socket a loop turn (or a flushed write buffer) later: the slot is free
            # only once it is really closed, so the address never sees one connection more than its cap.
            loop = asyncio.get_running_loop()
            until = loop.time() + CLOSE_WAIT_S
            while sock is not None and sock.fileno() != -1 and loop.time() < until:
                await asyncio.sleep(0.002)
        finally:
            await self._release()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        try:
            chosen = await self._fetcher.tls_context_for(server_hostname or "", self._port)
            inner = await self._inner.start_tls(chosen, server_hostname, timeout)
        except BaseException:
            await self.aclose()
            raise
        return _PoliteStream(inner, self._release, self._fetcher, self._port)

    def get_extra_info(self, info: str) -> Any:
        # httpcore asks "is_readable" before every request on a pooled connection; anyio answers it by
        # building the stream's attribute table (a getpeername() call included) each time. The socket
        # never changes under one stream: look it up once (CPU only, the same answers).
        if info in ("socket", "is_readable"):
            if self._socket is _UNKNOWN:
                self._socket = self._inner.get_extra_info("socket")
            return self._socket if info == "socket" else is_socket_readable(self._socket)
        return self._inner.get_extra_info(info)


class _PoliteBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting to the address the scanner resolved (``--resolve``,
    ``--nameserver``) under that address's connection slot, and choosing per host name whether TLS
    verifies (decided once per host, see ``Fetcher.fetch``)."""

    def __init__(self, fetcher: Fetcher) -> None:
        self._fetcher = fetcher
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        f = self._fetcher
        try:
            addr = (await f.resolver.resolve(host, port))[0]
        except ResolutionError as exc:
            raise Refused(exc.reason, exc.kind) from None
        if not f.address_allowed(addr):
            raise Refused(f"refused to connect to internal address {addr} (not a target)", ErrorKind.BLOCKED)
        stack = contextlib.AsyncExitStack()
        await stack.enter_async_context(f.politeness.connections(addr))
        f.under_way.set()  # the scan's first connection is being opened: work that can wait runs meanwhile
        try:
            stream = await _connect_tcp(addr, port, timeout, local_address, socket_options)
        except BaseException:
            await stack.aclose()
            raise
        f.stats.http_connections[addr] += 1
        released = False

        async def release() -> None:
            nonlocal released
            if not released:
                released = True
                await stack.aclose()

        return _PoliteStream(stream, release, f, port)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _NoCookieJar(http.cookiejar.CookieJar):
    """A cookie jar that keeps nothing: the scanner's requests are anonymous, never sending back a cookie
    a site set on an earlier answer (the cookie checks read Set-Cookie from the recorded responses)."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None

    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        return None

    def add_cookie_header(self, request: Any) -> None:
        return None


class _PoolTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a connection pool of our making (the polite backend)."""

    def __init__(self, pool: httpcore.AsyncConnectionPool) -> None:  # no super(): the pool is ours
        self._pool = pool


class _Client(httpx.AsyncClient):
    """The client of one address: its defaults (headers, timeouts) and its pool, to which ``Fetcher``
    hands its requests directly (``_send_direct``)."""

    def __init__(self, pool: httpcore.AsyncConnectionPool, **kwargs: Any) -> None:
        super().__init__(transport=_PoolTransport(pool), **kwargs)
        self.pool = pool
        self.timeouts = self.timeout.as_dict()


class _Answer:
    """An httpcore response as the fetcher reads it, with what httpx's transport and ``Response`` give it
    (httpx's header decoding and errors, the HTTP version's text), without their layers of objects."""

    def __init__(self, response: httpcore.Response) -> None:
        self.status_code = response.status
        self.headers = httpx.Headers(response.headers)
        self.extensions = response.extensions
        self._stream = response.stream
        self._closed = False

    @property
    def http_version(self) -> str:
        version: bytes = self.extensions.get("http_version", b"HTTP/1.1")
        return version.decode("ascii", errors="ignore")

    @property
    def reason_phrase(self) -> str:
        reason: bytes | None = self.extensions.get("reason_phrase")
        if reason is None:
            return httpx.codes.get_reason_phrase(self.status_code)
        return reason.decode("ascii", errors="ignore")

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body as it comes (no empty chunks); closed once read to its end."""
        stream: AsyncIterable[bytes] = self._stream  # type: ignore[assignment]
        with map_httpcore_exceptions():  # httpx's errors, as its transport raises them
            async for chunk in stream:
                if chunk:
                    yield chunk
        await self.aclose()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._stream.aclose()  # type: ignore[union-attr]


_HTTPX_LOG = logging.getLogger("httpx")


async def _send_direct(client: _Client, request: httpcore.Request, url: str) -> _Answer:
    """What ``client.send(request, stream=True)`` did for the fetcher's clients, without the CPU of what
    did nothing for them (with ``_request``, a tenth of a portfolio scan's in cProfile): httpx's auth
    flow, redirect loop and event hooks (no auth; redirects never followed, nor their Location parsed),
    the matching of the URL against the mounts (none), the cookie jar's adapters building a urllib
    request for each answer (a jar that keeps nothing), the transport's and the response's wrappers. The
    pool's errors become httpx's, as its transport maps them."""
    with map_httpcore_exceptions():
        answer = _Answer(await client.pool.handle_async_request(request))
    if _HTTPX_LOG.isEnabledFor(logging.INFO):  # the line httpx's client logs for each answer (``-v``)
        _HTTPX_LOG.info('HTTP Request: %s %s "%s %d %s"', request.method.decode("ascii"), httpx.URL(url),
                        answer.http_version, answer.status_code, answer.reason_phrase)
    return answer


class Fetcher:
    """HTTP(S) requests to the address the scanner resolved, by name (SNI, Host and pooling per name).

    Only GET and HEAD. Redirects are never followed here: callers decide, with ``check_redirect``.
    One connection pool per address (at most ``per_host_connections`` connections, kept alive, HTTP/2
    where offered, shared by the virtual hosts of that address); every connection holds a slot of the
    address's politeness budget and every request draws on its rate. Whether a host's certificate
    validates is decided by its first HTTPS request: when it does not, the fetch is repeated once without
    verification, and every later request to that host goes unverified at once (``tls_verified=False``
    and the reason recorded in each response), so header checks still run.
    """

    def __init__(self, settings: Settings, resolver: Resolver, politeness: Politeness, stats: ScanStats,
                 allowed_addresses: set[str] | None = None) -> None:
        self.settings = settings
        self.resolver = resolver
        self.politeness = politeness
        self.stats = stats
        self.allowed_addresses = allowed_addresses if allowed_addresses is not None else set()
        alpn = ["http/1.1", "h2"] if HTTP2 else ["http/1.1"]
        self._contexts = {False: self.ssl_context(verify=False)}
        self._contexts[False].set_alpn_protocols(alpn)
        # The verifying context reads Mozilla's store (~150 certificates, 25-75 ms): on a thread, as
        # OpenSSL parses the file without the GIL, while the first connections' TCP handshakes go on; a
        # TLS handshake waits for it (``tls_context_for``). A bad ``--ca-bundle`` still fails here.
        self._nominal = self._pool_context()
        store = _take_store()
        self._verifying = _in_thread(lambda: self._verifying_context(store, alpn))
        self._backend = _PoliteBackend(self)
        # Set as the first connection is being opened or the first fetch ends (``ScanContext.http_under_way``)
        self.under_way = asyncio.Event()
        self._pools: dict[str, CoalescingPool] = {}
        # Requests that are not multiplexed enter an address's pool only as many at a time as it has
        # connections: httpcore's pool matches every queued request against every connection at each
        # request and each response (quadratic), which with a target's ~130 probes queued in it took
        # about four fifths of the CPU of a scan of HTTP/1.1 servers (the demo's).
        self._h1_slots: dict[str, asyncio.Semaphore] = {}
        self._clients: dict[str, _Client] = {}
        self._unverified: dict[tuple[str, int], str] = {}  # (host, port) -> why its certificate failed
        self._verified: set[tuple[str, int]] = set()
        # HTTP/2 connections also serve the other names their verified certificate covers (shared
        # hosting), never for a host whose own certificate failed verification.
        self._coalescing = Coalescing(lambda host, port: (host, port) not in self._unverified,
                                      enabled=settings.coalesce)
        self._answered_unverified: set[tuple[str, int]] = set()
        self._h2: set[tuple[str, int]] = set()  # origins that answered over HTTP/2
        self._opening: dict[tuple[str, int], asyncio.Lock] = {}
        # The first request of an https origin decides what its certificate allows; the others wait for
        # this future: set once that request's headers went out on a verified connection (the handshake
        # verified; HTTP/2 or not is known), or once it ended.
        self._deciding: dict[tuple[str, int], asyncio.Future[None]] = {}
        self._decided: defaultdict[tuple[str, int], asyncio.Event] = defaultdict(asyncio.Event)  # decided
        # The HTTP pool of an address keeps at most its share of the cap, and the TLS probers take the
        # rest: closing idle HTTP connections for a waiting prober of the same address frees nothing it
        # can use (it waits for another TLS prober), and only costs new connections. It helps when the
        # shares overlap (a cap of 1) or when the budget is shared with other processes (workers).
        cap = politeness.budget.per_address_connections
        self._yield_idle = (not isinstance(politeness.budget, LocalAddressBudget)
                            or http_share(cap) + tls_share(cap) > cap)
        politeness.reclaimers.append(self.close_idle)

    def ssl_context(self, verify: bool) -> ssl.SSLContext:
        """Mozilla's store (certifi, as shipped with httpx) plus ``--ca-bundle``; or no verification."""
        if not verify:
            # No trust store to load (create_default_context reads the system's, ~0.1 s): nothing verifies.
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.options |= ssl.OP_NO_COMPRESSION
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            return ctx
        return self._with_ca_bundle(_mozilla_store())

    def _with_ca_bundle(self, ctx: ssl.SSLContext) -> ssl.SSLContext:
        """``ctx``, trusting ``--ca-bundle`` too when it is given."""
        if self.settings.ca_bundle:
            ctx.load_verify_locations(cafile=str(self.settings.ca_bundle))
        return ctx

    def _pool_context(self) -> ssl.SSLContext:
        """The context the pools are given, which never makes a handshake (``_PoliteStream.start_tls``
        chooses one): verifying, trusting only ``--ca-bundle`` (read here, so a bad file fails now)."""
        return self._with_ca_bundle(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))

    def _verifying_context(self, store: concurrent.futures.Future[ssl.SSLContext] | None,
                           alpn: list[str]) -> ssl.SSLContext:
        """``ssl_context(verify=True)`` from the store ``load_backend`` began loading, when there is one."""
        loaded = store is not None and store.exception() is None
        ctx = self._with_ca_bundle(store.result()) if loaded else self.ssl_context(verify=True)
        ctx.set_alpn_protocols(alpn)
        return ctx

    async def tls_context_for(self, host: str, port: int) -> ssl.SSLContext:
        """Verifying, unless this host's certificate was already found not to validate."""
        if (host.lower(), port) in self._unverified:
            return self._contexts[False]
        ctx = self._contexts.get(True)
        if ctx is None:
            ctx = self._contexts[True] = await asyncio.wrap_future(self._verifying)
        return ctx

    def _client(self, addr: str) -> _Client:
        key = address_key(addr)
        client = self._clients.get(key)
        if client is None:
            cap = http_share(self.politeness.budget.per_address_connections)
            pool = CoalescingPool(
                self._coalescing, ssl_context=self._nominal, max_connections=cap,
                max_keepalive_connections=cap, keepalive_expiry=KEEPALIVE_S, http1=True, http2=HTTP2,
                network_backend=self._backend)
            t = self.settings.timeout
            client = _Client(pool, follow_redirects=False,
                             timeout=httpx.Timeout(t, pool=None), trust_env=False, cookies=_NoCookieJar())
            self._pools[key], self._clients[key] = pool, client
            self._h1_slots[key] = asyncio.Semaphore(cap)
        return client

    def _h2_ready(self, addr: str, host: str, port: int) -> bool:
        """Is an HTTP/2 connection to this origin open with a stream free (a request goes out at once)?"""
        pool = self._pools.get(address_key(addr))
        if pool is None:
            return False
        origin = httpcore.Origin(b"https", host.encode("ascii", "replace"), port)
        # the cheapest question first: whether it speaks HTTP/2 is remembered (``is_http2``)
        return any(is_http2(c) and c.is_available() and c.can_handle_request(origin)
                   for c in pool.connections)

    async def close_idle(self, addr: str | None = None, *, done: bool = False,
                         origin: str | None = None) -> None:
        """Close the idle kept-alive connections to ``addr`` (every address when None: the machine's
        socket cap is reached). For one address, only when that can free a slot another prober needs, or
        when the HTTP work on it is ``done`` for now (its slots go to the TLS probers at once instead of
        idling until the keep-alive expires); with ``origin`` (a URL), only those serving its origin."""
        cap = self.politeness.socket_cap
        if addr is not None and not done and not self._yield_idle and cap.in_flight < cap.limit:
            return
        want = None
        if origin is not None:
            parts = urlsplit(origin)
            scheme = parts.scheme.lower()
            want = httpcore.Origin(scheme.encode(), (parts.hostname or "").encode("ascii", "replace"),
                                   parts.port or (443 if scheme == "https" else 80))
        pools = [self._pools.get(address_key(addr))] if addr else list(self._pools.values())
        for pool in pools:
            for conn in list(pool.connections) if pool else ():
                if conn.is_idle() and (want is None or conn.can_handle_request(want)):
                    with contextlib.suppress(Exception):
                        await conn.aclose()

    async def release(self, addr: str) -> None:
        """No target on ``addr`` is in flight any more: close its connections and forget its pool."""
        key = address_key(addr)
        client = self._clients.pop(key, None)
        self._pools.pop(key, None)
        self._h1_slots.pop(key, None)
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def aclose(self) -> None:
        for key in list(self._clients):
            await self.release(key)

    def address_allowed(self, addr: str) -> bool:
        """Public addresses always; internal ones only when they are targets or ``--resolve`` maps."""
        return address_allowed(addr, self.allowed_addresses, self.resolver.is_operator_address)

    async def fetch(self, url: str, *, method: str = "GET", headers: dict[str, str] | None = None,
                    max_bytes: int | None = None, bulk: bool = False) -> HttpResponse:
        """Fetch one URL (no redirects). Never raises for network trouble: errors are in the response.
        ``bulk``: one of many probes, which leave part of the address's rate to the others
        (``scanner.net.politeness.bulk_reserve``)."""
        try:
            return await self._fetch(url, method, headers, max_bytes, bulk)
        finally:
            self.under_way.set()  # the first fetch has ended (a later set does nothing)

    async def _fetch(self, url: str, method: str, headers: dict[str, str] | None, max_bytes: int | None,
                     bulk: bool) -> HttpResponse:
        if method not in ("GET", "HEAD"):
            raise ValueError("pledgescan only sends GET and HEAD")
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        if scheme not in ("http", "https") or not host:
            return HttpResponse(url=url, method=method, error="not an http(s) URL",
                                error_kind=ErrorKind.PROTOCOL)
        port = parts.port or (443 if scheme == "https" else 80)
        try:
            addrs = await self.resolver.resolve(host, port)
        except ResolutionError as exc:
            return HttpResponse(url=url, method=method, error=exc.reason, error_kind=exc.kind)
        addr = addrs[0]
        if not self.address_allowed(addr):
            self.stats.blocked.append(url)
            return HttpResponse(url=url, method=method, address=addr, error_kind=ErrorKind.BLOCKED,
                                error=f"refused to connect to internal address {addr} (not a target)")
        netloc = f"{_bracket(host)}:{port}"
        wire_url = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
        host_header = host if parts.port is None else f"{host}:{port}"
        req_headers = {"User-Agent": self.settings.effective_user_agent, "Accept": "*/*",
                       "Accept-Encoding": "identity", **(headers or {}), "Host": host_header}
        limit = max_bytes or self.settings.max_body_bytes
        client = self._client(addr)

        async def send(sent: Callable[[bool], None] | None = None) -> HttpResponse:
            self.stats.http_requests[host] += 1
            multiplexed = (host, port) in self._h2
            resp: HttpResponse | None = None
            while resp is None:
                drawn: RequestLease | None = None
                if multiplexed and self._h2_ready(addr, host, port):
                    pool = self._pools[address_key(addr)]
                    pool.expecting += 1  # its HTTP/2 connection stays open while this waits for the rate
                    try:
                        drawn = await self.politeness.begin(addr, bulk=bulk)
                    finally:
                        pool.expecting -= 1
                    if not self._h2_ready(addr, host, port):  # no longer open after waiting for the rate
                        await drawn.end()
                        drawn = None
                if not multiplexed or drawn is not None:
                    # A deciding request (``sent``) may share its new connection with the requests it
                    # releases: it draws before the HTTP/2 preface, never between a stream ID and its
                    # headers (see ``_send``).
                    one_by_one = self._h1_slots[address_key(addr)] if not multiplexed else None
                    async with one_by_one if one_by_one is not None else contextlib.nullcontext():
                        resp = await self._send(client, url, method, wire_url, req_headers, {}, limit,
                                                addr, "drawn" if drawn else "opening" if sent else "on_send",
                                                drawn, bulk, sent, host=host)
                    break
                # No open HTTP/2 connection to take the request at once: one request opens it (and draws
                # on the rate once it has it, so no request counts while it waits for a connection
                # slot), the others wait here without drawing (no burst once it is open), then go
                # round again to send on it. A request whose connection closed while it waited for the
                # rate draws again: under the budget.
                async with self._opening.setdefault((host, port), asyncio.Lock()):
                    if not self._h2_ready(addr, host, port):
                        resp = await self._send(client, url, method, wire_url, req_headers, {}, limit, addr,
                                                "opening", bulk=bulk, sent=sent, host=host)
            if resp.http_version == "HTTP/2":
                self._h2.add((host, port))
            return resp

        if scheme != "https":
            return await send()
        key = (host, port)
        while key not in self._verified and key not in self._answered_unverified:
            # The first requests of an origin go one at a time until one decides what the certificate
            # allows (when verification fails, this request and every later one go unverified, and the
            # reason is recorded) and which HTTP version the origin speaks. It decides as soon as its
            # headers are sent on a verified connection: the others go out then (on its HTTP/2
            # connection), not one round trip later with its answer.
            pending = self._deciding.get(key)
            if pending is not None:
                await asyncio.shield(pending)
                continue
            pending = self._deciding[key] = asyncio.get_running_loop().create_future()
            try:
                why = self._unverified.get(key)

                def sent(http2: bool, pending: asyncio.Future[None] = pending) -> None:
                    self._verified.add(key)
                    self._decided[key].set()
                    if http2:
                        self._h2.add(key)
                    if not pending.done():
                        pending.set_result(None)

                resp = await send(sent if why is None else None)
                if why is None and resp.error_kind in TLS_KINDS:
                    # Fetch anyway without verification so header checks can run; record why.
                    self._verified.discard(key)
                    why = self._unverified[key] = resp.error or "certificate verification failed"
                    resp = await send()
                if why is None and resp.error is None:
                    self._verified.add(key)
                elif why is not None and resp.http_version is not None:
                    self._answered_unverified.add(key)
                if key in self._verified or key in self._answered_unverified:
                    self._decided[key].set()
                return _tls_tagged(resp, why)
            finally:
                if not pending.done():
                    pending.set_result(None)
                if self._deciding.get(key) is pending:
                    del self._deciding[key]
        return _tls_tagged(await send(), self._unverified.get(key))

    async def origin_decided(self, url: str) -> None:
        """Until the https origin of ``url`` is decided: its first request's headers went out on a
        verified connection, or it was answered without verification. (It may never be: the caller
        bounds the wait.)"""
        parts = urlsplit(url)
        key = ((parts.hostname or "").lower(), parts.port or 443)
        if key not in self._verified and key not in self._answered_unverified:
            await self._decided[key].wait()

    async def _send(self, client: _Client, url: str, method: str, wire_url: str,
                    headers: dict[str, str], extensions: dict[str, str], limit: int,
                    addr: str, rate: str = "on_send", drawn: RequestLease | None = None,
                    bulk: bool = False, sent: Callable[[bool], None] | None = None, *,
                    host: str) -> HttpResponse:
        """One exchange. ``rate``: when the address's rate is drawn: ``on_send`` (in httpcore's trace, once
        the request has its HTTP/1.1 connection), ``opening`` (in the trace, once the request has a
        connection of its own: before the HTTP/2 connection preface, or before the headers on HTTP/1.1),
        ``drawn`` (by the caller, ``drawn``). The request counts against the rate until its response is
        read (``RequestLease``). ``sent(http2)`` is called once the request's headers are sent. ``host``:
        the key ``fetch`` counts the request under (a misdirected one sent again counts there too)."""
        leases = [drawn] if drawn is not None else []
        try:
            return await self._exchange(client, url, method, wire_url, headers, extensions, limit, addr,
                                        rate, leases, bulk, sent, host=host)
        finally:
            for lease in leases:
                await lease.end()

    async def _exchange(self, client: _Client, url: str, method: str, wire_url: str,
                        headers: dict[str, str], extensions: dict[str, str], limit: int,
                        addr: str, rate: str, leases: list[RequestLease], bulk: bool = False,
                        sent: Callable[[bool], None] | None = None, *, host: str) -> HttpResponse:
        started = time.monotonic()
        base = {"url": url, "method": method, "address": addr}
        try:
            # The exchange gets twice the timeout from its first byte out; waiting for a connection slot
            # of a busy address (politeness) is not the server's slowness and is not counted.
            async with asyncio.timeout(None) as deadline:
                async def trace(event: str, info: dict[str, Any]) -> None:
                    # The address's rate is drawn just before the request goes out, on its connection
                    # (HTTP/1.1: a request may first wait for one of the pool's connections). On an
                    # HTTP/2 connection it opens, a request draws before the connection preface, while
                    # no stream is open: waiting between the stream ID it took and its headers would
                    # let a concurrent request take the same stream ID.
                    if rate == "opening" and not leases and event.endswith(
                            ("send_connection_init.started", "send_request_headers.started")):
                        leases.append(await self.politeness.begin(addr, bulk=bulk))
                    if event.endswith("send_request_headers.started") and deadline.when() is None:
                        if rate == "on_send" and not leases:
                            leases.append(await self.politeness.begin(addr, bulk=bulk))
                        deadline.reschedule(asyncio.get_running_loop().time() + self.settings.timeout * 2)
                    if sent is not None and event.endswith("send_request_headers.complete"):
                        sent(event.startswith("http2."))

                async def before_stream() -> None:
                    # On an open HTTP/2 connection (coalesced or not) the rate is drawn before the
                    # request takes its stream ID (see ``scanner.net.coalesce``).
                    if rate != "drawn" and not leases:
                        leases.append(await self.politeness.begin(addr, bulk=bulk))

                def build() -> httpcore.Request:
                    return _request(client, method, wire_url, headers, {
                        **extensions, "trace": trace, BEFORE_STREAM: before_stream})

                response = await _send_direct(client, build(), wire_url)
                if response.status_code == 421 and response.extensions.get(COALESCED):
                    # Misdirected on another origin's connection: once more on one of its own origin (the
                    # pool no longer coalesces it), as browsers do; a request of its own on the budget.
                    await response.aclose()
                    for lease in leases:
                        await lease.end()
                    leases.clear()
                    rate = "opening"
                    deadline.reschedule(None)
                    self.stats.http_requests[host] += 1  # the key ``fetch`` counted the first one under
                    response = await _send_direct(client, build(), wire_url)
                try:
                    body, truncated = await _read_bounded(response, limit)
                finally:
                    await response.aclose()
                    if self.politeness.waiting(addr):
                        await self.close_idle(addr)
                body, truncated = _decode_bounded(body, truncated, response.headers.get("content-encoding"),
                                                  limit)
        except (TimeoutError, httpx.TimeoutException):
            return HttpResponse(**base, error="timed out", error_kind=ErrorKind.TIMEOUT)
        except (httpx.RemoteProtocolError, httpx.LocalProtocolError, httpx.DecodingError) as exc:
            return HttpResponse(**base, error=f"protocol error: {short_message(exc)}",
                                error_kind=transport_error_kind(exc))
        except (httpx.HTTPError, OSError, ssl.SSLError) as exc:
            return HttpResponse(**base, error=short_message(exc), error_kind=transport_error_kind(exc))
        except (httpx.InvalidURL, UnicodeError, ValueError) as exc:  # a URL or Host httpx cannot send
            return HttpResponse(**base, error=f"invalid request: {short_message(exc)}",
                                error_kind=ErrorKind.PROTOCOL)
        except (KeyError, h2.exceptions.H2Error) as exc:  # httpcore's HTTP/2 state broken by a server
            return HttpResponse(**base, error=f"protocol error: HTTP/2 {type(exc).__name__}",
                                error_kind=ErrorKind.PROTOCOL)
        # As sent, Location included: httpx never parses it (no redirect handling, see ``_send_direct``).
        header_list = bounded_headers(response.headers.multi_items(), self.settings.max_header_bytes)
        return HttpResponse(
            **base,
            status=response.status_code,
            http_version=response.http_version,
            headers=tuple(header_list),
            body=body,
            body_truncated=truncated,
            elapsed_ms=int((time.monotonic() - started) * 1000),
        )


def _request(client: _Client, method: str, url: str, headers: dict[str, str],
             extensions: dict[str, Any]) -> httpcore.Request:
    """The request httpx's transport gave the pool for ``client.build_request(method, url,
    headers=headers, extensions=extensions)`` (no base URL, parameters, cookies or body; a timeout of the
    client's): httpx's URL (its parsing and normalisation), the client's headers that ``headers`` does not
    set first, then those, encoded as httpx encodes them; at a fraction of the CPU (no ``Headers`` merged
    twice, no ``Request``)."""
    core_url = _wire_url(url)
    given = {k.lower() for k in headers}
    raw = [(k, v) for k, v in client.headers.raw if k.decode("latin-1").lower() not in given]
    raw.extend((k.encode("ascii"), v.encode("ascii")) for k, v in headers.items())
    return httpcore.Request(method.upper(), core_url, headers=raw,
                            extensions={**extensions, "timeout": client.timeouts})


def _wire_url(url: str) -> httpcore.URL:
    """The URL httpx's transport gives the pool for ``httpx.URL(url)`` (scheme, host, port, path and
    query as httpx parses and normalises them). httpx parses the origin and the rest apart (the path's
    normalisation and quoting depend on nothing else): each is parsed once and remembered, since a
    target's ~130 requests share one origin and targets share the exposure catalogue's paths (parsing was
    ~80 us of each request's CPU). A long URL, or one httpx refuses in parts, is parsed whole as before
    (the same error)."""
    start = url.find("://") + 3
    cut = url.find("/", start)
    if start > 2 and cut > 0 and len(url) <= 2048 and not any(c in url[:cut] for c in "?#"):
        try:
            scheme, host, port = _wire_origin(url[:cut])
            return httpcore.URL(scheme=scheme, host=host, port=port, target=_wire_target(url[cut:]))
        except httpx.InvalidURL:
            pass
    parsed = httpx.URL(url)
    return httpcore.URL(scheme=parsed.raw_scheme, host=parsed.raw_host, port=parsed.port,
                        target=parsed.raw_path)


@functools.lru_cache(maxsize=256)
def _wire_origin(origin: str) -> tuple[bytes, bytes, int | None]:
    """``origin`` (``scheme://authority``) as httpx parses it."""
    parsed = httpx.URL(origin)
    return parsed.raw_scheme, parsed.raw_host, parsed.port


@functools.lru_cache(maxsize=4096)
def _wire_target(rest: str) -> bytes:
    """The path and query of a URL whose authority ends where ``rest`` begins (with "/"), as httpx
    parses them (the path's dot segments removed, both quoted); a fragment is left out."""
    return httpx.URL("http://x" + rest).raw_path


HEADER_VALUE_CAP = 8192


def bounded_headers(items: Iterable[tuple[str, str]], budget: int) -> list[tuple[str, str]]:
    """The headers as recorded: names lower-cased, each value cut at ``HEADER_VALUE_CAP``, at most
    ``budget`` characters in all, in the order sent. Over budget, the largest headers are left out, not the
    last ones: junk sent first must not hide the HSTS or Set-Cookie headers that follow it."""
    headers = [(k.lower(), v[:HEADER_VALUE_CAP]) for k, v in items]
    kept: set[int] = set()
    size = 0
    for i in sorted(range(len(headers)), key=lambda j: len(headers[j][0]) + len(headers[j][1])):
        size += len(headers[i][0]) + len(headers[i][1])
        if size > budget:
            break
        kept.add(i)
    return [h for i, h in enumerate(headers) if i in kept]


def _tls_tagged(resp: HttpResponse, why: str | None) -> HttpResponse:
    """An https:// answer with what its certificate allowed: unverified (and why), or verified."""
    if why is not None:
        return resp.model_copy(update={"tls_verified": False, "tls_error": why})
    return resp.model_copy(update={"tls_verified": resp.error is None or None})


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


async def _read_bounded(response: _Answer, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            return b"".join(chunks)[:limit], True
    return b"".join(chunks), False
