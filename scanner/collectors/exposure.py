"""The exposure collector (E1-E4): calibrate the host's "not found" behaviour, then probe the catalogue.

Order of work on one origin (https://host:port of the endpoint):
1. the landing page (``/``) and six random paths (with and without an extension, a dot-file, a
   directory, a file inside a random directory): the host's answer to things that do not exist;
2. every catalogue path (deduplicated, GET, HEAD or a 512-byte ranged GET), as soon as the host took
   its first https request on a verified connection (``Fetcher.origin_decided``), or the landing page or
   one random path is answered (in one burst with the random paths: the host answers), plus
   directories linked from the landing page (the http collector's, awaited only then);
3. for each answer that is neither an error nor like the calibration, one random sibling in the same
   directory with the same extension (cached per directory and extension), so a directory that answers
   everything alike cannot produce a finding.
All of it is bounded by ``settings.exposure_max_requests`` per host (default 150) and by the per-host
connection cap of the fetcher. Deciding what is exposed is left to the checks (``checks/exposure.py``).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

from scanner.evidence.exposure import ExposureEvidence, Probe, similar
from scanner.exposure_catalogue.model import Catalogue, load_catalogue
from scanner.models import Target
from scanner.net.context import ScanContext
from scanner.net.fetcher import MAX_IN_FLIGHT
from scanner.net.memo import ResponseMemo
from scanner.net.names import is_ip_literal

Method = Literal["GET", "HEAD", "RANGE"]
PROBE_BYTES = 64 * 1024  # body cap for probes (the excerpt kept is smaller still)
RANGE_BYTES = 512  # archives and dumps: the first bytes are enough for the magic number
CONFIRM_RESERVE = 12  # requests kept back for sibling confirmations
TIME_SHARE = 0.6  # share of the target deadline this collector allows itself
FAMILY_ORDER = ("source_secrets", "diagnostics", "admin_consoles", "platforms", "listings")


class _Budget:
    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.used = 0

    def take(self, reserve: int = 0) -> bool:
        if self.used + reserve >= self.limit:
            return False
        self.used += 1
        return True


def _rand() -> str:
    return "ps" + secrets.token_hex(5)


def _origin(target: Target) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    port = target.port or 443
    return f"https://{host}" + ("" if port == 443 else f":{port}")


class _Prober:
    """Sends the probes of one origin within the budget, the time limit and the connection cap."""

    def __init__(self, ctx: ScanContext, origin: str, budget: _Budget, deadline: float,
                 memo: ResponseMemo | None = None, addresses: tuple[str, ...] = ()) -> None:
        self.ctx = ctx
        self.addresses = addresses
        self.memo = memo or ResponseMemo()
        self.origin = origin
        self.budget = budget
        self.deadline = deadline
        # Probes in flight: the fetcher's pool holds the address's connection share (HTTP/2: streams on
        # one connection) and the address's rate paces them; this only bounds the queue.
        self.sem = asyncio.Semaphore(MAX_IN_FLIGHT)
        self.skipped: list[str] = []
        self.pages: dict[str, str] = {}  # raw HTML of landing pages (for links), never stored

    async def get(self, path: str, method: Method = "GET", purpose: Any = "probe",
                  confirms: str | None = None, reserve: int = 0) -> Probe | None:
        if time.monotonic() > self.deadline or not self.budget.take(reserve):
            self.skipped.append(path)
            return None
        url = self.origin + path
        fetcher = self.ctx.fetcher
        limit = min(self.ctx.settings.max_body_bytes, PROBE_BYTES)
        # identity: the fetcher keeps raw bytes, and magic numbers must be the file's, not gzip's.
        headers = {"Accept-Encoding": "identity"}
        # Probes leave part of the address's rate to this target's TLS handshakes and HTTP chains (which
        # go one step after the other) while it is the only target in flight there; targets sharing an
        # address (virtual hosts) are bound by its budget, not by one chain, and use all of it (so do
        # distributed workers, which do not know what else runs on the address: in_flight stays empty).
        bulk = purpose != "landing" and all(self.ctx.in_flight[a] == 1 for a in self.addresses)
        async with self.sem:
            if method == "RANGE":
                headers["Range"] = f"bytes=0-{RANGE_BYTES - 1}"
                resp = await fetcher.fetch(url, method="GET", headers=headers, max_bytes=RANGE_BYTES,
                                           bulk=bulk)
            elif method == "GET":  # the landing page usually comes from the http collector's fetch
                resp = await self.memo.fetch(fetcher, url, headers=headers, max_bytes=limit, bulk=bulk)
            else:
                resp = await fetcher.fetch(url, method=method, headers=headers, max_bytes=limit, bulk=bulk)
        if purpose == "landing" and resp.body:
            self.pages[path] = resp.body[:PROBE_BYTES].decode("utf-8", errors="replace")
        return Probe.record(purpose=purpose, path=path, url=url, method=method, status=resp.status,
                            headers=resp.headers, body=resp.body, truncated=resp.body_truncated,
                            error=resp.error, error_kind=resp.error_kind, confirms=confirms)


def _calibration_paths() -> list[tuple[str, str]]:
    """(path, sibling key) of the random paths asked first."""
    d = _rand()
    return [(f"/{_rand()}", "/|"), (f"/{_rand()}.php", "/|.php"), (f"/{_rand()}.html", "/|.html"),
            (f"/.{_rand()}", "/|hidden"), (f"/{d}/", "/|dir"), (f"/{d}/{_rand()}.txt", "sub|.txt")]


def _sibling(path: str) -> tuple[str, str]:
    """A random path next to ``path`` with the same shape, and the cache key of that shape."""
    if path.endswith("/"):
        parent = path.rstrip("/").rsplit("/", 1)[0] + "/"
        return f"{parent}{_rand()}/", f"{parent}|dir"
    parent, _, name = path.rpartition("/")
    parent += "/"
    if name.startswith("."):
        return f"{parent}.{_rand()}", f"{parent}|hidden"
    ext = "." + name.rsplit(".", 1)[1] if "." in name else ""
    return f"{parent}{_rand()}{ext}", f"{parent}|{ext}"


def _linked_directories(html: str, base_url: str, origin: str, limit: int, known: set[str]) -> list[str]:
    """Same-origin directories referenced by the landing page (links, scripts, styles, images)."""
    from selectolax.lexbor import LexborHTMLParser

    want = urlsplit(origin)
    out: list[str] = []
    try:
        nodes = LexborHTMLParser(html[:300_000]).css("a[href], link[href], script[src], img[src]")
    except Exception:  # a parser failure on hostile HTML costs us the links, nothing more
        return out
    for node in nodes[:2000]:
        ref = node.attributes.get("href") or node.attributes.get("src") or ""
        try:
            parts = urlsplit(urljoin(base_url, ref.strip()))
        except ValueError:
            continue
        if parts.scheme != "https" or parts.netloc.lower() != want.netloc.lower():
            continue
        segments = [s for s in parts.path.split("/")[1:-1] if s][:2]
        for i in range(1, len(segments) + 1):
            d = "/" + "/".join(segments[:i]) + "/"
            if d not in known and d not in out and len(d) <= 200 and ".." not in d:
                out.append(d)
                if len(out) >= limit:
                    return out
    return out


def _landing_html(prior: dict[str, Any], origin: str) -> tuple[str, str] | None:
    """The landing page HTML from the http collector's evidence, when it recorded one on this origin."""
    page = getattr(prior.get("http"), "page", None)
    html, url = getattr(page, "html", None), getattr(page, "url", None)
    if (isinstance(html, str) and isinstance(url, str) and html
            and urlsplit(url).netloc.lower() == urlsplit(origin).netloc.lower()):
        return html, url
    return None


def _behaviour(calibration: list[Probe]) -> tuple[str, bool]:
    """A short description of the answers to random paths, and whether the host is a catch-all."""
    ok = [c for c in calibration if c.status is not None]
    if not ok:
        return "no answer", False
    counts = Counter(c.status for c in ok)
    text = ", ".join(f"{s} x{n}" for s, n in counts.most_common())
    success = [c for c in ok if c.status is not None and 200 <= c.status < 300]
    catch_all = len(success) >= 2 and all(similar(success[0], c) for c in success[1:])
    if catch_all:
        text += "; the same page for every path (catch-all or single-page-app fallback)"
    redirects = {c.location for c in ok if c.location and c.status in (301, 302, 303, 307, 308)}
    if redirects:
        text += f"; redirects to {sorted(redirects)[0][:100]}"
    return text, catch_all


def _probe_plan(catalogue: Catalogue, target: Target, linked: list[str], families: tuple[str, ...],
                seen: set[tuple[str, str]]) -> list[tuple[str, Method]]:
    """Every (path, method) of ``families`` to ask, not in ``seen`` (which it extends), in their order."""
    host = target.host
    label = host.split(".")[0]
    plan: list[tuple[str, Method]] = []
    for fam_name in families:
        fam = catalogue.family(fam_name)
        if fam is None:
            continue
        extra = linked if fam.linked_directories else []
        for entry in fam.entries:
            for raw in list(extra) + list(entry.paths):
                if "{" in raw:
                    if is_ip_literal(host):
                        continue
                    raw = raw.replace("{host}", host).replace("{label}", label)
                key = (raw, entry.method)
                if key not in seen:
                    seen.add(key)
                    plan.append((raw, entry.method))
    return plan


def _split_families(catalogue: Catalogue) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The families before the first that probes linked directories (asked at once), and the rest (asked
    once the landing page's links are known), most important first."""
    for i, name in enumerate(FAMILY_ORDER):
        fam = catalogue.family(name)
        if fam is not None and fam.linked_directories:
            return FAMILY_ORDER[:i], FAMILY_ORDER[i:]
    return FAMILY_ORDER, ()


async def _http_evidence(prior: dict[str, Any]) -> Any:
    """The http collector's evidence: in process a task to wait for (never cancelled from here), from a
    distributed worker the evidence itself."""
    got = prior.get("http")
    if isinstance(got, asyncio.Future):
        await asyncio.wait([got])
        return got.result() if not got.cancelled() and got.exception() is None else None
    return got


def _expected_statuses(catalogue: Catalogue) -> set[int]:
    return {s for _, e in catalogue.entries() if not e.on_calibration for s in e.status}


async def collect(target: Target, ctx: ScanContext, addresses: tuple[str, ...],
                  prior: dict[str, Any]) -> ExposureEvidence:
    """Calibrate, probe, confirm; never raises for network trouble."""
    async with ctx.using_http(addresses, "exposure"):
        return await _collect(target, ctx, addresses, prior)


async def _collect(target: Target, ctx: ScanContext, addresses: tuple[str, ...],
                   prior: dict[str, Any]) -> ExposureEvidence:
    settings = ctx.settings
    # Read once per process (~10 ms of CPU): on a thread, once the scan's first connection is being opened
    # (its probes wait for that connection anyway), so the loop opens the connection first.
    if load_catalogue.cache_info().currsize:
        catalogue = load_catalogue()
    else:
        await ctx.http_under_way()
        catalogue = await asyncio.to_thread(load_catalogue)
    origin = _origin(target)
    budget = _Budget(settings.exposure_max_requests)
    prober = _Prober(ctx, origin, budget, time.monotonic() + settings.target_deadline * TIME_SHARE,
                     ctx.memo(target.key), addresses)

    # 1. Landing page and calibration, together. The catalogue's families that do not need the landing
    # page's links go out as soon as the host speaks (the calibration will not fail): its first https
    # request (usually the http collector's landing page) went out on a verified connection, or the
    # landing page or one random path is answered. So the probes leave with the random paths, on the
    # first request's HTTP/2 connection, and end a round trip or two sooner; in the catalogue's order,
    # so the budget is spent as before.
    cal_paths = _calibration_paths()
    early, late = _split_families(catalogue)
    seen: set[tuple[str, str]] = {("/", "GET")}  # the landing page is fetched anyway
    early_plan = _probe_plan(catalogue, target, [], early, seen)
    answering = asyncio.Event()

    async def answered(path: str, purpose: Any) -> Probe | None:
        got = await prober.get(path, purpose=purpose)
        if got is not None and got.error is None:
            answering.set()
        return got

    async def probe(path: str, method: Method) -> Probe | None:
        await answering.wait()
        return await prober.get(path, method, reserve=CONFIRM_RESERVE)

    async def connected() -> None:  # the host speaks TLS and took the first request (on HTTP/2, its
        await ctx.fetcher.origin_decided(origin + "/")  # connection takes the probes at once)
        answering.set()

    first_task = asyncio.gather(answered("/", "landing"), *(answered(p, "calibration") for p, _ in cal_paths))
    early_task = asyncio.gather(*(probe(p, m) for p, m in early_plan))
    watch = asyncio.ensure_future(connected())
    try:
        first = await first_task
        landing, calibration = first[0], [c for c in first[1:] if c is not None]
        answered = [p for p in [landing, *calibration] if p is not None and p.error is None]
        base = {"origin": origin, "budget": budget.limit}
        if not answered:
            reason = next((p.error for p in [landing, *calibration] if p is not None and p.error),
                          "no answer")
            return ExposureEvidence(error=f"host unreachable: {reason}", requests=budget.used,
                                    landing=landing, calibration=tuple(calibration), **base)
        if not any(c.error is None for c in calibration):
            reason = next((c.error for c in calibration if c.error), "no answer")
            return ExposureEvidence(error=f"calibration failed (random paths got no answer): {reason}",
                                    requests=budget.used, landing=landing, calibration=tuple(calibration),
                                    **base)
        behaviour, catch_all = _behaviour(calibration)

        # 2. Linked directories (from the http collector's landing page, else our own), then the rest.
        fam = catalogue.family("listings")
        limit = fam.max_linked_directories if fam else 0
        known = {p for _, e in catalogue.entries() for p in e.paths}
        src = _landing_html({"http": await _http_evidence(prior)}, origin)
        if src is None and landing is not None and landing.magic == "html":
            src = await _own_landing(prober, landing)
        linked = _linked_directories(src[0], src[1], origin, limit, known) if src and limit else []
        late_plan = _probe_plan(catalogue, target, linked, late, seen)
        late_results = await asyncio.gather(*(probe(p, m) for p, m in late_plan))
        results = [*await early_task, *late_results]
    finally:
        watch.cancel()
        for task in (first_task, early_task):
            if not task.done():  # an early return (unreachable host) or a cancellation
                task.cancel()
        await asyncio.gather(first_task, early_task, watch, return_exceptions=True)
    # Answers like the calibration's can never be findings: keep their fingerprints, drop their text.
    probes = [r if not any(similar(r, c) for c in calibration) else r.model_copy(update={"excerpt": ""})
              for r in results if r is not None]

    # 3. Confirm answers that could be findings with a random sibling of the same shape.
    cache: dict[str, Probe] = {key: c for (_, key), c in zip(cal_paths, first[1:], strict=True)
                               if c is not None and key.startswith("/|")}
    expected = _expected_statuses(catalogue)
    wanted: dict[tuple[str, Method], tuple[str, list[Probe]]] = {}
    for p in probes:
        if p.error or p.status not in expected or any(similar(p, c) for c in calibration):
            continue
        if p.method == "RANGE" and p.magic in ("html", "empty"):
            continue  # ranged probes look for file magic; a page is never one of them
        sib, key = _sibling(p.path)
        if key in cache and p.method != "RANGE":
            continue  # the calibration already answered this shape at the root
        wanted.setdefault((key, p.method), (sib, []))[1].append(p)
    confirmations: list[Probe] = []

    async def confirm(method: Method, sib: str, group: list[Probe]) -> None:
        got = await prober.get(sib, method, purpose="confirm", confirms=group[0].path)
        if got is not None:
            confirmations.extend(got.model_copy(update={"confirms": p.path}) for p in group)

    await asyncio.gather(*(confirm(m, sib, group) for (_, m), (sib, group) in wanted.items()))
    return ExposureEvidence(
        **base, requests=budget.used, budget_exhausted=bool(prober.skipped),
        skipped=tuple(prober.skipped[:50]), behaviour=behaviour, catch_all=catch_all, landing=landing,
        calibration=tuple(calibration), probes=tuple(probes), confirmations=tuple(confirmations),
        linked_directories=tuple(linked),
    )


async def _own_landing(prober: _Prober, landing: Probe) -> tuple[str, str] | None:
    """The landing page's HTML (following up to three same-origin redirects), for its links."""
    page = landing
    for _ in range(3):
        if page.status not in (301, 302, 303, 307, 308) or not page.location:
            break
        nxt = urljoin(prober.origin + page.path, page.location)
        parts = urlsplit(nxt)
        if f"{parts.scheme}://{parts.netloc}".lower() != prober.origin.lower():
            return None
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        got = await prober.get(path or "/", purpose="landing")
        if got is None or got.error:
            return None
        page = got
    if page.magic != "html" or page.status != 200:
        return None
    html = prober.pages.get(page.path)
    return (html, page.url) if html else None
