"""Unit tests of the CSP3 parser and evaluator (checks/lib/csp.py)."""

from __future__ import annotations

import pytest

from checks.lib.csp import evaluate, parse_header, parse_policy


def codes(*values: str) -> set[str]:
    return {p.code for p in evaluate(parse_header(list(values)))}


STRICT = "object-src 'none'; base-uri 'none'"


def test_parse_directives_lowercased_first_duplicate_wins():
    p = parse_policy("Script-Src 'self'; script-src *; img-src https:")
    assert p.get("script-src") == ("'self'",)
    assert any(i.message.startswith("duplicate") for i in p.issues)


def test_comma_separates_policies_in_one_header():
    assert len(parse_header(["default-src 'self', img-src *"])) == 2


def test_meta_ignores_frame_ancestors():
    p = parse_policy("frame-ancestors 'none'; default-src 'self'", "meta")
    assert not p.has("frame-ancestors") and p.issues[0].kind == "ignored"


SHA256 = "'sha256-" + "A" * 43 + "='"


def test_hash_neutralises_unsafe_inline():
    assert "unsafe-inline" not in codes(f"script-src {SHA256} 'unsafe-inline'; {STRICT}")
    assert "unsafe-inline" in codes(f"script-src 'self' 'unsafe-inline'; {STRICT}")


def test_strict_dynamic_drops_hosts_but_not_eval():
    got = codes(f"script-src 'nonce-a' 'strict-dynamic' https: 'unsafe-eval'; {STRICT}")
    assert "script-https" not in got and "unsafe-eval" in got


def test_default_src_fallback_and_no_script_restriction():
    assert codes(f"default-src 'self'; {STRICT}") == set()
    assert "no-script-restriction" in codes(f"img-src 'self'; {STRICT}")


def test_wildcard_intersection_reports_broadest():
    assert {"script-wildcard"} <= codes(f"script-src *; {STRICT}")
    assert "script-https" not in codes(f"script-src *; {STRICT}")
    # '*' in one policy and https: in another: https: URLs pass both.
    assert "script-https" in codes(f"script-src *; {STRICT}", f"script-src https:; {STRICT}")


def test_http_host_source_warns():
    got = evaluate(parse_header([f"script-src http://cdn.example; {STRICT}"]))
    assert [(p.code, p.status) for p in got] == [("script-http-host", "warn")]


def test_object_src_none_via_any_policy_and_base_uri_wildcard():
    assert "object-src" not in codes("script-src 'self'; base-uri 'self'", "object-src 'none'")
    assert "base-uri-wildcard" in codes("script-src 'self'; object-src 'none'; base-uri *")


def test_syntax_issues():
    got = {(p.code, p.directive) for p in evaluate(parse_header(
        [f"script-src 'self' 'bogus' none; {STRICT}; plugin-types application/pdf; report-uri /r"]))}
    assert ("syntax", "script-src") in got and ("deprecated", "plugin-types") in got
    assert not any(d == "report-uri" for _, d in got)  # report-uri alone is fine


def test_wildcard_host_sources_count_as_wildcards():
    # https://* allows every https host, like https:; *:443 like *. They are not hosts of a restriction.
    for src, code in (("https://*", "script-https"), ("http://*:80", "script-http"),
                      ("*:443", "script-wildcard"), ("HTTPS://*/js/", "script-https")):
        found = codes(f"script-src 'self' {src}; {STRICT}")
        assert code in found, (src, found)
    assert "base-uri-wildcard" in codes("script-src 'self'; object-src 'none'; base-uri https://*")
    assert not codes(f"script-src 'self' https://*.cdn.example; {STRICT}")


# -- issue 11: nonces and hashes as Chromium's ParseNonce/ParseHash accept them ----------------------

@pytest.mark.parametrize("source", [
    "'nonce-abcdefgh==='",  # more than two '='
    "'nonce-ab=cd'",  # '=' only at the end
    "'nonce-'",
    "'nonce-abc$defgh'",
    "'sha256-" + "A" * 43 + "==='",
    "'sha256-abc='",  # not 32 bytes
    "'sha384-" + "A" * 43 + "='",  # a sha256's length under sha384
])
def test_invalid_nonce_or_hash_leaves_unsafe_inline_in_force(source):
    problems = evaluate(parse_header([f"script-src 'unsafe-inline' {source}; {STRICT}"]))
    got = {p.code for p in problems}
    assert "unsafe-inline" in got
    assert any(p.code == "syntax" and p.values == (source,) for p in problems)


@pytest.mark.parametrize("source", [
    "'nonce-abcdefgh'", "'nonce-abcdefgh=='", "'NONCE-r4nd0m_-+/'", SHA256, "'sha256-" + "A" * 43 + "'",
    "'sha384-" + "A" * 64 + "'", "'sha512-" + "A" * 86 + "=='",
])
def test_valid_nonce_or_hash_neutralises_unsafe_inline(source):
    assert codes(f"script-src 'unsafe-inline' {source}; {STRICT}") == set()


def test_short_nonce_warns_and_does_not_neutralise():
    problems = evaluate(parse_header([f"script-src 'nonce-a'; {STRICT}"]))
    assert [(p.code, p.status) for p in problems] == [("short-nonce", "warn")]
    assert "guess" in problems[0].detail
    inline = evaluate(parse_header([f"script-src 'unsafe-inline' 'nonce-a'; {STRICT}"]))
    assert {p.code for p in inline} == {"unsafe-inline", "short-nonce"}
    assert "'nonce-a'" in next(p.detail for p in inline if p.code == "unsafe-inline")


# -- issue 11: an empty source list is 'none'; a missing ';' is diagnosed --------------------------

@pytest.mark.parametrize("policy", ["script-src 'self'; object-src; base-uri 'none'",
                                    "default-src; script-src 'self'; base-uri 'none'",
                                    "default-src ; base-uri 'none'"])
def test_empty_source_list_is_none(policy):
    assert codes(policy) == set()


def test_missing_semicolon_is_diagnosed():
    problems = evaluate(parse_header(["script-src 'self'; base-uri 'none'; report-uri /r object-src 'none'"]))
    assert "object-src" in {p.code for p in problems}  # browsers read object-src as a report URL
    hint = next(p for p in problems if p.code == "syntax")
    assert "missing ';' before 'object-src'" in hint.detail and hint.status == "warn"


# -- issue 11: the CSP Evaluator checks the docstring promised -------------------------------------

def test_ip_source_warns():
    problems = evaluate(parse_header([f"script-src 'self' 127.0.0.1 https://[::1]:8443/x; {STRICT}"]))
    ips = [p for p in problems if p.code == "ip-source"]
    assert [p.values for p in ips] == [("127.0.0.1",), ("https://[::1]:8443/x",)]
    assert all(p.status == "warn" for p in problems) and "localhost" in ips[0].detail


@pytest.mark.parametrize("policy,found", [
    ("script-src 'self' https://www.google.com", "www.google.com"),
    ("script-src *.googleapis.com", "ajax.googleapis.com"),
    ("script-src ajax.googleapis.com/ajax/libs/", "ajax.googleapis.com"),
    ("script-src www.google-analytics.com", None),  # its JSONP needs 'unsafe-eval'
    ("script-src www.google-analytics.com 'unsafe-eval'", "www.google-analytics.com"),
    ("script-src https://www.google.com 'strict-dynamic' 'nonce-abcdefgh'", None),
    ("script-src example.org", None),
    ("script-src https://www.google.com, script-src 'self'", None),  # the second policy blocks it
])
def test_allowlist_bypass_hosts_warn(policy, found):
    problems = [p for p in evaluate(parse_header([f"{policy}; {STRICT}"]))
                if p.code == "script-allowlist-bypass"]
    if found is None:
        assert problems == []
    else:
        assert problems[0].status == "warn" and found in problems[0].detail
