"""Parsers for security response headers (HSTS, Referrer-Policy, X-Frame-Options, nosniff,
Permissions-Policy, version banners). Pure code; every function accepts arbitrary text and never raises.

Written by hand: each is a few lines of the relevant spec's grammar, and no maintained library parses
these headers the way browsers do (e.g. RFC 6797's quoted max-age and duplicate-directive rules, the
Referrer-Policy "last recognised token wins" fallback).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX = 8192


# -- HSTS (RFC 6797 section 6.1) ----------------------------------------------------------------

MAX_AGE_CAP = 10**15 - 1


@dataclass(frozen=True)
class Hsts:
    valid: bool
    max_age: int | None = None
    include_subdomains: bool = False
    preload: bool = False
    problems: tuple[str, ...] = ()


_TCHAR = r"[!#$%&'*+.^_`|~0-9A-Za-z-]"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_HSTS_DIRECTIVE = re.compile(
    rf"[ \t]*({_TCHAR}+)[ \t]*(?:=[ \t]*({_TCHAR}+|{_QUOTED})[ \t]*)?")
_HSTS_PART = re.compile(rf'(?:{_QUOTED}|[^;"])+|"')


def parse_hsts(value: str) -> Hsts:
    """Parse one Strict-Transport-Security value as Chromium's ``ParseHSTSHeader`` does (RFC 6797 6.1):
    ``[ directive ] *( ";" [ directive ] )`` where a directive is a token, optionally ``=`` a token or
    quoted-string. Names are case-insensitive; a directive that breaks this grammar (``a, max-age=1``,
    ``x y``), a repeated directive, a value on includeSubDomains, or a missing or non-numeric max-age
    makes browsers ignore the whole header."""
    seen: dict[str, str | None] = {}
    problems: list[str] = []
    for part in _HSTS_PART.findall(value[:MAX]):
        if not part.strip(" \t"):
            continue
        m = _HSTS_DIRECTIVE.fullmatch(part)
        if m is None:
            problems.append(f"{part.strip()[:60]!r} is not a directive (a token, optionally "
                            "=token or =\"quoted string\")")
            continue
        name = m.group(1).lower()
        v = m.group(2)
        if v is not None and v.startswith('"'):
            v = re.sub(r"\\(.)", r"\1", v[1:-1])
        if name in seen:
            problems.append(f"directive {name[:40]!r} appears more than once")
            continue
        seen[name] = v
        if name == "includesubdomains" and v is not None:
            problems.append(f"includeSubDomains takes no value (got {v[:40]!r})")
    max_age: int | None = None
    raw = seen.get("max-age")
    if "max-age" not in seen:
        problems.append("no max-age directive")
    elif raw is None or not re.fullmatch(r"\d+", raw):
        problems.append(f"max-age value {str(raw)[:40]!r} is not a number of seconds")
    else:  # delta-seconds is unbounded (RFC 6797 6.1.1); browsers cap it, so do we
        max_age = int(raw) if len(raw) <= 15 else MAX_AGE_CAP
    return Hsts(valid=not problems, max_age=max_age if not problems else None,
                include_subdomains="includesubdomains" in seen, preload="preload" in seen,
                problems=tuple(problems))


# -- Referrer-Policy (W3C Referrer Policy section 8.1; HTML meta name=referrer) -----------------

REFERRER_TOKENS = ("no-referrer", "no-referrer-when-downgrade", "same-origin", "origin",
                   "strict-origin", "origin-when-cross-origin", "strict-origin-when-cross-origin",
                   "unsafe-url")
REFERRER_SAFE = frozenset({"no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin"})
REFERRER_UNSAFE = frozenset({"unsafe-url", "origin-when-cross-origin", "no-referrer-when-downgrade",
                             "origin"})
_META_LEGACY = {"never": "no-referrer", "default": "strict-origin-when-cross-origin",
                "always": "unsafe-url", "origin-when-crossorigin": "origin-when-cross-origin"}


def parse_referrer_policy(values: list[str] | tuple[str, ...]) -> tuple[str | None, list[str]]:
    """Effective policy of the header(s): the last recognised token of the combined comma list wins
    (unknown tokens are fallbacks for older browsers). Returns (policy or None, unknown tokens)."""
    policy: str | None = None
    unknown: list[str] = []
    for value in values[:20]:
        for tok in value[:MAX].split(","):
            tok = tok.strip(" \t").lower()
            if not tok:
                continue
            if tok in REFERRER_TOKENS:
                policy = tok
            else:
                unknown.append(tok[:60])
    return policy, unknown[:10]


def parse_meta_referrer(content: str) -> str | None:
    """A <meta name=referrer> content value (with HTML's legacy keywords), or None if unrecognised."""
    tok = content[:200].strip(" \t\n\r\f").lower()
    tok = _META_LEGACY.get(tok, tok)
    return tok if tok in REFERRER_TOKENS else None


# -- X-Frame-Options, X-Content-Type-Options -----------------------------------------------------

def xfo_tokens(values: list[str] | tuple[str, ...]) -> set[str]:
    """The distinct lower-case values of the combined X-Frame-Options header(s)."""
    return {t.strip(" \t").lower() for v in values[:20] for t in v[:MAX].split(",") if t.strip(" \t")}


def parse_xfo(values: list[str] | tuple[str, ...]) -> str | None:
    """HTML's "check a navigation response's adherence to X-Frame-Options": DENY or SAMEORIGIN alone;
    several distinct values of which one is deny, sameorigin or allowall block every frame (DENY);
    anything else (ALLOW-FROM, invalid values only) is ignored: None."""
    toks = xfo_tokens(values)
    if len(toks) > 1:
        return "DENY" if toks & {"deny", "sameorigin", "allowall"} else None
    if toks == {"deny"}:
        return "DENY"
    if toks == {"sameorigin"}:
        return "SAMEORIGIN"
    return None


def is_nosniff(values: list[str] | tuple[str, ...]) -> bool:
    """Fetch's rule: the first value of the combined header list is 'nosniff' (case-insensitive)."""
    combined = ",".join(v[:MAX] for v in values[:20])
    if not combined:
        return False
    return combined.split(",")[0].strip(" \t").lower() == "nosniff"


# -- Permissions-Policy (structured-field dictionary, leniently) --------------------------------

POWERFUL_FEATURES = ("camera", "microphone", "geolocation")


@dataclass(frozen=True)
class PermissionsPolicy:
    features: dict[str, str] = field(default_factory=dict)  # feature -> allowlist as sent
    problems: tuple[str, ...] = ()

    def restricted(self, feature: str) -> bool | None:
        """True: allowlist is () or self/origins; False: '*'; None: not mentioned."""
        allow = self.features.get(feature)
        if allow is None:
            return None
        return allow.strip() != "*" and "*" not in allow.strip("()").split()


def parse_permissions_policy(values: list[str] | tuple[str, ...]) -> PermissionsPolicy:
    """feature=allowlist pairs of the combined header(s); a later duplicate replaces an earlier one."""
    features: dict[str, str] = {}
    problems: list[str] = []
    text = ",".join(v[:MAX] for v in values[:20])
    for item in _split_top(text):
        item = item.strip(" \t")
        if not item:
            continue
        name, eq, allow = item.partition("=")
        name = name.strip().lower()
        if not eq or not re.fullmatch(r"[a-z*][a-z0-9_.*-]*", name):
            problems.append(f"unparsable member {item[:60]!r}")
            continue
        features[name[:60]] = _split_top(allow, ";")[0].strip()[:300]  # drop ;parameters
    return PermissionsPolicy(features=dict(list(features.items())[:100]), problems=tuple(problems[:10]))


def _split_top(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside parentheses and quotes."""
    out, cur, depth, quote = [], [], 0, False
    for ch in text:
        if ch == '"':
            quote = not quote
        elif not quote and ch == "(":
            depth += 1
        elif not quote and ch == ")":
            depth = max(0, depth - 1)
        if ch == sep and depth == 0 and not quote:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


# -- version disclosure -------------------------------------------------------------------------

BANNER_HEADERS = ("server", "x-powered-by", "x-aspnet-version", "x-aspnetmvc-version", "x-generator")
_DOTTED = re.compile(r"(?<![\w.])v?\d+(?:\.\d+)+(?![\w])", re.I)
_SLASH = re.compile(r"/\s*v?\d+(?:\.\d+)*(?![\w])", re.I)
_WORD_NUM = re.compile(r"^[A-Za-z][\w.-]*\s+v?\d+(?:\.\d+)*\b")


VERSION_ONLY_HEADERS = ("x-aspnet-version", "x-aspnetmvc-version")


def discloses_version(value: str, header: str = "") -> str | None:
    """The version string found in a banner ('nginx/1.22.1', 'PHP 8.1', '4.0.30319'), or None.
    The value of a header that exists only to name a version (X-AspNetMvc-Version: 5) is one as soon as
    it holds a digit."""
    value = value[:500]
    if header.lower() in VERSION_ONLY_HEADERS and any(c.isdigit() for c in value):
        return value.strip()[:100]
    for rx in (_SLASH, _DOTTED, _WORD_NUM):
        m = rx.search(value)
        if m:
            return m.group(0).strip("/ ")
    return None
