"""Property tests: the CSP, cookie, header and HTML parsers never raise on arbitrary, bounded input."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checks.lib import csp, headers
from checks.lib.cookies import parse_cookie_date, parse_set_cookie, prefix_problems, session_rule
from checks.lib.html import parse_page

TEXT = st.text(max_size=2000)
HEADERISH = st.lists(st.sampled_from(list("abcdefghijklmnopqrstuvwxyz-*:;,='\"/ ().0123456789\t")
                                     + ["'self'", "'none'", "'unsafe-inline'", "'nonce-x'", "script-src ",
                                        "default-src ", "max-age=", "__Host-", "Secure", "SameSite=",
                                        "Path=/", "Domain="]),
                     max_size=120).map("".join)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.lists(st.one_of(TEXT, HEADERISH), max_size=4))
def test_csp_never_raises(values):
    policies = csp.parse_header(values)
    problems = csp.evaluate(policies)
    assert all(p.status in ("fail", "warn") for p in problems)
    csp.neutralised_notes(policies)
    csp.frame_ancestors(policies)


@FAST
@given(st.one_of(TEXT, HEADERISH))
def test_cookie_parser_never_raises(line):
    c = parse_set_cookie(line)
    if c is not None:
        prefix_problems(c)
        c.is_deletion()
        session_rule(c.name, True)
    parse_cookie_date(line)


@FAST
@given(st.lists(st.one_of(TEXT, HEADERISH), max_size=3))
def test_header_parsers_never_raise(values):
    for v in values:
        h = headers.parse_hsts(v)
        assert h.max_age is None or h.max_age >= 0
        headers.discloses_version(v)
        headers.parse_meta_referrer(v)
    headers.parse_referrer_policy(values)
    headers.parse_xfo(values)
    headers.is_nosniff(values)
    headers.parse_permissions_policy(values)


@FAST
@given(TEXT)
def test_html_parser_never_raises(html):
    parse_page(html, "https://school.example/")


def test_huge_inputs_are_bounded():
    big = "script-src " + "a.example " * 200_000
    policies = csp.parse_header([big])
    assert len(policies[0].raw) <= csp.MAX_POLICY_CHARS
    assert parse_set_cookie("a=" + "b" * 100_000) is None
    assert headers.parse_hsts("max-age=1;" * 100_000).valid is False
