"""The http collector: the http:// and https:// fetches of an endpoint with their redirect chains
followed by hand, the landing page, two CORS probes and security.txt. All I/O goes through
``ctx.fetcher`` (resolver overrides, CA bundle, politeness caps, size limits, internal-address guard).
"""

from __future__ import annotations

import asyncio
import secrets
import warnings
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from scanner.errors import ErrorKind
from scanner.evidence.http import (
    MAX_HEADERS,
    MAX_PAGE_CHARS,
    MAX_SECTXT_CHARS,
    MAX_VALUE,
    Chain,
    CorsProbe,
    Hop,
    HTTPEvidence,
    Page,
    TextFetch,
    clip,
)
from scanner.models import Target
from scanner.net.context import ScanContext
from scanner.net.fetcher import HttpResponse
from scanner.net.memo import ResponseMemo
from scanner.net.names import in_scope, is_ip_literal, registrable_domain

PAGE_BYTES = 512_000
HEADER_VALUE_CAP = 8192  # the fetcher keeps this much of a header value: a longer Location was cut
SECTXT_BYTES = 64_000


def _hop(resp: HttpResponse) -> Hop:
    headers = tuple((k, clip(v, MAX_VALUE) or "") for k, v in resp.headers[:MAX_HEADERS])
    return Hop(url=resp.url, status=resp.status, http_version=resp.http_version,
               location=clip(resp.location, 2000), headers=headers, address=resp.address,
               tls_verified=resp.tls_verified, tls_error=clip(resp.tls_error, 500),
               error=clip(resp.error, 500), error_kind=resp.error_kind)


def _refusal(url: str, target: Target, scope: tuple[str, ...], ctx: ScanContext) -> str | None:
    """Why a redirect target must not be fetched (recorded as evidence instead), or None."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        _ = parts.port
    except ValueError:
        return "malformed Location URL"
    if parts.scheme.lower() not in ("http", "https"):
        return f"redirect to a non-HTTP URL ({parts.scheme[:20]}:)"
    if not host:
        return "Location has no host"
    try:  # what httpx would refuse to send (non-printable characters, too long, non-ASCII host)
        httpx.URL(url)
        host.encode("ascii")
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        return f"redirect not followed: invalid Location ({type(exc).__name__}: {str(exc)[:100]})"
    if is_ip_literal(host):
        if host == target.host or host in ctx.target_addresses:
            return None
        return "redirect to an IP address literal that is not a target"
    if not in_scope(host, scope):
        return f"redirect leaves the scope ({host[:200]} is not under {', '.join(scope)[:200]})"
    return None


async def follow(ctx: ScanContext, url: str, target: Target, scope: tuple[str, ...],
                 max_redirects: int, max_bytes: int, headers: dict[str, str] | None = None,
                 memo: ResponseMemo | None = None) -> tuple[Chain, HttpResponse | None]:
    """Fetch ``url`` and follow its redirects by hand; return the chain and the last response. With
    ``memo``, a URL another fetch of this target already asked for is not asked again."""
    memo = memo or ResponseMemo()
    hops: list[Hop] = []
    current = url
    last: HttpResponse | None = None
    stop: str | None = None
    for n in range(max_redirects + 1):
        try:
            resp = await memo.fetch(ctx.fetcher, current, headers=headers, max_bytes=max_bytes)
        except Exception as exc:  # never lose the chain (and the target's HTTP checks) to one request
            hops.append(Hop(url=clip(current, 2000) or "", error=f"request failed: {type(exc).__name__}: "
                            f"{str(exc)[:200]}", error_kind=ErrorKind.UNKNOWN))
            stop = "redirect not followed: the request could not be made"
            break
        last = resp
        hop = _hop(resp)
        hops.append(hop)
        if resp.error_kind == ErrorKind.BLOCKED:
            stop = resp.error
            break
        if not hop.ok or not hop.is_redirect:
            break
        if n == max_redirects:
            stop = f"more than {max_redirects} redirects"
            break
        if len(resp.location or "") >= HEADER_VALUE_CAP:
            stop = f"redirect not followed: invalid Location (longer than {HEADER_VALUE_CAP} characters)"
            hops.append(Hop(url=clip(resp.location, 2000) or "", fetched=False, not_followed=stop))
            break
        try:
            nxt = urljoin(current, (resp.location or "").strip())  # as sent: hop.location is clipped
        except ValueError:
            nxt = resp.location or ""
        why = _refusal(nxt, target, scope, ctx)
        if why:
            hops.append(Hop(url=clip(nxt, 2000) or "", fetched=False, not_followed=why))
            stop = why
            break
        current = nxt
    return Chain(start_url=url, hops=tuple(hops), stop_reason=stop), last


def _page(resp: HttpResponse | None) -> Page | None:
    if resp is None or resp.error or resp.status is None or resp.is_redirect:
        return None
    ctype = resp.header("content-type") or ""
    head = resp.body[:512].lstrip().lower()
    if "html" not in ctype.lower() and not head.startswith((b"<!doctype html", b"<html")):
        return None
    text = resp.text()
    return Page(url=resp.url, content_type=clip(ctype, 200), html=text[:MAX_PAGE_CHARS],
                truncated=resp.body_truncated or len(text) > MAX_PAGE_CHARS)


async def _cors(ctx: ScanContext, url: str, origin: str) -> CorsProbe:
    """One request with an ``Origin`` header (its answer is never shared: the header differs)."""
    resp = await ctx.fetcher.fetch(url, headers={"Origin": origin}, max_bytes=16_000)
    if resp.error:
        return CorsProbe(url=url, origin=origin, error=clip(resp.error, 300))
    return CorsProbe(url=url, origin=origin, status=resp.status,
                     allow_origin=clip(resp.header("access-control-allow-origin"), 500),
                     allow_credentials=clip(resp.header("access-control-allow-credentials"), 100),
                     vary=clip(resp.header("vary"), 300),
                     set_cookie_count=len(resp.header_all("set-cookie")))


async def _text(ctx: ScanContext, url: str, target: Target, scope: tuple[str, ...],
                memo: ResponseMemo) -> TextFetch:
    chain, last = await follow(ctx, url, target, scope, max_redirects=5, max_bytes=SECTXT_BYTES, memo=memo)
    if last is None or last.error:
        return TextFetch(url=url, error=clip(last.error if last else "not fetched", 300))
    body = last.text()
    return TextFetch(url=url, final_url=last.url, status=last.status,
                     content_type=clip(last.header("content-type"), 200), body=body[:MAX_SECTXT_CHARS],
                     body_truncated=last.body_truncated or len(body) > MAX_SECTXT_CHARS,
                     redirects=tuple(clip(h.url, 500) or "" for h in chain.hops[1:]),
                     tls_verified=last.tls_verified)


def _preloaded(host: str) -> bool | None:
    try:
        import hstspreload

        with warnings.catch_warnings():  # hstspreload uses a deprecated importlib.resources call
            warnings.simplefilter("ignore", DeprecationWarning)
            return bool(hstspreload.in_hsts_preload(host))
    except Exception:  # informational only
        return None


async def collect(target: Target, ctx: ScanContext, addresses: tuple[str, ...],
                  prior: dict[str, object]) -> HTTPEvidence:
    """Collect the HTTP evidence of one endpoint. Never raises for network trouble."""
    async with ctx.using_http(addresses, "http"):
        return await _collect(target, ctx, addresses)


async def _collect(target: Target, ctx: ScanContext, addresses: tuple[str, ...]) -> HTTPEvidence:
    parts = urlsplit(target.target)
    host = target.host
    netloc_host = f"[{host}]" if ":" in host else host
    path = parts.path or "/"
    https_url = target.target
    if target.http_port != 80:  # a non-standard plain-HTTP port (the demo's, a members file's)
        netloc_host = f"{netloc_host}:{target.http_port}"
    http_url = urlunsplit(("http", netloc_host, path, parts.query, ""))
    https_base = urlunsplit(("https", parts.netloc, "", "", ""))
    scope = target.scope or (registrable_domain(host),)
    limit = ctx.settings.max_redirects

    # One memo for the target's collectors: the http:// chain usually lands on the https:// page that
    # the https:// chain fetched already, and the exposure collector starts from that page too.
    memo = ctx.memo(target.key)

    async def https_part() -> tuple[Chain, HttpResponse | None, list[CorsProbe]]:
        # The CORS probes follow the https:// chain at once (not after the http:// chain and the
        # security.txt fetches, which they do not read): the target's HTTP requests end sooner.
        chain, last = await follow(ctx, https_url, target, scope, limit, PAGE_BYTES, memo=memo)
        landing = chain.landing
        if landing is None:
            return chain, last, []
        origin = f"https://{secrets.token_hex(6)}.example"
        cors = await asyncio.gather(_cors(ctx, landing.url, origin), _cors(ctx, landing.url, "null"))
        return chain, last, list(cors)

    async def http_part() -> Chain:
        chain, _ = await follow(ctx, http_url, target, scope, limit, 64_000, memo=memo)
        # Nothing else of this target goes to http://: its idle connection gives its slot back to the
        # TLS probers now (unless another target's http collector on the address may still use it).
        for addr in addresses:
            if ctx.alone(addr, "http"):
                await ctx.fetcher.close_idle(addr, done=True, origin=http_url)
        return chain

    async def texts_part() -> list[TextFetch]:
        texts = [await _text(ctx, https_base + "/.well-known/security.txt", target, scope, memo)]
        if texts[0].error is None and texts[0].status != 200:
            texts.append(await _text(ctx, https_base + "/security.txt", target, scope, memo))
        return texts

    (https_chain, https_last, cors), http_chain, texts = await asyncio.gather(
        https_part(), http_part(), texts_part())
    page = None
    landing = https_chain.landing
    if landing is not None and https_last is not None and https_last.url == landing.url:
        page = _page(https_last)
    return HTTPEvidence(host=host, http=http_chain, https=https_chain, page=page, cors=tuple(cors),
                        security_txt=tuple(texts), hsts_preloaded=_preloaded(host))
