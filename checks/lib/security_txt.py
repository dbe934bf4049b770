"""RFC 9116 validation of a security.txt file's text (pure: it reads the text it is given).

Written for pledgescan instead of depending on the ``sectxt`` package, whose install pulls pytest,
requests-mock and requests into every user's environment; the problem codes follow sectxt's so that
reports and evidence keep their meaning.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

URI_FIELDS = ("acknowledgments", "canonical", "contact", "encryption", "hiring", "policy", "csaf")
LANGUAGES = "preferred-languages"
_ISO8601 = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[-+]\d{2}:\d{2})$", re.I | re.A)
_LANGUAGE_TAG = re.compile(r"^(?:[A-Za-z]{2,3}(?:-[A-Za-z]{3}){0,3}|[A-Za-z]{4,8})"  # RFC 5646, loosely
                           r"(?:-[A-Za-z]{4})?(?:-(?:[A-Za-z]{2}|\d{3}))?"
                           r"(?:-(?:[A-Za-z0-9]{5,8}|\d[A-Za-z0-9]{3}))*"
                           r"(?:-[0-9A-WY-Za-wy-z](?:-[A-Za-z0-9]{2,8})+)*(?:-x(?:-[A-Za-z0-9]{1,8})+)?$")
BEGIN_SIGNED = "-----BEGIN PGP SIGNED MESSAGE-----"
BEGIN_SIGNATURE = "-----BEGIN PGP SIGNATURE-----"
END_SIGNATURE = "-----END PGP SIGNATURE-----"


@dataclass
class _Validation:
    errors: list[dict[str, Any]] = field(default_factory=list)
    recommendations: list[dict[str, Any]] = field(default_factory=list)
    values: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    line: int | None = None

    def error(self, code: str, message: str, line: int | None = None) -> None:
        self.errors.append({"code": code, "message": message, "line": line or self.line})

    def recommend(self, code: str, message: str) -> None:
        self.recommendations.append({"code": code, "message": message, "line": self.line})


def validate(text: str, urls: list[str] | tuple[str, ...] = (), now: datetime | None = None
             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(errors, recommendations) of RFC 9116, each ``{code, message, line}``. ``urls`` are where the
    file was found (the first and last of a redirect chain), for the Canonical rule."""
    v = _Validation()
    now = now or datetime.now(UTC)
    if text.startswith("\ufeff"):
        text = text[1:]
        v.error("bom_in_file", "The file must not start with a byte-order mark (UTF-8 without BOM).")
    lines = text.split("\n")
    signed = reading_sig = finished_sig = False
    kinds: list[str] = []
    for number, raw in enumerate(lines, start=1):
        v.line = number
        line = raw.rstrip()
        if reading_sig:
            reading_sig = line != END_SIGNATURE
            finished_sig = not reading_sig
            kinds.append("pgp")
            continue
        if line and finished_sig:
            v.error("data_after_sig", "Signed security.txt must not contain data after the signature.")
            kinds.append("error")
            continue
        if signed and line.startswith("- "):  # dash-escaped signed text
            line = line[2:]
        if line == BEGIN_SIGNED:
            if number != 1:
                v.error("signed_format_issue",
                        f"Signed security.txt must start with the header '{BEGIN_SIGNED}'.")
            signed = True
            _check_armour(text, v)
            kinds.append("pgp")
        elif line == BEGIN_SIGNATURE and signed:
            reading_sig = True
            kinds.append("pgp")
        elif line.startswith("#"):
            kinds.append("comment")
        elif ":" in line:
            kinds.append(_field(line, signed, now, v))
        elif line:
            v.error("invalid_line", "Line must contain a field name and value, unless the line is blank "
                                    "or contains a comment.")
            kinds.append("error")
        else:
            kinds.append("empty")
    v.line = None
    _whole_file(v, kinds, signed, urls)
    return v.errors, v.recommendations


def _check_armour(text: str, v: _Validation) -> None:
    """The signature block is ASCII armour (header lines, a blank line, base64, a =CRC line) holding a
    whole OpenPGP signature packet (RFC 4880 4.2: its header's length fits the data)."""
    start, end = text.find(BEGIN_SIGNATURE), text.find(END_SIGNATURE)
    block = text[start + len(BEGIN_SIGNATURE):end].strip("\r\n").split("\n") if 0 <= start < end else []
    body = block[block.index("") + 1:] if "" in block else block
    try:
        data = base64.b64decode("".join(ln.strip() for ln in body if ln.strip() and not ln.startswith("=")),
                                validate=True)
    except (binascii.Error, ValueError):
        data = b""
    if not data:
        v.error("pgp_data_error", "Signed message did not contain a correct ASCII-armored PGP block.")
    elif _packet_length(data) is None:
        v.error("pgp_error", "Decoding or parsing of the pgp message failed.")


def _packet_length(data: bytes) -> int | None:
    """The length of the first OpenPGP packet (header included) when ``data`` holds it whole."""
    tag = data[0]
    if not tag & 0x80:
        return None
    if tag & 0x40:  # new format: one-, two- or five-octet length
        if len(data) < 2:
            return None
        first = data[1]
        if first < 192:
            size, head = first, 2
        elif first < 224 and len(data) >= 3:
            size, head = ((first - 192) << 8) + data[2] + 192, 3
        elif first == 255 and len(data) >= 6:
            size, head = int.from_bytes(data[2:6], "big"), 6
        else:
            return None
    else:  # old format: the low two bits give the length's size
        octets = {0: 1, 1: 2, 2: 4}.get(tag & 0x03)
        if octets is None or len(data) < 1 + octets:
            return None
        size, head = int.from_bytes(data[1:1 + octets], "big"), 1 + octets
    return head + size if head + size <= len(data) else None


def _field(line: str, signed: bool, now: datetime, v: _Validation) -> str:
    key, value = line.split(":", 1)
    key = key.lower()
    if key.rstrip() != key:
        v.error("prec_ws", "There must be no whitespace before the field separator (colon).")
        key = key.rstrip()
    if value:
        if value[0] != " ":
            v.error("no_space", "Field separator (colon) must be followed by a space.")
        value = value.lstrip()
    if key == "hash" and signed:
        return "pgp"
    if not key:
        v.error("empty_key", "Field name must not be empty.")
        return "error"
    if not value:
        v.error("empty_value", "Field value must not be empty.")
        return "error"
    if key in URI_FIELDS:
        scheme = urlsplit(value).scheme
        if not scheme:
            v.error("no_uri", f"Field '{key}' value must be a URI.")
        elif scheme == "http":
            v.error("no_https", "Web URI must begin with 'https://'.")
    elif key == "expires":
        _expires(value, now, v)
    elif key == LANGUAGES and not all(_LANGUAGE_TAG.match(t.strip()) for t in value.split(",")):
        v.error("invalid_lang", "Value in 'Preferred-Languages' field must match one or more language tags "
                                "as defined in RFC 5646, separated by commas.")
    v.values[key].append(value)
    return "field"


def _expires(value: str, now: datetime, v: _Validation) -> None:
    if not _ISO8601.match(value):
        v.error("invalid_expiry", "Date and time in 'Expires' field must be formatted according to ISO 8601.")
        return
    try:
        when = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        v.error("invalid_expiry", "Date and time in 'Expires' field must be formatted according to ISO 8601.")
        return
    if when > now + timedelta(days=366):
        v.recommend("long_expiry",
                    "Date and time in 'Expires' field should be less than a year into the future.")
    elif when < now:
        v.error("expired", "Date and time in 'Expires' field must not be in the past.")


def _whole_file(v: _Validation, kinds: list[str], signed: bool, urls: list[str] | tuple[str, ...]) -> None:
    values = v.values
    if "expires" not in values:
        v.error("no_expire", "'Expires' field must be present.")
    elif len(values["expires"]) > 1:
        v.error("multi_expire", "'Expires' field must not appear more than once.")
    if urls and "canonical" in values and all(u not in values["canonical"] for u in urls):
        v.error("no_canonical_match", "Web URI where security.txt is located must match with a 'Canonical' "
                                      "field. In case of redirecting either the first or last web URI of the "
                                      "redirect chain must match.")
    if kinds and kinds[-1] != "empty":
        v.error("no_line_separators", "Every line, including the last one, must end with either a carriage "
                                      "return and line feed characters or just a line feed character",
                len(kinds))
    if signed and kinds[-2:] == ["empty", "empty"]:
        v.error("too_many_line_separators", "A PGP signed message cannot end with more than one newline",
                len(kinds))
    if "csaf" in values and not all(x.endswith("provider-metadata.json") for x in values["csaf"]):
        v.error("no_csaf_file", "All CSAF fields must point to a provider-metadata.json file.")
    if "contact" not in values:
        v.error("no_contact", "'Contact' field must appear at least once.")
    elif any(x.startswith("mailto:") for x in values["contact"]) and "encryption" not in values:
        v.recommend("no_encryption", "'Encryption' field should be present when 'Contact' field contains an "
                                     "email address.")
    if len(values.get(LANGUAGES, [])) > 1:
        v.error("multi_lang", "'Preferred-Languages' field must not appear more than once.")
    if not signed:
        v.recommend("not_signed", "security.txt should be digitally signed.")
    elif not values.get("canonical"):
        v.recommend("no_canonical", "'Canonical' field should be present in a signed file.")
