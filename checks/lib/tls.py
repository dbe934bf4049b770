"""Pure TLS judgments the checks make on raw evidence (no I/O): why a cipher suite is weak, why a chain
did not validate. The collector records facts only (suite names, validators' messages), so a stored run is
judged again with these when it is re-analysed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from checks.lib.tls_suites import suite_facts
from scanner.evidence.tls import Certificate, CipherSuite, TrustValidation, ValidationProblem

# The weak-suite classes T3 names, in the order findings list them.
WEAK_CLASSES: tuple[str, ...] = ("NULL", "anonymous", "EXPORT", "RC4", "DES", "3DES", "MD5")


def weaknesses(name: str) -> tuple[str, ...]:
    """Why the IANA-named suite ``name`` is weak (a subset of ``WEAK_CLASSES``; empty when it is not, or
    when the suite data does not know the name), from its parts as OpenSSL classifies them."""
    f = suite_facts(name)
    if f is None:
        return ()
    weak = [cls for cls, hit in (
        ("NULL", f.cipher == "NULL"),
        ("anonymous", f.authentication == "anon"),
        ("EXPORT", f.export),
        ("RC4", f.cipher == "RC4"),
        ("DES", f.cipher == "DES"),
        ("3DES", f.cipher == "3DES"),
        ("MD5", f.mac == "MD5"),
    ) if hit]
    return tuple(weak)


def suite_weaknesses(s: CipherSuite) -> tuple[str, ...]:
    """Why an accepted suite is weak (the suite data decides; ``weak`` of runs stored before counts too)."""
    own = weaknesses(s.name)
    return own + tuple(w for w in s.weak if w not in own)


def forward_secrecy(s: CipherSuite) -> bool:
    """Whether the suite's key exchange is ephemeral (the suite data; what a run stored, for a name the
    data does not know)."""
    f = suite_facts(s.name)
    return f.forward_secrecy if f is not None else s.forward_secrecy


def aead(s: CipherSuite) -> bool:
    """Whether the suite encrypts with an AEAD mode (GCM, CCM, ChaCha20-Poly1305): the suite data, else
    what a run stored.

    T3 asks for forward secrecy and AEAD, the two properties every TLS 1.2 suite of Mozilla's
    "intermediate" profile has (``tests/test_tls_suite_data.py`` holds that). The profile's list itself is
    narrower (AES-GCM and ChaCha20-Poly1305 with ECDHE or DHE-RSA only): CCM, ARIA-GCM, DHE-DSS or
    ECDHE-ECDSA-CCM suites pass T3 although the list leaves them out; the baseline text judges the
    properties, so findings show the profiles listing a suite (``mozilla``) beside them and do not fail on
    it."""
    f = suite_facts(s.name)
    return f.aead if f is not None else s.aead


def key_exchange(s: CipherSuite) -> tuple[str, str]:
    """The suite's key exchange and authentication in OpenSSL's terms ("any" for TLS 1.3): the suite
    data, else what a run stored."""
    f = suite_facts(s.name)
    return (f.key_exchange, f.authentication) if f is not None else (s.key_exchange, "")


def mozilla_profiles(s: CipherSuite) -> tuple[str, ...]:
    """The Mozilla profiles listing the suite (of "modern", "intermediate", "old")."""
    f = suite_facts(s.name)
    return f.mozilla if f is not None else ()


def validation_problem(v: TrustValidation, chain: Sequence[Certificate]) -> ValidationProblem:
    """Why ``v`` did not validate: the problem a run stored it with, else named from the validator's
    message and the chain served."""
    if v.problem:
        return v.problem
    return classify_validation_error(v.error or "", chain)


_PROFILE_PHRASES = ("invalid extension", "incorrect criticality", "missing required extension",
                    "duplicate extension", "unsupported critical extension", "invalid key usage",
                    "policy violation")


def classify_validation_error(error: str, chain: Sequence[Certificate]) -> ValidationProblem:
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


