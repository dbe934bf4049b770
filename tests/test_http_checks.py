"""Unit tests of the H1-H11 checks from recorded evidence (Given / When / Then)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from checks import http as H
from scanner.evidence.http import CorsProbe, TextFetch
from scanner.models import Status
from tests.testbed.http_sites import GOOD_HEADERS, HOST, URL, failed, hop, redirect, sectxt_ok, snapshot


def worst(findings) -> Status:
    order = [Status.FAIL, Status.WARN, Status.ERROR, Status.PASS, Status.NOT_APPLICABLE]
    return next(s for s in order if any(f.status == s for f in findings))


def headers(**over: str | None) -> dict[str, str]:
    h = dict(GOOD_HEADERS)
    for k, v in over.items():
        name = k.replace("_", "-")
        h = {a: b for a, b in h.items() if a.lower() != name.lower()}
        if v is not None:
            h[name] = v
    return h


ALL = H.CHECKS


def test_all_pass_on_good_site():
    snap = snapshot()
    for chk in ALL:
        got = chk.run(snap)
        assert got, chk.id
        assert worst(got) == Status.PASS, (chk.id, [(f.status, f.title, f.detail) for f in got])


@pytest.mark.parametrize("chk", ALL, ids=lambda c: c.id)
def test_errors_never_fail(chk):
    # Given evidence of an unreachable endpoint; every control is error, never fail.
    for snap in (snapshot(error="timed out"),
                 snapshot(https_hops=[failed(URL, "timed out", "timeout")],
                          http_hops=[failed(f"http://{HOST}/", "timed out", "timeout")])):
        got = chk.run(snap)
        assert {f.status for f in got} == {Status.ERROR}
        assert {f.control for f in got} == set(chk.meta.controls)


# -- H1
def test_h1_http_served_without_redirect_fails():
    snap = snapshot(http_hops=[hop(f"http://{HOST}/", 200)])
    assert worst(H.https_redirect.run(snap)) == Status.FAIL


def test_h1_first_hop_to_other_host_fails():
    snap = snapshot(http_hops=[redirect(f"http://{HOST}/", "https://www.school.example/"),
                               hop("https://www.school.example/", 200)])
    f = H.https_redirect.run(snap)
    assert worst(f) == Status.FAIL and "leaves the host" in f[0].title


def test_h1_first_hop_to_http_fails():
    snap = snapshot(http_hops=[redirect(f"http://{HOST}/", f"http://{HOST}/a"),
                               redirect(f"http://{HOST}/a", URL), hop(URL, 200)])
    assert worst(H.https_redirect.run(snap)) == Status.FAIL


def test_h1_port_80_closed_passes_but_https_ok():
    snap = snapshot(http_hops=[failed(f"http://{HOST}/")])
    assert worst(H.https_redirect.run(snap)) == Status.PASS


# -- H2
@pytest.mark.parametrize("value,status", [
    ("max-age=31536000", Status.PASS),
    ('max-age="31536000"; includeSubDomains; preload', Status.PASS),
    ("MAX-AGE=15552000", Status.WARN),
    ("max-age=86400", Status.FAIL),
    ("max-age=abc", Status.FAIL),
    ("max-age=0", Status.FAIL),
    ("max-age=" + "9" * 40, Status.PASS),  # delta-seconds has no upper bound: browsers cap it
    ("max-age=31536000; max-age=31536000", Status.FAIL),
    ("includeSubDomains", Status.FAIL),
    # issue 11: Chromium's ParseHSTSHeader rejects these, so browsers apply no HSTS
    ("max-age=31536000; includeSubDomains, max-age=31536000; includeSubDomains", Status.FAIL),
    ("includeSubDomains=yes; max-age=31536000", Status.FAIL),
    ("max-age=31536000; x y", Status.FAIL),
    ('max-age=31536000; x="a;b"; preload', Status.PASS),  # unknown directives with token/quoted values
    ("max-age = 31536000 ;; includeSubDomains", Status.PASS),
])
def test_h2_values(value, status):
    assert worst(H.hsts.run(snapshot(headers(Strict_Transport_Security=value)))) == status


def test_h2_missing_and_duplicates():
    assert worst(H.hsts.run(snapshot(headers(Strict_Transport_Security=None)))) == Status.FAIL
    dup = list(headers(Strict_Transport_Security=None).items()) + [
        ("Strict-Transport-Security", "max-age=100"), ("Strict-Transport-Security", "max-age=63072000")]
    f = H.hsts.run(snapshot(dup))
    assert worst(f) == Status.FAIL  # only the first header counts
    assert "only the first" in f[0].detail


def test_h2_untrusted_certificate_is_noted():
    h = hop(URL, 200, GOOD_HEADERS, tls_verified=False, tls_error="self-signed certificate")
    f = H.hsts.run(snapshot(https_hops=[h]))
    assert f[0].evidence["tls_verified"] is False and "unverified" in f[0].evidence["note"]


def test_h2_fails_over_a_certificate_with_errors():
    # RFC 6797 8.1: a user agent ignores HSTS received over a connection with certificate errors.
    h = hop(URL, 200, GOOD_HEADERS, tls_verified=False, tls_error="certificate has expired")
    f = H.hsts.run(snapshot(https_hops=[h]))
    assert worst(f) == Status.FAIL
    assert "no effect until the certificate is valid" in f[0].detail and "expired" in f[0].detail


def test_h3_invalid_nonce_does_not_neutralise_unsafe_inline():
    f = csp("script-src 'unsafe-inline' 'nonce-abcdefgh==='; object-src 'none'; base-uri 'none'")
    assert worst(f) == Status.FAIL
    assert "unsafe-inline" in {x.evidence.get("problem") for x in f}


def test_h3_empty_object_src_is_none():
    assert worst(csp("script-src 'self'; object-src; base-uri 'none'")) == Status.PASS


# -- H3
def csp(value: str | None, **kw):
    return H.content_security_policy.run(snapshot(headers(Content_Security_Policy=value), **kw))


def test_h3_missing_fails():
    assert worst(csp(None)) == Status.FAIL


def test_h3_report_only_alone_fails():
    f = H.content_security_policy.run(snapshot(
        headers(Content_Security_Policy=None,
                Content_Security_Policy_Report_Only="default-src 'self'; object-src 'none'")))
    assert worst(f) == Status.FAIL and "Report-Only" in f[0].title


def test_h3_meta_only_fails_with_explanation():
    html = ("<html><head><meta http-equiv='Content-Security-Policy' content=\"default-src 'self'; "
            "object-src 'none'; base-uri 'none'\"></head></html>")
    f = csp(None, html=html)
    assert worst(f) == Status.FAIL and "meta" in f[0].title.lower() and f[0].evidence["meta"]


def test_h3_each_problem_is_its_own_finding():
    f = csp("script-src 'unsafe-inline' 'unsafe-eval' * data:; reflected-xss block")
    codes = {x.evidence.get("problem") for x in f}
    assert {"unsafe-inline", "unsafe-eval", "script-wildcard", "script-data", "object-src",
            "missing-base-uri", "deprecated"} <= codes
    assert worst(f) == Status.FAIL


def test_h3_nonce_neutralises_unsafe_inline_and_strict_dynamic_drops_hosts():
    f = csp("script-src 'nonce-r4nd0mr4nd0m' 'strict-dynamic' 'unsafe-inline' https: *; object-src 'none'; "
            "base-uri 'none'")
    assert worst(f) == Status.PASS
    assert any("ignored" in n for n in f[0].evidence.get("notes", []))


def test_h3_several_policies_combine():
    # Given one lax and one strict policy, a script must pass both: the strict one decides.
    f = csp("script-src * 'unsafe-inline', script-src 'self'; object-src 'none'; base-uri 'self'")
    assert worst(f) == Status.PASS
    # Given two lax policies in two headers, the problem remains.
    two = list(headers(Content_Security_Policy=None).items()) + [
        ("Content-Security-Policy", "script-src https: 'unsafe-inline'; object-src 'none'; base-uri 'self'"),
        ("Content-Security-Policy", "script-src *")]
    codes = {x.evidence.get("problem") for x in H.content_security_policy.run(snapshot(two))}
    assert "unsafe-inline" not in codes and "script-https" in codes


def test_h3_script_src_elem_takes_precedence():
    f = csp("default-src 'self'; script-src-elem 'unsafe-inline'; object-src 'none'; base-uri 'none'")
    assert "unsafe-inline" in {x.evidence.get("problem") for x in f}


def test_h3_syntax_error_is_warn():
    f = csp("default-src self; object-src 'none'; base-uri 'none'")
    assert worst(f) == Status.WARN
    assert any("quote" in x.detail for x in f)


def test_h3_object_src_via_default_src():
    assert worst(csp("default-src 'none'; script-src 'self'; base-uri 'none'")) == Status.PASS
    assert worst(csp("default-src 'self'; base-uri 'none'")) == Status.FAIL


# -- H4
@pytest.mark.parametrize("over,status", [
    ({"X_Frame_Options": None}, Status.PASS),  # frame-ancestors in the CSP
    ({"Content_Security_Policy": "default-src 'self'"}, Status.PASS),  # X-Frame-Options SAMEORIGIN
    ({"Content_Security_Policy": "default-src 'self'", "X_Frame_Options": "ALLOW-FROM https://a"},
     Status.FAIL),
    ({"Content_Security_Policy": "frame-ancestors *", "X_Frame_Options": None}, Status.FAIL),
    ({"Content_Security_Policy": None, "X_Frame_Options": None}, Status.FAIL),
])
def test_h4(over, status):
    assert worst(H.framing.run(snapshot(headers(**over)))) == status


def test_h4_conflicting_xfo_values_refuse_every_frame():
    # HTML's X-Frame-Options processing: several distinct values, one of them DENY/SAMEORIGIN/ALLOWALL,
    # block the frame altogether, so framing is controlled (more strictly than intended).
    two = list(headers(Content_Security_Policy="default-src 'self'", X_Frame_Options=None).items()) + [
        ("X-Frame-Options", "SAMEORIGIN"), ("X-Frame-Options", "ALLOW-FROM https://a.example")]
    f = H.framing.run(snapshot(two))
    assert worst(f) == Status.PASS and "conflicting" in f[0].detail
    only_invalid = headers(Content_Security_Policy="default-src 'self'", X_Frame_Options="foo, bar")
    assert worst(H.framing.run(snapshot(only_invalid))) == Status.FAIL


# -- H5
def test_h5():
    assert worst(H.nosniff.run(snapshot(headers(X_Content_Type_Options="NoSniff")))) == Status.PASS
    assert worst(H.nosniff.run(snapshot(headers(X_Content_Type_Options=None)))) == Status.FAIL
    assert worst(H.nosniff.run(snapshot(headers(X_Content_Type_Options="sniff")))) == Status.FAIL


# -- H6
@pytest.mark.parametrize("value,status", [
    ("no-referrer", Status.PASS),
    ("unsafe-url, strict-origin-when-cross-origin", Status.PASS),  # last recognised wins
    ("strict-origin, fancy-new-policy", Status.PASS),  # unknown fallback ignored
    ("no-referrer, unsafe-url", Status.FAIL),
    ("origin", Status.FAIL),
    (None, Status.WARN),
    ("bogus", Status.WARN),
])
def test_h6(value, status):
    assert worst(H.referrer_policy.run(snapshot(headers(Referrer_Policy=value)))) == status


def test_h6_meta_overrides_header():
    html = '<html><head><meta name="referrer" content="never"></head></html>'
    f = H.referrer_policy.run(snapshot(headers(Referrer_Policy="unsafe-url"), html=html))
    assert worst(f) == Status.PASS and f[0].evidence["source"] == "meta"


# -- H7
@pytest.mark.parametrize("value,status", [
    ("camera=(), microphone=(), geolocation=(self)", Status.PASS),
    ("camera=()", Status.WARN),
    (None, Status.WARN),
    ("camera=*, microphone=(), geolocation=()", Status.FAIL),
    # structured-field parameters after the allowlist do not change it
    ("camera=*;report-to=ep, microphone=(), geolocation=()", Status.FAIL),
    ("camera=(*);report-to=ep, microphone=(), geolocation=()", Status.FAIL),
    ('camera=(self "https://a.example");report-to=ep, microphone=(), geolocation=()', Status.PASS),
])
def test_h7(value, status):
    assert worst(H.permissions_policy.run(snapshot(headers(Permissions_Policy=value)))) == status


# -- H8
def probes(acao: str | None, creds: str | None):
    return [CorsProbe(url=URL, origin="https://r4nd.example", status=200,
                      allow_origin="https://r4nd.example" if acao == "reflect" else acao,
                      allow_credentials=creds),
            CorsProbe(url=URL, origin="null", status=200, allow_origin="null" if acao == "reflect" else acao,
                      allow_credentials=creds)]


def test_h8_reflected_with_credentials_fails_high():
    f = H.cors.run(snapshot(cors=probes("reflect", "true")))
    assert worst(f) == Status.FAIL and all(x.severity == "high" for x in f) and len(f) == 2


def test_h8_star_warns_only_with_cookies():
    assert worst(H.cors.run(snapshot(cors=probes("*", None)))) == Status.PASS
    hdrs = headers(Set_Cookie="a=b; Secure")
    assert worst(H.cors.run(snapshot(hdrs, cors=probes("*", None)))) == Status.WARN


def test_h8_probe_errors_are_errors():
    f = H.cors.run(snapshot(cors=[CorsProbe(url=URL, origin="null", error="timed out")]))
    assert worst(f) == Status.ERROR


# -- H9
def mixed(html: str, **over):
    return H.mixed_content.run(snapshot(headers(**over), html=html))


def test_h9_active_mixed_content_fails():
    f = mixed('<script src="http://cdn.example/a.js"></script><link rel=stylesheet href="http://c/s.css">')
    assert worst(f) == Status.FAIL and len([x for x in f if x.status == Status.FAIL]) == 2


def test_h9_form_to_http_fails_and_images_warn():
    assert worst(mixed('<form action="http://school.example/login"></form>')) == Status.FAIL
    assert worst(mixed('<img src="http://school.example/a.png">')) == Status.WARN


def test_h9_srcset_images_and_formaction_count():
    # Given http:// images only in srcset (img or <picture><source>), H9 warns.
    assert worst(mixed('<img src="/a.png" srcset="/b.png 2x, http://x.example/c.png 3x">')) == Status.WARN
    assert worst(mixed('<picture><source srcset="http://x.example/a.webp"><img src="/a.png">'
                       '</picture>')) == Status.WARN
    assert worst(mixed('<input type="image" src="http://x.example/go.png">')) == Status.WARN
    # Given a submit button whose formaction posts to http://, the form posts over plain HTTP.
    f = mixed('<form action="/ok"><button formaction="http://x.example/post">go</button></form>')
    assert worst(f) == Status.FAIL and f[0].title == "Form posts to http://"
    assert worst(mixed('<form action="/ok"><input type=submit formaction="/fine"></form>')) == Status.PASS


def test_h9_base_href_makes_relative_urls_http():
    assert worst(mixed('<base href="http://school.example/"><script src="a.js"></script>')) == Status.FAIL


def test_h9_sri_missing_warns():
    f = mixed('<script src="https://cdn.other.example/x.js"></script>'
              '<script src="https://cdn.other.example/y.js" integrity="sha384-abc"></script>'
              '<script src="/z.js">')
    assert worst(f) == Status.WARN and len(f[0].evidence["elements"]) == 1


def test_h9_not_html_is_not_applicable():
    assert worst(H.mixed_content.run(snapshot(html=None))) == Status.NOT_APPLICABLE


# -- H10
@pytest.mark.parametrize("name,value,status", [
    ("Server", "nginx", Status.PASS),
    ("Server", "nginx/1.22.1", Status.FAIL),
    ("Server", "Apache/2.4.57 (Debian)", Status.FAIL),
    ("X-Powered-By", "PHP/8.1.2", Status.FAIL),
    ("X-AspNet-Version", "4.0.30319", Status.FAIL),
    ("X-AspNetMvc-Version", "5", Status.FAIL),  # these headers carry nothing but a version
    ("X-Generator", "Drupal 10 (https://www.drupal.org)", Status.FAIL),
    ("Server", "ECS (dcb/7F5B)", Status.PASS),
    ("X-Powered-By", "Express", Status.PASS),
])
def test_h10(name, value, status):
    assert worst(H.version_disclosure.run(snapshot(headers(**{name.replace("-", "_"): value})))) == status


# -- H11
def test_h11_valid_passes():
    assert worst(H.security_txt.run(snapshot())) == Status.PASS


def test_h11_missing_fails():
    nf = [TextFetch(url=f"https://{HOST}/.well-known/security.txt", status=404),
          TextFetch(url=f"https://{HOST}/security.txt", status=404)]
    assert worst(H.security_txt.run(snapshot(security_txt=nf))) == Status.FAIL


def test_h11_expired_or_wrong_type_fails():
    past = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ok = sectxt_ok()
    expired = ok.model_copy(update={"body": f"Contact: mailto:a@b.example\nExpires: {past}\n"})
    assert worst(H.security_txt.run(snapshot(security_txt=[expired]))) == Status.FAIL
    html = ok.model_copy(update={"content_type": "text/html"})
    f = H.security_txt.run(snapshot(security_txt=[html]))
    assert worst(f) == Status.FAIL and "text/plain" in f[0].detail
    no_contact = ok.model_copy(update={"body": f"Expires: {past}\n"})
    assert worst(H.security_txt.run(snapshot(security_txt=[no_contact]))) == Status.FAIL


def test_h11_charset_must_be_utf8():
    # RFC 9116 section 3: text/plain with charset utf-8 (the default when the parameter is absent).
    ok = sectxt_ok()
    for ctype, status in (("text/plain", Status.PASS), ('text/plain; Charset="UTF-8"', Status.PASS),
                          ("text/plain; charset=iso-8859-1", Status.FAIL)):
        f = H.security_txt.run(snapshot(security_txt=[ok.model_copy(update={"content_type": ctype})]))
        assert worst(f) == status, (ctype, f[0].detail)
    assert "utf-8" in f[0].detail


def test_h11_catch_all_html_page_is_no_security_txt():
    page = sectxt_ok().model_copy(update={"content_type": "text/html; charset=utf-8",
                                          "body": "<!doctype html><title>Home</title><p>Welcome</p>"})
    (f,) = H.security_txt.run(snapshot(security_txt=[page]))
    assert f.status == Status.FAIL and f.title == "No security.txt"
    assert "catch-all" in f.detail and "text/plain" not in f.detail


def test_h11_fetch_errors_are_errors():
    err = [TextFetch(url=f"https://{HOST}/.well-known/security.txt", error="timed out")]
    assert worst(H.security_txt.run(snapshot(security_txt=err))) == Status.ERROR
