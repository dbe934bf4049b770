"""Evidence recorded by the tls collector: our own model, independent of the prober (sslyze today).

Everything a server sends is bounded (strings truncated, lists capped) before it lands here. A part that
could not be measured carries an ``error`` string instead of a value; checks turn that into ``error``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import field_validator

from scanner.errors import ErrorKind
from scanner.evidence.base import Evidence
from scanner.models import Frozen

MAX_STR = 512
MAX_LIST = 64
MAX_SUITES = 128  # per protocol
MAX_CHAIN = 8
MAX_DEPLOYMENTS = 4

PROTOCOLS: tuple[str, ...] = ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")

HandshakeOutcome = Literal["completed", "refused", "reset", "timeout", "not_tls", "failed", "unreachable"]
ProtocolStatus = Literal["accepted", "rejected", "error"]
ValidationProblem = Literal[
    "expired",
    "not_yet_valid",
    "self_signed",
    "hostname_mismatch",
    "missing_intermediate",
    "untrusted",
    "weak_signature",
    "profile",  # breaks an RFC 5280 / CA/B profile rule that strict validators enforce
    "other",
]


def bound(text: object, limit: int = MAX_STR) -> str:
    """A string no longer than ``limit`` characters (with an ellipsis when cut)."""
    s = str(text)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _bound_opt(v: object) -> object:
    return bound(v) if isinstance(v, str) else v


class _Bounded(Frozen):
    """Truncates every plain string field on the way in."""

    @field_validator("*", mode="before")
    @classmethod
    def _cut(cls, v: object) -> object:
        if isinstance(v, str):
            return bound(v)
        if isinstance(v, list | tuple) and len(v) > MAX_LIST and all(isinstance(x, str) for x in v):
            return tuple(bound(x) for x in v[:MAX_LIST])
        if isinstance(v, list | tuple) and all(isinstance(x, str) for x in v):
            return tuple(bound(x) for x in v)
        return v


class Handshake(_Bounded):
    """Could a TLS handshake be completed on the endpoint's HTTPS port, and if not, what happened."""

    outcome: HandshakeOutcome = "failed"
    reason: str | None = None
    error_kind: ErrorKind | None = None  # set when the handshake did not complete
    protocol: str | None = None  # negotiated by the first handshake
    cipher: str | None = None
    http_port_answers: bool | None = None  # does the same address answer plain HTTP on port 80?
    http_probe: str | None = None  # what the port-80 probe saw


class KeyExchange(_Bounded):
    """The ephemeral key of a (EC)DHE handshake."""

    kind: str = ""  # DH | ECDH
    bits: int | None = None
    curve: str | None = None


class CipherSuite(_Bounded):
    """One accepted cipher suite (IANA name) and the ephemeral key the server chose. ``key_exchange``,
    ``forward_secrecy``, ``aead`` and ``weak`` are what runs stored before the suite data: the checks read a
    suite's parts from ``checks/lib/tls_suites.json`` by name, these only for a name it does not know."""

    name: str = ""
    key_exchange: str = ""  # ECDHE, DHE, RSA, ECDH, DH, PSK, ... ("TLS1.3" for 1.3 suites)
    forward_secrecy: bool = False
    aead: bool = False
    weak: tuple[str, ...] = ()  # NULL, anonymous, EXPORT, RC4, DES, 3DES, MD5
    ephemeral: KeyExchange | None = None


class ProtocolResult(_Bounded):
    """Whether one protocol version is accepted, and the suites accepted with it."""

    protocol: str = ""
    status: ProtocolStatus = "error"
    error: str | None = None
    suites: tuple[CipherSuite, ...] = ()
    suites_truncated: bool = False
    # False: the listing was cut short on purpose, one accepted suite per suite class T3 judges (the
    # decision-minimal prober); the suites not listed are of classes already shown.
    suites_complete: bool = True


class Groups(_Bounded):
    """Key-exchange groups: EC curves the server accepts (DH sizes are on each suite's ephemeral key)."""

    ecdh_supported: bool | None = None
    curves: tuple[str, ...] = ()
    complete: bool = True  # False: only the groups below 256 bits were asked about (the strong ones unlisted)
    error: str | None = None


class Certificate(_Bounded):
    """One certificate as served."""

    subject: str = ""
    issuer: str = ""
    sans: tuple[str, ...] = ()
    key_type: str = ""  # RSA | EC | Ed25519 | Ed448 | DSA | other
    key_bits: int | None = None
    curve: str | None = None
    signature_algorithm: str = ""
    signature_hash: str | None = None  # sha1, sha256, md5 ...
    not_before: datetime | None = None
    not_after: datetime | None = None
    sha256: str = ""
    is_ca: bool = False
    self_issued: bool = False  # subject == issuer


class TrustValidation(_Bounded):
    """Path validation of the served chain against one trust store."""

    store: str = ""  # "Mozilla" or "--ca-bundle"
    store_version: str | None = None
    validated: bool = False
    problem: ValidationProblem | None = None  # stored runs only: checks name the problem (checks/lib/tls.py)
    error: str | None = None
    error_kind: ErrorKind | None = None
    verify_code: int | None = None  # OpenSSL's X509_V_ERR_* code, when OpenSSL validated
    verified_chain: tuple[str, ...] = ()  # subjects, leaf first, anchor last


class CertificateDeployment(_Bounded):
    """A certificate chain the server sent (most servers have one) and how it validated."""

    chain: tuple[Certificate, ...] = ()
    chain_truncated: bool = False
    validations: tuple[TrustValidation, ...] = ()
    chain_order_valid: bool | None = None
    sni: bool = True  # retrieved with SNI


class VulnTest(_Bounded):
    """One vulnerability test: ``value`` (True = vulnerable / present) or ``error``."""

    value: bool | None = None
    detail: str | None = None
    error: str | None = None
    note: str | None = None  # how it ran, where that differs from sslyze's own way (ROBOT's attempts)


class Vulnerabilities(_Bounded):
    heartbleed: VulnTest = VulnTest(error="not tested")
    ccs_injection: VulnTest = VulnTest(error="not tested")
    robot: VulnTest = VulnTest(error="not tested")  # detail: sslyze's ROBOT result name
    insecure_renegotiation: VulnTest = VulnTest(error="not tested")  # value True = no secure renegotiation
    client_renegotiation_dos: VulnTest = VulnTest(error="not tested")
    compression: VulnTest = VulnTest(error="not tested")
    fallback_scsv: VulnTest = VulnTest(error="not tested")  # value True = SCSV supported


class TLSEvidence(Evidence):
    """What the tls collector recorded about one endpoint (one address, one port)."""

    hostname: str = ""
    address: str | None = None
    port: int = 443
    scanned_at: datetime | None = None
    prober: str = ""  # e.g. "sslyze 6.3.1"
    handshake: Handshake | None = None
    protocols: tuple[ProtocolResult, ...] = ()
    groups: Groups = Groups(error="not tested")
    certificates: tuple[CertificateDeployment, ...] = ()
    certificate_error: str | None = None
    # OpenSSL's own verdict (Mozilla's store + --ca-bundle, host name checked), taken only when the strict
    # validator objected to the certificate's profile alone: tells "browsers accept it" from "broken".
    openssl_validation: TrustValidation | None = None
    vulnerabilities: Vulnerabilities = Vulnerabilities()
    connections: int = 0  # TLS connections made (approximate, see the collector)
    notes: tuple[str, ...] = ()

    @field_validator("error", "certificate_error", mode="before")
    @classmethod
    def _cut(cls, v: object) -> object:
        return _bound_opt(v)

    @field_validator("notes", mode="before")
    @classmethod
    def _cut_notes(cls, v: object) -> object:
        if isinstance(v, list | tuple):
            return tuple(bound(x) for x in list(v)[:MAX_LIST])
        return v

    def protocol(self, name: str) -> ProtocolResult | None:
        for p in self.protocols:
            if p.protocol == name:
                return p
        return None

    @property
    def accepted_protocols(self) -> list[str]:
        return [p.protocol for p in self.protocols if p.status == "accepted"]
