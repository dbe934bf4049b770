"""Unit tests of the CSP3 parser and evaluator (checks/lib/csp.py)."""

from __future__ import annotations

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


def test_hash_neutralises_unsafe_inline():
    assert "unsafe-inline" not in codes(f"script-src 'sha256-abc=' 'unsafe-inline'; {STRICT}")
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
