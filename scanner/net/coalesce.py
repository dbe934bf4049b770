"""HTTP/2 connection coalescing, as browsers do it (RFC 9113 9.1.1; Chromium and Firefox).

A request for origin B may go over an HTTP/2 connection opened for origin A when both are https on the
same address and port (the fetcher keeps one pool per address) and the certificate A's connection
verified also covers B. Shared hosting (many names, one address, one certificate) then needs one or two
connections instead of one per name, so the address's connection cap stops churning connections.

Safe by construction: only verified connections coalesce (their certificate chained to the trust store
and matched A; B is matched here against the same certificate's DNS names), never onto one opened
without verification, and never for an origin whose own certificate was found not to validate
(``allows``). Each request keeps its own Host (``:authority``); only the URL's host that httpcore's
pooling compares is the connection's. A server that answers 421 (Misdirected Request) to a coalesced
request gets it again on a connection of the request's own origin, which never coalesces again.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import httpcore

COALESCED = "pledgescan.coalesced"  # response extension: the request went over another origin's connection
BEFORE_STREAM = "pledgescan.before_stream"  # request extension: awaited before an HTTP/2 stream is taken
Origin = tuple[str, int]
# h2's refusal to send a request's headers on a connection already closed
_CLOSED_BEFORE_HEADERS = "SEND_HEADERS in state ConnectionState.CLOSED"


def verified_dns_names(ssl_object: Any) -> tuple[str, ...]:
    """The certificate's DNS names (subjectAltName), when the handshake verified it; else none."""
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return ()
    ctx = ssl_object.context
    if ctx.verify_mode != ssl.CERT_REQUIRED or not ctx.check_hostname:
        return ()
    cert = ssl_object.getpeercert() or {}
    return tuple(v.lower() for k, v in cert.get("subjectAltName", ()) if k == "DNS")


def covers(names: tuple[str, ...], host: str) -> bool:
    """Does a certificate with these DNS names match ``host``? As OpenSSL checks it for Python's ssl: the
    whole name, or a wildcard as the entire left-most label standing for exactly one label (no partial
    wildcards, none over a bare suffix). The common name is not consulted (only subjectAltName)."""
    host = host.lower().rstrip(".")
    if not host.isascii() or "." not in host:
        return False
    first, rest = host.split(".", 1)
    for name in names:
        name = name.rstrip(".")
        if name == host:
            return True
        if name.startswith("*.") and name[2:] == rest and "." in rest and first:
            return True
    return False


class Coalescing:
    """What may coalesce in one fetcher: nothing unless ``enabled`` (the ``coalesce`` setting);
    ``may(host, port)`` is the fetcher's per-host TLS decision (False once a host's certificate failed
    verification); origins refused with 421 never coalesce."""

    def __init__(self, may: Callable[[str, int], bool], enabled: bool = True) -> None:
        self._may = may
        self.enabled = enabled
        self.refused: set[Origin] = set()

    def allows(self, host: str, port: int) -> bool:
        return self.enabled and (host, port) not in self.refused and self._may(host, port)


class CoalescingConnection(httpcore.AsyncHTTPConnection):
    """httpcore's connection, which also takes requests of the other origins its verified HTTP/2
    certificate covers (known from its first response's ``network_stream``)."""

    def __init__(self, policy: Coalescing, pool: CoalescingPool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._policy = policy
        self._pool = pool
        self._names: tuple[str, ...] | None = None  # None: not yet known (no response yet)
        self._version: bool | None = None  # HTTP/2 or not, once the connection knows it (None: not yet)

    def is_http2(self) -> bool:
        """Does this connection speak HTTP/2? ``"HTTP/2" in info()``, remembered once the protocol is known
        (it never changes on a connection): ``info()`` formats a line (the origin, the state, the count of
        requests) at each of the several questions the pool and the fetcher ask per request."""
        if self._version is None:
            info = self.info()
            if "HTTP/2" in info:
                self._version = True
            elif "HTTP/1.1" in info:
                self._version = False
            else:
                return False
        return self._version

    def is_idle(self) -> bool:
        # The pool's first open HTTP/2 connection is where requests drawing on the rate for HTTP/2 go:
        # not closed as idle (for another origin's new connection, or a waiting prober) under them, so
        # they do not find it gone and draw again.
        pool = self._pool
        return super().is_idle() and not (pool.keep_hub and pool.expecting and self is pool.hub())

    def can_handle_request(self, origin: httpcore.Origin) -> bool:
        if super().can_handle_request(origin):
            return True
        own = self._origin
        if (not self._names or origin.scheme != b"https" or own.scheme != b"https" or origin.port != own.port
                or not self.is_http2()):
            return False
        host = origin.host.decode("ascii", "replace")
        return self._policy.allows(host, origin.port) and covers(self._names, host)

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        origin = request.url.origin
        if self.is_http2():
            # On an open HTTP/2 connection the request's rate is drawn before it takes a stream ID:
            # waiting between the ID and its headers would let a concurrent request take the same ID.
            before: Callable[[], Awaitable[None]] | None = request.extensions.get(BEFORE_STREAM)
            # Closed while the request waited (GOAWAY, idle, a request on it that timed out): httpcore's
            # own state check then raises ConnectionNotAvailable and the pool assigns the request again,
            # its drawn rate kept (tests/test_coalescing_race.py).
            if before is not None:
                await before()
        if origin == self._origin:
            response = await self._send(request)
            if self._names is None:
                stream = response.extensions.get("network_stream")
                self._names = verified_dns_names(stream.get_extra_info("ssl_object")) if stream else ()
            return response
        # Another origin's request: httpcore's HTTP/2 connection checks the URL's origin against its own,
        # and sends :authority from the Host header, which stays the request's own.
        own = self._origin
        url = httpcore.URL(scheme=own.scheme, host=own.host, port=own.port, target=request.url.target)
        response = await self._send(httpcore.Request(
            request.method, url, headers=request.headers, content=request.stream,
            extensions=request.extensions))
        if response.status == 421:
            self._policy.refused.add((origin.host.decode("ascii", "replace"), origin.port))
        response.extensions[COALESCED] = True
        return response

    async def _send(self, request: httpcore.Request) -> httpcore.Response:
        try:
            return await super().handle_async_request(request)
        except httpcore.LocalProtocolError as exc:
            # The connection was closed (the pool closing it as idle, its last stream having ended) while
            # this request waited for a stream slot: its headers never left, so the pool may give it
            # another connection; without this the request fails with a protocol error the verdicts
            # would show (seen under load with several names on one connection).
            if _CLOSED_BEFORE_HEADERS in str(exc) or (_too_many_streams(exc) and self.is_closed()):
                raise httpcore.ConnectionNotAvailable() from exc
            raise


def is_http2(conn: httpcore.AsyncConnectionInterface) -> bool:
    """Does ``conn`` (one of a pool's connections) speak HTTP/2?"""
    if isinstance(conn, CoalescingConnection):
        return conn.is_http2()
    return "HTTP/2" in conn.info()


def _too_many_streams(exc: httpcore.LocalProtocolError) -> bool:
    """h2 refused to open the request's stream (its headers never left) because it still counts an earlier
    stream as open: on a connection closed while that stream's response was unread, the freed slot lets
    a waiting request through to h2, which says "Max outbound streams is 1, 1 open" instead of the closed
    state (which of the two depends on whether the earlier response's last frame had been read)."""
    from h2.exceptions import TooManyStreamsError

    return bool(exc.args) and isinstance(exc.args[0], TooManyStreamsError)


class CoalescingPool(httpcore.AsyncConnectionPool):
    """httpcore's pool with coalescing connections (its assignment asks ``can_handle_request``)."""

    def __init__(self, policy: Coalescing, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._policy = policy
        self.expecting = 0  # requests waiting for the rate to go over an open HTTP/2 connection
        # Keep the hub only when another connection can still be opened beside it: with one, the
        # requests that cannot share it (http://, names it does not cover) would wait for it forever.
        self.keep_hub = (kwargs.get("max_connections") or 2) > 1

    def hub(self) -> httpcore.AsyncConnectionInterface | None:
        """The open HTTP/2 connection the pool gives requests first (its assignment takes the first
        available connection that can handle a request, in this order)."""
        return next((c for c in self._connections if is_http2(c) and c.is_available()), None)

    def create_connection(self, origin: httpcore.Origin) -> httpcore.AsyncConnectionInterface:
        return CoalescingConnection(
            self._policy, self, origin=origin, ssl_context=self._ssl_context,
            keepalive_expiry=self._keepalive_expiry, http1=self._http1, http2=self._http2,
            retries=self._retries, local_address=self._local_address, uds=self._uds,
            network_backend=self._network_backend, socket_options=self._socket_options)
