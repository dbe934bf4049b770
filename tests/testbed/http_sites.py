"""HTTP/cookie testbed: recorded-evidence builders for unit tests, and nginx sites (127.0.20.0/24)
for integration tests, one per situation of the H and C controls.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scanner.evidence import Snapshot
from scanner.evidence.http import Chain, CorsProbe, Hop, HTTPEvidence, Page, TextFetch
from scanner.models import Target

HOST = "school.example"
URL = f"https://{HOST}/"


# -- recorded-evidence builders -----------------------------------------------------------------

def hop(url: str, status: int | None = 200, headers: dict[str, str] | list[tuple[str, str]] | None = None,
        **kw: object) -> Hop:
    items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    loc = next((v for k, v in items if k.lower() == "location"), None)
    return Hop(url=url, status=status, location=loc, headers=tuple((k.lower(), v) for k, v in items),
               **kw)  # type: ignore[arg-type]


def redirect(url: str, to: str, status: int = 301, **kw: object) -> Hop:
    return hop(url, status, {"Location": to}, **kw)


def failed(url: str, error: str = "connection refused", kind: str = "connect") -> Hop:
    return Hop(url=url, error=error, error_kind=kind)


def sectxt_ok(url: str = f"https://{HOST}/.well-known/security.txt") -> TextFetch:
    exp = (datetime.now(UTC) + timedelta(days=200)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return TextFetch(url=url, final_url=url, status=200, content_type="text/plain; charset=utf-8",
                     body=f"Contact: mailto:security@{HOST}\nExpires: {exp}\n", tls_verified=True)


GOOD_HEADERS = {
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "Content-Security-Policy": "default-src 'self'; object-src 'none'; base-uri 'none'; "
                               "frame-ancestors 'self'",
    "X-Frame-Options": "SAMEORIGIN",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Content-Type": "text/html",
}


def snapshot(https_headers: dict[str, str] | list[tuple[str, str]] | None = None, *,
             https_hops: list[Hop] | None = None, http_hops: list[Hop] | None = None,
             html: str | None = "<html><body>hi</body></html>", cors: list[CorsProbe] | None = None,
             security_txt: list[TextFetch] | None = None, error: str | None = None,
             http_none: bool = False) -> Snapshot:
    """A snapshot of an endpoint; by default a well-configured one, override pieces per test."""
    target = Target(kind="endpoint", target=URL, host=HOST, port=443, scope=(HOST,))
    if error:
        return Snapshot(target=target, http=HTTPEvidence(error=error))
    if https_hops is None:
        https_hops = [hop(URL, 200, GOOD_HEADERS if https_headers is None else https_headers)]
    if http_hops is None:
        http_hops = [redirect(f"http://{HOST}/", URL), https_hops[0]]
    landing = Chain(start_url=URL, hops=tuple(https_hops)).landing
    page = Page(url=landing.url, html=html) if landing is not None and html is not None else None
    if cors is None:
        cors = [CorsProbe(url=URL, origin="https://x1.example", status=200),
                CorsProbe(url=URL, origin="null", status=200)]
    ev = HTTPEvidence(
        host=HOST,
        http=None if http_none else Chain(start_url=f"http://{HOST}/", hops=tuple(http_hops)),
        https=Chain(start_url=URL, hops=tuple(https_hops)),
        page=page, cors=tuple(cors),
        security_txt=tuple(security_txt if security_txt is not None else [sectxt_ok()]),
    )
    return Snapshot(target=target, http=ev)


# -- nginx sites ---------------------------------------------------------------------------------

NET = "127.0.20"


@dataclass(frozen=True)
class Site:
    name: str
    host: str
    address: str

    @property
    def url(self) -> str:
        return f"https://{self.host}/"

    def resolve_args(self) -> dict[tuple[str, int], str]:
        return {(self.host, 443): self.address, (self.host, 80): self.address}


def _ssl(cert: Path, key: Path) -> str:
    return f"ssl_certificate {cert}; ssl_certificate_key {key};"


def _sectxt_location() -> str:
    exp = (datetime.now(UTC) + timedelta(days=200)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = f"Contact: mailto:security@good.test\\nExpires: {exp}\\n"
    return (f'location = /.well-known/security.txt {{ default_type text/plain; '
            f'return 200 "{body}"; }}')


SITES = {
    "good": Site("good", "good.pledge.test", f"{NET}.10"),
    "bare": Site("bare", "bare.pledge.test", f"{NET}.11"),
    "weak": Site("weak", "weak.pledge.test", f"{NET}.12"),
    "cors": Site("cors", "cors.pledge.test", f"{NET}.13"),
    "mixed": Site("mixed", "mixed.pledge.test", f"{NET}.14"),
    "hop": Site("hop", "hop.pledge.test", f"{NET}.15"),
    "hop2": Site("hop2", "www.pledge.test", f"{NET}.16"),
    "evil": Site("evil", "evil.pledge.test", f"{NET}.17"),
}

GOOD_ADD = """
    add_header Strict-Transport-Security "max-age=63072000; includeSubDomains" always;
    add_header Content-Security-Policy "default-src 'self'; script-src 'self' 'nonce-r4nd0mN0nce8' 'strict-dynamic'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'" always;
    add_header X-Frame-Options DENY always;
    add_header X-Content-Type-Options nosniff always;
    add_header Referrer-Policy "no-referrer, strict-origin-when-cross-origin" always;
    add_header Permissions-Policy "camera=(), microphone=(), geolocation=()" always;
    add_header Set-Cookie "__Host-sessionid=abc; Path=/; Secure; HttpOnly; SameSite=Lax" always;
"""  # noqa: E501


def nginx_conf(cert: Path, key: Path, docroot: Path, log: Path | None = None) -> str:
    """One nginx configuration serving every site (distinct addresses, ports 80 and 443; HTTP/2 offered
    on 443 through ALPN). ``log``: every request with its server address, connection and protocol."""
    s = SITES
    ssl = _ssl(cert, key)
    sectxt = _sectxt_location()
    good_html = ('<html><head><title>ok</title></head><body><script nonce="r4nd0mN0nce8" src="/app.js">'
                 '</script><img src="/logo.png"><form action="/search"></form></body></html>')
    bare_html = ('<html><body><form method="post" action="/login"><input type="password" name="p">'
                 '</form></body></html>')
    mixed_html = ('<html><head><script src="http://cdn.mixed.pledge.test/lib.js"></script>'
                  '<link rel="stylesheet" href="http://cdn.mixed.pledge.test/site.css">'
                  '<script src="https://cdn.other.test/x.js"></script></head><body>'
                  '<img src="http://cdn.mixed.pledge.test/a.png">'
                  '<form action="http://mixed.pledge.test/post"><input name="q"></form></body></html>')
    script_html = ("<html><head><meta name=\"referrer\" content=\"unsafe-url\"></head><body>"
                   "<script>alert(1)</script></body></html>")
    for name, body in (("good", good_html), ("bare", bare_html), ("mixed", mixed_html),
                       ("weak", script_html), ("cors", "<html><body>api</body></html>")):
        d = docroot / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "index.html").write_text(body)
    logging = (f"log_format conns '$server_addr $connection $connection_requests $server_protocol "
               f"$request_method $request_uri';\naccess_log {log} conns;\n") if log else ""
    return logging + f"""
server {{ listen {s['good'].address}:80; server_name {s['good'].host};
    return 301 https://$host$request_uri; }}
server {{ listen {s['good'].address}:443 ssl http2; server_name {s['good'].host}; {ssl}
    root {docroot}/good; index index.html;
    {GOOD_ADD}
    {sectxt}
}}
server {{ listen {s['bare'].address}:80; listen {s['bare'].address}:443 ssl http2; server_name {s['bare'].host};
    {ssl}
    server_tokens on;
    root {docroot}/bare; index index.html;
    add_header X-Powered-By "PHP/8.1.2";
    add_header Set-Cookie "PHPSESSID=s3cr3t; path=/";
}}
server {{ listen {s['weak'].address}:80; server_name {s['weak'].host};
    return 302 https://$host$request_uri; }}
server {{ listen {s['weak'].address}:443 ssl http2; server_name {s['weak'].host}; {ssl}
    root {docroot}/weak; index index.html;
    add_header Strict-Transport-Security "max-age=\\"86400\\"" always;
    add_header Content-Security-Policy "script-src 'self' 'unsafe-inline' 'unsafe-eval' https: data:; reflected-xss block" always;
    add_header X-Frame-Options "ALLOW-FROM https://x.test" always;
    add_header X-Content-Type-Options sniff always;
    add_header Referrer-Policy "no-referrer-when-downgrade" always;
    add_header Permissions-Policy "camera=*" always;
    add_header Set-Cookie "auth_token=x; Path=/; SameSite=None" always;
    add_header Set-Cookie "__HOST-pref=1; Secure; Path=/app; Domain=weak.pledge.test" always;
    add_header Set-Cookie "theme=dark; Secure" always;
    add_header Set-Cookie "<script>alert('c')</script>=1; Secure" always;
    add_header X-Powered-By "<script>alert('h')</script>/1.2.3" always;
}}
server {{ listen {s['cors'].address}:80; server_name {s['cors'].host}; return 301 https://$host$request_uri; }}
server {{ listen {s['cors'].address}:443 ssl http2; server_name {s['cors'].host}; {ssl}
    root {docroot}/cors; index index.html;
    add_header Access-Control-Allow-Origin $http_origin always;
    add_header Access-Control-Allow-Credentials true always;
    add_header Set-Cookie "sid=1; Secure; HttpOnly; SameSite=Lax" always;
}}
server {{ listen {s['mixed'].address}:80; server_name {s['mixed'].host}; return 301 https://$host$request_uri; }}
server {{ listen {s['mixed'].address}:443 ssl http2; server_name {s['mixed'].host}; {ssl}
    root {docroot}/mixed; index index.html;
}}
server {{ listen {s['hop'].address}:80; server_name {s['hop'].host}; return 301 https://$host$request_uri; }}
server {{ listen {s['hop'].address}:443 ssl http2; server_name {s['hop'].host}; {ssl}
    add_header Set-Cookie "hopsess=1; Path=/" always;
    return 302 https://{s['hop2'].host}/landing;
}}
server {{ listen {s['evil'].address}:443 ssl http2; server_name {s['evil'].host}; {ssl}
    return 302 https://169.254.169.254/latest/meta-data/;
}}
server {{ listen {s['hop2'].address}:443 ssl http2; server_name {s['hop2'].host}; {ssl}
    add_header Set-Cookie "wwwcookie=1; Secure; SameSite=Lax" always;
    return 302 https://outside.example.org/elsewhere;
}}
"""  # noqa: E501


@dataclass
class Testbed:
    __test__ = False  # not a test class
    sites: dict[str, Site]
    ca_path: Path
    workdir: Path

    def resolve(self) -> dict[tuple[str, int], str]:
        out: dict[tuple[str, int], str] = {}
        for site in self.sites.values():
            out.update(site.resolve_args())
        return out


def start_testbed(workdir: Path) -> Iterator[Testbed]:
    """Mint a CA and one leaf for every site name, start nginx; yield the testbed, stop on exit."""
    import trustme

    from tests.testbed.nginx import NginxServer

    ca = trustme.CA()
    leaf = ca.issue_cert(*(s.host for s in SITES.values()))
    cert, key, ca_path = workdir / "leaf.pem", workdir / "leaf.key", workdir / "ca.pem"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_path))
    # nginx workers run as an unprivileged user: the docroot must be world-readable, and pytest's
    # temporary directories are not, so it lives in its own directory under /tmp.
    docroot = Path(tempfile.mkdtemp(prefix="pledgescan-http-www-"))
    docroot.chmod(0o755)
    conf = nginx_conf(cert, key, docroot, workdir / "requests.log")
    for d in docroot.rglob("*"):
        d.chmod(0o755 if d.is_dir() else 0o644)
    listen = [(s.address, 443) for s in SITES.values()]
    try:
        with NginxServer(conf, name="pledgescan-http", listen=listen, workdir=workdir / "nginx"):
            yield Testbed(sites=SITES, ca_path=ca_path, workdir=workdir)
    finally:
        shutil.rmtree(docroot, ignore_errors=True)
