"""Build ``checks/lib/tls_suites.json``: what every suite sslyze can report is made of, and which of
Mozilla's profiles lists it. ``python -m scanner.collectors.tls.suite_data`` (``make tls-data``) after an
sslyze or nassl upgrade; ``tests/test_tls_suite_data.py`` fails until the committed file matches.

Sources, none of them ours:
- the suites: sslyze's own table of the suites it tests (IANA name and OpenSSL name, per protocol);
- their parts (key exchange, authentication, cipher, mode, MAC, export): OpenSSL's cipher-string keywords
  (``kECDHE``, ``aNULL``, ``AESGCM``, ``MD5``, ``EXP`` ...) asked of the very nassl client (legacy
  OpenSSL 1.0.2 or modern 1.1.1) sslyze tests the suite with, so OpenSSL classifies, not a list of ours;
- TLS 1.3 suites: RFC 8446 appendix B.4 (all AEAD, the key exchange negotiated apart from the suite);
- Mozilla's profiles: the Server Side TLS JSON sslyze ships (``modern``, ``intermediate``, ``old``).

The collector records suite names only; the checks read this file (``checks/lib/tls_suites.py``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from scanner.collectors.tls import sslyze_adapter as sa

OUT = Path(__file__).resolve().parents[3] / "checks" / "lib" / "tls_suites.json"

# (value, OpenSSL keywords selecting it: 1.0.2's and 1.1.1's spellings), first match wins.
KEY_EXCHANGE = (("ECDHE_PSK", ("kECDHEPSK",)), ("DHE_PSK", ("kDHEPSK",)), ("RSA_PSK", ("kRSAPSK",)),
                ("PSK", ("kPSK",)), ("SRP", ("kSRP",)), ("ECDHE", ("kECDHE", "kEECDH")),
                ("DHE", ("kDHE", "kEDH")), ("ECDH", ("kECDHr", "kECDHe")), ("DH", ("kDHr", "kDHd")),
                ("RSA", ("kRSA",)))
AUTHENTICATION = (("anon", ("aNULL",)), ("ECDSA", ("aECDSA",)), ("RSA", ("aRSA",)), ("DSS", ("aDSS",)),
                  ("PSK", ("aPSK",)), ("SRP", ("aSRP",)), ("DH", ("aDH",)), ("ECDH", ("aECDH",)))
CIPHER = (("NULL", ("eNULL",)), ("RC4", ("RC4",)), ("3DES", ("3DES",)), ("DES", ("DES",)), ("RC2", ("RC2",)),
          ("IDEA", ("IDEA",)), ("SEED", ("SEED",)), ("CHACHA20", ("CHACHA20",)),
          ("ARIA", ("ARIA128", "ARIA256")), ("CAMELLIA", ("CAMELLIA128", "CAMELLIA256")),
          ("AES", ("AES128", "AES256")))
MODE = (("GCM", ("AESGCM", "ARIAGCM")), ("CCM_8", ("AESCCM8",)), ("CCM", ("AESCCM",)),
        ("POLY1305", ("CHACHA20",)))
MAC = (("MD5", ("MD5",)), ("SHA384", ("SHA384",)), ("SHA256", ("SHA256",)), ("SHA1", ("SHA1",)))
AEAD_MODES = frozenset({"GCM", "CCM", "CCM_8", "POLY1305"})
EPHEMERAL = frozenset({"ECDHE", "DHE", "ECDHE_PSK", "DHE_PSK", "any"})
PROFILES = ("modern", "intermediate", "old")
# RFC 8446 appendix B.4: the TLS 1.3 suites (cipher, mode); OpenSSL's keywords do not select them.
TLS13 = {"TLS_AES_128_GCM_SHA256": ("AES", "GCM"), "TLS_AES_256_GCM_SHA384": ("AES", "GCM"),
         "TLS_CHACHA20_POLY1305_SHA256": ("CHACHA20", "POLY1305"), "TLS_AES_128_CCM_SHA256": ("AES", "CCM"),
         "TLS_AES_128_CCM_8_SHA256": ("AES", "CCM_8")}


def _first(protocol: str, legacy: bool, openssl_name: str, table: tuple[tuple[str, tuple[str, ...]], ...],
           default: str | None = None) -> str:
    for value, keywords in table:
        if any(openssl_name in sa.openssl_selects(protocol, legacy, k) for k in keywords):
            return value
    if default is None:
        raise SystemExit(f"OpenSSL classifies no {table[0][0]}.. part of {openssl_name} ({protocol})")
    return default


def _parts(protocol: str, name: str, openssl_name: str, legacy: bool) -> dict[str, Any]:
    if protocol == "TLSv1.3":
        cipher, mode = TLS13[name]
        kx, auth, export = "any", "any", False
    else:
        kx = _first(protocol, legacy, openssl_name, KEY_EXCHANGE)
        auth = _first(protocol, legacy, openssl_name, AUTHENTICATION)
        cipher = _first(protocol, legacy, openssl_name, CIPHER)
        stream = {"NULL": "none", "RC4": "stream"}.get(cipher, "CBC")
        mode = _first(protocol, legacy, openssl_name, MODE, default=stream)
        export = any(openssl_name in sa.openssl_selects(protocol, legacy, k) for k in ("EXP", "EXPORT"))
    aead = mode in AEAD_MODES
    mac = "AEAD" if aead else _first(protocol, legacy, openssl_name, MAC)
    return {"openssl_name": openssl_name, "key_exchange": kx, "authentication": auth, "cipher": cipher,
            "mode": mode, "aead": aead, "mac": mac, "export": export, "forward_secrecy": kx in EPHEMERAL}


def _facts(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry without the names it goes by (OpenSSL spells some suites two ways) and its protocols."""
    return {k: v for k, v in entry.items() if k not in ("openssl_name", "protocols")}


def build() -> dict[str, Any]:
    """The file's content, from the installed sslyze and nassl."""
    profile = sa.mozilla_profile()
    listed = {p: set(profile["configurations"][p]["ciphers"]["iana"])
              | set(profile["configurations"][p]["ciphersuites"]) for p in PROFILES}
    suites: dict[str, dict[str, Any]] = {}
    for protocol, rows in sa.suites_tested().items():
        for name, openssl_name, legacy in rows:
            parts = _parts(protocol, name, openssl_name, legacy)
            seen = suites.get(name)
            if seen is not None and _facts(seen) != _facts(parts):
                raise SystemExit(f"{name}: OpenSSL classifies it differently in {protocol}: {seen} / {parts}")
            entry = suites.setdefault(name, parts)
            entry.setdefault("protocols", []).append(protocol)
    for name, entry in suites.items():
        entry["mozilla"] = [p for p in PROFILES if name in listed[p]]
    unknown = sorted(set().union(*listed.values()) - set(suites))
    if unknown:
        raise SystemExit(f"Mozilla's profiles list suites sslyze does not test: {unknown}")
    return {
        "about": "Generated by `python -m scanner.collectors.tls.suite_data` (make tls-data): do not edit. "
                 "Suites: sslyze's table; parts: OpenSSL's cipher-string keywords in the nassl client sslyze "
                 "tests each suite with (TLS 1.3: RFC 8446 B.4); mozilla: the profiles listing the suite.",
        "sslyze": sa.sslyze_version(),
        "mozilla_profile": {"version": profile["version"], "href": profile["href"]},
        "suites": dict(sorted(suites.items())),
    }


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=1, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    path = Path(argv[0]) if argv else OUT
    path.write_text(render(build()))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
