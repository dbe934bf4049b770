"""Evidence recorded by the exposure collector (E1-E4): calibration answers, probe answers, confirmations.

Each answer is recorded as a bounded ``Probe``: status, a few headers, cookie names, title, sniffed file
type, a similarity fingerprint of the body and a short text excerpt in which secret values are already
masked, so a stored snapshot never holds a leaked password. ``Probe.record`` builds one from raw bytes
(the collector calls it); checks only read the fields.
"""

from __future__ import annotations

import hashlib
import html
import re
from typing import Literal

from scanner.errors import ErrorKind
from scanner.evidence.base import Evidence
from scanner.models import Frozen

EXCERPT_CHARS = 16384
KEPT_HEADERS = ("server", "x-powered-by", "x-generator", "x-jenkins", "x-hudson", "kbn-name", "kbn-version",
                "x-drupal-cache", "www-authenticate", "content-range", "content-length", "x-grafana-version")
Purpose = Literal["landing", "calibration", "probe", "confirm"]

# ---- secret masking -------------------------------------------------------------------------------
# Hand-written: no library masks "KEY=value" configuration lines generically; the rules are small.
_ENV_LINE = re.compile(r"^(?P<lead>[ \t]*(?:export[ \t]+)?(?P<key>[A-Za-z_][A-Za-z0-9_.-]{0,80})[ \t]*"
                       r"(?P<sep>=|:(?=[ \t]))[ \t]*)(?P<val>[^\r\n]*)$", re.MULTILINE)
_QUOTED_VAL = r"""(?P<q>['"])(?P<val>[^'"\r\n]*)(?P=q)"""
_PHP_DEFINE = re.compile(r"""(?P<lead>define\(\s*['"](?P<key>\w{1,80})['"]\s*,\s*)""" + _QUOTED_VAL)
_PHP_ASSIGN = re.compile(r"""(?P<lead>\$(?P<key>[A-Za-z_][\w\[\]'"-]{0,80})\s*=\s*)""" + _QUOTED_VAL)
_URL_CREDS = re.compile(r"(?P<lead>[a-z][a-z0-9+.-]*://[^/\s:@]+:)(?P<val>[^@\s/]+)(?=@)", re.IGNORECASE)
_SENSITIVE_KEY = re.compile(r"pass|pwd|secret|token|key|auth|credential|private|salt|dsn|url", re.IGNORECASE)
_PEM = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.DOTALL)


def mask_value(value: str) -> str:
    """``hunter2`` -> ``h*****``: the first character only, and a fixed-length mask (no length leak)."""
    value = value.strip().strip("'\"")
    if not value:
        return ""
    return value[0] + "*****"


def mask_secrets(text: str) -> str:
    """Mask every value that could be a secret: ``KEY=value`` / ``key: value`` lines, PHP define()
    and string assignments, passwords in URLs, PEM private keys."""
    text = _PEM.sub("-----BEGIN PRIVATE KEY----- (masked) -----END PRIVATE KEY-----", text)
    text = _URL_CREDS.sub(lambda m: m["lead"] + "*****", text)
    text = _PHP_DEFINE.sub(lambda m: f"{m['lead']}{m['q']}{mask_value(m['val'])}{m['q']}", text)
    text = _PHP_ASSIGN.sub(lambda m: f"{m['lead']}{m['q']}{mask_value(m['val'])}{m['q']}", text)

    def env(m: re.Match[str]) -> str:
        val = m["val"]
        if m["sep"] == ":" and not _SENSITIVE_KEY.search(m["key"]):
            return m.group(0)  # "key: value" (YAML, headers, "ref: refs/heads/main"): sensitive keys only
        if val.lstrip().startswith(("<", "{", "[")) or not val.strip() or "://" in val:
            return m.group(0)  # markup or structure, not a scalar value; URL passwords already masked
        return f"{m['lead']}{mask_value(val)}"

    return _ENV_LINE.sub(env, text)


# ---- body fingerprints ----------------------------------------------------------------------------
_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]{0,2000}>")
_WORD = re.compile(r"[a-z0-9_]+")
_NOISE = re.compile(r"\b(?:[0-9a-f]{8,}|[0-9]+)\b")


def extract_title(text: str) -> str | None:
    m = _TITLE.search(text[:65536])
    if not m:
        return None
    return " ".join(html.unescape(m.group(1)).split())[:200]


def normalise(text: str, path: str = "") -> str:
    """Text used for similarity: lower-case, the requested path removed (pages that echo it), numbers and
    hex tokens collapsed (timestamps, nonces), whitespace collapsed."""
    t = text.lower()
    if path:
        from urllib.parse import unquote

        variants = {path, unquote(path), path.rstrip("/")}
        for variant in sorted(variants, key=len, reverse=True):
            v = variant.lower()
            if len(v) >= 3:
                t = t.replace(v, " ")
    t = _NOISE.sub("0", t)
    return " ".join(t.split())


def simhash(text: str, shingle: int = 3) -> int:
    """64-bit simhash over word 3-shingles (Charikar). Hand-written: 15 lines, and the packages that do it
    pull in heavy dependencies. Near-identical pages differ in a few bits; unrelated pages in ~32."""
    words = _WORD.findall(_TAG.sub(" \\g<0> ", text))
    if not words:
        return 0
    grams = [" ".join(words[i:i + shingle]) for i in range(max(1, len(words) - shingle + 1))]
    # A bit is set when more than half of the grams' hashes have it. Counted per column of the hashes'
    # binary strings (zip and count run in C: a tenth of the CPU of a Python loop over 64 bits per gram).
    rows = [format(int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(), "big"), "064b")
            for g in grams]
    half = len(rows)
    return sum(1 << (63 - i) for i, column in enumerate(zip(*rows, strict=True))
               if 2 * column.count("1") > half)


_SIMHASHES: dict[str, int] = {}  # sha256 of a normalised text -> its simhash
_SIMHASHES_KEPT = 4096


def _simhash_known(text: str, sha: str) -> int:
    """``simhash(text)``, computed once per text (``sha``: its SHA-256) while the cache holds it: a host's
    "not found" page comes back for most probes, and a 30 KB page costs ~20 ms of CPU to fingerprint."""
    known = _SIMHASHES.get(sha)
    if known is None:
        known = simhash(text)
        if len(_SIMHASHES) >= _SIMHASHES_KEPT:
            _SIMHASHES.clear()
        _SIMHASHES[sha] = known
    return known


# ---- file type sniffing ---------------------------------------------------------------------------
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "zip"), (b"PK\x05\x06", "zip"), (b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"), (b"7z\xbc\xaf\x27\x1c", "7z"), (b"Rar!\x1a\x07", "rar"),
    (b"SQLite format 3\x00", "sqlite"), (b"\x00\x00\x00\x01Bud1", "ds_store"), (b"b0VIM", "vim_swap"),
    (b"JAVA PROFILE ", "hprof"),
)
_SQL = re.compile(rb"\A(?:\s|--[^\n]*\n|/\*.*?\*/;?)*(?:CREATE\s+(?:TABLE|DATABASE)|INSERT\s+INTO|"
                  rb"DROP\s+TABLE|SET\s+\w+|LOCK\s+TABLES|BEGIN|USE\s+`?\w)"
                  rb"|-- (?:MySQL|MariaDB) dump|-- PostgreSQL database dump",
                  re.IGNORECASE | re.DOTALL)


def sniff(body: bytes, content_type: str | None = None) -> str:
    """The file type of a body from its first bytes (magic numbers), not from what the server claims."""
    if not body:
        return "empty"
    for magic, kind in _MAGIC:
        if body.startswith(magic):
            return kind
    if len(body) > 262 and body[257:262] == b"ustar":
        return "tar"
    head = body[:2048]
    if _SQL.search(head):
        return "sql"
    stripped = head.lstrip().lower()
    if stripped.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in stripped[:512]:
        return "html"
    if stripped[:1] in (b"{", b"["):
        return "json"
    if b"\x00" in head:
        return "binary"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "binary"
    return "text"


class Probe(Frozen):
    """One request and its bounded, masked answer."""

    purpose: Purpose = "probe"
    path: str = "/"
    url: str = ""
    method: Literal["GET", "HEAD", "RANGE"] = "GET"
    confirms: str | None = None  # confirm probes: the probe path whose directory they test
    status: int | None = None
    error: str | None = None
    error_kind: ErrorKind | None = None
    size: int = 0  # body bytes received (capped)
    truncated: bool = False
    content_type: str | None = None
    location: str | None = None
    title: str | None = None
    headers: tuple[tuple[str, str], ...] = ()  # KEPT_HEADERS only, values truncated
    cookies: tuple[str, ...] = ()  # Set-Cookie names only (values never stored)
    magic: str = "empty"
    simhash: str = ""  # 16 hex digits
    digest: str = ""  # of the normalised text: equal pages have equal digests
    norm_len: int = 0
    simhash_raw: str = ""  # the same two without removing the requested path (pages that contain it
    digest_raw: str = ""  # anyway, e.g. a catch-all page linking to /login)
    excerpt: str = ""  # text bodies: first EXCERPT_CHARS characters, secrets masked

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)

    @classmethod
    def record(cls, *, purpose: Purpose, path: str, url: str, method: Literal["GET", "HEAD", "RANGE"],
               status: int | None, headers: tuple[tuple[str, str], ...] = (), body: bytes = b"",
               truncated: bool = False, error: str | None = None, error_kind: ErrorKind | None = None,
               confirms: str | None = None) -> Probe:
        """Build the record from a raw answer: bound it, fingerprint it, mask it."""
        if error is not None or status is None:
            return cls(purpose=purpose, path=path[:500], url=url[:600], method=method, confirms=confirms,
                       error=(error or "no answer")[:300], error_kind=error_kind)
        ctype = next((v for k, v in headers if k == "content-type"), None)
        location = next((v for k, v in headers if k == "location"), None)
        kept = tuple((k, v[:300]) for k, v in headers if k in KEPT_HEADERS)[:20]
        cookies = tuple(v.split("=", 1)[0].strip()[:100] for k, v in headers if k == "set-cookie")[:20]
        magic = sniff(body, ctype)
        textual = magic in ("html", "json", "text", "sql", "empty")
        text = body.decode("utf-8", errors="replace") if textual else ""
        norm = normalise(text, path) if textual else ""
        raw = normalise(text) if textual else ""
        sha = hashlib.sha256(norm.encode() if textual else body).hexdigest()
        sha_raw = hashlib.sha256(raw.encode()).hexdigest() if textual else sha
        digest = sha[:16]
        return cls(
            purpose=purpose, path=path[:500], url=url[:600], method=method, confirms=confirms, status=status,
            size=len(body), truncated=truncated, content_type=(ctype or "")[:200] or None,
            location=(location or "")[:600] or None, title=extract_title(text) if magic == "html" else None,
            headers=kept, cookies=cookies, magic=magic,
            simhash=f"{_simhash_known(norm, sha):016x}" if norm else "",
            digest=digest, norm_len=len(norm) if textual else len(body),
            simhash_raw=f"{_simhash_known(raw, sha_raw):016x}" if raw else "",
            digest_raw=sha_raw[:16],
            excerpt=mask_secrets(text[:EXCERPT_CHARS]) if textual else "",
        )


def similar(a: Probe, b: Probe, max_bits: int = 10) -> bool:
    """Same status and nearly the same page: equal normalised text, or simhash within ``max_bits`` bits
    and lengths within 30% of each other; compared with and without the requested path removed."""
    if a.status != b.status:
        return False
    if (a.digest and a.digest == b.digest) or (a.digest_raw and a.digest_raw == b.digest_raw):
        return True
    if a.norm_len == 0 or b.norm_len == 0:
        return False
    if min(a.norm_len, b.norm_len) / max(a.norm_len, b.norm_len) < 0.7:
        return False
    return any(x and y and bin(int(x, 16) ^ int(y, 16)).count("1") <= max_bits
               for x, y in ((a.simhash, b.simhash), (a.simhash_raw, b.simhash_raw)))


class ExposureEvidence(Evidence):
    """What the exposure collector recorded about one endpoint's origin."""

    origin: str = ""  # https://host:port probed
    budget: int = 0  # most requests allowed on this host
    requests: int = 0  # requests actually sent
    budget_exhausted: bool = False
    skipped: tuple[str, ...] = ()  # paths not probed for lack of budget (capped)
    behaviour: str = ""  # summary of the host's answer to unknown paths
    catch_all: bool = False  # the host answers 2xx with the same page to random paths
    landing: Probe | None = None
    calibration: tuple[Probe, ...] = ()
    probes: tuple[Probe, ...] = ()
    confirmations: tuple[Probe, ...] = ()
    linked_directories: tuple[str, ...] = ()
