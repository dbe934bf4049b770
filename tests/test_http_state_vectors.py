"""The http-state working group's cookie parser vectors (abarth/http-state tests/data/parser.json, commit
155e45c6), run through checks/lib/cookies.py with a minimal RFC 6265 cookie store: each case's
Set-Cookie lines are received from http://home.example.org:8888/cookie-parser?NAME and the Cookie header
sent to the case's ``sent-to`` URL is compared with the peer's expectation.

The vectors predate RFC 6265bis, whose browser algorithm pledgescan follows; where 6265bis (and browsers
today) decide differently, the case is listed in DEVIATIONS with the reason and the 6265bis result is
asserted instead."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from checks.lib.cookies import Cookie, parse_set_cookie

CASES = json.loads((Path(__file__).parent / "data" / "http_state_parser.json").read_text(encoding="utf-8"))
ORIGIN = "http://home.example.org:8888/cookie-parser?"
NOW = datetime(2011, 1, 1, tzinfo=UTC)  # when the vectors were written: their "future" dates are 2019-2027

# RFC 6265bis 5.6 stores a cookie without a name (``foo``, ``=foo``: name "", value "foo"), as browsers
# do; RFC 6265 ignored it. In these cases pledgescan also sends the nameless cookie(s), and otherwise
# agrees with the peer.
NAMELESS = frozenset({
    "0004", "0021", "0023", "0024", "0025", "0026", "0027", "0028", "CHROMIUM0009", "CHROMIUM0010",
    "CHROMIUM0012", "MOZILLA0012", "MOZILLA0014", "MOZILLA0015", "MOZILLA0016", "MOZILLA0017", "NAME0017",
    "NAME0023", "NAME0025", "NAME0028", "NAME0031", "NAME0032", "NAME0033",
})
# test name -> (why pledgescan differs, the Cookie pairs it sends)
DEVIATIONS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "DISABLED_CHROMIUM0022": ("disabled by the peer; RFC 6265bis ignores a line with a control character "
                              "(NUL) instead of truncating it", []),
    "DISABLED_CHROMIUM0023": ("disabled by the peer; RFC 6265bis ignores a line with a control character "
                              "(CR) instead of truncating it", []),
    "DISABLED_PATH0029": ("disabled by the peer: paths are compared without percent-decoding, as browsers "
                          "do", []),
    "DOMAIN0017": ("Domain=.org is rejected by a browser's cookie store (public suffix list), not by the "
                   "parser; pledgescan's parser reports the attribute as sent", [("foo", "bar")]),
}


def _domain_match(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


def _path_match(path: str, cookie_path: str) -> bool:
    if path == cookie_path:
        return True
    if path.startswith(cookie_path):
        return cookie_path.endswith("/") or path[len(cookie_path)] == "/"
    return False


def _default_path(path: str) -> str:
    if not path.startswith("/") or path.count("/") == 1:
        return "/"
    return path[:path.rfind("/")]


def cookies_sent(case: dict) -> list[tuple[str, str]]:
    """Store the case's Set-Cookie lines as a user agent does, then list the cookies sent to sent-to."""
    request = urlsplit(ORIGIN + case["test"].lower())
    host = request.hostname or ""
    jar: dict[tuple[str, str, str], tuple[Cookie, bool, int]] = {}
    for n, line in enumerate(case["received"]):
        c = parse_set_cookie(line)
        if c is None:
            continue
        if c.domain:
            if not _domain_match(host, c.domain):
                continue
            domain, host_only = c.domain, False
        else:
            domain, host_only = host, True
        path = c.path or _default_path(request.path)
        key = (c.name, domain, path)
        if c.is_deletion(NOW):
            jar.pop(key, None)
            continue
        jar[key] = (c, host_only, jar[key][2] if key in jar else n)
    target = urlsplit(urljoin(ORIGIN + case["test"].lower(),
                              case.get("sent-to", "/cookie-parser-result?" + case["test"].lower())))
    thost, tpath = target.hostname or "", target.path or "/"
    sent = [(c, path, order) for (_, domain, path), (c, host_only, order) in jar.items()
            if (thost == domain if host_only else _domain_match(thost, domain))
            and _path_match(tpath, path) and not (c.secure and target.scheme != "https")]
    sent.sort(key=lambda x: (-len(x[1]), x[2]))
    return [(c.name, c.value) for c, _, _ in sent]


@pytest.mark.parametrize("case", CASES, ids=[c["test"] for c in CASES])
def test_http_state_parser_vector(case: dict) -> None:
    got = cookies_sent(case)
    expected = [(c["name"], c["value"]) for c in case["sent"]]
    if case["test"] in NAMELESS:
        assert [p for p in got if p[0]] == expected and any(not name for name, _ in got)
    elif case["test"] in DEVIATIONS:
        why, ours = DEVIATIONS[case["test"]]
        assert got == ours, why
        assert got != expected, f"no longer a deviation: {why}"
    else:
        assert got == expected
