"""RFC 9116 validation of security.txt text (checks.lib.security_txt): problem codes and lines."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from checks.lib.security_txt import validate

NOW = datetime(2026, 6, 1, tzinfo=UTC)
SOON = (NOW + timedelta(days=200)).strftime("%Y-%m-%dT%H:%M:%SZ")
LATE = (NOW + timedelta(days=800)).strftime("%Y-%m-%dT%H:%M:%SZ")
URL = "https://a.example/.well-known/security.txt"
SIG = base64.b64encode(bytes([0xC2, 5]) + b"\x04\x01\x08\x00\x1d").decode()


def codes(text: str) -> tuple[list[tuple[str, int | None]], list[str]]:
    errors, recs = validate(text, [URL], now=NOW)
    return [(e["code"], e["line"]) for e in errors], [r["code"] for r in recs]


@pytest.mark.parametrize("text, errors, recommendations", [
    (f"Contact: mailto:s@a.example\nExpires: {SOON}\n", [], ["no_encryption", "not_signed"]),
    (f"Contact: https://a.example/c\r\nExpires: {SOON}\r\nPreferred-Languages: en, fr-CA\r\n", [],
     ["not_signed"]),
    ("Contact: https://a.example/c\nExpires: 2020-01-01T00:00:00Z\n", [("expired", 2)], ["not_signed"]),
    (f"Expires: {SOON}\n", [("no_contact", None)], ["not_signed"]),
    (f"Contact: http://a.example/x\nExpires: {SOON}\nExpires: {SOON}\n",
     [("no_https", 1), ("multi_expire", None)], ["not_signed"]),
    (f"Contact:https://a.example/c\nExpires : {SOON}",
     [("no_space", 1), ("prec_ws", 2), ("no_line_separators", 2)], ["not_signed"]),
    ("Contact: x@y\nExpires: 2025-13-45\nPreferred-Languages: en\nPreferred-Languages: xx-yyyyyyyyyy\n",
     [("no_uri", 1), ("invalid_expiry", 2), ("invalid_lang", 4), ("multi_lang", None)],
     ["not_signed"]),
    (f"garbage\n\n# comment\nContact: https://a.example/c\nExpires: {LATE}\nCanonical: https://b.example/s\n",
     [("invalid_line", 1), ("no_canonical_match", None)], ["long_expiry", "not_signed"]),
    (f"\ufeffContact: https://a.example/c\nExpires: {SOON}\nCSAF: https://a.example/x.json\n",
     [("bom_in_file", None), ("no_csaf_file", None)], ["not_signed"]),
    (f"Contact: https://a.example/c\nExpires: {SOON}\n:key\nPolicy:\n",
     [("no_space", 3), ("empty_key", 3), ("empty_value", 4)], ["not_signed"]),
])
def test_rfc_9116_rules(text, errors, recommendations):
    assert codes(text) == (errors, recommendations)


def signed(signature: str, tail: str = "") -> str:
    return (f"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n- Contact: https://a.example/c\n"
            f"Expires: {SOON}\nCanonical: {URL}\n-----BEGIN PGP SIGNATURE-----\n\n{signature}\n=abcd\n"
            f"-----END PGP SIGNATURE-----\n{tail}")


def test_signed_files_need_a_whole_signature_packet_and_nothing_after_it():
    assert codes(signed(SIG)) == ([], [])
    assert codes(signed("iQIzBAEBCAAdFiEE")) == ([("pgp_error", 1)], [])  # a truncated packet
    assert codes(signed("!!!notbase64", "more\n")) == ([("pgp_data_error", 1), ("data_after_sig", 12)], [])
