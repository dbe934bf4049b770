"""Unit tests of the C1-C4 checks and the RFC 6265bis parser (Given / When / Then)."""

from __future__ import annotations

import pytest

from checks import cookies as C
from checks.lib.cookies import parse_cookie_date, parse_set_cookie, session_rule
from scanner.models import Severity, Status
from tests.testbed.http_sites import GOOD_HEADERS, HOST, URL, failed, hop, snapshot


def worst(findings) -> Status:
    order = [Status.FAIL, Status.WARN, Status.ERROR, Status.PASS, Status.NOT_APPLICABLE]
    return next(s for s in order if any(f.status == s for f in findings))


def with_cookies(*lines: str, html: str = "<html></html>"):
    hdrs = list(GOOD_HEADERS.items()) + [("Set-Cookie", line) for line in lines]
    return snapshot(hdrs, html=html)


# -- parser
def test_parser_case_insensitive_attributes_last_wins():
    c = parse_set_cookie("id=1; SECURE; HTTPONLY; samesite=STRICT; Path=/a; path=/; DOMAIN=.Ex.Org")
    assert c and c.secure and c.http_only and c.same_site == "strict"
    assert c.path == "/" and c.domain == "ex.org"


def test_parser_max_age_over_expires():
    c = parse_set_cookie("a=b; Expires=Wed, 21 Oct 2015 07:28:00 GMT; Max-Age=3600")
    assert c and not c.is_deletion()
    d = parse_set_cookie("a=b; Expires=Wed, 21 Oct 2099 07:28:00 GMT; Max-Age=0")
    assert d and d.is_deletion()
    e = parse_set_cookie("a=b; Expires=Wed, 21 Oct 2015 07:28:00 GMT")
    assert e and e.is_deletion()


def test_parser_rejects_and_nameless():
    assert parse_set_cookie("a=b\x01c") is None
    assert parse_set_cookie("=") is None
    c = parse_set_cookie("justavalue; Secure")
    assert c and c.name == "" and c.value == "justavalue"


def test_cookie_date_forms():
    assert parse_cookie_date("Sun, 06 Nov 1994 08:49:37 GMT").year == 1994
    assert parse_cookie_date("Sunday, 06-Nov-94 08:49:37 GMT").year == 1994
    assert parse_cookie_date("Sun Nov  6 08:49:37 1994").day == 6
    assert parse_cookie_date("not a date") is None


@pytest.mark.parametrize("name,rule", [
    ("PHPSESSID", "known"), ("MoodleSession", "known"), ("my_auth", "auth"), ("csrftoken", "token"),
    ("theme", None),
    # issue 11: matched without the prefix
    ("__Host-sid", "known"), ("__Secure-PHPSESSID", "known"), ("__host-SESSIONID", "known"),
    ("__Host-id", None)])
def test_session_rules(name, rule):
    got = session_rule(name)
    assert (got is None) if rule is None else (rule in got)


# -- C1
def test_c1_no_cookies_not_applicable():
    for chk in C.CHECKS:
        assert worst(chk.run(snapshot())) == Status.NOT_APPLICABLE


def test_c1_session_cookie_without_secure_is_high():
    f = C.secure.run(with_cookies("PHPSESSID=x; HttpOnly; SameSite=Lax", "theme=d; SameSite=Lax"))
    sev = {x.evidence["cookie"]: x.severity for x in f}
    assert sev == {"PHPSESSID": Severity.HIGH, "theme": Severity.MEDIUM}
    php = next(x for x in f if x.evidence["cookie"] == "PHPSESSID")
    assert "known framework" in php.evidence["session_rule"]


def test_c1_cookie_on_redirect_hop_counts():
    https_hops = [hop(URL, 302, {"Location": f"https://{HOST}/home", "Set-Cookie": "lang=en"}),
                  hop(f"https://{HOST}/home", 200, GOOD_HEADERS)]
    f = C.secure.run(snapshot(https_hops=https_hops))
    assert worst(f) == Status.FAIL and f[0].evidence["url"] == URL


def test_c1_secure_passes():
    assert worst(C.secure.run(with_cookies("a=b; Secure; SameSite=Lax"))) == Status.PASS


def test_c_errors_when_https_failed():
    snap = snapshot(https_hops=[failed(URL, "timed out", "timeout")])
    for chk in C.CHECKS:
        assert {f.status for f in chk.run(snap)} == {Status.ERROR}


# -- C2
def test_c2_login_form_rule():
    html = '<form method=post><input type="password" name="pw"></form>'
    f = C.httponly.run(with_cookies("xyz=1; Secure; SameSite=Lax", html=html))
    assert worst(f) == Status.FAIL and f[0].evidence["session_rule"].startswith("set on the response")


def test_c2_prefixed_session_cookie_is_recognised():
    assert worst(C.httponly.run(with_cookies("__Host-sid=1; Secure; Path=/; HttpOnly"))) == Status.PASS
    f = C.httponly.run(with_cookies("__Host-sid=1; Secure; Path=/"))
    assert worst(f) == Status.FAIL and "known framework" in f[0].evidence["session_rule"]


@pytest.mark.parametrize("attr,domain", [
    ("Domain=.example.org", "example.org"), ("Domain=..example.org", ".example.org"),
    ("Domain=EXAMPLE.org", "example.org"), ("Domain=.", None)])
def test_parser_removes_one_leading_dot_of_domain(attr, domain):
    c = parse_set_cookie(f"a=1; {attr}")
    assert c is not None and c.domain == domain


def test_c2_non_session_cookies_not_applicable_and_httponly_passes():
    assert worst(C.httponly.run(with_cookies("theme=1; Secure"))) == Status.NOT_APPLICABLE
    assert worst(C.httponly.run(with_cookies("sessionid=1; Secure; httponly"))) == Status.PASS


# -- C3
@pytest.mark.parametrize("line,status", [
    ("theme=1; Secure; SameSite=Lax", Status.PASS),
    ("theme=1; Secure; SameSite=None", Status.PASS),
    ("theme=1; SameSite=None", Status.FAIL),
    ("theme=1; Secure", Status.WARN),
    ("theme=1; Secure; SameSite=bogus", Status.WARN),
    ("sessionid=1; Secure", Status.FAIL),
])
def test_c3(line, status):
    assert worst(C.samesite.run(with_cookies(line))) == status


# -- C4
@pytest.mark.parametrize("line,status", [
    ("__Host-id=1; Secure; Path=/", Status.PASS),
    ("__HOST-id=1; Secure; Path=/; Domain=school.example", Status.FAIL),
    ("__host-id=1; Secure", Status.FAIL),
    ("__Secure-id=1", Status.FAIL),
    ("__SECURE-id=1; secure", Status.PASS),
    ("plain=1; Secure", Status.NOT_APPLICABLE),
])
def test_c4(line, status):
    assert worst(C.prefixes.run(with_cookies(line))) == status
