"""Exceptions to ``ErrorKind``: from exception classes, ``errno`` and OpenSSL codes, never message text.

One home for the mapping, used by the fetcher, the resolver, the DNS collector and the TLS handshakes:
``transport_error_kind`` walks the cause chain (httpx -> httpcore -> anyio -> ssl/OSError) and takes the
first exception that says something definite; ``dns_error_kind`` reads dnspython's classes. The HTTP
stack's classes are read from the modules already loaded: an exception of httpx's exists only once httpx
is, and a scan without HTTP (TLS controls alone) never imports it.
"""

from __future__ import annotations

import errno
import ssl
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import dns.exception
import dns.rcode

from scanner.errors import ErrorKind

_ERRNO_KIND = {
    errno.ECONNREFUSED: ErrorKind.REFUSED,
    errno.ECONNRESET: ErrorKind.RESET,
    errno.ECONNABORTED: ErrorKind.RESET,
    errno.EPIPE: ErrorKind.RESET,
    errno.ETIMEDOUT: ErrorKind.TIMEOUT,
    errno.ENETUNREACH: ErrorKind.CONNECT,
    errno.EHOSTUNREACH: ErrorKind.CONNECT,
    errno.EADDRNOTAVAIL: ErrorKind.CONNECT,
}


class KindedError(Exception):
    """Mixin of our own exceptions that already know their kind (``kind`` attribute)."""

    kind: ErrorKind = ErrorKind.UNKNOWN


class DNSFailure(dns.exception.DNSException, KindedError):
    """A DNS failure of our own making (a failing rcode, a missing record), with its ``ErrorKind``."""

    def __init__(self, message: str, kind: ErrorKind = ErrorKind.DNS) -> None:
        super().__init__(message)
        self.kind = kind


_Classes = tuple[type[BaseException], ...]


@dataclass(frozen=True)
class _HttpClasses:
    """The HTTP stack's exception classes, by the kind they say."""

    timeout: _Classes = ()
    protocol: _Classes = ()
    reset: _Classes = ()
    transport: _Classes = ()


_NO_HTTP = _HttpClasses()
_http_classes: _HttpClasses | None = None


def _http() -> _HttpClasses:
    """httpx's and httpcore's classes once both are loaded (then kept), none before (nothing can have
    raised them yet)."""
    global _http_classes
    if _http_classes is None:
        if "httpx" not in sys.modules or "httpcore" not in sys.modules:
            return _NO_HTTP
        import httpcore
        import httpx

        _http_classes = _HttpClasses(
            timeout=(httpx.TimeoutException, httpcore.TimeoutException),
            protocol=(httpx.RemoteProtocolError, httpx.LocalProtocolError, httpx.DecodingError,
                      httpcore.ProtocolError, httpx.InvalidURL),
            reset=(httpx.ReadError, httpx.WriteError, httpcore.ReadError, httpcore.WriteError),
            transport=(httpx.TransportError, httpcore.NetworkError),
        )
    return _http_classes


def causes(exc: BaseException, limit: int = 12) -> Iterator[BaseException]:
    """``exc`` and what caused it, outermost first: ``raise ... from``, else the exception being handled
    when it was raised, even where a library suppressed it for display (httpcore's pool re-raises with
    ``from None``, which hides the ssl/OS error behind its ConnectError); an exception group's first."""
    seen: BaseException | None = exc
    for _ in range(limit):
        if seen is None:
            return
        yield seen
        if isinstance(seen, BaseExceptionGroup) and seen.exceptions:
            seen = seen.exceptions[0]
        else:
            seen = seen.__cause__ or seen.__context__


# OpenSSL reason codes of a peer that answered with something other than TLS (HTTP, garbage, SSH ...).
NOT_TLS_REASONS = frozenset({
    "WRONG_VERSION_NUMBER",
    "UNKNOWN_PROTOCOL",
    "PACKET_LENGTH_TOO_LONG",
    "RECORD_LAYER_FAILURE",
    "HTTP_REQUEST",
    "HTTPS_PROXY_REQUEST",
    "UNKNOWN_ALERT_TYPE",
})
# OpenSSL reason codes of a connection closed mid-handshake.
RESET_REASONS = frozenset({"UNEXPECTED_EOF_WHILE_READING"})
# OpenSSL reason codes of alerts received whose names do not say ALERT (ssl_err.c, SSL_AD_* + 1000).
_ALERT_PREFIXES = ("SSLV3_ALERT_", "TLSV1_ALERT_", "TLSV13_ALERT_")
_OTHER_ALERT_REASONS = frozenset({
    "TLSV1_UNRECOGNIZED_NAME",
    "TLSV1_UNSUPPORTED_EXTENSION",
    "TLSV1_CERTIFICATE_UNOBTAINABLE",
    "TLSV1_BAD_CERTIFICATE_STATUS_RESPONSE",
    "TLSV1_BAD_CERTIFICATE_HASH_VALUE",
})


def ssl_error_kind(exc: ssl.SSLError) -> ErrorKind:
    """A certificate that did not verify, a peer that does not speak TLS, a connection closed
    mid-handshake, an alert the peer sent, or another TLS failure (from the class and OpenSSL's
    reason code)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ErrorKind.CERTIFICATE
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return ErrorKind.RESET
    reason = getattr(exc, "reason", None) or ""
    if reason in NOT_TLS_REASONS:
        return ErrorKind.PROTOCOL
    if reason in RESET_REASONS:
        return ErrorKind.RESET
    if reason.startswith(_ALERT_PREFIXES) or reason in _OTHER_ALERT_REASONS:
        return ErrorKind.TLS_ALERT
    return ErrorKind.TLS


def _definite(exc: BaseException) -> ErrorKind | None:
    if isinstance(exc, KindedError):
        return exc.kind
    if isinstance(exc, ssl.SSLError):
        return ssl_error_kind(exc)
    if isinstance(exc, (TimeoutError, *_http().timeout)):
        return ErrorKind.TIMEOUT
    if isinstance(exc, OSError) and exc.errno in _ERRNO_KIND:
        return _ERRNO_KIND[exc.errno]
    if isinstance(exc, ConnectionRefusedError):
        return ErrorKind.REFUSED
    if isinstance(exc, ConnectionResetError | ConnectionAbortedError | BrokenPipeError | EOFError):
        return ErrorKind.RESET
    if isinstance(exc, dns.exception.DNSException):
        return dns_error_kind(exc)
    return None


def transport_error_kind(exc: BaseException) -> ErrorKind:
    """The kind of a failed network exchange (HTTP, TLS, TCP): the one mapping the fetcher, the resolver
    and the TLS collector's own handshakes share."""
    for e in causes(exc):
        kind = _definite(e)
        if kind is not None:
            return kind
    http = _http()
    if isinstance(exc, (*http.protocol, UnicodeError, ValueError)):
        return ErrorKind.PROTOCOL
    if isinstance(exc, http.reset):
        return ErrorKind.RESET
    if isinstance(exc, (*http.transport, OSError)):
        return ErrorKind.CONNECT
    return ErrorKind.UNKNOWN


def rcode_kind(rcode: dns.rcode.Rcode) -> ErrorKind:
    """The kind of a failing answer's rcode: SERVFAIL and REFUSED say the server could not or would not
    answer; NXDOMAIN says the name does not exist."""
    if rcode == dns.rcode.NXDOMAIN:
        return ErrorKind.DNS_NXDOMAIN
    if rcode in (dns.rcode.SERVFAIL, dns.rcode.REFUSED):
        return ErrorKind.DNS_SERVFAIL
    return ErrorKind.DNS


def dns_error_kind(exc: BaseException) -> ErrorKind:
    """The ``ErrorKind`` of a dnspython exception, from its class."""
    # Imported here: dns.resolver brings dnspython's query modules (~50 ms), which a scan whose every name
    # is given by --resolve never needs; a dnspython exception means they are loaded already.
    import dns.message
    import dns.resolver

    if isinstance(exc, KindedError):
        return exc.kind
    if isinstance(exc, dns.resolver.NXDOMAIN):
        return ErrorKind.DNS_NXDOMAIN
    if isinstance(exc, dns.resolver.NoNameservers):  # every server answered SERVFAIL/REFUSED or failed
        return ErrorKind.DNS_SERVFAIL
    if isinstance(exc, dns.exception.Timeout):
        return ErrorKind.TIMEOUT
    if isinstance(exc, dns.exception.FormError | dns.message.Truncated | dns.message.BadEDNS):
        return ErrorKind.PROTOCOL
    if isinstance(exc, OSError) and exc.errno in _ERRNO_KIND:
        return _ERRNO_KIND[exc.errno]
    return ErrorKind.DNS
