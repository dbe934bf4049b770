"""TLS checks T1-T6: pure functions of the TLS evidence (``scanner.evidence.tls``), no I/O."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from checks.lib import N_
from checks.lib.tls import (
    aead,
    forward_secrecy,
    key_exchange,
    mozilla_profiles,
    suite_weaknesses,
    validation_problem,
)
from scanner.evidence.tls import Certificate, CertificateDeployment, CipherSuite, TLSEvidence, TrustValidation
from scanner.models import Finding, Severity, Status
from scanner.plugins import CheckMeta, Needs, check

MAX_LISTED = 20  # suites named in one finding's evidence

_HANDSHAKE_ONLY = ("tls-handshake",)

# Fixes with a server line for nginx, Apache and IIS (where it differs); snippets between backticks.
TLS13_FIX = N_(
    "Offer TLS 1.3 beside TLS 1.2 (OpenSSL 1.1.1 or later).\n"
    "nginx: `ssl_protocols TLSv1.2 TLSv1.3;`\n"
    "Apache: `SSLProtocol -all +TLSv1.2 +TLSv1.3`\n"
    "IIS: Windows Server 2022 and later offer TLS 1.3 by default (check that no `TLS 1.3\\Server` key "
    "under `SCHANNEL\\Protocols` disables it); older Windows versions cannot offer it: put a reverse "
    "proxy or load balancer that does in front.")
DH_FIX = N_(
    "Use DH parameters of at least 2048 bits (RFC 7919 ffdhe2048), or drop the DHE suites in favour of "
    "ECDHE.\n"
    "nginx: `ssl_dhparam /etc/nginx/ffdhe2048.pem;`\n"
    "Apache: append the ffdhe2048 parameters to the file named by `SSLCertificateFile` (Apache 2.4.8 "
    "and later read them from there)\n"
    "IIS: set `ServerMinKeyBitLength` to 2048 (0x800) under "
    "`SCHANNEL\\KeyExchangeAlgorithms\\Diffie-Hellman`, or remove the `TLS_DHE_*` suites from the cipher "
    "suite order.")
CURVES_FIX = N_(
    "Offer only X25519, secp256r1 (P-256) and secp384r1.\n"
    "nginx: `ssl_ecdh_curve X25519:prime256v1:secp384r1;`\n"
    "Apache: `SSLOpenSSLConfCmd Curves X25519:prime256v1:secp384r1`\n"
    "IIS: keep only curve25519, NistP256 and NistP384 in the `ECC Curve Order` group policy (or use "
    "`Disable-TlsEccCurve` in PowerShell).")


def _no_handshake(ev: TLSEvidence) -> str | None:
    """Why the handshake cannot be judged: none was attempted."""
    return None if ev.handshake is not None else ev.error or "no TLS handshake was attempted"


def _unusable(ev: TLSEvidence) -> str | None:
    """Why the TLS evidence cannot be judged: no completed handshake, or the scan failed."""
    if ev.handshake is None or ev.handshake.outcome != "completed":
        reason = (ev.handshake.reason if ev.handshake and ev.handshake.reason else None) or ev.error
        return reason or "no TLS handshake"
    return ev.error


def _no_certificate(ev: TLSEvidence) -> str | None:
    """As ``_unusable``, and a certificate chain must have been retrieved."""
    why = _unusable(ev)
    if why:
        return why
    if ev.certificate_error:
        return f"certificate could not be retrieved: {ev.certificate_error}"
    if not _chains(ev):
        return "the server sent no certificate"
    return None


def _chains(ev: TLSEvidence) -> list[CertificateDeployment]:
    return [d for d in ev.certificates if d.chain]


ATTEMPTED = Needs("tls", _no_handshake)  # a handshake was attempted (T1 judges its outcome)
COMPLETED = Needs("tls", _unusable)  # a handshake completed and the scan ran
CERTIFIED = Needs("tls", _no_certificate)  # ... and a certificate chain was retrieved


# -- T1 -------------------------------------------------------------------------------------------------


@check("tls-handshake", needs=ATTEMPTED)
def handshake(ev: TLSEvidence, meta: CheckMeta) -> list[Finding]:
    hs = ev.handshake
    assert hs is not None
    where = f"{ev.address}:{ev.port}"
    evidence: dict[str, Any] = {
        "address": ev.address,
        "port": ev.port,
        "outcome": hs.outcome,
        "reason": hs.reason,
        "http_probe": hs.http_probe,
    }
    if hs.error_kind is not None:  # errors as data: the kind beside the message
        evidence["error_kind"] = str(hs.error_kind)
    if hs.outcome == "completed":
        return [
            meta.finding(
                Status.PASS,
                f"TLS handshake completed on port {ev.port}",
                f"Negotiated {hs.protocol or 'TLS'} with {hs.cipher or 'an unknown suite'}.",
                evidence={**evidence, "protocol": hs.protocol, "cipher": hs.cipher},
            )
        ]
    if hs.http_port_answers:
        return [
            meta.finding(
                Status.FAIL,
                f"The host answers plain HTTP but HTTPS on port {ev.port} does not work",
                f"{hs.reason or 'TLS handshake failed'} on {where}, "
                f"while {hs.http_probe or 'plain HTTP answers'}. "
                "Learners reach this site without encryption.",
                evidence=evidence,
            )
        ]
    return meta.errors(
        f"{hs.reason or 'TLS handshake failed'}; the host does not answer plain HTTP either, "
        "so it could not be reached",
        evidence=evidence,
        kind=hs.error_kind,
    )


# -- T2 -------------------------------------------------------------------------------------------------


@check("tls-protocols", needs=COMPLETED)
def protocols(ev: TLSEvidence, meta: CheckMeta) -> list[Finding]:
    if not ev.protocols:
        return meta.errors("protocol versions were not tested")
    offered = {
        "accepted": ev.accepted_protocols,
        "rejected": [p.protocol for p in ev.protocols if p.status == "rejected"],
        "errors": {p.protocol: p.error for p in ev.protocols if p.status == "error"},
    }
    out: list[Finding] = []
    for name, sev, why in (
        ("SSLv2", Severity.CRITICAL, "SSL 2.0 is broken (DROWN) and forbidden by RFC 6176"),
        ("SSLv3", Severity.CRITICAL, "SSL 3.0 is broken (POODLE) and forbidden by RFC 7568"),
        ("TLSv1.0", Severity.HIGH, "TLS 1.0 is deprecated by RFC 8996 (BEAST, weak hashes)"),
        ("TLSv1.1", Severity.HIGH, "TLS 1.1 is deprecated by RFC 8996"),
    ):
        p = ev.protocol(name)
        if p is not None and p.status == "accepted":
            out.append(
                meta.finding(
                    Status.FAIL,
                    f"{_label(name)} is offered",
                    f"{why}. Turn it off.",
                    severity=sev,
                    evidence={"protocol": name, **offered},
                )
            )
    modern = [ev.protocol(n) for n in ("TLSv1.2", "TLSv1.3")]
    if not any(p is not None and p.status == "accepted" for p in modern):
        if any(p is None or p.status == "error" for p in modern):
            out += [
                f.model_copy(update={"evidence": offered})
                for f in meta.errors("could not determine whether TLS 1.2/1.3 are offered")
            ]
        else:
            out.append(
                meta.finding(
                    Status.FAIL,
                    "Neither TLS 1.2 nor TLS 1.3 is offered",
                    "Modern clients need TLS 1.2 or 1.3.",
                    severity=Severity.HIGH,
                    evidence=offered,
                )
            )
    tls13 = ev.protocol("TLSv1.3")
    if tls13 is not None and tls13.status == "rejected" and any(p and p.status == "accepted" for p in modern):
        out.append(
            meta.finding(
                Status.WARN,
                "TLS 1.3 is not offered",
                "TLS 1.3 is faster and drops every legacy option; offer it beside TLS 1.2.",
                severity=Severity.LOW,
                evidence=offered,
                remediation=TLS13_FIX,
            )
        )
    legacy_unknown = [
        p.protocol
        for p in ev.protocols
        if p.status == "error" and p.protocol in ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1")
    ]
    if legacy_unknown and not any(f.status == Status.FAIL for f in out):
        out += [
            f.model_copy(update={"evidence": offered})
            for f in meta.errors(f"could not test {', '.join(legacy_unknown)}")
        ]
    if not out:
        out.append(
            meta.finding(
                Status.PASS,
                f"Only current protocols offered: {', '.join(ev.accepted_protocols)}",
                evidence=offered,
            )
        )
    return out


def _label(proto: str) -> str:
    return {
        "SSLv2": "SSL 2.0",
        "SSLv3": "SSL 3.0",
        "TLSv1.0": "TLS 1.0",
        "TLSv1.1": "TLS 1.1",
        "TLSv1.2": "TLS 1.2",
        "TLSv1.3": "TLS 1.3",
    }.get(proto, proto)


# -- T3 -------------------------------------------------------------------------------------------------

_WEAK_WHY = {
    "NULL": "no encryption at all",
    "anonymous": "no server authentication (anyone can impersonate the server)",
    "EXPORT": "deliberately weakened 40/56-bit export crypto (FREAK, Logjam)",
    "RC4": "RC4 is broken (RFC 7465)",
    "DES": "56-bit DES can be brute-forced",
    "3DES": "64-bit block cipher, vulnerable to SWEET32",
    "MD5": "MD5 message authentication is broken",
}


def _suite_ev(proto: str, s: CipherSuite) -> dict[str, Any]:
    kx, auth = key_exchange(s)
    d: dict[str, Any] = {
        "protocol": proto,
        "suite": s.name,
        "key_exchange": kx,
        "authentication": auth,
        "forward_secrecy": forward_secrecy(s),
        "aead": aead(s),
    }
    profiles = mozilla_profiles(s)
    if profiles:
        d["mozilla"] = list(profiles)
    weak = suite_weaknesses(s)
    if weak:
        d["weak_because"] = list(weak)
    if s.ephemeral:
        d["ephemeral"] = s.ephemeral.model_dump(exclude_none=True)
    return d


def _names(suites: list[CipherSuite], limit: int = 5) -> str:
    return _listed([s.name for s in suites], limit)


def _listed(names: list[str], limit: int = 5) -> str:
    """"a, b, c" or "a, b, c and 4 more" (no trailing ellipsis to collide with a full stop)."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def curve_bits(name: str) -> int | None:
    """Security-relevant size of a named EC group (X25519/X448 count as 256/448)."""
    low = name.lower()
    if low.startswith("x25519"):
        return 256
    if low.startswith("x448"):
        return 448
    m = re.search(r"(\d{3})", low)
    return int(m.group(1)) if m else None


@check("tls-ciphers", needs=COMPLETED)
def ciphers(ev: TLSEvidence, meta: CheckMeta) -> list[Finding]:
    accepted = [(p.protocol, s) for p in ev.protocols if p.status == "accepted" for s in p.suites]
    if not ev.protocols:
        return meta.errors("cipher suites were not tested")
    out: list[Finding] = []
    by_reason: dict[str, list[tuple[str, CipherSuite]]] = {}
    for proto, s in accepted:
        for reason in suite_weaknesses(s):
            by_reason.setdefault(reason, []).append((proto, s))
    for reason, items in by_reason.items():
        names = sorted({s.name for _, s in items})
        out.append(
            meta.finding(
                Status.FAIL,
                f"{reason} cipher suites accepted ({len(names)})",
                f"{_WEAK_WHY.get(reason, reason)}: {_listed(names)}.",
                severity=Severity.HIGH,
                evidence={
                    "reason": reason,
                    "suites": [_suite_ev(p, s) for p, s in items][:MAX_LISTED],
                    "count": len(items),
                },
            )
        )
    tls12 = [s for proto, s in accepted if proto == "TLSv1.2" and not suite_weaknesses(s)]
    no_fs = [s for s in tls12 if not forward_secrecy(s)]
    no_aead = [s for s in tls12 if not aead(s)]  # CCM counts: see checks.lib.tls.aead
    if no_fs:
        out.append(
            meta.finding(
                Status.FAIL,
                f"TLS 1.2 suites without forward secrecy accepted ({len(no_fs)})",
                "With RSA or static (EC)DH key exchange, anyone who later obtains the server's private key "
                f"can decrypt recorded traffic: {_names(no_fs)}.",
                severity=Severity.MEDIUM,
                evidence={
                    "suites": [_suite_ev("TLSv1.2", s) for s in no_fs][:MAX_LISTED],
                    "count": len(no_fs),
                },
            )
        )
    if no_aead:
        out.append(
            meta.finding(
                Status.FAIL,
                f"TLS 1.2 suites without AEAD (CBC mode) accepted ({len(no_aead)})",
                "CBC-mode suites have a long history of padding-oracle attacks (Lucky13, POODLE-TLS); "
                "Mozilla's "
                f"intermediate profile allows only AES-GCM and ChaCha20-Poly1305: "
                f"{_names(no_aead)}.",
                severity=Severity.MEDIUM,
                evidence={
                    "suites": [_suite_ev("TLSv1.2", s) for s in no_aead][:MAX_LISTED],
                    "count": len(no_aead),
                },
            )
        )
    small_dh = sorted(
        {
            s.ephemeral.bits
            for _, s in accepted
            if s.ephemeral and s.ephemeral.kind == "DH" and s.ephemeral.bits and s.ephemeral.bits < 2048
        }
    )
    if small_dh:
        out.append(
            meta.finding(
                Status.FAIL,
                f"Diffie-Hellman group smaller than 2048 bits ({', '.join(map(str, small_dh))})",
                "DH groups below 2048 bits can be broken by well-funded attackers (Logjam).",
                evidence={"dh_bits": small_dh},
                remediation=DH_FIX,
            )
        )
    curves = set(ev.groups.curves)
    curves |= {s.ephemeral.curve for _, s in accepted if s.ephemeral and s.ephemeral.curve}
    small_ec = sorted(c for c in curves if (curve_bits(c) or 256) < 256)
    if small_ec:
        out.append(
            meta.finding(
                Status.FAIL,
                f"Elliptic-curve groups below 256 bits accepted ({', '.join(small_ec)})",
                "Curves below 256 bits give less than 128-bit security.",
                evidence={"curves": small_ec},
                remediation=CURVES_FIX,
            )
        )
    errored = [
        p.protocol for p in ev.protocols if p.status == "error" and p.protocol in ("TLSv1.2", "TLSv1.3")
    ]
    if errored and not out:
        out += meta.errors(f"cipher suites of {', '.join(errored)} could not be tested")
    if not out:
        counts = {p.protocol: len(p.suites) for p in ev.protocols if p.status == "accepted"}
        out.append(
            meta.finding(
                Status.PASS,
                "Only strong cipher suites accepted",
                evidence={
                    "suites_per_protocol": counts,
                    "curves": sorted(curves)[:MAX_LISTED],
                    "suites": [_suite_ev(proto, s) for proto, s in accepted][:MAX_LISTED],
                },
            )
        )
    cut = [p.protocol for p in ev.protocols if p.status == "accepted" and not p.suites_complete]
    if cut:  # the prober listed one accepted suite per class: counts are lower bounds
        note = {"list_cut_short": cut, "listed": "one accepted suite per suite class"}
        out = [f.model_copy(update={"evidence": {**f.evidence, **note}}) for f in out]
    return out


# -- T4 -------------------------------------------------------------------------------------------------

_TRUST_PROBLEMS: dict[str, tuple[str, str]] = {
    "expired": (
        "The certificate has expired",
        N_("Renew the certificate now, and automate renewal (ACME: certbot, acme.sh, Caddy)."),
    ),
    "not_yet_valid": (
        "The certificate is not valid yet",
        N_("Check the server's clock and the certificate's start date; reissue if needed."),
    ),
    "self_signed": (
        "The certificate is self-signed",
        N_("Replace it with a certificate from a publicly trusted CA (Let's Encrypt is free and automated)."),
    ),
    "hostname_mismatch": (
        "The certificate does not cover this host name",
        N_("Issue a certificate whose Subject Alternative Names include this exact host name."),
    ),
    "missing_intermediate": (
        "The certificate chain is incomplete (intermediate certificate missing)",
        N_("Serve the full chain: the leaf followed by its intermediate certificate(s) (certbot's "
           "fullchain.pem).\n"
           "nginx: `ssl_certificate /etc/letsencrypt/live/HOST/fullchain.pem;`\n"
           "Apache: `SSLCertificateFile /etc/letsencrypt/live/HOST/fullchain.pem` (Apache 2.4.8 and later; "
           "older versions also need `SSLCertificateChainFile`)\n"
           "IIS: import the .pfx with its whole chain, or install the intermediate certificate in the "
           "computer's Intermediate Certification Authorities store."),
    ),
    "untrusted": (
        "The certificate is not issued by a trusted CA",
        N_("Use a certificate from a CA in Mozilla's root store (or, for an internal site, give the "
           "scanner your CA with --ca-bundle)."),
    ),
    "weak_signature": (
        "The chain uses a signature algorithm browsers reject (e.g. SHA-1)",
        N_("Reissue the certificate signed with SHA-256 or better."),
    ),
    "profile": (
        "The certificate breaks RFC 5280 rules that strict validators enforce",
        N_("Reissue the certificate from a CA that follows the CA/Browser Forum profile (for example, a "
           "subjectAltName extension marked non-critical when the subject is not empty)."),
    ),
    "other": (
        "The certificate chain does not validate",
        N_("Serve a complete chain from a publicly trusted CA that names this host and is in date."),
    ),
}
# More specific problems hide the generic "untrusted" one.
_PROBLEM_ORDER = (
    "expired",
    "not_yet_valid",
    "hostname_mismatch",
    "self_signed",
    "missing_intermediate",
    "weak_signature",
    "profile",
    "untrusted",
    "other",
)


def _cert_ev(c: Certificate) -> dict[str, Any]:
    return {
        "subject": c.subject,
        "issuer": c.issuer,
        "sans": list(c.sans)[:MAX_LISTED],
        "key_type": c.key_type,
        "key_bits": c.key_bits,
        "signature_algorithm": c.signature_algorithm,
        "not_before": c.not_before.isoformat() if c.not_before else None,
        "not_after": c.not_after.isoformat() if c.not_after else None,
        "sha256": c.sha256,
    }


@check("tls-cert-trust", needs=CERTIFIED)
def cert_trust(ev: TLSEvidence, meta: CheckMeta) -> list[Finding]:
    deps = _chains(ev)
    out: list[Finding] = []
    seen: set[str] = set()
    for dep in deps:
        leaf = dep.chain[0]
        validations = [_judged(v, dep) for v in dep.validations]
        base = {
            "certificate": _cert_ev(leaf),
            "chain": [c.subject for c in dep.chain],
            "stores": [v.model_dump(exclude_none=True) for v in validations],
        }
        trusted = [v.store for v in dep.validations if v.validated]
        if trusted:
            key = "pass:" + leaf.sha256
            if key not in seen:
                seen.add(key)
                out.append(
                    meta.finding(
                        Status.PASS,
                        f"Certificate trusted (validated by {', '.join(trusted)})",
                        f"Chain: {' -> '.join(c.subject for c in dep.chain)}.",
                        evidence={**base, "validated_by": trusted},
                    )
                )
            continue
        if not dep.validations:
            out += meta.errors("the certificate chain was not validated", evidence=base)
            continue
        problems = {v.problem or "other" for v in validations}
        second = ev.openssl_validation
        if "profile" in problems and problems <= _ROOT_LACKING and second and second.validated:
            out.append(_profile_finding(meta, dep, validations, ev, base))
            continue
        if len(problems) > 1:
            problems.discard("untrusted")
        for problem in sorted(problems, key=_PROBLEM_ORDER.index):
            if problem in seen:
                continue
            seen.add(problem)
            title, fix = _TRUST_PROBLEMS[problem]
            failed = [v for v in validations if (v.problem or "other") == problem]
            failed = failed or validations
            detail = _trust_detail(problem, leaf, ev)
            out.append(
                meta.finding(
                    Status.FAIL,
                    title,
                    f"{detail} Trust stores tried: {_store_errors(failed)}.",
                    severity=Severity.CRITICAL,
                    evidence={**base, "problem": problem},
                    remediation=fix,
                )
            )
    return out


def _judged(v: TrustValidation, dep: CertificateDeployment) -> TrustValidation:
    """``v`` with the problem named (``checks.lib.tls.validation_problem``) when it did not validate."""
    if v.validated:
        return v
    return v.model_copy(update={"problem": validation_problem(v, dep.chain)})


# A store that lacks the root (Mozilla's, for a private CA given with --ca-bundle) says one of these
# while the store that has it objects only to the profile.
_ROOT_LACKING = frozenset({"profile", "untrusted", "missing_intermediate"})


def _profile_finding(meta: CheckMeta, dep: CertificateDeployment, validations: list[TrustValidation],
                     ev: TLSEvidence, base: dict[str, Any]) -> Finding:
    """OpenSSL (as browsers, curl and Python's ssl) validates the chain to a trusted root, so it is
    trusted; only cryptography's strict profile checks object. The CA/Browser Forum profile binds public
    CAs: a ``warn`` caveat for a public root, nothing for a private CA given with --ca-bundle."""
    second = ev.openssl_validation
    assert second is not None
    failed = [v for v in validations if v.problem == "profile"]
    title, fix = _TRUST_PROBLEMS["profile"]
    if all(v.store == "--ca-bundle" for v in failed):
        return meta.finding(
            Status.PASS, f"Certificate trusted (validated by {second.store})",
            f"Chain: {' -> '.join(c.subject for c in dep.chain)}. Strict RFC 5280 profile checks object "
            f"({_store_errors(failed)}); the CA/Browser Forum profile binds public CAs, not a private one "
            "given with --ca-bundle.",
            evidence={**base, "validated_by": [second.store], "profile_note": _store_errors(failed)})
    return meta.finding(
        Status.WARN, title,
        f"{second.store} validates the chain for {ev.hostname}, but strict validators reject it: "
        f"{_store_errors(failed)}.",
        evidence={**base, "problem": "profile", "openssl": second.store}, remediation=fix)


def _plain_validation_error(error: str | None) -> str:
    """cryptography's message without its prefix and the Python repr of the certificate it names:
    "validation failed: X (encountered processing <Certificate(...)>)" -> "X" (evidence keeps it whole)."""
    text = re.sub(r"^validation failed:\s*", "", error or "").strip()
    text = re.sub(r"\s*\(encountered processing <Certificate.*$", "", text, flags=re.S)
    return text or "validation failed"


def _store_errors(validations: list[Any]) -> str:
    """"Mozilla, --ca-bundle: cert is not valid at validation time" (stores with the same error together)."""
    by_error: dict[str, list[str]] = {}
    for v in validations:
        by_error.setdefault(_plain_validation_error(v.error), []).append(v.store)
    return "; ".join(f"{', '.join(stores)}: {err}" for err, stores in by_error.items())


def _trust_detail(problem: str, leaf: Certificate, ev: TLSEvidence) -> str:
    if problem == "expired" and leaf.not_after:
        return f"It expired on {leaf.not_after.date().isoformat()}."
    if problem == "hostname_mismatch":
        return f"{ev.hostname} is not among its names ({', '.join(leaf.sans[:10]) or leaf.subject})."
    if problem == "missing_intermediate":
        return (f"The server sends only the certificate for {leaf.subject}, "
                f"not the intermediate that issued it ({leaf.issuer}).")
    if problem == "self_signed":
        return f"{leaf.subject} signed itself; no browser trusts it."
    return f"Issuer: {leaf.issuer}."


# -- T5 -------------------------------------------------------------------------------------------------


@check("tls-cert-hygiene", needs=CERTIFIED)
def cert_hygiene(ev: TLSEvidence, meta: CheckMeta) -> list[Finding]:
    deps = _chains(ev)
    now = ev.scanned_at or datetime.now(UTC)
    out: list[Finding] = []
    done: set[str] = set()
    for dep in deps:
        leaf = dep.chain[0]
        if leaf.sha256 in done:
            continue
        done.add(leaf.sha256)
        cev = _cert_ev(leaf)
        weak_key = (leaf.key_type in ("RSA", "DSA") and (leaf.key_bits or 0) < 2048) or (
            leaf.key_type == "EC" and (leaf.key_bits or 0) < 256
        )
        if weak_key:
            out.append(
                meta.finding(
                    Status.FAIL,
                    f"Weak certificate key: {leaf.key_type} {leaf.key_bits} bits",
                    "RSA keys need at least 2048 bits and EC keys at least 256 bits.",
                    severity=Severity.HIGH,
                    evidence={"certificate": cev},
                )
            )
        for c in dep.chain:
            if c.self_issued:
                continue  # a root's own signature is not checked by clients
            if (c.signature_hash or "").lower() in ("sha1", "md5"):
                out.append(
                    meta.finding(
                        Status.FAIL,
                        f"{c.signature_hash.upper()} signature in the chain ({c.subject})",  # type: ignore[union-attr]
                        f"{c.subject} is signed with {c.signature_algorithm}; "
                        "SHA-1 and MD5 signatures can be forged.",
                        severity=Severity.HIGH,
                        evidence={"certificate": _cert_ev(c)},
                    )
                )
        if leaf.not_after:
            days = (leaf.not_after - now).total_seconds() / 86400
            if days < 14:
                what = f"expired {abs(days):.0f} days ago" if days < 0 else f"expires in {days:.0f} days"
                out.append(
                    meta.finding(
                        Status.FAIL,
                        f"The certificate {what}",
                        f"Valid until {leaf.not_after.isoformat()}.",
                        severity=Severity.HIGH,
                        evidence={"certificate": cev, "days_left": round(days, 1)},
                        remediation=N_("Renew the certificate now and automate renewal (ACME)."),
                    )
                )
            elif days < 30:
                out.append(
                    meta.finding(
                        Status.WARN,
                        f"The certificate expires in {days:.0f} days",
                        f"Valid until {leaf.not_after.isoformat()}.",
                        severity=Severity.HIGH,
                        evidence={"certificate": cev, "days_left": round(days, 1)},
                        remediation=N_("Renew the certificate soon and automate renewal (ACME)."),
                    )
                )
        if leaf.not_after and leaf.not_before:
            lifetime = (leaf.not_after - leaf.not_before).total_seconds() / 86400
            if lifetime > 398:
                out.append(
                    meta.finding(
                        Status.FAIL,
                        f"Certificate valid for {lifetime:.0f} days (more than 398)",
                        "Public CAs may not issue certificates valid for more than 398 days.",
                        severity=Severity.LOW,
                        evidence={"certificate": cev, "validity_days": round(lifetime)},
                        remediation=N_("Use certificates valid for at most 398 days (90 with ACME)."),
                    )
                )
    if not out:
        leaf = deps[0].chain[0]
        out.append(
            meta.finding(
                Status.PASS,
                f"Certificate hygiene fine ({leaf.key_type} {leaf.key_bits} bits)",
                evidence={"certificate": _cert_ev(leaf)},
            )
        )
    return out


# -- T6 -------------------------------------------------------------------------------------------------


@check("tls-vulnerabilities", needs=COMPLETED)
def vulnerabilities(ev: TLSEvidence, meta: CheckMeta) -> list[Finding]:
    v = ev.vulnerabilities
    accepted = set(ev.accepted_protocols)
    pre13 = bool(accepted - {"TLSv1.3"})  # renegotiation and compression exist only before TLS 1.3
    legacy = bool(accepted & {"SSLv3", "TLSv1.0", "TLSv1.1"})
    tests: list[tuple[str, Any, str, str, Severity]] = [
        (
            "heartbleed",
            v.heartbleed,
            "Vulnerable to Heartbleed (CVE-2014-0160)",
            "The server leaks its memory (private keys, passwords) to anyone who asks.",
            Severity.CRITICAL,
        ),
        (
            "ccs_injection",
            v.ccs_injection,
            "Vulnerable to the OpenSSL CCS injection (CVE-2014-0224)",
            "A network attacker can force weak keys and decrypt or alter traffic.",
            Severity.CRITICAL,
        ),
        (
            "robot",
            v.robot,
            "Vulnerable to ROBOT (RSA padding oracle)",
            "An attacker can decrypt recorded RSA key exchanges or sign with the server's key.",
            Severity.CRITICAL if v.robot.detail == "VULNERABLE_STRONG_ORACLE" else Severity.HIGH,
        ),
    ]
    if pre13:
        tests += [
            (
                "insecure_renegotiation",
                v.insecure_renegotiation,
                "Secure renegotiation (RFC 5746) not supported",
                "An attacker can inject data at the start of a victim's session.",
                Severity.CRITICAL,
            ),
            (
                "compression",
                v.compression,
                "TLS compression enabled (CRIME)",
                "Compressed TLS lets an attacker recover cookies and other secrets.",
                Severity.CRITICAL,
            ),
        ]
    out: list[Finding] = []
    errors: list[str] = []
    results: dict[str, Any] = {}
    for key, test, title, detail, sev in tests:
        results[key] = test.model_dump(exclude_none=True)
        if test.error is not None and test.value is None:
            errors.append(f"{key}: {test.error}")
        elif test.value:
            out.append(
                meta.finding(
                    Status.FAIL, title, detail, severity=sev, evidence={"test": key, "result": results[key]}
                )
            )
    results["fallback_scsv"] = v.fallback_scsv.model_dump(exclude_none=True)
    if legacy and v.fallback_scsv.value is False:
        out.append(
            meta.finding(
                Status.WARN,
                "TLS_FALLBACK_SCSV not supported while old protocols are offered",
                "Without it, an attacker can force clients down to the old protocol versions (RFC 7507).",
                severity=Severity.MEDIUM,
                evidence={"test": "fallback_scsv", "protocols": sorted(accepted)},
                remediation=N_("Support TLS_FALLBACK_SCSV (any current OpenSSL does), or better, "
                               "turn off TLS 1.0/1.1."),
            )
        )
    elif legacy and v.fallback_scsv.value is None:
        errors.append(f"fallback_scsv: {v.fallback_scsv.error}")
    completed = [key for key, test, *_ in tests if test.value is not None]
    if errors and completed:
        # Decide from the tests that ran (sslyze's Heartbleed/CCS/ROBOT commands crash on some hosts,
        # e.g. one serving a 36 KB certificate); name the ones that could not run.
        not_run = ", ".join(e.split(":", 1)[0] for e in errors)
        out.append(meta.finding(
            Status.WARN, f"Some TLS flaw tests could not run ({not_run})",
            f"No flaw found by the tests that completed ({', '.join(completed)}); {not_run} could not run: "
            f"{'; '.join(errors)[:600]}.", severity=Severity.LOW,
            evidence={"errors": errors, "completed": completed, "results": results},
            remediation=N_("Re-scan later, or test the named flaws with another tool.")))
    elif errors:
        out += [
            f.model_copy(update={"evidence": {"errors": errors, "results": results}})
            for f in meta.errors(f"no test could run: {'; '.join(errors)}")
        ]
    if not out:
        out.append(
            meta.finding(Status.PASS, "No known TLS implementation flaw found", evidence={"results": results})
        )
    return out

