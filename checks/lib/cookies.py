"""Set-Cookie parser following RFC 6265bis section 5.6 (the browser algorithm), pure code.

Written by hand because ``http.cookies`` follows the obsolete RFC 2109 grammar (it rejects or mangles
real-world lines) and no maintained library implements the 6265bis user-agent algorithm with its
case-insensitive attribute names and prefixes, last-attribute-wins and Max-Age-over-Expires rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

MAX_LINE = 8192
MAX_NAME_VALUE = 4096
MAX_ATTR_VALUE = 1024
_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_WSP = " \t"

SESSION_NAMES = frozenset(n.lower() for n in (
    "PHPSESSID", "JSESSIONID", "ASP.NET_SessionId", "ASPSESSIONID", "connect.sid", "laravel_session",
    "MoodleSession", "sessionid", "session", "sid", "_session_id", "CFID", "CFTOKEN", "wordpress_logged_in",
    "Canvas_session", "_normandy_session", "SSESS", "SESS", "django_session", "ci_session",
))
SESSION_PARTS = ("sess", "auth", "token", "login")


@dataclass(frozen=True)
class Cookie:
    """One parsed Set-Cookie line (attributes per RFC 6265bis; last occurrence wins)."""

    name: str
    value: str
    secure: bool = False
    http_only: bool = False
    same_site: str | None = None  # "strict" | "lax" | "none" | None (absent or unrecognised)
    same_site_raw: str | None = None
    domain: str | None = None
    path: str | None = None
    max_age: int | None = None
    expires: datetime | None = None
    partitioned: bool = False
    attributes: tuple[str, ...] = field(default_factory=tuple)  # attribute names seen, lower-case

    @property
    def prefix(self) -> str | None:
        """'__Secure-' or '__Host-' when the name starts with one (case-insensitively)."""
        low = self.name.lower()
        if low.startswith("__host-"):
            return "__Host-"
        if low.startswith("__secure-"):
            return "__Secure-"
        return None

    def is_deletion(self, now: datetime | None = None) -> bool:
        """The line removes the cookie: Max-Age <= 0, else (Max-Age absent) an Expires in the past."""
        if self.max_age is not None:
            return self.max_age <= 0
        if self.expires is not None:
            return self.expires <= (now or datetime.now(UTC))
        return False

    @property
    def persistent(self) -> bool:
        return self.max_age is not None or self.expires is not None


def parse_set_cookie(line: str) -> Cookie | None:
    """Parse one Set-Cookie value; None when a browser would ignore the whole line. Never raises."""
    line = line[:MAX_LINE]
    if _CTL.search(line):
        return None
    nv, sep, rest = line.partition(";")
    if "=" in nv:
        name, _, value = nv.partition("=")
    else:
        name, value = "", nv
    name, value = name.strip(_WSP), value.strip(_WSP)
    if not name and not value:
        return None
    if len(name) + len(value) > MAX_NAME_VALUE:
        return None
    attrs: dict[str, str] = {}
    seen: list[str] = []
    for part in rest.split(";") if sep else []:
        aname, _, avalue = part.partition("=")
        aname, avalue = aname.strip(_WSP).lower(), avalue.strip(_WSP)
        if not aname or len(avalue) > MAX_ATTR_VALUE:
            continue
        seen.append(aname)
        if aname == "expires":
            if parse_cookie_date(avalue) is not None:
                attrs[aname] = avalue
        elif aname == "max-age":
            if re.fullmatch(r"-?\d+", avalue) and avalue[0] in "-0123456789":
                attrs[aname] = avalue
        elif aname == "domain":
            if avalue:  # RFC 6265bis 5.6.2: one leading dot is removed, not all of them
                attrs[aname] = (avalue[1:] if avalue.startswith(".") else avalue).lower()
        elif aname == "path":
            attrs[aname] = avalue if avalue.startswith("/") else ""
        elif aname in ("secure", "httponly", "partitioned"):
            attrs[aname] = ""
        elif aname == "samesite":
            attrs[aname] = avalue
    raw_ss = attrs.get("samesite")
    same_site = raw_ss.lower() if raw_ss is not None and raw_ss.lower() in ("strict", "lax", "none") else None
    max_age = None
    if "max-age" in attrs:
        try:
            max_age = max(min(int(attrs["max-age"]), 2**40), -(2**40))
        except ValueError:
            max_age = None
    return Cookie(
        name=name, value=value, secure="secure" in attrs, http_only="httponly" in attrs,
        same_site=same_site, same_site_raw=raw_ss[:100] if raw_ss is not None else None,
        domain=attrs.get("domain") or None, path=attrs.get("path") or None, max_age=max_age,
        expires=parse_cookie_date(attrs["expires"]) if "expires" in attrs else None,
        partitioned="partitioned" in attrs, attributes=tuple(dict.fromkeys(seen))[:20],
    )


_DELIM = re.compile(r"[\x09\x20-\x2f\x3b-\x40\x5b-\x60\x7b-\x7e]+")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


def parse_cookie_date(text: str) -> datetime | None:
    """The cookie-date algorithm of RFC 6265bis 5.1.1 (lenient, like browsers). Never raises."""
    time_ = day = month = year = None
    for tok in _DELIM.split(text[:MAX_ATTR_VALUE]):
        if not tok:
            continue
        if time_ is None and (m := re.match(r"^(\d{1,2}):(\d{1,2}):(\d{1,2})(?:[^\d]|$)", tok)):
            time_ = tuple(int(x) for x in m.groups())
            continue
        if day is None and (m := re.match(r"^(\d{1,2})(?:[^\d]|$)", tok)):
            day = int(m.group(1))
            continue
        if month is None and tok[:3].lower() in _MONTHS:
            month = _MONTHS.index(tok[:3].lower()) + 1
            continue
        if year is None and (m := re.match(r"^(\d{2,4})(?:[^\d]|$)", tok)):
            year = int(m.group(1))
            continue
    if None in (time_, day, month, year):
        return None
    assert year is not None and time_ is not None and day is not None and month is not None
    if 70 <= year <= 99:
        year += 1900
    elif 0 <= year <= 69:
        year += 2000
    h, mi, s = time_
    if not (1 <= day <= 31) or year < 1601 or h > 23 or mi > 59 or s > 59:
        return None
    try:
        return datetime(year, month, day, h, mi, s, tzinfo=UTC)
    except ValueError:
        return None


def session_rule(name: str, on_login_form: bool = False) -> str | None:
    """Why a cookie counts as a session/authentication cookie (the rule, for evidence), or None.
    The name is compared without a __Host- or __Secure- prefix (``__Host-sid`` is a session cookie)."""
    low = name.lower()
    for prefix in ("__host-", "__secure-"):
        if low.startswith(prefix):
            low = low[len(prefix):]
            break
    if low in SESSION_NAMES:
        return f"name {name!r} is a known framework session cookie"
    for part in SESSION_PARTS:
        if part in low:
            return f"name contains {part!r}"
    if on_login_form:
        return "set on the response of a page with a login form"
    return None


def prefix_problems(cookie: Cookie) -> list[str]:
    """Violations of the cookie-name prefix rules (RFC 6265bis 4.1.3), matched case-insensitively."""
    out: list[str] = []
    if cookie.prefix == "__Secure-" and not cookie.secure:
        out.append("__Secure- cookie without the Secure attribute (browsers reject it)")
    if cookie.prefix == "__Host-":
        if not cookie.secure:
            out.append("__Host- cookie without the Secure attribute")
        if cookie.domain:
            out.append(f"__Host- cookie with a Domain attribute ({cookie.domain[:100]})")
        if cookie.path != "/":
            out.append("__Host- cookie without Path=/")
    return out
