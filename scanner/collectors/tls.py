"""The tls collector: one quick handshake probe of our own, then a fast prober and sslyze 6.3 (in a
worker thread).

1. A first TLS handshake (asyncio + ``ssl``, timed per phase) classifies the endpoint: completed, refused,
   reset, timeout (TCP or a stalled handshake), not TLS (garbage). When it cannot reach TLS at all, a HEAD
   to http://HOST/ through the shared fetcher tells T1 whether the host is reachable otherwise, and
   nothing else is started (so a hostile server costs one connection and ``settings.timeout``).
2. The fast prober (``tls_probe``, on sslyze's own nassl connections) settles each protocol in one
   handshake per client, and lists the accepted suites of accepted protocols by elimination (accepted
   count + 1 handshakes instead of one per suite). What it cannot settle (errors, timeouts, odd answers)
   is left to sslyze's one-connection-per-suite enumeration, never guessed.
3. sslyze runs the other scan commands T1-T6 need (and the suite enumeration of unsettled protocols);
   the EC groups are then found by elimination too, from sslyze's own connectivity result (sslyze's
   one-connection-per-curve test runs only when that is inconclusive). sslyze runs
   against the address the engine resolved (honouring ``--resolve``), with Mozilla's store plus
   ``--ca-bundle``, ``settings.timeout`` as its network timeout, one retry, and
   ``settings.per_host_connections`` as its per-server connection cap. Its results are converted into our
   own evidence model right here: nothing of sslyze leaves this module.

TLS connections are counted per host into ``ctx.stats.tls_connections``, exactly: every connection the
prober and sslyze open passes the address's politeness gate (``tls_gate``: one request of the address's
rate each), which counts it; the estimate from the work done (one connection per suite and curve tested,
fixed numbers for the other commands) remains only for sslyze runs outside a scan (``scan_blocking`` alone).
The TLS probers take half of the address's connection cap (``politeness.tls_share``), so the HTTP probes
of the same address go on beside them. ``FAST_PROBE = False`` (tests and bench only) leaves every suite
to sslyze.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scanner.collectors import tls_gate, tls_probe
from scanner.collectors.tls_probe import ProtocolProbe
from scanner.evidence.tls import (
    MAX_CHAIN,
    MAX_DEPLOYMENTS,
    MAX_LIST,
    MAX_SUITES,
    Certificate,
    CertificateDeployment,
    CipherSuite,
    Groups,
    Handshake,
    KeyExchange,
    ProtocolResult,
    TLSEvidence,
    TrustValidation,
    ValidationProblem,
    Vulnerabilities,
    VulnTest,
    bound,
)
from scanner.models import Target
from scanner.net.context import ScanContext
from scanner.net.names import is_ip_literal
from scanner.net.politeness import tls_share
from scanner.settings import Settings

# Estimated connections for sslyze's fixed probes (see the module docstring).
_CONN_CONNECTIVITY = 4
_CONN_CERT_INFO = 4
_CONN_ROBOT = 12

_NOT_TLS_MARKERS = (
    "WRONG_VERSION_NUMBER",
    "UNKNOWN_PROTOCOL",
    "PACKET_LENGTH_TOO_LONG",
    "RECORD_LAYER_FAILURE",
    "HTTP_REQUEST",
    "wrong version number",
    "record layer failure",
    "packet length too long",
)
_RESET_MARKERS = ("UNEXPECTED_EOF", "EOF occurred", "unexpected eof", "Connection reset")


async def collect(
    target: Target, ctx: ScanContext, addresses: tuple[str, ...], prior: dict[str, Any]
) -> TLSEvidence:
    """Collect TLS evidence for one endpoint. Never raises for network trouble."""
    host = target.host
    port = target.port or 443
    now = datetime.now(UTC)
    base: dict[str, Any] = {"hostname": host, "port": port, "scanned_at": now, "prober": _prober_name()}
    if not addresses:
        return TLSEvidence(**base, error="no address to connect to")
    addr = addresses[0]
    base["address"] = addr
    if not ctx.fetcher.address_allowed(addr):
        return TLSEvidence(**base, error=f"refused to connect to internal address {addr} (not a target)")

    polite = ctx.politeness
    async with polite.connections(addr):
        await polite.request(addr)
        ctx.stats.tls_connections[host] += 1
        handshake = await probe_handshake(addr, port, host, ctx.settings.timeout)
    connections = 1
    if handshake.outcome not in ("completed", "failed"):
        handshake = await _with_http_probe(handshake, target, ctx)
        return TLSEvidence(
            **base,
            handshake=handshake,
            connections=connections,
            error=f"no TLS handshake: {handshake.reason}",
        )

    # The prober and sslyze open connections of their own: they take a share of the address's slots
    # (the HTTP probes of the address go on with the rest), and each of their handshakes passes the gate.
    share = tls_share(polite.budget.per_address_connections)
    async with polite.connections(addr, share) as held:
        settings = ctx.settings.model_copy(update={"per_host_connections": held})
        with tls_gate.gated(addr, port, host, polite, asyncio.get_running_loop()) as gate:
            evidence = await asyncio.to_thread(scan_blocking, host, port, addr, settings, base, handshake)
    if gate.connections:  # exact, where sslyze's part would otherwise be estimated
        evidence = evidence.model_copy(update={"connections": gate.connections})
    ctx.stats.tls_connections[host] += evidence.connections
    evidence = evidence.model_copy(update={"connections": evidence.connections + connections})
    if _profile_only(evidence):
        async with polite.connections(addr):
            await polite.request(addr)
            second = await openssl_validation(addr, port, host, ctx)
        ctx.stats.tls_connections[host] += 1
        evidence = evidence.model_copy(update={"openssl_validation": second,
                                               "connections": evidence.connections + 1})
    if evidence.handshake and evidence.handshake.outcome != "completed":
        hs = await _with_http_probe(evidence.handshake, target, ctx)
        evidence = evidence.model_copy(update={"handshake": hs})
    return evidence


def _profile_only(ev: TLSEvidence) -> bool:
    """Did the strict validator object to nothing but the certificate's profile (a store lacking the
    root, e.g. Mozilla's for a private CA given with --ca-bundle, may say "untrusted" meanwhile)?"""
    problems = {v.problem for d in ev.certificates for v in d.validations if not v.validated}
    return "profile" in problems and problems <= {"profile", "untrusted", "missing_intermediate"}


async def openssl_validation(addr: str, port: int, host: str, ctx: ScanContext) -> TrustValidation:
    """One handshake verified by OpenSSL (Mozilla's store via certifi, plus --ca-bundle; host name checked).

    OpenSSL, like browsers, does not enforce every RFC 5280 profile rule that cryptography's verifier
    does; its verdict tells a merely non-conforming certificate from one clients reject.
    """
    import certifi

    store = "OpenSSL (Mozilla" + (" + --ca-bundle)" if ctx.settings.ca_bundle else ")")
    try:
        c = ssl.create_default_context(cafile=certifi.where())
        if ctx.settings.ca_bundle:
            c.load_verify_locations(cafile=str(ctx.settings.ca_bundle))
    except (OSError, ssl.SSLError) as exc:
        return TrustValidation(store=store, validated=False, problem="other", error=bound(exc, 200))
    timeout = ctx.settings.timeout
    try:
        async with asyncio.timeout(timeout * 2):
            _, writer = await asyncio.open_connection(addr, port, ssl=c,
                                                      server_hostname=None if is_ip_literal(host) else host,
                                                      ssl_handshake_timeout=timeout)
    except ssl.SSLCertVerificationError as exc:
        return TrustValidation(store=store, validated=False, problem="other",
                               error=bound(exc.verify_message or exc, 200))
    except (TimeoutError, OSError, ssl.SSLError) as exc:
        return TrustValidation(store=store, validated=False, error=f"handshake failed: {bound(exc, 200)}")
    writer.close()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(1):
            await writer.wait_closed()
    return TrustValidation(store=store, validated=True)


# -- our own first handshake --------------------------------------------------------------------------


def _client_context() -> ssl.SSLContext:
    """Accept anything (this probe only asks "does TLS complete?"; validation is sslyze's job)."""
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    c.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    with contextlib.suppress(ssl.SSLError):
        c.set_ciphers("ALL:@SECLEVEL=0")
    return c


async def probe_handshake(addr: str, port: int, host: str, timeout: float) -> Handshake:
    """One TCP connection and one TLS handshake, each phase bounded by ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(addr, port)
    except TimeoutError:
        return Handshake(
            outcome="timeout", reason=f"TCP connection to {addr}:{port} timed out after {timeout:g}s"
        )
    except ConnectionRefusedError:
        return Handshake(outcome="refused", reason=f"connection to {addr}:{port} refused (nothing listening)")
    except OSError as exc:
        return Handshake(
            outcome="unreachable", reason=f"cannot connect to {addr}:{port}: {exc.strerror or exc}"
        )
    try:
        sni = None if is_ip_literal(host) else host
        try:
            async with asyncio.timeout(timeout):
                await writer.start_tls(_client_context(), server_hostname=sni, ssl_handshake_timeout=timeout)
        except TimeoutError:
            return Handshake(
                outcome="timeout",
                reason=f"TCP connected but the TLS handshake stalled (no answer in {timeout:g}s)",
            )
        except ssl.SSLError as exc:
            text = f"{exc.reason or ''} {exc}"
            if any(m in text for m in _NOT_TLS_MARKERS):
                return Handshake(
                    outcome="not_tls",
                    reason=f"the server answered with something that is not TLS "
                    f"({bound(exc.reason or exc, 120)})",
                )
            if any(m in text for m in _RESET_MARKERS):
                return Handshake(
                    outcome="reset", reason="the server closed the connection during the handshake"
                )
            return Handshake(
                outcome="failed", reason=f"TLS handshake failed: {bound(exc.reason or exc, 200)}"
            )
        except (ConnectionResetError, BrokenPipeError, EOFError):
            return Handshake(outcome="reset", reason="the server reset the connection during the handshake")
        except OSError as exc:
            return Handshake(
                outcome="reset", reason=f"connection error during the handshake: {bound(exc, 200)}"
            )
        tls = writer.get_extra_info("ssl_object")
        cipher = tls.cipher() if tls else None
        return Handshake(
            outcome="completed", protocol=tls.version() if tls else None, cipher=cipher[0] if cipher else None
        )
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1):
                await writer.wait_closed()
        del reader


async def _with_http_probe(hs: Handshake, target: Target, ctx: ScanContext) -> Handshake:
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


# -- sslyze -------------------------------------------------------------------------------------------


def _prober_name() -> str:
    try:
        from importlib.metadata import version

        return f"sslyze {version('sslyze')}"
    except Exception:
        return "sslyze"


_PROTOCOL_COMMANDS = {
    "SSLv2": "SSL_2_0_CIPHER_SUITES",
    "SSLv3": "SSL_3_0_CIPHER_SUITES",
    "TLSv1.0": "TLS_1_0_CIPHER_SUITES",
    "TLSv1.1": "TLS_1_1_CIPHER_SUITES",
    "TLSv1.2": "TLS_1_2_CIPHER_SUITES",
    "TLSv1.3": "TLS_1_3_CIPHER_SUITES",
}


# Set to False (tests and bench only) to let sslyze enumerate every protocol suite by suite.
FAST_PROBE = True


def scan_blocking(
    host: str,
    port: int,
    addr: str,
    settings: Settings,
    base: dict[str, Any] | None = None,
    first: Handshake | None = None,
    fast: bool | None = None,
) -> TLSEvidence:
    """Blocking (run it in a worker thread): the fast protocol/suite prober (``tls_probe``), then sslyze
    for everything else, converted into our evidence. ``fast=False`` leaves all suites to sslyze."""
    if base is None:
        base = {"hostname": host, "port": port, "address": addr, "prober": _prober_name()}
    first = first or Handshake(outcome="completed")
    probes: dict[str, ProtocolProbe] = {}
    notes: list[str] = []
    if FAST_PROBE if fast is None else fast:
        base = {**base, "prober": f"{base.get('prober') or _prober_name()} + fast prober"}
        try:
            probes = tls_probe.probe(host, port, addr, settings.timeout, settings.per_host_connections)
        except Exception as exc:  # a prober bug must not cost the scan: sslyze enumerates everything
            probes = {}
            notes.append(f"fast prober failed ({type(exc).__name__}: {exc}); sslyze enumerated every suite")
    settled = tls_probe.settled(probes)
    for proto, p in probes.items():
        if proto not in settled:
            notes.append(f"{proto}: fast prober inconclusive ({p.reason or p.outcome}); sslyze enumerated it")
    if notes:
        base = {**base, "notes": tuple(base.get("notes", ())) + tuple(notes)}
    fast_on = FAST_PROBE if fast is None else fast
    result = _run_sslyze(host, port, addr, settings, settled, curves=not fast_on)
    groups = None
    if fast_on and not isinstance(result, str) and result.scan_result is not None:
        groups = _fast_groups(result, host, port, addr, settings)
    return _convert(result, base, first, probes, groups)


def _fast_groups(result: Any, host: str, port: int, addr: str, settings: Settings) -> tuple[Groups, int]:
    """Blocking: the EC groups by elimination (``tls_probe.probe_curves``, fed sslyze's own connectivity
    result); when that is inconclusive, sslyze's one-connection-per-curve test."""
    from sslyze.server_connectivity import ServerConnectivityInfo

    info = ServerConnectivityInfo(
        server_location=result.server_location,
        network_configuration=result.network_configuration,
        tls_probing_result=result.connectivity_result,
    )
    try:
        found = tls_probe.probe_curves(info)
    except Exception as exc:  # a prober bug must not cost the scan
        found = tls_probe.CurveProbe(True, complete=False, reason=f"{type(exc).__name__}: {exc}")
    if found.complete:
        return Groups(ecdh_supported=found.ecdh_supported, curves=found.curves[:MAX_LIST]), found.connections
    again = _run_sslyze(host, port, addr, settings, frozenset(_PROTOCOL_COMMANDS), curves=True, others=False)
    n = found.connections + _CONN_CONNECTIVITY
    if isinstance(again, str):
        return Groups(error=again), n
    if again.scan_result is None:
        return Groups(error=f"TLS connection failed: {_trace_text(again.connectivity_error_trace)}"), n
    groups, m = _groups(again.scan_result.elliptic_curves)
    return groups, n + m


def _run_sslyze(
    host: str,
    port: int,
    addr: str,
    settings: Settings,
    skip: frozenset[str] = frozenset(),
    *,
    curves: bool = True,
    others: bool = True,
) -> Any:
    """Blocking: run the scan commands T1-T6 need (no suite enumeration for the protocols in ``skip``,
    no curve test unless ``curves``, nothing else unless ``others``); returns sslyze's ServerScanResult
    (or an error string)."""
    from sslyze import (
        CertificateInfoExtraArgument,
        ScanCommand,
        ScanCommandsExtraArguments,
        Scanner,
        ServerNetworkConfiguration,
        ServerNetworkLocation,
        ServerScanRequest,
    )

    suite_commands = {getattr(ScanCommand, c) for p, c in _PROTOCOL_COMMANDS.items() if p not in skip}
    commands = suite_commands | ({ScanCommand.ELLIPTIC_CURVES} if curves else set())
    if others:
        commands |= {
            ScanCommand.CERTIFICATE_INFO,
            ScanCommand.HEARTBLEED,
            ScanCommand.OPENSSL_CCS_INJECTION,
            ScanCommand.ROBOT,
            ScanCommand.SESSION_RENEGOTIATION,
            ScanCommand.TLS_COMPRESSION,
            ScanCommand.TLS_FALLBACK_SCSV,
        }
    extra = ScanCommandsExtraArguments()
    if settings.ca_bundle and others:
        try:
            extra = ScanCommandsExtraArguments(
                certificate_info=CertificateInfoExtraArgument(custom_ca_file=Path(settings.ca_bundle))
            )
        except ValueError as exc:
            return f"--ca-bundle unusable: {exc}"
    try:
        request = ServerScanRequest(
            server_location=ServerNetworkLocation(hostname=host, port=port, ip_address=addr),
            network_configuration=ServerNetworkConfiguration(
                tls_server_name_indication=host,
                network_timeout=max(1, round(settings.timeout)),
                network_max_retries=1,
                http_user_agent=settings.effective_user_agent,
            ),
            scan_commands=commands,
            scan_commands_extra_arguments=extra,
        )
        scanner = Scanner(
            per_server_concurrent_connections_limit=max(1, settings.per_host_connections),
            concurrent_server_scans_limit=1,
        )
        scanner.queue_scans([request])
        for result in scanner.get_results():
            return result
    except Exception as exc:  # sslyze bug or bad input: data, not a crash
        return f"sslyze failed: {type(exc).__name__}: {exc}"
    return "sslyze returned no result"


def _trace_text(trace: Any) -> str:
    if trace is None:
        return "unknown error"
    try:
        return bound("".join(trace.format_exception_only()).strip(), 300)
    except Exception:
        return bound(trace, 300)


_CONNECTIVITY_OUTCOMES = {
    "ConnectionToServerTimedOut": "timeout",
    "TlsHandshakeTimedOut": "timeout",
    "ServerRejectedConnection": "refused",
    "ServerRejectedTlsHandshake": "failed",
    "ServerTlsConfigurationNotSupported": "failed",
}


def _convert(
    result: Any,
    base: dict[str, Any],
    first: Handshake,
    probes: dict[str, ProtocolProbe] | None = None,
    fast_groups: tuple[Groups, int] | None = None,
) -> TLSEvidence:
    """sslyze's ServerScanResult (plus what the fast prober settled) -> our TLSEvidence."""
    probes = probes or {}
    probe_conns = sum(p.connections for p in probes.values())
    if isinstance(result, str):
        return TLSEvidence(**base, handshake=first, connections=probe_conns, error=result)
    if result.scan_result is None:
        trace = result.connectivity_error_trace
        kind = getattr(getattr(trace, "exc_type", None), "__name__", "")
        outcome = _CONNECTIVITY_OUTCOMES.get(kind, "failed")
        reason = f"TLS connection failed: {_trace_text(trace)}"
        hs = Handshake(outcome=outcome, reason=reason)  # type: ignore[arg-type]
        return TLSEvidence(
            **base, handshake=hs, connections=_CONN_CONNECTIVITY + probe_conns, error=reason
        )
    scan = result.scan_result
    probing = result.connectivity_result
    handshake = first
    if first.outcome != "completed":
        handshake = Handshake(
            outcome="completed",
            cipher=getattr(probing, "cipher_suite_supported", None),
            protocol=_tls_version_name(getattr(probing, "highest_tls_version_supported", None)),
        )
    connections = _CONN_CONNECTIVITY + probe_conns
    protocols = []
    for proto, cmd in _PROTOCOL_COMMANDS.items():
        probe = probes.get(proto)
        if probe is not None and probe.outcome == "rejected":
            protocols.append(ProtocolResult(protocol=proto, status="rejected"))
        elif probe is not None and probe.enumerated:
            protocols.append(_accepted(proto, list(probe.accepted)))
        else:
            pr, n = _protocol(proto, getattr(scan, cmd.lower()))
            protocols.append(pr)
            connections += n
    groups, n = fast_groups or _groups(scan.elliptic_curves)
    connections += n
    deployments, cert_error = _certificates(scan.certificate_info)
    connections += _CONN_CERT_INFO
    vulns, n = _vulnerabilities(scan)
    connections += n
    return TLSEvidence(
        **base,
        handshake=handshake,
        protocols=tuple(protocols),
        groups=groups,
        certificates=deployments,
        certificate_error=cert_error,
        vulnerabilities=vulns,
        connections=connections,
    )


def _tls_version_name(v: Any) -> str | None:
    if v is None:
        return None
    return {
        "SSL_2_0": "SSLv2",
        "SSL_3_0": "SSLv3",
        "TLS_1_0": "TLSv1.0",
        "TLS_1_1": "TLSv1.1",
        "TLS_1_2": "TLSv1.2",
        "TLS_1_3": "TLSv1.3",
    }.get(getattr(v, "name", ""), str(v))


def _attempt_error(attempt: Any) -> str | None:
    """None when the scan command completed, else a short reason."""
    status = getattr(getattr(attempt, "status", None), "value", None)
    if status == "COMPLETED" and attempt.result is not None:
        return None
    if status == "NOT_SCHEDULED":
        return "not run"
    reason = getattr(getattr(attempt, "error_reason", None), "value", "error")
    return bound(f"{reason}: {_trace_text(getattr(attempt, 'error_trace', None))}", 300)


def _protocol(proto: str, attempt: Any) -> tuple[ProtocolResult, int]:
    err = _attempt_error(attempt)
    if err:
        return ProtocolResult(protocol=proto, status="error", error=err), 1
    res = attempt.result
    accepted = list(res.accepted_cipher_suites)
    tried = len(accepted) + len(res.rejected_cipher_suites)
    return _accepted(proto, accepted), tried


def _accepted(proto: str, accepted: list[Any]) -> ProtocolResult:
    """sslyze's CipherSuiteAcceptedByServer list (sorted as sslyze sorts it) -> our ProtocolResult."""
    suites = tuple(
        suite_info(a.cipher_suite.name, proto, a.cipher_suite.is_anonymous, a.ephemeral_key)
        for a in accepted[:MAX_SUITES]
    )
    return ProtocolResult(
        protocol=proto,
        status="accepted" if accepted else "rejected",
        suites=suites,
        suites_truncated=len(accepted) > MAX_SUITES,
    )


def suite_info(name: str, proto: str, anonymous: bool = False, ephemeral: Any = None) -> CipherSuite:
    """Classify one IANA-named suite: key exchange, forward secrecy, AEAD, and why it is weak."""
    upper = name.upper()
    if proto == "TLSv1.3":
        kx = "TLS1.3"
    elif "_WITH_" in upper:
        kx = upper.split("_WITH_")[0].removeprefix("TLS_").removeprefix("SSL_")
    else:
        kx = "SSLv2" if upper.startswith("SSL_CK_") else "unknown"
    fs = kx == "TLS1.3" or kx.startswith(("ECDHE", "DHE"))
    aead = any(m in upper for m in ("_GCM", "_CCM", "CHACHA20_POLY1305"))
    weak = []
    if "NULL" in upper.split("_WITH_")[-1] or "_NULL_" in upper:
        weak.append("NULL")
    if anonymous or "_ANON_" in upper:
        weak.append("anonymous")
    if "EXPORT" in upper:
        weak.append("EXPORT")
    if "RC4" in upper:
        weak.append("RC4")
    if "3DES" in upper or "DES_192_EDE3" in upper:
        weak.append("3DES")
    elif "_DES" in upper or "DES40" in upper:
        weak.append("DES")
    if upper.endswith("_MD5"):
        weak.append("MD5")
    eph = None
    if ephemeral is not None:
        kind = getattr(ephemeral, "type_name", "") or ""
        eph = KeyExchange(
            kind=kind, bits=getattr(ephemeral, "size", None), curve=getattr(ephemeral, "curve_name", None)
        )
    return CipherSuite(
        name=name, key_exchange=kx, forward_secrecy=fs, aead=aead, weak=tuple(weak), ephemeral=eph
    )


def _groups(attempt: Any) -> tuple[Groups, int]:
    err = _attempt_error(attempt)
    if err:
        return Groups(error=err), 1
    res = attempt.result
    supported = [c.name for c in (res.supported_curves or [])]
    rejected = res.rejected_curves or []
    return Groups(ecdh_supported=res.supports_ecdh_key_exchange, curves=tuple(supported[:MAX_LIST])), 1 + len(
        supported
    ) + len(rejected)


def _certificates(attempt: Any) -> tuple[tuple[CertificateDeployment, ...], str | None]:
    err = _attempt_error(attempt)
    if err:
        return (), err
    res = attempt.result
    out = []
    for dep in list(res.certificate_deployments)[:MAX_DEPLOYMENTS]:
        chain = list(dep.received_certificate_chain)
        certs = tuple(certificate_info(c) for c in chain[:MAX_CHAIN])
        validations = []
        for pv in dep.path_validation_results:
            store = pv.trust_store.name
            if store not in ("Mozilla", "Supplied CA file"):
                continue  # the spec asks for Mozilla's store plus the user's bundle
            validations.append(_validation(pv, certs))
        out.append(
            CertificateDeployment(
                chain=certs,
                chain_truncated=len(chain) > MAX_CHAIN,
                validations=tuple(validations),
                chain_order_valid=dep.received_chain_has_valid_order,
            )
        )
    if not out:
        return (), "the server sent no certificate"
    return tuple(out), None


def _validation(pv: Any, chain: tuple[Certificate, ...]) -> TrustValidation:
    store = "Mozilla" if pv.trust_store.name == "Mozilla" else "--ca-bundle"
    version = None if pv.trust_store.version in (None, "N/A") else str(pv.trust_store.version)
    if pv.was_validation_successful:
        subjects = tuple(_subject(c) for c in pv.verified_certificate_chain or [])
        return TrustValidation(store=store, store_version=version, validated=True, verified_chain=subjects)
    error = pv.validation_error or "validation failed"
    return TrustValidation(
        store=store,
        store_version=version,
        validated=False,
        error=error,
        problem=classify_validation_error(error, chain),
    )


_PROFILE_PHRASES = ("invalid extension", "incorrect criticality", "missing required extension",
                    "duplicate extension", "unsupported critical extension", "invalid key usage",
                    "policy violation")


def classify_validation_error(error: str, chain: tuple[Certificate, ...]) -> ValidationProblem:
    """Name the reason a chain did not validate, from cryptography's message and the chain served.

    cryptography reports "candidates exhausted" both for a self-signed leaf and for an issuer it cannot
    find; the chain itself tells them apart (OpenSSL's "unable to get local issuer certificate" is the
    leaf-only chain whose issuer is not in the store: a missing intermediate).
    """
    low = error.lower()
    if " must " in f" {low} " or "must not" in low or any(p in low for p in _PROFILE_PHRASES):
        # RFC 5280 / CA/B profile rules (e.g. "EE subjectAltName MUST NOT be critical when subject is
        # nonempty", a CA's basicConstraints not marked critical: "invalid extension: 2.5.29.19:
        # Certificate extension has incorrect criticality"), even when cryptography words them as
        # "candidates exhausted"; checked before the host name, whose test shares the word subjectAltName.
        return "profile"
    if "subjectaltname" in low or "does not match" in low or "hostname" in low:
        return "hostname_mismatch"
    if "not valid at validation time" in low or "expired" in low:
        now = datetime.now(UTC)
        if any(c.not_before and c.not_before > now for c in chain):
            return "not_yet_valid"
        return "expired"
    if "signature algorithm" in low:
        return "weak_signature"
    if chain and chain[0].self_issued and len(chain) == 1:
        return "self_signed"
    if "candidates exhausted" in low or "issuer" in low:
        last = chain[-1] if chain else None
        if last is not None and not last.self_issued and not last.is_ca:
            return "missing_intermediate"
        return "untrusted"
    return "other"


def _subject(cert: Any) -> str:
    try:
        return cert.subject.rfc4514_string()
    except Exception:
        return "(unparseable name)"


def certificate_info(cert: Any) -> Certificate:
    """A cryptography ``x509.Certificate`` -> our ``Certificate`` record (defensive: servers send junk)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

    subject = _subject(cert)
    try:
        issuer = cert.issuer.rfc4514_string()
    except Exception:
        issuer = "(unparseable name)"
    sans: list[str] = []
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = [str(v) for v in ext.get_values_for_type(x509.DNSName)]
        sans += [str(v) for v in ext.get_values_for_type(x509.IPAddress)]
    except Exception:
        pass
    key_type, bits, curve = "other", None, None
    try:
        pub = cert.public_key()
        if isinstance(pub, rsa.RSAPublicKey):
            key_type, bits = "RSA", pub.key_size
        elif isinstance(pub, ec.EllipticCurvePublicKey):
            key_type, bits, curve = "EC", pub.key_size, pub.curve.name
        elif isinstance(pub, ed25519.Ed25519PublicKey):
            key_type, bits = "Ed25519", 256
        elif isinstance(pub, ed448.Ed448PublicKey):
            key_type, bits = "Ed448", 456
        elif isinstance(pub, dsa.DSAPublicKey):
            key_type, bits = "DSA", pub.key_size
    except Exception:
        pass
    try:
        sig_alg = cert.signature_algorithm_oid._name or cert.signature_algorithm_oid.dotted_string
    except Exception:
        sig_alg = "unknown"
    try:
        h = cert.signature_hash_algorithm
        sig_hash = h.name if h is not None else None
    except Exception:
        low = sig_alg.lower()
        sig_hash = "md5" if "md5" in low else "sha1" if "sha1" in low else None
    is_ca = bool(_safe(lambda: cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca))
    try:
        self_issued = cert.subject == cert.issuer
    except Exception:
        self_issued = False
    return Certificate(
        subject=subject,
        issuer=issuer,
        sans=tuple(sans[:MAX_LIST]),
        key_type=key_type,
        key_bits=bits,
        curve=curve,
        signature_algorithm=sig_alg,
        signature_hash=sig_hash,
        not_before=_safe(lambda: cert.not_valid_before_utc),
        not_after=_safe(lambda: cert.not_valid_after_utc),
        sha256=cert.fingerprint(hashes.SHA256()).hex(),
        is_ca=is_ca,
        self_issued=self_issued,
    )


def _safe(fn: Any) -> Any:
    try:
        return fn()
    except Exception:
        return None


def _vulnerabilities(scan: Any) -> tuple[Vulnerabilities, int]:
    n = 0

    def one(attempt: Any, value: Any, detail: Any = None, conns: int = 1) -> VulnTest:
        nonlocal n
        err = _attempt_error(attempt)
        n += conns if not err else 1
        if err:
            return VulnTest(error=err)
        return VulnTest(value=value(attempt.result), detail=detail(attempt.result) if detail else None)

    robot_bad = {"VULNERABLE_WEAK_ORACLE", "VULNERABLE_STRONG_ORACLE"}
    reneg = scan.session_renegotiation
    reneg_count = getattr(reneg.result, "client_renegotiations_success_count", 0) if reneg.result else 0
    v = Vulnerabilities(
        heartbleed=one(scan.heartbleed, lambda r: r.is_vulnerable_to_heartbleed),
        ccs_injection=one(scan.openssl_ccs_injection, lambda r: r.is_vulnerable_to_ccs_injection),
        robot=_robot(scan.robot, robot_bad),
        insecure_renegotiation=one(
            reneg, lambda r: not r.supports_secure_renegotiation, conns=2 + reneg_count
        ),
        client_renegotiation_dos=VulnTest(error=_attempt_error(reneg))
        if _attempt_error(reneg)
        else VulnTest(
            value=reneg.result.is_vulnerable_to_client_renegotiation_dos,
            detail=f"{reneg.result.client_renegotiations_success_count} client renegotiations accepted",
        ),
        compression=one(scan.tls_compression, lambda r: r.supports_compression),
        fallback_scsv=one(scan.tls_fallback_scsv, lambda r: r.supports_fallback_scsv),
    )
    return v, n + _CONN_ROBOT


def _robot(attempt: Any, bad: set[str]) -> VulnTest:
    err = _attempt_error(attempt)
    if err:
        return VulnTest(error=err)
    name = getattr(attempt.result.robot_result, "value", str(attempt.result.robot_result))
    if name == "UNKNOWN_INCONSISTENT_RESULTS":
        return VulnTest(error="ROBOT test gave inconsistent results", detail=name)
    return VulnTest(value=name in bad, detail=name)
