"""sslyze's results (and what the elimination prober settled) -> our raw TLS evidence.

Facts only: what was accepted, what was sent, what each validator said. The judgments (which suites are
weak, why a chain did not validate) are the checks' (``checks/lib/tls.py``), so a stored run can be judged
again. sslyze's result objects are read by attribute; nothing of sslyze leaves this module.
"""

from __future__ import annotations

from typing import Any

from scanner.collectors.tls import sslyze_adapter as sa
from scanner.collectors.tls.prober import ProtocolProbe
from scanner.errors import ErrorKind
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
    Vulnerabilities,
    VulnTest,
    bound,
)

# Estimated connections for sslyze's fixed probes (sslyze exposes no count; see the package docstring).
CONN_CONNECTIVITY = 4
CONN_CERT_INFO = 4
CONN_ROBOT = 12

PROTOCOL_COMMANDS = {
    "SSLv2": "SSL_2_0_CIPHER_SUITES",
    "SSLv3": "SSL_3_0_CIPHER_SUITES",
    "TLSv1.0": "TLS_1_0_CIPHER_SUITES",
    "TLSv1.1": "TLS_1_1_CIPHER_SUITES",
    "TLSv1.2": "TLS_1_2_CIPHER_SUITES",
    "TLSv1.3": "TLS_1_3_CIPHER_SUITES",
}


def trace_text(trace: Any) -> str:
    if trace is None:
        return "unknown error"
    try:
        return bound("".join(trace.format_exception_only()).strip(), 300)
    except Exception:
        return bound(trace, 300)


_CONNECTIVITY_OUTCOMES: tuple[tuple[type, str, ErrorKind], ...] = (
    (sa.ConnectionToServerTimedOut, "timeout", ErrorKind.TIMEOUT),
    (sa.TlsHandshakeTimedOut, "timeout", ErrorKind.TIMEOUT),
    (sa.ServerRejectedConnection, "refused", ErrorKind.REFUSED),
    (sa.ServerRejectedTlsHandshake, "failed", ErrorKind.TLS_ALERT),
    (sa.ServerTlsConfigurationNotSupported, "failed", ErrorKind.TLS),
)


def _connectivity_outcome(trace: Any) -> tuple[str, ErrorKind]:
    """(handshake outcome, error kind) of sslyze's failed connectivity test, from the exception class."""
    exc_type = getattr(trace, "exc_type", None)
    for cls, outcome, kind in _CONNECTIVITY_OUTCOMES:
        if isinstance(exc_type, type) and issubclass(exc_type, cls):
            return outcome, kind
    return "failed", ErrorKind.UNKNOWN


def convert(
    result: Any,
    base: dict[str, Any],
    first: Handshake,
    probes: dict[str, ProtocolProbe] | None = None,
    fast_groups: tuple[Groups, int] | None = None,
    skipped: dict[str, str] | None = None,
) -> TLSEvidence:
    """sslyze's ServerScanResult (plus what the fast prober settled) -> our TLSEvidence. ``skipped``: the
    vulnerability tests not run because they cannot apply (``Vulnerabilities`` field -> why)."""
    probes = probes or {}
    probe_conns = sum(p.connections for p in probes.values())
    if isinstance(result, str):
        return TLSEvidence(**base, handshake=first, connections=probe_conns, error=result,
                           error_kind=ErrorKind.UNKNOWN)
    if result.scan_result is None:
        trace = result.connectivity_error_trace
        outcome, kind = _connectivity_outcome(trace)
        reason = f"TLS connection failed: {trace_text(trace)}"
        hs = Handshake(outcome=outcome, reason=reason, error_kind=kind)  # type: ignore[arg-type]
        return TLSEvidence(
            **base, handshake=hs, connections=CONN_CONNECTIVITY + probe_conns, error=reason, error_kind=kind
        )
    scan = result.scan_result
    probing = result.connectivity_result
    handshake = first
    if first.outcome != "completed":
        handshake = Handshake(
            outcome="completed",
            cipher=getattr(probing, "cipher_suite_supported", None),
            protocol=sa.protocol_name(getattr(probing, "highest_tls_version_supported", None)),
        )
    connections = CONN_CONNECTIVITY + probe_conns
    protocols = []
    for proto, cmd in PROTOCOL_COMMANDS.items():
        probe = probes.get(proto)
        if probe is not None and probe.outcome == "rejected":
            protocols.append(ProtocolResult(protocol=proto, status="rejected"))
        elif probe is not None and probe.enumerated:
            protocols.append(_accepted(proto, list(probe.accepted), probe.complete))
        else:
            pr, n = _protocol(proto, getattr(scan, cmd.lower()))
            protocols.append(pr)
            connections += n
    groups, n = fast_groups or groups_of(scan.elliptic_curves)
    connections += n
    deployments, cert_error = _certificates(scan.certificate_info)
    connections += CONN_CERT_INFO
    vulns, n = _vulnerabilities(scan)
    connections += n
    if skipped:
        vulns = vulns.model_copy(update={key: not_applicable(key, why) for key, why in skipped.items()})
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


def _attempt_error(attempt: Any) -> str | None:
    """None when the scan command completed, else a short reason."""
    status = getattr(getattr(attempt, "status", None), "value", None)
    if status == "COMPLETED" and attempt.result is not None:
        return None
    if status == "NOT_SCHEDULED":
        return "not run"
    reason = getattr(getattr(attempt, "error_reason", None), "value", "error")
    return bound(f"{reason}: {trace_text(getattr(attempt, 'error_trace', None))}", 300)


def _protocol(proto: str, attempt: Any) -> tuple[ProtocolResult, int]:
    err = _attempt_error(attempt)
    if err:
        return ProtocolResult(protocol=proto, status="error", error=err), 1
    res = attempt.result
    accepted = list(res.accepted_cipher_suites)
    tried = len(accepted) + len(res.rejected_cipher_suites)
    return _accepted(proto, accepted), tried


def _accepted(proto: str, accepted: list[Any], complete: bool = True) -> ProtocolResult:
    """sslyze's CipherSuiteAcceptedByServer list (sorted as sslyze sorts it) -> our ProtocolResult."""
    suites = tuple(
        suite_info(a.cipher_suite.name, proto, a.ephemeral_key)
        for a in accepted[:MAX_SUITES]
    )
    return ProtocolResult(
        protocol=proto,
        status="accepted" if accepted else "rejected",
        suites=suites,
        suites_truncated=len(accepted) > MAX_SUITES,
        suites_complete=complete,
    )


def suite_info(name: str, proto: str, ephemeral: Any = None) -> CipherSuite:
    """One IANA-named suite as accepted, with the ephemeral key the server chose. What the suite is made
    of (key exchange, forward secrecy, AEAD) is not recorded: the checks read it from the suite data
    (``checks/lib/tls_suites.json``) by name. ``proto`` is kept for callers."""
    del proto
    eph = None
    if ephemeral is not None:
        kind = getattr(ephemeral, "type_name", "") or ""
        eph = KeyExchange(
            kind=kind, bits=getattr(ephemeral, "size", None), curve=getattr(ephemeral, "curve_name", None)
        )
    return CipherSuite(name=name, ephemeral=eph)


def groups_of(attempt: Any) -> tuple[Groups, int]:
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
            validations.append(_validation(pv))
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


def _validation(pv: Any) -> TrustValidation:
    store = "Mozilla" if pv.trust_store.name == "Mozilla" else "--ca-bundle"
    version = None if pv.trust_store.version in (None, "N/A") else str(pv.trust_store.version)
    if pv.was_validation_successful:
        subjects = tuple(_subject(c) for c in pv.verified_certificate_chain or [])
        return TrustValidation(store=store, store_version=version, validated=True, verified_chain=subjects)
    return TrustValidation(
        store=store,
        store_version=version,
        validated=False,
        error=pv.validation_error or "validation failed",
        error_kind=ErrorKind.CERTIFICATE,
    )


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


# Flaws that cannot exist on a server that does not offer what they need: sslyze's own test would report
# them absent (ROBOT says NOT_VULNERABLE_RSA_NOT_SUPPORTED without an RSA key exchange suite).
_ABSENT_WHEN_SKIPPED = {"heartbleed", "ccs_injection", "robot"}


def not_applicable(key: str, why: str) -> VulnTest:
    """The record of a vulnerability test not run because it cannot apply (``why``)."""
    if key == "robot":
        return VulnTest(value=False, detail="NOT_VULNERABLE_RSA_NOT_SUPPORTED")
    return VulnTest(value=False if key in _ABSENT_WHEN_SKIPPED else None, detail=f"not run: {why}")


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
    return v, n + CONN_ROBOT


def _robot(attempt: Any, bad: set[str]) -> VulnTest:
    err = _attempt_error(attempt)
    if err:
        return VulnTest(error=err)
    name = getattr(attempt.result.robot_result, "value", str(attempt.result.robot_result))
    if name == "UNKNOWN_INCONSISTENT_RESULTS":
        return VulnTest(error="ROBOT test gave inconsistent results", detail=name)
    return VulnTest(value=name in bad, detail=name)
