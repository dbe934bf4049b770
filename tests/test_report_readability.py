"""The HTML report reads well for a member's engineer: bad-certificate note, evidence layout, unreachable
areas said once, remediation with code. Constructed reports (tests/testbed/reports.py), no scan."""

from __future__ import annotations

from html.parser import HTMLParser

from scanner.reporters.html import HtmlReporter, code_spans, shape_evidence
from tests.testbed.reports import finding, make_report, make_target

TLS_ERROR = ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate has expired "
             "(_ssl.c:1006)")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.parts.append(data)


def _render(*targets):
    html = HtmlReporter().render(make_report(*targets))
    p = _Text()
    p.feed(html)
    return html, " ".join(" ".join(p.parts).split()), p.tags


def test_a_site_with_a_bad_certificate_says_its_headers_were_read_anyway():
    # Given an expired certificate, and HSTS read over an unverified connection (as the collector records)
    target = make_target("endpoint", "https://expired.example/", {
        "T4": [finding("tls-cert-trust", "T4", "fail", "The certificate has expired", severity="critical")],
        "H2": [finding("http-hsts", "H2", "pass", "HSTS is set for at least a year", evidence={
            "url": "https://expired.example/", "status": 200, "tls_verified": False, "tls_error": TLS_ERROR,
            "header": ["max-age=63072000"]})],
    })
    # When the report is rendered
    html, text, _ = _render(target)
    # Then the target says the certificate does not validate, in plain words, and that pages were read anyway
    assert "The HTTPS certificate of this site does not validate (certificate has expired)" in text
    assert "still fetched the pages without validating it" in text
    # and the finding read that way is marked
    assert "Read despite an invalid certificate:" in text
    assert "_ssl.c" not in text.split("Evidence")[0]


def test_a_site_with_a_valid_certificate_has_no_such_note():
    _, text, _ = _render(make_target("endpoint", "https://ok.example/", {}))
    assert "does not validate" not in text and "Read despite" not in text


def test_nested_evidence_renders_as_tables_and_inline_values_not_a_dump():
    # Given cipher suites, some with a nested key-exchange record, and short lists of protocol names
    suites = [{"suite": "TLS_RSA_WITH_AES_128_CBC_SHA", "forward_secrecy": False},
              {"suite": "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "forward_secrecy": True,
               "ephemeral": {"kind": "ECDH", "bits": 256, "curve": "secp256r1"}}]
    node = shape_evidence({"suites": suites, "accepted": ["TLSv1.0", "TLSv1.2"],
                           "chain": [{"url": "http://a/", "status": 301, "location": "https://a/",
                                      "not_followed": None}]})
    (_, table), (_, accepted), (_, chain) = node.entries
    # Then the suites are one table whose nested record sits in its own column, compactly
    assert table.kind == "table" and table.columns == ["suite", "forward_secrecy", "ephemeral"]
    assert table.rows[0][2].kind == "none" and table.rows[1][2].inline
    # the protocol names are one line, and a lone redirect hop is a table without its empty column
    assert accepted.kind == "list" and accepted.inline
    assert chain.kind == "table" and chain.columns == ["url", "status", "location"]
    target = make_target("endpoint", "https://weak.example/", {
        "T3": [finding("tls-ciphers", "T3", "fail", "TLS 1.2 suites without AEAD",
                       evidence={"suites": suites})]})
    html, text, tags = _render(target)
    assert "ECDH" in text and "secp256r1" in text and "{'kind'" not in text
    # and the evidence is folded (a click away: unfolded, it made failing reports tens of pages long)
    assert any(t == "details" and "evidence" in (a.get("class") or "") for t, a in tags)
    assert not any(t == "details" and "evidence" in (a.get("class") or "") and "open" in a for t, a in tags)


def test_an_unreachable_area_says_why_once_and_is_not_called_a_failure():
    reason = "connection to 192.0.2.1:443 refused (nothing listening)"
    errored = {c: [finding("tls-protocols", c, "error", f"Could not be assessed: {reason}", reason)]
               for c in ("T1", "T2", "T3", "T4", "T5", "T6")}
    target = make_target("endpoint", "https://down.example/", errored, default="error",
                         errors=("tls: " + reason,))
    html, text, tags = _render(target)
    assert "None of these 6 controls could be assessed" in text
    assert "This is not a failure" in text
    assert "nothing could be assessed" in text and "no failures" not in text
    # the six controls are folded, and the reason is not repeated as a detail under its own title
    controls = [a for t, a in tags if t == "details" and "control" in (a.get("class") or "")]
    assert controls and not any("open" in a for a in controls if a["id"].startswith("t1-T"))
    assert text.count(reason) <= 6 + 2  # each folded title, the area note, the target's error box


def test_remediation_quotes_config_as_code_and_is_said_once_per_control():
    fix = "Send `Content-Security-Policy: object-src 'none'` (nginx: `add_header <x> always;`)."
    target = make_target("endpoint", "https://csp.example/", {
        "H3": [finding("http-csp", "H3", "fail", "CSP allows inline scripts", remediation=fix),
               finding("http-csp", "H3", "fail", "CSP does not set base-uri", remediation=fix)]})
    html, text, _ = _render(target)
    assert "<code>Content-Security-Policy: object-src &#39;none&#39;</code>" in html
    assert "<code>add_header &lt;x&gt; always;</code>" in html  # still escaped
    # once under the control (not under each finding), and once in "What to fix first" at the top
    assert html.count("Content-Security-Policy: object-src &#39;none&#39;") == 2
    top, _, body = html.partition('<section class="target"')
    assert top.count("Content-Security-Policy: object-src &#39;none&#39;") == 1


def test_code_spans_leave_an_unpaired_backtick_as_text():
    assert code_spans("use `a` and `b`") == [(False, "use "), (True, "a"), (False, " and "), (True, "b")]
    assert code_spans("it's a ` quote") == [(False, "it's a ` quote")]


def test_member_page_names_what_is_wrong_and_what_could_not_be_assessed(tmp_path):
    from scanner.history.portfolio import write_portfolio
    from scanner.history.store import Store
    from tests.testbed.portfolio import make_result
    from tests.testbed.portfolio import make_target as portfolio_target

    # Given a member with a failing site and a site that could not be reached
    up, down = portfolio_target("https://up.example/", "m1"), portfolio_target("https://down.example/", "m1")
    store = Store(f"sqlite:///{tmp_path / 'h.sqlite3'}")
    try:
        with store.start_run([up, down], baseline_id="pledge4", baseline_version="1", tool_version="0",
                             members=[{"id": "m1", "name": "Member One", "contact": None}]) as rec:
            rec.on_result(make_result(up, {"H2": "fail"}), None)
            rec.on_result(make_result(down, default="error").model_copy(
                update={"errors": ("tls: connection refused",)}), None)
        # When the portfolio is written
        write_portfolio(store, rec.run_id, tmp_path / "site")
    finally:
        store.close()
    page = _Text()
    page.feed((tmp_path / "site" / "m1.html").read_text())
    text = " ".join(" ".join(page.parts).split())
    # Then "what to fix first" says what is wrong, not only which control, and links to the control
    assert "HSTS: fail On 1 target: https://up.example/" in text  # the top finding's title
    assert any(t == "a" and (a.get("href") or "").endswith("-H2") for t, a in page.tags)
    # and the unreachable site is listed apart, as not assessed, with its reason
    assert "Could not be assessed (not failures" in text
    assert "https://down.example/ : tls: connection refused" in text
    index = (tmp_path / "site" / "index.html").read_text()
    assert "25 not assessed" in index
