"""Cookie checks C1-C4 over every Set-Cookie line of every hop of the http:// and https:// chains.
Pure functions of the snapshot; parsing per RFC 6265bis (``checks.lib.cookies``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from checks.lib.cookies import Cookie, parse_set_cookie, prefix_problems, session_rule
from checks.lib.html import parse_page
from scanner.evidence.http import HTTPEvidence, clip
from scanner.models import Finding, Severity, Status
from scanner.plugins import CheckMeta, Needs, check

MAX_COOKIES = 50


@dataclass(frozen=True)
class SeenCookie:
    cookie: Cookie
    line: str
    url: str
    over_https: bool
    session: str | None  # the rule that made it a session cookie

    def evidence(self, **extra: Any) -> dict[str, Any]:
        c = self.cookie
        out: dict[str, Any] = {
            "cookie": clip(c.name, 200), "set_cookie": clip(self.line, 500), "url": clip(self.url, 300),
            "over_https": self.over_https, "secure": c.secure, "httponly": c.http_only,
            "samesite": c.same_site_raw, "domain": c.domain, "path": c.path,
            "session_cookie": self.session is not None,
        }
        if self.session:
            out["session_rule"] = self.session
        out.update(extra)
        return out


def collect_cookies(ev: HTTPEvidence) -> list[SeenCookie]:
    """Every cookie set on every answered hop (https chain first), deletions left out."""
    login_url = None
    if ev.page is not None and ev.page.html:
        info = parse_page(ev.page.html, ev.page.url)
        if info.login_form:
            login_url = ev.page.url
    out: list[SeenCookie] = []
    seen: set[tuple[str, str]] = set()
    for chain in (ev.https, ev.http):
        if chain is None:
            continue
        for hop in chain.hops:
            if not hop.ok:
                continue
            https = urlsplit(hop.url).scheme == "https"
            for line in hop.set_cookies:
                parsed = parse_set_cookie(line)
                if parsed is None or parsed.is_deletion():
                    continue
                key = (str(https), line)
                if key in seen:
                    continue
                seen.add(key)
                rule = session_rule(parsed.name, on_login_form=hop.url == login_url)
                out.append(SeenCookie(parsed, line, hop.url, https, rule))
                if len(out) >= MAX_COOKIES:
                    return out
    return out


def _unobservable(ev: HTTPEvidence) -> str | None:
    """Why cookies could not be observed: collection failed or the https:// request got no answer."""
    if ev.error:
        return ev.error
    if ev.https is None or ev.https.errored:
        first = ev.https.first if ev.https else None
        why = first.error if first and first.error else "not fetched"
        return f"the HTTPS request failed ({why}): cookies could not be observed"
    return None


OBSERVED = Needs("http", _unobservable, kind=lambda ev: ev.failure_kind)


def _cookies(ev: HTTPEvidence, meta: CheckMeta) -> tuple[list[SeenCookie] | None, list[Finding]]:
    """The cookies set, or the ``not_applicable`` finding when there are none."""
    cookies = collect_cookies(ev)
    if not cookies:
        return None, [meta.finding(Status.NOT_APPLICABLE, "No cookies are set",
                                   "no Set-Cookie header on any fetched page or redirect")]
    return cookies, []


@check("cookie-secure", needs=OBSERVED)
def secure(ev: HTTPEvidence, m: CheckMeta) -> list[Finding]:
    cookies, early = _cookies(ev, m)
    if cookies is None:
        return early
    out: list[Finding] = []
    for sc in cookies:
        if sc.cookie.secure:
            continue
        sev = Severity.HIGH if sc.session else Severity.MEDIUM
        if sc.over_https:
            out.append(m.finding(Status.FAIL, f"Cookie {clip(sc.cookie.name, 80)} lacks Secure",
                                 "set over HTTPS without Secure: it will also be sent over plain HTTP"
                                 + (f" (session cookie: {sc.session})" if sc.session else ""),
                                 evidence=sc.evidence(), severity=sev))
        else:
            out.append(m.finding(Status.WARN, f"Cookie {clip(sc.cookie.name, 80)} is set over plain HTTP",
                                 "set on a plain-HTTP response without Secure (see H1)",
                                 evidence=sc.evidence(), severity=sev))
    if not out:
        out.append(m.finding(Status.PASS, "Every cookie carries Secure", f"{len(cookies)} cookie(s) checked",
                             evidence={"cookies": [clip(c.cookie.name, 100) for c in cookies]}))
    return out


@check("cookie-httponly", needs=OBSERVED)
def httponly(ev: HTTPEvidence, m: CheckMeta) -> list[Finding]:
    cookies, early = _cookies(ev, m)
    if cookies is None:
        return early
    sessions = [c for c in cookies if c.session]
    if not sessions:
        return [m.finding(Status.NOT_APPLICABLE, "No session cookie recognised",
                          "no cookie matched the session-cookie rules",
                          evidence={"cookies": [clip(c.cookie.name, 100) for c in cookies]})]
    out = [m.finding(Status.FAIL, f"Session cookie {clip(sc.cookie.name, 80)} lacks HttpOnly",
                     f"recognised as a session cookie ({sc.session}); script can read it",
                     evidence=sc.evidence())
           for sc in sessions if not sc.cookie.http_only]
    if not out:
        out.append(m.finding(Status.PASS, "Session cookies carry HttpOnly",
                             ", ".join(f"{clip(c.cookie.name, 60)} ({c.session})" for c in sessions[:10]),
                             evidence={"cookies": [c.evidence() for c in sessions[:10]]}))
    return out


@check("cookie-samesite", needs=OBSERVED)
def samesite(ev: HTTPEvidence, m: CheckMeta) -> list[Finding]:
    cookies, early = _cookies(ev, m)
    if cookies is None:
        return early
    out: list[Finding] = []
    for sc in cookies:
        c = sc.cookie
        name = clip(c.name, 80)
        if c.same_site in ("lax", "strict"):
            continue
        if c.same_site == "none":
            if not c.secure:
                out.append(m.finding(Status.FAIL, f"Cookie {name} has SameSite=None without Secure",
                                     "browsers reject SameSite=None cookies without Secure",
                                     evidence=sc.evidence()))
            continue
        detail = "no SameSite attribute" if c.same_site_raw is None else \
            f"unrecognised SameSite value {clip(c.same_site_raw, 40)!r}"
        if sc.session:
            out.append(m.finding(Status.FAIL, f"Session cookie {name} has no SameSite",
                                 f"{detail}; session cookie ({sc.session})", evidence=sc.evidence()))
        else:
            out.append(m.finding(Status.WARN, f"Cookie {name} has no SameSite", detail,
                                 evidence=sc.evidence()))
    if not out:
        out.append(m.finding(Status.PASS, "Cookies carry SameSite", f"{len(cookies)} cookie(s) checked",
                             evidence={"cookies": [clip(c.cookie.name, 100) for c in cookies]}))
    return out


@check("cookie-prefixes", needs=OBSERVED)
def prefixes(ev: HTTPEvidence, m: CheckMeta) -> list[Finding]:
    cookies, early = _cookies(ev, m)
    if cookies is None:
        return early
    prefixed = [c for c in cookies if c.cookie.prefix]
    if not prefixed:
        return [m.finding(Status.NOT_APPLICABLE, "No __Secure- or __Host- cookies")]
    out = []
    for sc in prefixed:
        problems = prefix_problems(sc.cookie)
        if problems:
            out.append(m.finding(Status.FAIL, f"Cookie {clip(sc.cookie.name, 80)} breaks its prefix rules",
                                 "; ".join(problems), evidence=sc.evidence(problems=problems)))
    if not out:
        out.append(m.finding(Status.PASS, "Prefixed cookies obey their prefix",
                             ", ".join(clip(c.cookie.name, 60) or "" for c in prefixed[:10])))
    return out

