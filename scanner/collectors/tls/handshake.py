"""Our own handshakes (asyncio + ``ssl``): the first probe that classifies the endpoint, the port-80 probe
when TLS cannot be reached, and OpenSSL's validation of the certificate (as browsers see it).

Failures are classified by the one mapping the fetcher uses too (``scanner.net.error_kinds``): from
exception types and OpenSSL's reason codes (``ssl.SSLError.reason``, ``SSLCertVerificationError.verify_code``,
``OSError.errno``), never from message text.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from functools import cache
from pathlib import Path

from scanner.errors import ErrorKind
from scanner.evidence.tls import Handshake, TrustValidation, bound
from scanner.models import Target
from scanner.net.context import ScanContext
from scanner.net.error_kinds import transport_error_kind as handshake_error_kind
from scanner.net.names import is_ip_literal


@cache
def _verifying_context(ca_bundle: Path | None) -> ssl.SSLContext:
    """OpenSSL with Mozilla's store (certifi) plus ``ca_bundle``: built once per process and bundle."""
    import certifi

    c = ssl.create_default_context(cafile=certifi.where())
    if ca_bundle:
        c.load_verify_locations(cafile=str(ca_bundle))
    return c


async def openssl_validation(addr: str, port: int, host: str, ctx: ScanContext) -> TrustValidation:
    """One handshake verified by OpenSSL (Mozilla's store via certifi, plus --ca-bundle; host name checked).

    OpenSSL, like browsers, does not enforce every RFC 5280 profile rule that cryptography's verifier
    does; its verdict tells a merely non-conforming certificate from one clients reject.
    """
    store = "OpenSSL (Mozilla" + (" + --ca-bundle)" if ctx.settings.ca_bundle else ")")
    try:
        c = _verifying_context(Path(ctx.settings.ca_bundle) if ctx.settings.ca_bundle else None)
    except (OSError, ssl.SSLError) as exc:
        return TrustValidation(store=store, validated=False, error_kind=ErrorKind.UNKNOWN,
                               error=bound(exc, 200))
    timeout = ctx.settings.timeout
    try:
        async with asyncio.timeout(timeout * 2):
            _, writer = await asyncio.open_connection(addr, port, ssl=c,
                                                      server_hostname=None if is_ip_literal(host) else host,
                                                      ssl_handshake_timeout=timeout)
    except ssl.SSLCertVerificationError as exc:
        return TrustValidation(store=store, validated=False, error_kind=ErrorKind.CERTIFICATE,
                               verify_code=exc.verify_code, error=bound(exc.verify_message or exc, 200))
    except (TimeoutError, OSError, ssl.SSLError) as exc:
        return TrustValidation(store=store, validated=False, error_kind=handshake_error_kind(exc),
                               error=f"handshake failed: {bound(exc, 200)}")
    writer.close()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(1):
            await writer.wait_closed()
    return TrustValidation(store=store, validated=True)


# -- our own first handshake --------------------------------------------------------------------------


@cache
def _client_context() -> ssl.SSLContext:
    """Accept anything (this probe only asks "does TLS complete?"; validation comes later). Built once."""
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    c.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    with contextlib.suppress(ssl.SSLError):
        c.set_ciphers("ALL:@SECLEVEL=0")
    return c


async def probe_handshake(addr: str, port: int, host: str, timeout: float,
                          known: Callable[[Handshake], None] | None = None) -> Handshake:
    """One TCP connection and one TLS handshake, each phase bounded by ``timeout``. ``known`` is told the
    outcome of a connection that reached the TLS handshake as soon as it is known, before the connection
    is closed (a round trip more)."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(addr, port)
    except TimeoutError:
        return Handshake(outcome="timeout", error_kind=ErrorKind.TIMEOUT,
                         reason=f"TCP connection to {addr}:{port} timed out after {timeout:g}s")
    except ConnectionRefusedError:
        return Handshake(outcome="refused", error_kind=ErrorKind.REFUSED,
                         reason=f"connection to {addr}:{port} refused (nothing listening)")
    except OSError as exc:
        return Handshake(outcome="unreachable", error_kind=ErrorKind.CONNECT,
                         reason=f"cannot connect to {addr}:{port}: {exc.strerror or exc}")
    try:
        result = await _tls_handshake(writer, host, timeout)
        if known is not None:
            known(result)
        return result
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1):
                await writer.wait_closed()
        del reader


async def _tls_handshake(writer: asyncio.StreamWriter, host: str, timeout: float) -> Handshake:
    """The TLS handshake over the connected ``writer`` (our client context), classified."""
    sni = None if is_ip_literal(host) else host
    try:
        async with asyncio.timeout(timeout):
            await writer.start_tls(_client_context(), server_hostname=sni, ssl_handshake_timeout=timeout)
    except TimeoutError:
        return Handshake(
            outcome="timeout",
            error_kind=ErrorKind.TIMEOUT,
            reason=f"TCP connected but the TLS handshake stalled (no answer in {timeout:g}s)",
        )
    except (ssl.SSLError, OSError, EOFError) as exc:
        return _failed_handshake(exc)
    tls = writer.get_extra_info("ssl_object")
    cipher = tls.cipher() if tls else None
    return Handshake(
        outcome="completed", protocol=tls.version() if tls else None, cipher=cipher[0] if cipher else None
    )


def _failed_handshake(exc: BaseException) -> Handshake:
    """The Handshake of a TLS handshake that raised ``exc`` (TCP had connected)."""
    kind = handshake_error_kind(exc)
    text = bound(getattr(exc, "reason", None) or exc, 200)
    if kind == ErrorKind.PROTOCOL:
        return Handshake(outcome="not_tls", error_kind=kind,
                         reason=f"the server answered with something that is not TLS ({bound(text, 120)})")
    if kind == ErrorKind.RESET and isinstance(exc, ssl.SSLError):
        return Handshake(outcome="reset", error_kind=kind,
                         reason="the server closed the connection during the handshake")
    if isinstance(exc, ssl.SSLError):
        return Handshake(outcome="failed", error_kind=kind, reason=f"TLS handshake failed: {text}")
    if kind == ErrorKind.RESET:
        return Handshake(outcome="reset", error_kind=kind,
                         reason="the server reset the connection during the handshake")
    return Handshake(outcome="reset", error_kind=kind,
                     reason=f"connection error during the handshake: {text}")


async def with_http_probe(hs: Handshake, target: Target, ctx: ScanContext) -> Handshake:
    """Record whether the host answers plain HTTP on its HTTP port (80 unless the target says otherwise):
    T1 is a fail when the host is reachable but has no TLS, an error when it is not reachable at all."""
    http_port = getattr(target, "http_port", 80) or 80
    if (target.port or 443) == http_port:
        return hs
    netloc = f"[{target.host}]" if ":" in target.host else target.host
    url = f"http://{netloc}/" if http_port == 80 else f"http://{netloc}:{http_port}/"
    resp = await ctx.fetcher.fetch(url, method="HEAD")
    if resp.status is not None:
        return hs.model_copy(
            update={"http_port_answers": True, "http_probe": f"{url} answered HTTP {resp.status}"}
        )
    answers = resp.error_kind == "protocol"
    return hs.model_copy(
        update={"http_port_answers": answers, "http_probe": f"{url}: {bound(resp.error or 'no answer', 200)}"}
    )

