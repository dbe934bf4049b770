"""HTTP checks H1-H11: HTTPS enforcement, HSTS, CSP, framing, nosniff, Referrer-Policy,
Permissions-Policy, CORS, mixed content, version banners, security.txt. Pure functions of the snapshot.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from checks.lib import N_
from checks.lib import csp as csplib
from checks.lib import headers as hdr
from checks.lib import security_txt as rfc9116
from checks.lib.html import PageInfo, parse_page
from scanner.errors import ErrorKind
from scanner.evidence.http import Hop, HTTPEvidence, clip
from scanner.models import Finding, Severity, Status
from scanner.plugins import CheckMeta, Needs, check

UNTRUSTED_NOTE = ("the certificate did not validate; headers were read over an unverified connection "
                  "(browsers would show an error and ignore HSTS)")


# -- shared helpers -----------------------------------------------------------------------------

def _unreachable(ev: HTTPEvidence) -> str | None:
    """Reason when neither the http:// nor the https:// request got an answer."""
    https_err = ev.https is None or ev.https.errored
    http_err = ev.http is None or ev.http.errored
    if https_err and http_err:
        first = ev.https.first if ev.https else None
        reason = first.error if first and first.error else "no answer"
        return f"the endpoint did not answer over HTTP or HTTPS ({reason})"
    return None


def _https_landing(ev: HTTPEvidence) -> tuple[Hop | None, str | None]:
    """The HTTPS landing response (last answered hop of the https:// chain), or why there is none."""
    if ev.https is None:
        return None, "the HTTPS URL was not fetched"
    if ev.https.errored:
        first = ev.https.first
        why = first.error if first and first.error else "no answer"
        return None, f"the HTTPS request failed: {why}"
    return ev.https.landing, None


def hop_evidence(hop: Hop, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"url": clip(hop.url, 500), "status": hop.status}
    if hop.tls_verified is False:
        out["tls_verified"] = False
        out["tls_error"] = clip(hop.tls_error, 300)
        out["note"] = UNTRUSTED_NOTE
    out.update(extra)
    return out


def _page(ev: HTTPEvidence) -> PageInfo | None:
    if ev.page is None or not ev.page.html:
        return None
    return parse_page(ev.page.html, ev.page.url)


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def _unanswered(ev: HTTPEvidence) -> str | None:
    """Why HTTP evidence cannot be judged: collection failed, or neither scheme answered."""
    if ev.error:
        return ev.error
    if ev.https is None and ev.http is None:
        return "no HTTP exchange was recorded"
    return _unreachable(ev)


def _no_https_answer(ev: HTTPEvidence) -> str | None:
    """As ``_unanswered``, and the https:// request must have been answered."""
    why = _unanswered(ev)
    if why:
        return why
    hop, why = _https_landing(ev)
    return None if hop is not None else why or "no HTTPS response"


def _failure_kind(ev: HTTPEvidence) -> ErrorKind | None:
    return ev.failure_kind


ANSWERED = Needs("http", _unanswered, kind=_failure_kind)  # the endpoint answered over HTTP or HTTPS
HTTPS = Needs("http", _no_https_answer, kind=_failure_kind)  # the https:// request was answered


def https_hop(ev: HTTPEvidence) -> Hop:
    """The HTTPS landing response of evidence that met ``HTTPS``."""
    hop = ev.https.landing if ev.https else None
    assert hop is not None, "a check needing HTTPS runs only when the https:// request was answered"
    return hop


# -- H1 -----------------------------------------------------------------------------------------

@check("http-https-redirect", needs=ANSWERED)
def https_redirect(ev: HTTPEvidence, m: CheckMeta) -> list[Finding]:
    chain = ev.http
    if chain is None:
        return m.errors("the plain-HTTP URL was not fetched")
    first = chain.first
    if first is None:
        return m.errors("the plain-HTTP URL was not fetched")
    hops = [hop_evidence(h, location=clip(h.location, 500), not_followed=h.not_followed)
            for h in chain.hops[:12]]
    evidence: dict[str, Any] = {"chain": hops}
    if not first.ok:
        if first.error_kind in (ErrorKind.REFUSED, ErrorKind.RESET, ErrorKind.CONNECT, ErrorKind.TIMEOUT):
            return [m.finding(Status.PASS, "Plain HTTP is not served",
                              f"the plain-HTTP port did not answer ({first.error}); HTTPS did, so no "
                              "content is served over plain HTTP", evidence=evidence)]
        return m.errors(f"the plain-HTTP request failed: {first.error}", evidence)
    if not first.is_redirect:
        return [m.finding(Status.FAIL, "Content is served over plain HTTP without redirect",
                          f"http:// answered {first.status} instead of redirecting to HTTPS",
                          evidence=evidence)]
    target = chain.hops[1] if len(chain.hops) > 1 else None
    if target is None:
        return m.errors("the redirect Location could not be followed", evidence)
    if urlsplit(target.url).scheme != "https":
        return [m.finding(Status.FAIL, "The first redirect does not go to HTTPS",
                          f"http:// redirects to {clip(target.url, 300)}, not to an https:// URL",
                          evidence=evidence)]
    if _host(target.url) != _host(first.url):
        return [m.finding(Status.FAIL, "The first redirect leaves the host",
                          f"http://{_host(first.url)} redirects straight to {clip(target.url, 300)}; the "
                          "first hop must go to https:// on the same host so that its HSTS is set",
                          evidence=evidence)]
    served_http = [h for h in chain.hops[1:] if h.ok and not h.is_redirect
                   and urlsplit(h.url).scheme == "http"]
    if served_http:
        return [m.finding(Status.FAIL, "The redirect chain ends on plain HTTP",
                          f"content is served at {clip(served_http[-1].url, 300)}", evidence=evidence)]
    if chain.stop_reason and "redirects" in chain.stop_reason:
        return [m.finding(Status.FAIL, "The redirect chain does not end",
                          chain.stop_reason, evidence=evidence)]
    return [m.finding(Status.PASS, "Plain HTTP redirects to HTTPS on the same host",
                      f"http:// answers {first.status} to {clip(target.url, 300)}", evidence=evidence)]


# -- H2 -----------------------------------------------------------------------------------------

@check("http-hsts", needs=HTTPS)
def hsts(ev: HTTPEvidence, m: CheckMeta) -> list[Finding]:
    hop = ev.https.first if ev.https else None
    assert hop is not None
    values = hop.header_all("strict-transport-security")
    evid = hop_evidence(hop, header=[clip(v, 500) for v in values[:5]], preloaded=ev.hsts_preloaded)
    if not values:
        landing = ev.https.landing
        detail = "the HTTPS response has no Strict-Transport-Security header"
        if landing is not None and landing is not hop and landing.header("strict-transport-security"):
            detail += (f" (the redirect target {clip(landing.url, 200)} sends one, but HSTS only "
                       "protects the host that sends it)")
        return [m.finding(Status.FAIL, "No HSTS header", detail, evidence=evid)]
    parsed = hdr.parse_hsts(values[0])
    evid.update(max_age=parsed.max_age, include_subdomains=parsed.include_subdomains,
                preload=parsed.preload)
    notes = []
    if len(values) > 1:
        notes.append(f"{len(values)} Strict-Transport-Security headers: browsers use only the first")
    if hop.tls_verified is False:
        notes.append(UNTRUSTED_NOTE)
    if ev.hsts_preloaded:
        notes.append("the host is in the browsers' HSTS preload list")
    evid["notes"] = notes
    suffix = ("; " + "; ".join(notes)) if notes else ""
    if not parsed.valid or parsed.max_age is None:
        return [m.finding(Status.FAIL, "HSTS header is malformed",
                          "; ".join(parsed.problems) + " (browsers ignore it)" + suffix, evidence=evid)]
    age = parsed.max_age
    flags = f"max-age={age}, includeSubDomains {'yes' if parsed.include_subdomains else 'no'}, " \
            f"preload {'yes' if parsed.preload else 'no'}"
    if hop.tls_verified is False:  # RFC 6797 8.1: ignored on a connection with certificate errors
        return [m.finding(Status.FAIL, "HSTS has no effect: the certificate does not validate",
                          f"{flags}, but browsers ignore Strict-Transport-Security received over a "
                          f"connection with certificate errors ({clip(hop.tls_error, 200)}): HSTS has no "
                          "effect until the certificate is valid" + suffix, evidence=evid)]
    if age >= 31536000:
        return [m.finding(Status.PASS, "HSTS is set for at least a year", flags + suffix, evidence=evid)]
    if age >= 15552000:
        return [m.finding(Status.WARN, "HSTS max-age is shorter than a year",
                          f"{flags}: at least 31536000 is recommended" + suffix, evidence=evid)]
    return [m.finding(Status.FAIL, "HSTS max-age is too short",
                      f"{flags}: below 15552000 (180 days)" + suffix, evidence=evid)]


# -- H3 -----------------------------------------------------------------------------------------

def policies(hop: Hop, page: PageInfo | None) -> tuple[list[csplib.Policy], list[csplib.Policy],
                                                       list[csplib.Policy]]:
    """(enforced header policies, meta policies, report-only policies) of a response."""
    enforced = csplib.parse_header(hop.header_all("content-security-policy"), "header")
    report_only = csplib.parse_header(hop.header_all("content-security-policy-report-only"), "report-only")
    meta = [csplib.parse_policy(v, "meta") for v in (page.meta_csp if page else ())]
    return enforced, meta, report_only


@check("http-csp", needs=HTTPS)
def content_security_policy(ev: HTTPEvidence, m: CheckMeta) -> list[Finding]:
    hop = https_hop(ev)
    page = _page(ev)
    enforced, meta, report_only = policies(hop, page)
    evid = hop_evidence(hop, header=[clip(v, 1000) for v in hop.header_all("content-security-policy")[:5]])
    if meta:
        evid["meta"] = [clip(p.raw, 1000) for p in meta[:5]]
    if report_only:
        evid["report_only"] = [clip(p.raw, 1000) for p in report_only[:5]]
    if not enforced:
        if meta:
            probs = csplib.evaluate(meta)
            evid["meta_problems"] = [p.title for p in probs][:20]
            return [m.finding(Status.FAIL, "CSP only in a <meta> element",
                              "the page sets its policy in <meta http-equiv>, which cannot set "
                              "frame-ancestors or reporting and applies only after parsing starts; the "
                              "baseline requires the Content-Security-Policy header", evidence=evid)]
        if report_only:
            return [m.finding(Status.FAIL, "CSP is Report-Only",
                              "only Content-Security-Policy-Report-Only is sent: it reports but "
                              "blocks nothing",
                              evidence=evid)]
        return [m.finding(Status.FAIL, "No Content-Security-Policy",
                          "the HTTPS response has no Content-Security-Policy header", evidence=evid)]
    # Meta policies are enforced too; the browser applies all of them.
    problems = csplib.evaluate(enforced + meta)
    notes = csplib.neutralised_notes(enforced + meta)
    if notes:
        evid["notes"] = notes
    if len(enforced) > 1:
        evid["policies"] = len(enforced)
    out = []
    for p in problems[:40]:
        out.append(m.finding(Status(p.status), p.title, p.detail,
                             evidence={**evid, "problem": p.code, "directive": p.directive,
                                       "values": [clip(v, 200) for v in p.values]},
                             severity=Severity.LOW if p.status == "warn" else None))
    if not any(p.status == "fail" for p in problems):
        out.append(m.finding(Status.PASS, "CSP restricts scripts",
                             "the effective script policy forbids inline scripts, eval and wildcard sources; "
                             "object-src 'none' and base-uri are set", evidence=evid))
    return out


# -- H4 -----------------------------------------------------------------------------------------

@check("http-framing", needs=HTTPS)
def framing(ev: HTTPEvidence, m: CheckMeta) -> list[Finding]:
    hop = https_hop(ev)
    enforced = csplib.parse_header(hop.header_all("content-security-policy"), "header")
    fa = csplib.frame_ancestors(enforced)
    xfo_values = hop.header_all("x-frame-options")
    xfo = hdr.parse_xfo(xfo_values)
    evid = hop_evidence(hop, frame_ancestors=[" ".join(v)[:300] for v in fa[:5]],
                        x_frame_options=[clip(v, 200) for v in xfo_values[:5]])
    open_fa = [v for v in fa if {t.lower() for t in v} & {"*", "https:", "http:"}]
    if fa and len(open_fa) < len(fa):
        return [m.finding(Status.PASS, "CSP frame-ancestors restricts framing",
                          "frame-ancestors " + " ".join(fa[0])[:200], evidence=evid)]
    if xfo and not fa:
        detail = "framing by other sites is refused"
        if len(hdr.xfo_tokens(xfo_values)) > 1:
            detail = (f"conflicting values {clip(', '.join(xfo_values), 100)!r}: browsers refuse every "
                      "frame, even same-origin ones; send one value")
        return [m.finding(Status.PASS, f"X-Frame-Options {xfo}", detail, evidence=evid)]
    if fa:
        return [m.finding(Status.FAIL, "frame-ancestors allows any site",
                          "frame-ancestors contains a wildcard or scheme source, and it overrides "
                          "X-Frame-Options", evidence=evid)]
    detail = "neither CSP frame-ancestors nor X-Frame-Options DENY/SAMEORIGIN is set"
    if xfo_values:
        detail = (f"X-Frame-Options {clip(', '.join(xfo_values), 100)!r} is not DENY or SAMEORIGIN "
                  "(ALLOW-FROM is obsolete and invalid values are ignored)")
    return [m.finding(Status.FAIL, "The page can be framed by any site", detail, evidence=evid)]


# -- H5 -----------------------------------------------------------------------------------------

@check("http-nosniff", needs=HTTPS)
def nosniff(ev: HTTPEvidence, m: CheckMeta) -> list[Finding]:
    hop = https_hop(ev)
    values = hop.header_all("x-content-type-options")
    evid = hop_evidence(hop, header=[clip(v, 200) for v in values[:5]])
    if hdr.is_nosniff(values):
        return [m.finding(Status.PASS, "X-Content-Type-Options: nosniff", evidence=evid)]
    if values:
        return [m.finding(Status.FAIL, "X-Content-Type-Options is not nosniff",
                          f"value {clip(values[0], 100)!r}", evidence=evid)]
    return [m.finding(Status.FAIL, "No X-Content-Type-Options header", evidence=evid)]


# -- H6 -----------------------------------------------------------------------------------------

@check("http-referrer-policy", needs=HTTPS)
def referrer_policy(ev: HTTPEvidence, m: CheckMeta) -> list[Finding]:
    hop = https_hop(ev)
    values = hop.header_all("referrer-policy")
    policy, unknown = hdr.parse_referrer_policy(values)
    source = "header"
    page = _page(ev)
    metas = [hdr.parse_meta_referrer(c) for c in (page.meta_referrer if page else ())]
    metas = [x for x in metas if x]
    if metas:  # the <meta> element updates the document's policy after the header
        policy, source = metas[-1], "meta"
    evid = hop_evidence(hop, header=[clip(v, 300) for v in values[:5]], effective=policy, source=source,
                        meta=list(page.meta_referrer[:5]) if page else [], unrecognised=unknown)
    if policy is None:
        detail = "no Referrer-Policy: browsers default to strict-origin-when-cross-origin"
        if unknown:
            detail = (f"no recognised Referrer-Policy token ({', '.join(unknown)[:200]}); "
                      "browsers use their default")
        return [m.finding(Status.WARN, "No Referrer-Policy", detail, evidence=evid)]
    if policy in hdr.REFERRER_SAFE:
        return [m.finding(Status.PASS, f"Referrer-Policy {policy}", f"effective policy from the {source}",
                          evidence=evid)]
    return [m.finding(Status.FAIL, f"Referrer-Policy {policy} leaks URLs",
                      f"{policy} sends the full URL or origin to other sites (from the {source})",
                      evidence=evid)]


# -- H7 -----------------------------------------------------------------------------------------

@check("http-permissions-policy", needs=HTTPS)
def permissions_policy(ev: HTTPEvidence, m: CheckMeta) -> list[Finding]:
    hop = https_hop(ev)
    values = hop.header_all("permissions-policy")
    legacy = hop.header_all("feature-policy")
    evid = hop_evidence(hop, header=[clip(v, 500) for v in values[:5]],
                        feature_policy=[clip(v, 300) for v in legacy[:3]])
    if not values:
        detail = "no Permissions-Policy header"
        if legacy:
            detail += " (only the obsolete Feature-Policy header, which current browsers ignore)"
        return [m.finding(Status.WARN, "No Permissions-Policy", detail, evidence=evid)]
    pp = hdr.parse_permissions_policy(values)
    state = {f: pp.restricted(f) for f in hdr.POWERFUL_FEATURES}
    evid["features"] = {f: pp.features.get(f) for f in hdr.POWERFUL_FEATURES}
    if pp.problems:
        evid["problems"] = list(pp.problems)
    opened = [f for f, s in state.items() if s is False]
    missing = [f for f, s in state.items() if s is None]
    if opened:
        return [m.finding(Status.FAIL, "Permissions-Policy grants powerful features to every origin",
                          f"{', '.join(opened)} allowed for * (any embedded origin)", evidence=evid)]
    if missing:
        return [m.finding(Status.WARN, "Permissions-Policy does not restrict every powerful feature",
                          f"not restricted: {', '.join(missing)}", evidence=evid)]
    return [m.finding(Status.PASS, "Permissions-Policy restricts camera, microphone and geolocation",
                      evidence=evid)]


# -- H8 -----------------------------------------------------------------------------------------

def _sets_cookies(ev: HTTPEvidence) -> bool:
    hops = list(ev.https.hops if ev.https else ()) + list(ev.http.hops if ev.http else ())
    return any(h.set_cookies for h in hops) or any(p.set_cookie_count for p in ev.cors)


@check("http-cors", needs=HTTPS)
def cors(ev: HTTPEvidence, m: CheckMeta) -> list[Finding]:
    probes = [p for p in ev.cors if p.error is None and p.status is not None]
    if not probes:
        why = next((p.error for p in ev.cors if p.error), "the CORS probes were not sent")
        return m.errors(f"CORS probes failed: {why}")
    out: list[Finding] = []
    warn_star = False
    for p in probes:
        acao = (p.allow_origin or "").strip()
        creds = (p.allow_credentials or "").strip() == "true"
        evid = {"url": clip(p.url, 300), "origin_sent": p.origin, "allow_origin": clip(p.allow_origin, 300),
                "allow_credentials": clip(p.allow_credentials, 50), "vary": clip(p.vary, 200)}
        reflected = acao == p.origin and acao != "*"
        if (reflected or acao.lower() == "null") and creds:
            kind = "null" if acao.lower() == "null" else "reflected"
            out.append(m.finding(Status.FAIL, f"CORS grants credentialed access to a {kind} origin",
                                 f"sent Origin: {p.origin}, got Access-Control-Allow-Origin: "
                                 f"{clip(acao, 200)} "
                                 "with Access-Control-Allow-Credentials: true: any site can read this page "
                                 "with the visitor's cookies", evidence=evid, severity=Severity.HIGH))
        elif acao == "*" or reflected:
            warn_star = True
    if out:
        return out
    if warn_star and _sets_cookies(ev):
        return [m.finding(Status.WARN, "CORS allows any origin on a page that sets cookies",
                          "Access-Control-Allow-Origin is * (or echoes any origin) without credentials; "
                          "check that no authenticated data is served here",
                          evidence={"probes": [p.model_dump() for p in probes]})]
    detail = "no credentialed cross-origin access for a foreign or null origin"
    return [m.finding(Status.PASS, "CORS does not trust arbitrary origins", detail,
                      evidence={"probes": [p.model_dump() for p in probes]})]


# -- H9 -----------------------------------------------------------------------------------------

_ACTIVE = {"script": "scripts", "style": "stylesheets", "iframe": "frames", "frame": "frames",
           "object": "objects", "embed": "objects"}


@check("http-mixed-content", needs=HTTPS)
def mixed_content(ev: HTTPEvidence, m: CheckMeta) -> list[Finding]:
    hop = https_hop(ev)
    if urlsplit(hop.url).scheme != "https":
        return [m.finding(Status.NOT_APPLICABLE, "The landing page is not served over HTTPS",
                          evidence=hop_evidence(hop))]
    page = _page(ev)
    if page is None:
        return [m.finding(Status.NOT_APPLICABLE, "The landing response is not an HTML page",
                          evidence=hop_evidence(hop, content_type=hop.header("content-type")))]
    upgrade = csplib.upgrades_insecure(csplib.parse_header(hop.header_all("content-security-policy")))
    page_host = _host(hop.url)
    groups: dict[str, list[dict[str, Any]]] = {}
    forms: list[dict[str, Any]] = []
    media: list[dict[str, Any]] = []
    no_sri: list[dict[str, Any]] = []
    for el in page.elements:
        scheme = urlsplit(el.url).scheme.lower() if el.url else ""
        item = {"element": el.kind, "url": clip(el.url, 300)}
        if el.kind == "form":
            if scheme == "http":
                forms.append(item)
            continue
        if scheme == "http":
            if el.kind in _ACTIVE:
                groups.setdefault(_ACTIVE[el.kind], []).append(item)
            else:
                media.append(item)
        if el.kind == "script" and scheme in ("http", "https") and _host(el.url) != page_host \
                and not el.integrity:
            no_sri.append(item)
    out: list[Finding] = []
    base = hop_evidence(hop)
    if page.base_href:
        base["base_href"] = clip(page.base_href, 300)
    if upgrade:
        base["note"] = "CSP upgrade-insecure-requests is set: browsers fetch these over https instead"
    for what, items in groups.items():
        status = Status.WARN if upgrade else Status.FAIL
        out.append(m.finding(status, f"http:// {what} on an HTTPS page",
                             f"{what.capitalize()} loaded over plain HTTP ({len(items)}), "
                             f"e.g. {items[0]['url']}",
                             evidence={**base, "elements": items[:20]}, severity=Severity.HIGH))
    if forms:
        out.append(m.finding(Status.FAIL, "Form posts to http://",
                             f"{len(forms)} form(s) submit over plain HTTP, e.g. {forms[0]['url']}",
                             evidence={**base, "elements": forms[:20]}, severity=Severity.HIGH))
    if media:
        out.append(m.finding(Status.WARN, "http:// images or media on an HTTPS page",
                             f"{len(media)} passive resource(s) over plain HTTP, e.g. {media[0]['url']}",
                             evidence={**base, "elements": media[:20]}, severity=Severity.LOW))
    if no_sri:
        out.append(m.finding(Status.WARN, "Cross-origin scripts without Subresource Integrity",
                             f"{len(no_sri)} script(s) from other hosts without integrity=, e.g. "
                             f"{no_sri[0]['url']}", evidence={**base, "elements": no_sri[:20]},
                             severity=Severity.LOW,
                             remediation=N_("Add integrity= (and crossorigin=) attributes to third-party "
                                            "scripts, or host them yourself.")))
    if not out:
        out.append(m.finding(Status.PASS, "No mixed content on the landing page",
                             f"{len(page.elements)} elements checked", evidence=base))
    return out


# -- H10 ----------------------------------------------------------------------------------------

@check("http-version-disclosure", needs=ANSWERED)
def version_disclosure(ev: HTTPEvidence, m: CheckMeta) -> list[Finding]:
    hops = [h for c in (ev.https, ev.http) if c for h in c.hops if h.ok]
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    banners: dict[str, set[str]] = {}
    for h in hops:
        for name in hdr.BANNER_HEADERS:
            for value in h.header_all(name):
                banners.setdefault(name, set()).add(clip(value, 200) or "")
                version = hdr.discloses_version(value, name)
                if version and (name, value) not in seen:
                    seen[(name, value)] = {"header": name, "value": clip(value, 200), "version": version,
                                           "url": clip(h.url, 300)}
    out = [m.finding(Status.FAIL, f"{item['header'].title()} discloses a version",
                     f"{item['header']}: {item['value']}", evidence=item)
           for item in list(seen.values())[:10]]
    if not out:
        out.append(m.finding(Status.PASS, "No version numbers in banner headers",
                             evidence={"banners": {k: sorted(v)[:5] for k, v in banners.items()}}))
    return out


# -- H11 ----------------------------------------------------------------------------------------

def validate_security_txt(body: str, url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """RFC 9116 validation (``checks.lib.security_txt``). Returns (errors, recommendations) as
    {code, message, line}."""
    try:
        errors, recs = rfc9116.validate(body, [url])
    except Exception as exc:  # the validator must not break the check
        return [{"code": "unparsable", "message": f"could not be parsed: {str(exc)[:200]}", "line": None}], []
    return errors[:20], recs[:20]


@check("http-security-txt", needs=ANSWERED)
def security_txt(ev: HTTPEvidence, m: CheckMeta) -> list[Finding]:
    fetches = list(ev.security_txt)
    if not fetches:
        return m.errors("security.txt was not fetched")
    found = next((f for f in fetches if f.status == 200 and f.error is None), None)
    if found is None:
        if all(f.error for f in fetches):
            return m.errors(f"security.txt could not be fetched: {fetches[0].error}")
        summary = [{"url": clip(f.url, 300), "status": f.status, "error": f.error} for f in fetches]
        return [m.finding(Status.FAIL, "No security.txt",
                          "neither /.well-known/security.txt nor /security.txt is published",
                          evidence={"fetches": summary})]
    final = found.final_url or found.url
    errors, recs = validate_security_txt(found.body, final)
    problems = [str(e["message"]).rstrip(".") for e in errors]
    ctype = (found.content_type or "").split(";")[0].strip().lower()
    if ctype == "text/html" and found.body.lstrip().startswith("<"):
        # A catch-all route answering every path: there is no security.txt, whatever its status says.
        return [m.finding(Status.FAIL, "No security.txt",
                          f"{clip(found.url, 300)} answers with an HTML page (a catch-all route?), "
                          "not a security.txt file",
                          evidence={"url": clip(found.url, 300), "status": found.status,
                                    "content_type": clip(found.content_type, 100),
                                    "excerpt": clip(found.body, 300)})]
    if ctype != "text/plain":
        problems.append(f"served as {ctype or 'no Content-Type'}, not text/plain")
    charset = next((v.strip(' \t"').lower() for k, _, v in
                    (p.partition("=") for p in (found.content_type or "").split(";")[1:])
                    if k.strip().lower() == "charset"), "utf-8")
    if charset not in ("utf-8", "csutf8"):  # RFC 9116 section 3; absent means the utf-8 default
        problems.append(f"charset {clip(charset, 40)}, not utf-8")
    if urlsplit(final).scheme != "https":
        problems.append("not served over HTTPS")
    if found.tls_verified is False:
        problems.append("served with a certificate that does not validate")
    legacy = "/.well-known/" not in urlsplit(found.url).path
    evid = {"url": clip(found.url, 300), "final_url": clip(final, 300),
            "content_type": clip(found.content_type, 100),
            "redirects": list(found.redirects[:5]), "errors": errors, "recommendations": recs,
            "excerpt": clip(found.body, 1000)}
    if problems:
        return [m.finding(Status.FAIL, "security.txt is not valid per RFC 9116",
                          "; ".join(problems)[:1000], evidence=evid)]
    if legacy:
        return [m.finding(Status.WARN, "security.txt only at the legacy location",
                          "found at /security.txt; RFC 9116 requires /.well-known/security.txt",
                          evidence=evid)]
    return [m.finding(Status.PASS, "Valid security.txt", f"{final}", evidence=evid)]

