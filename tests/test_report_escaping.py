"""Nothing a server sends can execute in the HTML report.

Given a report whose every server-influenced string is hostile (script tags, attribute break-outs,
javascript: URLs, cookie names and header values with markup, template syntax), when it is rendered,
then the HTML parsed by a browser-grade HTML5 parser (lexbor, via selectolax) and by the stdlib parser
has no script element, no event-handler attribute, no javascript: URL, no active element (iframe,
object, embed, img, form, base, link, meta refresh), and the hostile text is present as text.
Parsed and checked, not string-matched.

The last test does the same for a real scan of a local HTTPS server that sends such headers and
cookies, through the engine (skipped until the http collector records evidence).
"""

from __future__ import annotations

import json
import ssl
import threading
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from selectolax.lexbor import LexborHTMLParser

from scanner.reporters.html import HtmlReporter
from tests.testbed.reports import finding, make_report, make_target

HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg onload=alert(1)>",
    "javascript:alert(1)",
    "</style><script>alert(2)</script>",
    "</textarea></title><iframe src=javascript:alert(3)>",
    "<!--<script>alert(4)//-->",
    "<a href=\"javascript:alert(5)\">click</a>",
    "{{ 7*7 }}{% raw %}",
    "<meta http-equiv=refresh content='0;url=javascript:alert(6)'>",
    "<base href=//evil.example/><link rel=stylesheet href=//evil.example/x.css>",
    "<form action=//evil.example/><button formaction=javascript:alert(7)>x</button></form>",
    "<object data=javascript:alert(8)></object><embed src=javascript:alert(9)>",
    "\x00<scr\x00ipt>alert(10)</script>",
]
ACTIVE_TAGS = {"script", "iframe", "frame", "object", "embed", "img", "form", "base", "link", "button",
               "input", "textarea", "video", "audio", "source", "applet", "math", "template", "image"}
URL_ATTRS = {"href", "src", "action", "formaction", "data", "xlink:href", "background", "poster", "srcdoc",
             "srcset", "ping", "codebase", "cite", "manifest"}


def hostile_report():
    """A report where every text field a server (or a hostile members file) can influence is hostile."""
    bad = " | ".join(HOSTILE)
    cookie_evidence = {
        "cookies": [{"name": h, "value": h, "secure": False, "httponly": False, "samesite": None,
                     "set_cookie": f"{h}=1; Path=/"} for h in HOSTILE],
        "headers": [["x-evil", h] for h in HOSTILE],
        HOSTILE[1]: {HOSTILE[0]: [HOSTILE[2], {HOSTILE[3]: HOSTILE[4]}]},
        "location": "javascript:alert(11)",
        "long": HOSTILE[0] * 200,
    }
    endpoint = make_target("endpoint", f"https://evil.example/{HOSTILE[0]}", {
        "C1": [finding("cookie-secure", "C1", "fail", f"Cookie {HOSTILE[0]} lacks Secure", bad,
                       evidence=cookie_evidence, remediation=bad)],
        "H10": [finding("http-version-disclosure", "H10", "fail", f"Server: {HOSTILE[1]}", bad,
                        evidence={"server": HOSTILE[1], "x-powered-by": HOSTILE[8]})],
        "H3": [finding("http-csp", "H3", "warn", HOSTILE[7], HOSTILE[9], evidence={"csp": HOSTILE[10]})],
        "T4": [finding("tls-cert-trust", "T4", "error", f"Could not be assessed: {HOSTILE[11]}",
                       HOSTILE[12])],
    }, member=HOSTILE[5], member_name=HOSTILE[6], addresses=(HOSTILE[13],), errors=tuple(HOSTILE))
    endpoint = endpoint.model_copy(update={"grade": HOSTILE[0], "stats": {"x": HOSTILE[0]}})
    domain = make_target("domain", HOSTILE[3], {
        "D1": [finding("dns-spf", "D1", "fail", HOSTILE[4], evidence={"record": HOSTILE[0]})]},
        member=HOSTILE[5], member_name=HOSTILE[6])
    report = make_report(endpoint, domain, stats={"blocked_requests": HOSTILE, HOSTILE[0]: HOSTILE[1]})
    return report.model_copy(update={"run_id": HOSTILE[1]})


class _StdlibCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, attrs))

    handle_startendtag = handle_starttag

    def handle_data(self, data):
        self.text.append(data)


def _is_js_url(value: str | None) -> bool:
    # Browsers strip ASCII whitespace and control characters inside the scheme before matching it.
    cleaned = "".join(ch for ch in (value or "") if ord(ch) > 0x20).lower()
    return cleaned.startswith("javascript:") or "javascript:" in cleaned.split(",")[0]


def assert_inert(html: str, expected_text: list[str]) -> None:
    # 1. browser-grade HTML5 parsing (lexbor)
    tree = LexborHTMLParser(html)
    elements = tree.root.traverse(include_text=False)
    tags = []
    for node in elements:
        tags.append(node.tag)
        for name, value in (node.attributes or {}).items():
            assert not name.lower().startswith("on"), (node.tag, name, value)
            if name.lower() in URL_ATTRS:
                assert not _is_js_url(value), (node.tag, name, value)
                assert (value or "").startswith("#"), (node.tag, name, value)  # in-page links only
            assert not _is_js_url(value), (node.tag, name, value)
        if node.tag == "meta":
            assert (node.attributes.get("http-equiv") or "").lower() != "refresh"
    assert not ACTIVE_TAGS & set(tags), ACTIVE_TAGS & set(tags)
    assert tags.count("style") == 1
    # the page forbids scripts and remote loads even if something slipped through
    csp = [n.attributes.get("content") for n in tree.css("meta")
           if (n.attributes.get("http-equiv") or "").lower() == "content-security-policy"]
    assert csp and "default-src 'none'" in csp[0] and "script-src" not in csp[0]
    text = tree.body.text(separator="")
    for t in expected_text:
        assert t.replace("\x00", "\ufffd") in text or t.replace("\x00", "") in text, t

    # 2. the stdlib tokenizer agrees
    std = _StdlibCollector()
    std.feed(html)
    std.close()
    std_tags = {t for t, _ in std.elements}
    assert not ACTIVE_TAGS & std_tags
    for _, attrs in std.elements:
        for name, value in attrs:
            assert not name.startswith("on") and not _is_js_url(value), (name, value)
    joined = "".join(std.text)
    for t in expected_text:
        assert t.replace("\x00", "\ufffd") in joined or t.replace("\x00", "") in joined, t


def test_hostile_strings_render_as_text_only():
    html = HtmlReporter().render(hostile_report())
    assert_inert(html, [f"Cookie {HOSTILE[0]} lacks Secure", f"Server: {HOSTILE[1]}", HOSTILE[7],
                        HOSTILE[8], HOSTILE[6], "javascript:alert(11)"])
    # template syntax in data is never evaluated
    assert "{{ 7*7 }}{% raw %}" in LexborHTMLParser(html).body.text()


def test_every_hostile_string_survives_as_text_somewhere():
    html = HtmlReporter().render(hostile_report())
    text = LexborHTMLParser(html).body.text(separator="")
    for h in HOSTILE:
        assert h.replace("\x00", "\ufffd") in text or h.replace("\x00", "") in text, h


def test_machine_formats_keep_hostile_text_verbatim():
    from scanner.reporters.csv_report import CsvReporter
    from scanner.reporters.json_report import JsonReporter, validate
    from scanner.reporters.sarif import SarifReporter

    report = hostile_report()
    doc = json.loads(JsonReporter().render(report))
    assert doc["targets"][0]["member"] == HOSTILE[5]
    validate({**doc, "targets": [{**t, "grade": "?"} for t in doc["targets"]]})
    sarif = json.loads(SarifReporter().render(report))
    assert any(HOSTILE[0] in r["message"]["text"] for r in sarif["runs"][0]["results"])
    assert HOSTILE[0] in CsvReporter().render(report)


# -- a real scan of a hostile server -------------------------------------------------------------

HOSTILE_COOKIE = "<script>alert('cookie')</script>"
HOSTILE_HEADER = "<script>alert('header')</script>\"><img src=x onerror=alert(1)>"


class _HostileHandler(BaseHTTPRequestHandler):
    server_version = "<script>alert('server')</script>/9.9"
    sys_version = ""

    def log_message(self, *args):  # keep test output quiet
        pass

    def _headers(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("X-Powered-By", "<script>alert('powered')</script>PHP/5.1")
        self.send_header("Content-Security-Policy", f"script-src 'unsafe-inline' {HOSTILE_HEADER}")
        self.send_header("Strict-Transport-Security", "max-age=<script>alert('hsts')</script>")
        self.send_header("Referrer-Policy", HOSTILE_HEADER)
        self.send_header("Set-Cookie", f"{HOSTILE_COOKIE}=1; Path=/")
        self.send_header("Set-Cookie", "sessionid=\"><svg onload=alert(2)>; Path=/; SameSite=<b>x</b>")
        self.end_headers()

    def do_HEAD(self):
        self._headers()

    def do_GET(self):
        body = (b"<html><head><title><script>alert(3)</script></title></head><body>"
                b"<script src=http://evil.example/x.js></script><form action=http://evil.example/>"
                b"</form></body></html>")
        self._headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def hostile_https_server(tmp_path_factory):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("hostile.test")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HostileHandler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    bundle = tmp_path_factory.mktemp("hostile") / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    try:
        yield "hostile.test", server.server_address[1], bundle
    finally:
        server.shutdown()
        server.server_close()


def test_report_of_a_real_hostile_server_is_inert(hostile_https_server):
    from scanner.engine import run_scan
    from scanner.settings import Settings
    from scanner.targets import endpoint

    host, port, bundle = hostile_https_server
    settings = Settings(timeout=3, target_deadline=30, resolve={(host, port): "127.0.0.1"},
                        ca_bundle=bundle, only=frozenset({"H2", "H3", "H6", "H10", "C1", "C2", "C3"}))
    target = endpoint(f"https://{host}:{port}/").model_copy(update={"http_port": port})
    report = run_scan([target], settings)
    seen = json.dumps([f.model_dump(mode="json") for t in report.targets for f in t.findings])
    if "<script>" not in seen:
        pytest.skip("the http collector records no server data yet (placeholder)")
    html = HtmlReporter().render(report)
    assert_inert(html, [HOSTILE_COOKIE])  # the hostile cookie name is shown, as text
    # the JSON of a real scan follows the committed schema too
    from scanner.reporters.json_report import JsonReporter, validate

    validate(json.loads(JsonReporter().render(report)))
