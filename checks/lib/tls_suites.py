"""What each TLS cipher suite is made of, read from ``tls_suites.json`` (generated from sslyze's suite
table, OpenSSL's own classification and Mozilla's profile data: ``make tls-data``). Checks judge suites by
these facts, never by substrings of their names."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DATA = Path(__file__).with_name("tls_suites.json")


@dataclass(frozen=True)
class SuiteFacts:
    """One suite's parts as OpenSSL classifies them, and the Mozilla profiles that list it."""

    name: str
    key_exchange: str  # ECDHE, DHE, RSA, ECDH, DH, ... ("any" for TLS 1.3: negotiated apart from the suite)
    authentication: str  # RSA, ECDSA, DSS, DH, ECDH, anon, ... ("any" for TLS 1.3)
    cipher: str  # AES, CHACHA20, CAMELLIA, ARIA, SEED, IDEA, RC2, 3DES, DES, RC4, NULL
    mode: str  # GCM, CCM, CCM_8, POLY1305, CBC, stream, none
    aead: bool
    mac: str  # AEAD, SHA384, SHA256, SHA1, MD5
    export: bool
    forward_secrecy: bool  # an ephemeral key exchange
    mozilla: tuple[str, ...]  # of "modern", "intermediate", "old"


@cache
def registry() -> dict[str, SuiteFacts]:
    """Every suite sslyze can report, by IANA name."""
    raw = json.loads(DATA.read_text())["suites"]
    return {name: SuiteFacts(name=name, key_exchange=e["key_exchange"], authentication=e["authentication"],
                             cipher=e["cipher"], mode=e["mode"], aead=e["aead"], mac=e["mac"],
                             export=e["export"], forward_secrecy=e["forward_secrecy"],
                             mozilla=tuple(e["mozilla"]))
            for name, e in raw.items()}


def suite_facts(name: str) -> SuiteFacts | None:
    """The facts of the IANA-named suite ``name``; None for a name the data does not know."""
    return registry().get(name)
