"""Errors as data: exceptions map to an ``ErrorKind`` by class, errno and OpenSSL code, never by their
text (the messages below are deliberately misleading)."""

from __future__ import annotations

import errno
import ssl

import dns.exception
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.resolver
import httpcore
import httpx
import pytest

from scanner.collectors.dnssec import has_type
from scanner.collectors.tls.handshake import handshake_error_kind
from scanner.errors import ErrorKind
from scanner.net.error_kinds import DNSFailure, dns_error_kind, rcode_kind, transport_error_kind
from scanner.net.fetcher import Refused


def chained(outer: BaseException, *inner: BaseException) -> BaseException:
    """``outer`` raised from ``inner[0]``, raised from ``inner[1]``, ... (as httpx -> httpcore -> OS)."""
    for exc, cause in zip((outer, *inner), inner, strict=False):
        exc.__cause__ = cause
    return outer


def ssl_error(cls: type[ssl.SSLError], reason: str) -> ssl.SSLError:
    exc = cls(1, "[SSL] certificate verify failed, SSL error")
    exc.reason = reason  # type: ignore[misc]
    return exc


@pytest.mark.parametrize(("exc", "kind"), [
    (httpx.ConnectTimeout("SSL certificate"), ErrorKind.TIMEOUT),
    (TimeoutError(), ErrorKind.TIMEOUT),
    (chained(httpx.ConnectError("SSL"), httpcore.ConnectError("x"),
             ConnectionRefusedError(errno.ECONNREFUSED, "tls")), ErrorKind.REFUSED),
    (chained(httpx.ReadError("certificate"), httpcore.ReadError("x"), OSError(errno.ECONNRESET, "SSL")),
     ErrorKind.RESET),
    (chained(httpx.ConnectError("timed out"), httpcore.ConnectError("x"), OSError(errno.EHOSTUNREACH, "x")),
     ErrorKind.CONNECT),
    (chained(httpx.ConnectError("refused"), httpcore.ConnectError("x"),
             ssl.SSLCertVerificationError(1, "alert")), ErrorKind.CERTIFICATE),
    (chained(httpx.ConnectError("certificate"), httpcore.ConnectError("x"),
             ssl_error(ssl.SSLError, "TLSV1_ALERT_PROTOCOL_VERSION")), ErrorKind.TLS_ALERT),
    (chained(httpx.ConnectError("certificate"), ssl_error(ssl.SSLError, "UNSUPPORTED_PROTOCOL")),
     ErrorKind.TLS),
    (chained(httpx.ConnectError("x"), ssl.SSLEOFError(8, "certificate")), ErrorKind.RESET),
    (chained(httpx.ConnectError("alert"), ssl_error(ssl.SSLError, "WRONG_VERSION_NUMBER")),
     ErrorKind.PROTOCOL),
    (chained(httpx.ConnectError("x"), ssl_error(ssl.SSLError, "UNEXPECTED_EOF_WHILE_READING")),
     ErrorKind.RESET),
    (httpx.RemoteProtocolError("timed out"), ErrorKind.PROTOCOL),
    (httpx.ConnectError("certificate verify failed"), ErrorKind.CONNECT),
    (chained(httpx.ConnectError("x"), Refused("timed out", ErrorKind.BLOCKED)), ErrorKind.BLOCKED),
    (chained(httpx.ConnectError("x"), OSError("All connection attempts failed"),
             ExceptionGroup("many", [ConnectionRefusedError(errno.ECONNREFUSED, "x")])), ErrorKind.REFUSED),
    (RuntimeError("SSL certificate timed out"), ErrorKind.UNKNOWN),
])
def test_transport_errors_are_kinded_by_type_and_code(exc: BaseException, kind: ErrorKind):
    assert transport_error_kind(exc) is kind


@pytest.mark.parametrize(("exc", "kind"), [
    (ssl_error(ssl.SSLError, "WRONG_VERSION_NUMBER"), ErrorKind.PROTOCOL),
    (ssl_error(ssl.SSLError, "HTTP_REQUEST"), ErrorKind.PROTOCOL),
    (ssl_error(ssl.SSLError, "UNKNOWN_ALERT_TYPE"), ErrorKind.PROTOCOL),
    (ssl_error(ssl.SSLError, "TLSV1_ALERT_PROTOCOL_VERSION"), ErrorKind.TLS_ALERT),
    (ssl_error(ssl.SSLError, "SSLV3_ALERT_HANDSHAKE_FAILURE"), ErrorKind.TLS_ALERT),
    (ssl_error(ssl.SSLError, "TLSV1_UNRECOGNIZED_NAME"), ErrorKind.TLS_ALERT),
    (ssl_error(ssl.SSLError, "UNEXPECTED_EOF_WHILE_READING"), ErrorKind.RESET),
    (ssl_error(ssl.SSLEOFError, ""), ErrorKind.RESET),
    (ssl_error(ssl.SSLZeroReturnError, ""), ErrorKind.RESET),
    (ssl_error(ssl.SSLError, "NO_CIPHERS_AVAILABLE"), ErrorKind.TLS),
    (ssl_error(ssl.SSLCertVerificationError, "CERTIFICATE_VERIFY_FAILED"), ErrorKind.CERTIFICATE),
    (ConnectionResetError(errno.ECONNRESET, "refused"), ErrorKind.RESET),
    (ConnectionRefusedError(errno.ECONNREFUSED, "reset"), ErrorKind.REFUSED),
    (EOFError(), ErrorKind.RESET),
    (OSError(errno.EHOSTUNREACH, "timed out"), ErrorKind.CONNECT),
    (OSError(errno.ETIMEDOUT, "no route"), ErrorKind.TIMEOUT),
    (TimeoutError(), ErrorKind.TIMEOUT),
])
def test_handshake_and_fetcher_share_one_mapping(exc: BaseException, kind: ErrorKind):
    """The TLS collector's own handshakes and the fetcher read the same mapping (issue 12): the
    handshake's finer OpenSSL reasons (not TLS -> protocol, EOF -> reset) hold for both."""
    assert handshake_error_kind(exc) is kind
    assert transport_error_kind(chained(httpx.ConnectError("x"), httpcore.ConnectError("x"), exc)) is kind


def test_a_cause_hidden_by_from_none_is_still_read():
    """httpcore's connection pool re-raises its ConnectError ``from None``: the ssl error stays the
    context, and decides the kind."""
    try:
        try:
            try:
                raise ssl.SSLCertVerificationError(1, "x")
            except ssl.SSLError as inner:
                raise httpcore.ConnectError("x") from inner
        except httpcore.ConnectError as exc:
            raise exc from None
    except httpcore.ConnectError as exc:
        assert exc.__cause__ is None and transport_error_kind(exc) is ErrorKind.CERTIFICATE


@pytest.mark.parametrize(("exc", "kind"), [
    (dns.resolver.NXDOMAIN(), ErrorKind.DNS_NXDOMAIN),
    (dns.resolver.NoNameservers(), ErrorKind.DNS_SERVFAIL),
    (dns.resolver.LifetimeTimeout(timeout=1.0, errors=[]), ErrorKind.TIMEOUT),
    (dns.exception.Timeout(), ErrorKind.TIMEOUT),
    (dns.exception.FormError("NXDOMAIN"), ErrorKind.PROTOCOL),
    (DNSFailure("timed out", ErrorKind.DNS_SERVFAIL), ErrorKind.DNS_SERVFAIL),
    (dns.exception.DNSException("SERVFAIL"), ErrorKind.DNS),
])
def test_dns_errors_are_kinded_by_class(exc: BaseException, kind: ErrorKind):
    assert dns_error_kind(exc) is kind


def test_rcodes_have_kinds():
    assert rcode_kind(dns.rcode.SERVFAIL) is ErrorKind.DNS_SERVFAIL
    assert rcode_kind(dns.rcode.REFUSED) is ErrorKind.DNS_SERVFAIL
    assert rcode_kind(dns.rcode.NXDOMAIN) is ErrorKind.DNS_NXDOMAIN
    assert rcode_kind(dns.rcode.FORMERR) is ErrorKind.DNS


def test_nsec_type_bitmaps_are_read_from_the_rdata():
    nsec = dns.rdata.from_text("IN", "NSEC", "b.example. A NS SOA RRSIG NSEC DNSKEY TYPE1234")
    assert has_type(nsec, dns.rdatatype.NS) and has_type(nsec, dns.rdatatype.DNSKEY) and has_type(nsec, 1234)
    assert not has_type(nsec, dns.rdatatype.DS) and not has_type(nsec, 1235)
    nsec3 = dns.rdata.from_text("IN", "NSEC3", "1 0 0 - 2T7B4G4VSA5SMI47K61MV5BV1A22BOJR NS DS RRSIG")
    assert has_type(nsec3, dns.rdatatype.DS) and not has_type(nsec3, dns.rdatatype.SOA)
    # a next-owner name spelled like a type is not a type
    assert not has_type(dns.rdata.from_text("IN", "NSEC", "ds.example. A"), dns.rdatatype.DS)


def test_reports_show_the_kind_and_the_message_of_error_findings():
    import io
    import json

    from rich.console import Console

    from scanner.plugins import check_metadata
    from scanner.reporters.csv_report import CsvReporter
    from scanner.reporters.html import HtmlReporter
    from scanner.reporters.json_report import JsonReporter
    from scanner.reporters.terminal import print_summary
    from tests.testbed.reports import make_report, make_target

    why = "the https:// request failed (timed out)"
    report = make_report(make_target("endpoint", "https://x.example/", {
        "H2": check_metadata()["http-hsts"].errors(why, kind=ErrorKind.TIMEOUT)}))
    (f,) = [f for f in json.loads(JsonReporter().render(report))["targets"][0]["findings"]
            if f["control"] == "H2"]
    assert f["status"] == "error" and f["error_kind"] == "timeout" and f["detail"] == why
    row = next(r for r in CsvReporter().render(report).splitlines() if ",H2," in r)
    assert row.endswith(",timeout") and why in row
    assert '<code class="error-kind">timeout</code> <span>Could not be assessed: ' + why in \
        HtmlReporter().render(report)
    buf = io.StringIO()
    print_summary(report, Console(file=buf, width=200))
    assert f"https://x.example/: H2 (timeout): {why}" in buf.getvalue()
