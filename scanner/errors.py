"""Errors as data: what kind of trouble stopped a measurement.

Collectors set an ``ErrorKind`` from exception types and codes (``ssl.SSLCertVerificationError.verify_code``,
httpx/httpcore and dnspython exception classes, ``OSError.errno``), never from message text; checks and
reports read the kind, and show it next to the message. A ``StrEnum``, so stored runs (which hold the
plain strings) load unchanged and JSON output stays the same strings.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    """Why a probe could not decide anything."""

    TIMEOUT = "timeout"  # no answer within --timeout
    REFUSED = "refused"  # TCP connection refused (ECONNREFUSED)
    RESET = "reset"  # connection reset or closed mid-exchange
    CONNECT = "connect"  # any other failure to connect (unreachable network or host)
    TLS_ALERT = "tls_alert"  # the server ended the TLS handshake with an alert
    TLS = "tls"  # another TLS failure (not a certificate problem)
    CERTIFICATE = "certificate"  # the certificate did not verify
    DNS_NXDOMAIN = "dns_nxdomain"  # the name does not exist
    DNS_SERVFAIL = "dns_servfail"  # the resolver failed (SERVFAIL, no name server answered)
    DNS = "dns"  # another DNS failure
    NO_SUCH_HOST = "no_such_host"  # the host name has no address (definitive)
    PROTOCOL = "protocol"  # the server spoke, but not the expected protocol, or malformed
    TOO_LARGE = "too_large"  # the answer exceeded a size bound
    BLOCKED = "blocked"  # pledgescan refused to send it (internal address, safety rule)
    UNKNOWN = "unknown"  # none of the above (an unexpected exception type)


def short_message(exc: BaseException, limit: int = 200) -> str:
    """An exception as one bounded line of text for a report (its type name when it has no message)."""
    text = str(exc) or type(exc).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def hide_library_warnings() -> None:
    """Hide the libraries' deprecation chatter (the command without ``-v``, and its worker processes):
    cryptography warns, for instance, about each certificate in a trust store with a serial number
    RFC 5280 forbids, which says nothing about the scanned site."""
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*serial number.*")
