"""Content-Security-Policy parser and evaluator (CSP Level 3), pure code.

Written by hand because no maintained Python library parses CSP3 and evaluates the effective script
policy of several policies combined (Google's CSP Evaluator is TypeScript). It follows the CSP3
algorithms "parse a serialized CSP (list)" and "does a source list allow all inline behavior", with
Chromium's grammar for nonces and hashes (``ParseNonce``/``ParseHash``: base64 with at most two trailing
'=', a hash of its algorithm's length), and reports the problems Google's CSP Evaluator reports, each as
its own ``Problem``: unsafe-inline/eval, wildcard and scheme sources, missing object-src/base-uri,
short nonces, http: sources, IP sources, script hosts known to serve JSONP or AngularJS bypasses (its
list, ``csp_bypasses.json``), syntax and deprecation. Where Pledge 4 decides differently (object-src must
be 'none', base-uri is required, bypass hosts are ``warn``) the baseline wins; the peer tests in
tests/test_csp_evaluator_vectors.py name each deviation.

Several enforced policies combine as browsers apply them: a resource must pass *every* policy, so a
permissive source is a problem only when every policy permits it, and a restriction (object-src 'none',
base-uri) holds when any policy has it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

MAX_POLICY_CHARS = 16_384
MAX_TOKENS = 500

KNOWN_DIRECTIVES = frozenset({
    "child-src", "connect-src", "default-src", "font-src", "frame-src", "img-src", "manifest-src",
    "media-src", "object-src", "script-src", "script-src-elem", "script-src-attr", "style-src",
    "style-src-elem", "style-src-attr", "worker-src", "webrtc", "base-uri", "sandbox", "form-action",
    "frame-ancestors", "report-uri", "report-to", "upgrade-insecure-requests",
    "require-trusted-types-for", "trusted-types", "fenced-frame-src",
    # deprecated, still recognised so they are reported as deprecated rather than unknown
    "reflected-xss", "referrer", "plugin-types", "block-all-mixed-content", "require-sri-for",
    "prefetch-src", "disown-opener", "navigate-to",
})
DEPRECATED = {
    "reflected-xss": "removed from CSP; rely on a strict script-src",
    "referrer": "removed from CSP; use the Referrer-Policy header",
    "plugin-types": "removed from CSP3; use object-src 'none'",
    "block-all-mixed-content": "obsolete: browsers block mixed content; use upgrade-insecure-requests",
    "require-sri-for": "never shipped by browsers and removed",
    "prefetch-src": "removed from CSP3",
    "disown-opener": "never shipped; use Cross-Origin-Opener-Policy",
    "navigate-to": "removed from CSP3",
}
IGNORED_IN_META = ("frame-ancestors", "report-uri", "sandbox")
KEYWORDS = frozenset({
    "'self'", "'unsafe-inline'", "'unsafe-eval'", "'strict-dynamic'", "'unsafe-hashes'",
    "'report-sample'", "'unsafe-allow-redirects'", "'wasm-unsafe-eval'", "'none'",
    "'inline-speculation-rules'", "'trusted-types-eval'", "'report-sha256'", "'report-sha384'",
    "'report-sha512'",
})
SOURCE_DIRECTIVES = frozenset({
    "child-src", "connect-src", "default-src", "font-src", "frame-src", "img-src", "manifest-src",
    "media-src", "object-src", "script-src", "script-src-elem", "script-src-attr", "style-src",
    "style-src-elem", "style-src-attr", "worker-src", "base-uri", "form-action", "frame-ancestors",
    "fenced-frame-src", "prefetch-src", "navigate-to",
})
RISKY_SOURCES = ("*", "http:", "https:", "data:")
# Chromium's ParseNonce/ParseHash (CSP3 base64-value): base64 or base64url characters, at most two '='.
_NONCE = re.compile(r"^'nonce-([A-Za-z0-9+/_-]+)(={0,2})'$", re.I)
_HASH = re.compile(r"^'(sha256|sha384|sha512)-([A-Za-z0-9+/_-]+)(={0,2})'$", re.I)
_NONCE_LIKE = re.compile(r"^'nonce-", re.I)
_HASH_LIKE = re.compile(r"^'sha(256|384|512)-", re.I)
DIGEST_BYTES = {"sha256": 32, "sha384": 48, "sha512": 64}
MIN_NONCE = 8  # CSP Evaluator's checkNonceLength; CSP3 asks for 128 bits of randomness
_IPV4 = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:$", re.I)
_HOST = re.compile(
    r"^(?:[a-z][a-z0-9+.-]*://)?(?:\*|(?:\*\.)?[a-z0-9-]+(?:\.[a-z0-9-]+)*\.?|\[[0-9a-f:.]+\])"
    r"(?::(?:\d{1,5}|\*))?(?:/[^\s;,]*)?$", re.I)
_DIRECTIVE_NAME = re.compile(r"^[a-z0-9-]+$")
_UNQUOTED = re.compile(r"^(self|none|unsafe-inline|unsafe-eval|strict-dynamic|unsafe-hashes|"
                       r"nonce-.+|sha(256|384|512)-.+)$", re.I)


@dataclass(frozen=True)
class Issue:
    """A syntax or deprecation problem of one policy."""

    kind: str  # syntax | deprecated | ignored
    directive: str
    message: str
    value: str = ""


@dataclass(frozen=True)
class Policy:
    """One parsed policy. Directive names lower-case; source tokens as sent (compared lower-case)."""

    raw: str
    origin: str = "header"  # header | meta | report-only
    directives: dict[str, tuple[str, ...]] = field(default_factory=dict)
    issues: tuple[Issue, ...] = ()

    def get(self, name: str) -> tuple[str, ...] | None:
        return self.directives.get(name)

    def has(self, name: str) -> bool:
        return name in self.directives


@dataclass(frozen=True)
class Problem:
    """One finding of the evaluator: ``status`` is fail or warn."""

    code: str
    status: str
    title: str
    detail: str
    directive: str = ""
    values: tuple[str, ...] = ()


def valid_nonce(token: str) -> bool:
    """A nonce-source browsers accept: 'nonce-' then base64 characters and at most two '='."""
    return _NONCE.match(token) is not None


def valid_hash(token: str) -> bool:
    """A hash-source browsers accept: valid base64 whose decoded length is the algorithm's digest."""
    m = _HASH.match(token)
    if m is None:
        return False
    chars, pad = len(m.group(2)), len(m.group(3))
    want = DIGEST_BYTES[m.group(1).lower()]
    return chars == -(-want * 4 // 3) and (pad == 0 or (chars + pad) % 4 == 0)


def short_nonce(token: str) -> bool:
    m = _NONCE.match(token)
    return m is not None and len(m.group(1)) < MIN_NONCE


def host_of(source: str) -> str:
    """The host part of a host-source ('https://a.b:443/x' -> 'a.b'), '' when there is none."""
    if source.startswith("'") or _SCHEME.match(source):
        return ""
    rest = source.split("://", 1)[1] if "://" in source else source.removeprefix("//")
    rest = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if rest.startswith("["):
        return rest[:rest.find("]") + 1] if "]" in rest else rest
    return rest.rsplit(":", 1)[0] if rest.count(":") == 1 else rest


def is_ip_source(source: str) -> bool:
    """CSP Evaluator's looksLikeIpAddress applied to the host of a source."""
    host = host_of(source)
    return bool(_IPV4.match(host)) or (host.startswith("[") and host.endswith("]"))


def parse_policy(text: str, origin: str = "header") -> Policy:
    """Parse one serialized policy (CSP3 section 2.2.1). Never raises."""
    raw = text[:MAX_POLICY_CHARS]
    directives: dict[str, tuple[str, ...]] = {}
    issues: list[Issue] = []
    count = 0
    for token in raw.split(";"):
        token = token.strip(" \t\n\r\f")
        if not token:
            continue
        parts = token.split()
        name, values = parts[0].lower(), parts[1:MAX_TOKENS]
        count += len(values)
        if count > MAX_TOKENS:
            issues.append(Issue("syntax", name, "policy too long: the rest was not analysed"))
            break
        if not _DIRECTIVE_NAME.match(name):
            issues.append(Issue("syntax", name[:100], "invalid directive name"))
            continue
        if name in directives:
            issues.append(Issue("syntax", name, "duplicate directive: browsers ignore all but the first"))
            continue
        if origin == "meta" and name in IGNORED_IN_META:
            issues.append(Issue("ignored", name, "ignored when the policy is delivered in a <meta> element"))
            continue
        directives[name] = tuple(values)
        glued = [v for v in values if v.lower() in KNOWN_DIRECTIVES]
        if glued:
            issues.append(Issue("syntax", name, f"missing ';' before {glued[0][:40]!r}? It is read as a "
                                f"source of {name}, not as a directive", glued[0][:200]))
        if name not in KNOWN_DIRECTIVES:
            issues.append(Issue("syntax", name[:100], "unknown directive"))
        elif name in DEPRECATED:
            issues.append(Issue("deprecated", name, f"deprecated directive: {DEPRECATED[name]}"))
        if name in SOURCE_DIRECTIVES:
            issues.extend(_source_issues(name, values))
    return Policy(raw=raw, origin=origin, directives=directives, issues=tuple(issues))


def _source_issues(name: str, values: list[str]) -> list[Issue]:
    out: list[Issue] = []
    lowered = [v.lower() for v in values]
    if "'none'" in lowered and len(values) > 1:
        out.append(Issue("syntax", name, "'none' combined with other sources is ignored", " ".join(values)))
    for v in values:
        low = v.lower()
        if low in KEYWORDS or valid_nonce(v) or valid_hash(v) or _SCHEME.match(v):
            continue
        if _NONCE_LIKE.match(v):
            out.append(Issue("syntax", name, "invalid nonce (base64 with at most two '='): browsers "
                             "ignore it", v[:200]))
        elif _HASH_LIKE.match(v):
            out.append(Issue("syntax", name, "invalid hash (base64 of the algorithm's digest length): "
                             "browsers ignore it", v[:200]))
        elif _UNQUOTED.match(v):
            out.append(Issue("syntax", name, f"did you forget to quote {v!r}? Unquoted it is a host name",
                             v[:200]))
        elif v.startswith("'"):
            out.append(Issue("syntax", name, "unknown keyword", v[:200]))
        elif not _HOST.match(v):
            out.append(Issue("syntax", name, "invalid source expression", v[:200]))
    return out


def parse_header(values: list[str] | tuple[str, ...], origin: str = "header") -> list[Policy]:
    """Parse every header value as a serialized CSP list (policies separated by commas)."""
    out: list[Policy] = []
    for value in values[:20]:
        for part in value[:MAX_POLICY_CHARS].split(","):
            if part.strip():
                out.append(parse_policy(part, origin))
    return out


# -- evaluation ---------------------------------------------------------------------------------

def _first(policy: Policy, *names: str) -> tuple[str, tuple[str, ...]] | None:
    """The first directive of ``names`` present in the policy (CSP3 fallback lists)."""
    for n in names:
        v = policy.get(n)
        if v is not None:
            return n, v
    return None


def _lower(values: tuple[str, ...]) -> list[str]:
    return [v.lower() for v in values]


def neutralises_inline(values: tuple[str, ...]) -> bool:
    """Nonces, hashes and 'strict-dynamic' make browsers ignore 'unsafe-inline' (CSP3 6.7.3.3). Only
    sources browsers accept count, and a nonce shorter than 8 characters does not (it can be guessed)."""
    return any((valid_nonce(v) and not short_nonce(v)) or valid_hash(v) or v.lower() == "'strict-dynamic'"
               for v in values)


def allows_inline(values: tuple[str, ...] | None) -> bool:
    if values is None:
        return True
    return "'unsafe-inline'" in _lower(values) and not neutralises_inline(values)


_WILDCARD_HOST = re.compile(r"^(?:([a-z][a-z0-9+.-]*)://)?\*(?::(?:\d{1,5}|\*))?(?:/\S*)?$", re.I)


def risky_kind(source: str) -> str | None:
    """The risky source a token amounts to: '*', 'http:', 'https:', 'data:' as such, and host sources
    whose host is the bare wildcard ('https://*' allows every https host, like 'https:'; '*:443'
    like '*'), as Google's CSP Evaluator treats them. None for anything narrower."""
    low = source.lower()
    if low in RISKY_SOURCES:
        return low
    m = _WILDCARD_HOST.match(low)
    if m is None:
        return None
    scheme = m.group(1)
    if scheme is None:
        return "*"
    return f"{scheme}:" if f"{scheme}:" in RISKY_SOURCES else None


def risky_script_sources(values: tuple[str, ...] | None) -> set[str] | None:
    """Wildcard and scheme sources that stay effective (None: unrestricted, everything allowed)."""
    if values is None:
        return None
    low = _lower(values)
    if "'strict-dynamic'" in low:
        return set()  # host and scheme sources and 'self' are dropped
    found = {k for k in (risky_kind(v) for v in values) if k}
    # What each source also permits, so several policies intersect correctly ('*' covers http(s):,
    # and since CSP3 'http:' also matches https: URLs).
    if "*" in found:
        found |= {"http:", "https:"}
    if "http:" in found:
        found.add("https:")
    return found


def _minimal(risky: set[str]) -> set[str]:
    """Report the broadest source only ('*' rather than '*', 'http:' and 'https:')."""
    if "*" in risky:
        risky = risky - {"http:", "https:"}
    if "http:" in risky:
        risky = risky - {"https:"}
    return risky


def http_host_sources(values: tuple[str, ...] | None) -> set[str]:
    if not values or "'strict-dynamic'" in _lower(values):
        return set()
    return {v for v in values if v.lower().startswith("http://")}


@cache
def _bypass_lists() -> dict[str, list[str]]:
    with (Path(__file__).parent / "csp_bypasses.json").open(encoding="utf-8") as fh:
        data: dict[str, list[str]] = json.load(fh)
    return data


def _url_matches(source: str, url: str) -> bool:
    """CSP Evaluator's matchWildcardUrls for one source and one listed '//host/path' URL."""
    rest = source.split("://", 1)[1] if "://" in source else source
    host, _, path = rest.partition("/")
    host = host.lower().rsplit(":", 1)[0] if host.count(":") == 1 else host.lower()
    listed = urlsplit("https:" + url)
    domain = (listed.hostname or "").lower()
    if host.startswith("*."):
        if not domain.endswith(host[1:]):
            return False
    elif host != domain:
        return False
    if path:
        path = "/" + path
        return listed.path.startswith(path) if path.endswith("/") else listed.path == path
    return True


def bypass_hosts(values: tuple[str, ...] | None) -> set[str] | None:
    """Hosts of a script source list known to serve JSONP endpoints or AngularJS (CSP Evaluator's
    checkScriptAllowlistBypass). None: the list does not restrict hosts (absent, or a wildcard)."""
    if values is None:
        return None
    low = _lower(values)
    if "'strict-dynamic'" in low or "'none'" in low:
        return set()
    if any(risky_kind(v) in ("*", "https:", "http:") for v in values):
        return None
    lists = _bypass_lists()
    found: set[str] = set()
    for v in values:
        if v.startswith("'") or _SCHEME.match(v) or "." not in v:
            continue
        for kind in ("jsonp", "angular"):
            for url in lists[kind]:
                if _url_matches(v.lower(), url):
                    domain = urlsplit("https:" + url).hostname or ""
                    if kind == "jsonp" and domain in lists["jsonp_needs_eval"] and "'unsafe-eval'" not in low:
                        continue
                    found.add(f"{v[:100]} ({'JSONP' if kind == 'jsonp' else 'AngularJS'} on {domain})")
                    break
    return found


def _intersect(sets: list[set[str] | None]) -> set[str] | None:
    """Intersection where None is the universal set."""
    out: set[str] | None = None
    for s in sets:
        if s is None:
            continue
        out = set(s) if out is None else out & s
    return out


def script_policy(policy: Policy) -> dict[str, tuple[str, tuple[str, ...]] | None]:
    """The effective lists of one policy for script elements, attributes and eval (CSP3 fallbacks)."""
    return {
        "elem": _first(policy, "script-src-elem", "script-src", "default-src"),
        "attr": _first(policy, "script-src-attr", "script-src", "default-src"),
        "eval": _first(policy, "script-src", "default-src"),
    }


def blocks_objects(policy: Policy) -> bool:
    """object-src (or default-src) is 'none' or empty: an empty source list matches nothing (CSP3)."""
    found = _first(policy, "object-src", "default-src")
    return found is not None and _lower(found[1]) in (["'none'"], [])


def evaluate(policies: list[Policy]) -> list[Problem]:
    """Problems of the combined enforced policies (empty list: scripts are restricted as H3 asks)."""
    if not policies:
        return [Problem("missing", "fail", "No Content-Security-Policy", "no enforced policy")]
    problems: list[Problem] = []
    eff = [script_policy(p) for p in policies]
    if all(e["elem"] is None for e in eff):
        problems.append(Problem(
            "no-script-restriction", "fail", "CSP does not restrict scripts",
            "no policy has script-src, script-src-elem or default-src, so any script may run"))
    else:
        elem_lists = [e["elem"][1] if e["elem"] else None for e in eff]
        attr_lists = [e["attr"][1] if e["attr"] else None for e in eff]
        eval_lists = [e["eval"][1] if e["eval"] else None for e in eff]
        names = sorted({e["elem"][0] for e in eff if e["elem"]})
        where = "/".join(names)
        if all(allows_inline(v) for v in elem_lists):
            unusable = sorted({v[:60] for lst in elem_lists for v in (lst or ())
                               if (_NONCE_LIKE.match(v) or _HASH_LIKE.match(v))
                               and not neutralises_inline((v,))})
            why = (f" (browsers reject or an attacker can guess {', '.join(unusable[:3])})"
                   if unusable else "")
            problems.append(Problem(
                "unsafe-inline", "fail", "CSP allows inline scripts ('unsafe-inline')",
                f"{where} allows 'unsafe-inline' without a valid nonce, hash or 'strict-dynamic'{why}: "
                "injected inline scripts run", where, ("'unsafe-inline'",)))
        elif all(allows_inline(v) for v in attr_lists):
            problems.append(Problem(
                "unsafe-inline-attr", "fail", "CSP allows inline event handlers ('unsafe-inline')",
                "script-src-attr (or its fallback) allows 'unsafe-inline' without a nonce or hash",
                "script-src-attr", ("'unsafe-inline'",)))
        if all(v is None or "'unsafe-eval'" in _lower(v) for v in eval_lists):
            problems.append(Problem(
                "unsafe-eval", "fail", "CSP allows eval() ('unsafe-eval')",
                "script-src (or default-src) allows 'unsafe-eval': strings can be run as code",
                "script-src", ("'unsafe-eval'",)))
        risky = _minimal(_intersect([risky_script_sources(v) for v in elem_lists]) or set())
        for src in sorted(risky):
            label = "wildcard" if src == "*" else f"scheme source {src}"
            sent = sorted({v for lst in elem_lists for v in (lst or ()) if risky_kind(v) == src})[:5]
            if sent and sent != [src]:
                label += f" (as {' '.join(sent)})"
            problems.append(Problem(
                f"script-{src.strip(':*') or 'wildcard'}", "fail",
                f"CSP allows scripts from any host ({src})",
                f"{where} contains the {label}: scripts may load from any host, which defeats the policy",
                where, (src,)))
        http_sets = [http_host_sources(v) for v in elem_lists]
        if all(http_sets):
            srcs = sorted(set().union(*http_sets))[:10]
            problems.append(Problem(
                "script-http-host", "warn", "CSP allows scripts over plain HTTP",
                "script sources with http:// can be replaced by a network attacker", where, tuple(srcs)))
        bypass = sorted(_intersect([bypass_hosts(v) for v in elem_lists]) or ())[:10]
        if bypass:
            problems.append(Problem(
                "script-allowlist-bypass", "warn", "CSP allows script hosts known to bypass it",
                f"{where} allows {', '.join(bypass)}: these hosts serve JSONP endpoints or AngularJS "
                "libraries that run attacker-chosen script (use nonces or hashes with 'strict-dynamic')",
                where, tuple(bypass)))
    problems += _source_warnings(policies)
    if not any(blocks_objects(p) for p in policies):
        found = [f for f in (_first(p, "object-src", "default-src") for p in policies) if f]
        if found:
            detail = "object-src (or default-src) is " + "; ".join(
                f"{n} {' '.join(v)[:200]}" for n, v in found[:3]) + ", not 'none': plugins can run script"
        else:
            detail = "no object-src or default-src: <object>/<embed> may load plugin content from anywhere"
        problems.append(Problem("object-src", "fail", "CSP does not set object-src 'none'", detail,
                                "object-src"))
    base = [p.get("base-uri") for p in policies if p.has("base-uri")]
    if not base:
        problems.append(Problem(
            "missing-base-uri", "fail", "CSP does not set base-uri",
            "without base-uri an injected <base> tag can redirect relative script URLs "
            "(set base-uri 'none' or 'self')", "base-uri"))
    else:
        risky_base = _intersect([{k for k in map(risky_kind, b or ()) if k} for b in base])
        if risky_base:
            problems.append(Problem(
                "base-uri-wildcard", "fail", "CSP base-uri allows any host",
                f"base-uri contains {', '.join(sorted(risky_base))}", "base-uri", tuple(sorted(risky_base))))
    for p in policies:
        for issue in p.issues:
            problems.append(Problem(
                f"{issue.kind}", "warn",
                {"syntax": "CSP syntax error", "deprecated": "Deprecated CSP directive",
                 "ignored": "CSP directive ignored"}.get(issue.kind, "CSP issue")
                + f": {issue.directive}", issue.message, issue.directive,
                (issue.value,) if issue.value else ()))
    return problems


def _source_warnings(policies: list[Policy]) -> list[Problem]:
    """Nonces shorter than 8 characters and IP-address sources (CSP Evaluator's checkNonceLength and
    checkIpSource), once per distinct source."""
    short: dict[str, str] = {}
    ips: dict[str, str] = {}
    for p in policies:
        for name, values in p.directives.items():
            if name not in SOURCE_DIRECTIVES:
                continue
            for v in values:
                if short_nonce(v):
                    short.setdefault(v[:100], name)
                elif is_ip_source(v):
                    ips.setdefault(v[:100], name)
    out = [Problem("short-nonce", "warn", "CSP nonce shorter than 8 characters",
                   f"{name} has {v}: a nonce this short can be guessed, so it does not stop injected "
                   "scripts and does not neutralise 'unsafe-inline'; use at least 128 random bits, "
                   "base64-encoded", name, (v,)) for v, name in list(short.items())[:5]]
    out += [Problem("ip-source", "warn", "CSP has an IP address as source",
                    f"{name} has {v}: browsers match it only against URLs that use that IP address "
                    "literally" + (" (localhost: remove it in production)"
                                   if host_of(v) == "127.0.0.1" else ""),
                    name, (v,)) for v, name in list(ips.items())[:5]]
    return out


def neutralised_notes(policies: list[Policy]) -> list[str]:
    """Informational: 'unsafe-inline' present but neutralised by a nonce, hash or 'strict-dynamic'."""
    notes = []
    for p in policies:
        found = script_policy(p)["elem"]
        if found and "'unsafe-inline'" in _lower(found[1]) and neutralises_inline(found[1]):
            notes.append(f"{found[0]}: 'unsafe-inline' is ignored by CSP3 browsers because of a nonce, "
                         "hash or 'strict-dynamic' (kept for old browsers)")
    return notes


def frame_ancestors(policies: list[Policy]) -> list[tuple[str, ...]]:
    """frame-ancestors lists of header policies (meta policies cannot set it)."""
    return [p.directives["frame-ancestors"] for p in policies
            if p.origin == "header" and "frame-ancestors" in p.directives]


def upgrades_insecure(policies: list[Policy]) -> bool:
    return any(p.has("upgrade-insecure-requests") for p in policies)
