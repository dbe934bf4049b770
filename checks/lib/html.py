"""Extract what the H checks need from a landing page's HTML, with a real parser (selectolax/lexbor).

Pure code: no fetching. Every URL is resolved against the page URL (or its first <base href>).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

MAX_ELEMENTS = 500


@dataclass(frozen=True)
class Element:
    kind: str  # script | style | iframe | frame | object | embed | img | media | form
    url: str  # resolved absolute URL ('' when the element has none)
    raw: str  # the attribute as written (clipped)
    integrity: str | None = None


@dataclass(frozen=True)
class PageInfo:
    elements: tuple[Element, ...] = ()
    meta_csp: tuple[str, ...] = ()
    meta_csp_report_only: tuple[str, ...] = ()
    meta_referrer: tuple[str, ...] = ()
    login_form: bool = False
    base_href: str | None = None
    problems: tuple[str, ...] = field(default_factory=tuple)


_SELECTORS: tuple[tuple[str, str, str], ...] = (
    ("script[src]", "script", "src"),
    ("link[href]", "style", "href"),
    ("iframe[src]", "iframe", "src"),
    ("frame[src]", "frame", "src"),
    ("object[data]", "object", "data"),
    ("embed[src]", "embed", "src"),
    ("img[src]", "img", "src"),
    ("audio[src]", "media", "src"),
    ("video[src]", "media", "src"),
    ("source[src]", "media", "src"),
    ("track[src]", "media", "src"),
    ("video[poster]", "img", "poster"),
    ('input[type="image" i][src]', "img", "src"),
    ("img[srcset]", "img", "srcset"),
    ("source[srcset]", "img", "srcset"),  # <picture> candidates
    ("form", "form", "action"),
    ("button[formaction]", "form", "formaction"),  # overrides the form's action on submit
    ("input[formaction]", "form", "formaction"),
)


def srcset_urls(value: str) -> list[str]:
    """The image URLs of a srcset attribute (HTML "parse a srcset attribute", URLs only): a URL runs
    to the next whitespace, a trailing comma ends it, descriptors run to the next comma."""
    out: list[str] = []
    i, n = 0, len(value)
    while i < n and len(out) < 50:
        while i < n and (value[i] in " \t\n\r\f,"):
            i += 1
        start = i
        while i < n and value[i] not in " \t\n\r\f":
            i += 1
        url = value[start:i]
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            while i < n and value[i] != ",":  # descriptors ("2x", "480w")
                i += 1
        if url:
            out.append(url)
    return out


def _resolve(base: str, raw: str) -> str:
    try:
        return urljoin(base, raw.strip(" \t\n\r\f"))
    except ValueError:
        return ""


def parse_page(html: str, page_url: str) -> PageInfo:
    """Scripts, styles, frames, objects, media, forms and meta CSP/referrer of a page. Never raises."""
    try:
        from selectolax.lexbor import LexborHTMLParser

        tree = LexborHTMLParser(html)
    except Exception as exc:  # a parser failure is data, not a crash
        return PageInfo(problems=(f"HTML could not be parsed: {str(exc)[:200]}",))
    base_url = page_url
    base_href = None
    base = tree.css_first("base[href]")
    if base is not None:
        base_href = (base.attributes.get("href") or "")[:500]
        resolved = _resolve(page_url, base_href)
        if urlsplit(resolved).scheme in ("http", "https"):
            base_url = resolved
    elements: list[Element] = []
    for selector, kind, attr in _SELECTORS:
        for node in tree.css(selector):
            if len(elements) >= MAX_ELEMENTS:
                break
            attrs = node.attributes
            if kind == "style":
                rel = (attrs.get("rel") or "").lower().split()
                if "stylesheet" not in rel:
                    continue
            raw = attrs.get(attr)
            if raw is None:
                if kind == "form":  # no action: the form posts to the page itself
                    raw = ""
                else:
                    continue
            for one in srcset_urls(raw[:8192]) if attr == "srcset" else [raw]:
                url = _resolve(base_url, one) if one or kind == "form" else ""
                elements.append(Element(kind=kind, url=url[:2000], raw=one[:500],
                                        integrity=(attrs.get("integrity") or None)))
    meta_csp: list[str] = []
    meta_ro: list[str] = []
    meta_ref: list[str] = []
    for node in tree.css("meta"):
        attrs = node.attributes
        equiv = (attrs.get("http-equiv") or "").strip().lower()
        content = (attrs.get("content") or "")[:8192]
        if equiv == "content-security-policy":
            meta_csp.append(content)
        elif equiv == "content-security-policy-report-only":
            meta_ro.append(content)
        elif (attrs.get("name") or "").strip().lower() == "referrer":
            meta_ref.append(content[:200])
    login = any(True for _ in tree.css('input[type="password" i]'))
    return PageInfo(elements=tuple(elements), meta_csp=tuple(meta_csp[:10]),
                    meta_csp_report_only=tuple(meta_ro[:10]), meta_referrer=tuple(meta_ref[:10]),
                    login_form=login, base_href=base_href)
