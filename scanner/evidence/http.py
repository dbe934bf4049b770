"""Evidence recorded by the http collector: redirect chains, the landing page, CORS probes, security.txt.

Everything a server sent is bounded here (header values, cookie lines, body sizes, list lengths);
checks parse it (``checks/lib``) so a stored snapshot can be re-analysed with newer logic.
"""

from __future__ import annotations

from scanner.errors import ErrorKind
from scanner.evidence.base import Evidence
from scanner.models import Frozen

MAX_HOPS = 12
MAX_HEADERS = 100
MAX_VALUE = 4096
MAX_COOKIES = 50
MAX_PAGE_CHARS = 300_000
MAX_SECTXT_CHARS = 32_000


def clip(text: str | None, limit: int = MAX_VALUE) -> str | None:
    """Truncate a server-supplied string (None stays None)."""
    if text is None:
        return None
    return text if len(text) <= limit else text[:limit] + "...[truncated]"


class Hop(Frozen):
    """One request of a redirect chain, or a redirect target that was recorded but not fetched."""

    url: str
    fetched: bool = True
    status: int | None = None
    http_version: str | None = None
    location: str | None = None  # as sent (clipped)
    headers: tuple[tuple[str, str], ...] = ()  # names lower-case, order and duplicates kept
    address: str | None = None
    tls_verified: bool | None = None
    tls_error: str | None = None
    error: str | None = None
    error_kind: ErrorKind | None = None
    not_followed: str | None = None  # why this URL was not fetched (out of scope, IP literal, ...)

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)

    def header_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    @property
    def set_cookies(self) -> list[str]:
        return self.header_all("set-cookie")

    @property
    def is_redirect(self) -> bool:
        return self.status in (301, 302, 303, 307, 308) and bool(self.location)

    @property
    def ok(self) -> bool:
        """Fetched and answered with an HTTP status."""
        return self.fetched and self.status is not None and self.error is None


class Chain(Frozen):
    """A fetch of ``start_url`` with its redirect chain followed by hand."""

    start_url: str
    hops: tuple[Hop, ...] = ()
    stop_reason: str | None = None  # max redirects, out of scope, blocked, non-http location, ...

    @property
    def first(self) -> Hop | None:
        return self.hops[0] if self.hops else None

    @property
    def landing(self) -> Hop | None:
        """The last hop that answered (the page a browser would show, within scope)."""
        answered = [h for h in self.hops if h.ok]
        return answered[-1] if answered else None

    @property
    def errored(self) -> bool:
        """The very first request failed: nothing about this scheme could be observed."""
        first = self.first
        return first is None or not first.ok


class CorsProbe(Frozen):
    """The landing URL fetched with a foreign ``Origin``."""

    url: str
    origin: str
    status: int | None = None
    allow_origin: str | None = None
    allow_credentials: str | None = None
    vary: str | None = None
    set_cookie_count: int = 0
    error: str | None = None


class TextFetch(Frozen):
    """A small text resource (security.txt) with its chain summarised."""

    url: str
    final_url: str | None = None
    status: int | None = None
    content_type: str | None = None
    body: str = ""  # decoded, clipped to MAX_SECTXT_CHARS
    body_truncated: bool = False
    redirects: tuple[str, ...] = ()
    tls_verified: bool | None = None
    error: str | None = None


class Page(Frozen):
    """The landing page's body (HTML only), decoded defensively and size-capped."""

    url: str
    content_type: str | None = None
    html: str = ""
    truncated: bool = False


class HTTPEvidence(Evidence):
    """What the http collector recorded about one endpoint."""

    host: str | None = None
    http: Chain | None = None  # the http:// fetch of the endpoint
    https: Chain | None = None  # the https:// fetch of the endpoint
    page: Page | None = None  # the landing page of the https chain, when it is HTML
    cors: tuple[CorsProbe, ...] = ()
    security_txt: tuple[TextFetch, ...] = ()  # /.well-known/security.txt, then /security.txt
    hsts_preloaded: bool | None = None  # host in Chromium's HSTS preload list (hstspreload package)

    @property
    def failure_kind(self) -> ErrorKind | None:
        """The kind of the collection error, else of the first failed request (https://, then http://)."""
        if self.error_kind:
            return self.error_kind
        for chain in (self.https, self.http):
            first = chain.first if chain else None
            if first is not None and first.error_kind:
                return first.error_kind
        return None
