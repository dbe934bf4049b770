"""``pledgescan demo``: a small built-in testbed of good and bad sites, scanned through the normal path.

Everything runs in this process: a private CA minted on the spot, pure-Python TLS and HTTP servers on
127.0.0.1 high ports (no root, no Debian package, no internet), and the scanner pointed at them with
``--resolve``-style overrides and ``--ca-bundle``, exactly as a user would.
"""

from __future__ import annotations

import socket
import ssl
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from scanner.models import Report
from scanner.settings import Settings
from scanner.targets import endpoint
from scanner.testbed.certs import TestPKI
from scanner.testbed.tls_servers import (
    HttpResponseSpec,
    redirect_response,
    start_http_server,
    start_https_server,
)

DEMO_ADDR = "127.0.0.1"
DEMO_DOMAIN = "demo.pledgescan.test"

GOOD_HEADERS = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("Strict-Transport-Security", "max-age=63072000; includeSubDomains"),
    ("Content-Security-Policy",
     "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
    ("Server", "nginx"),
    ("Set-Cookie", "MoodleSession=abc123; Path=/; Secure; HttpOnly; SameSite=Lax"),
]
GOOD_BODY = (b"<!doctype html><html><head><title>Good School Network</title>"
             b"<script src=\"/app.js\"></script></head><body><h1>Welcome, learners</h1></body></html>\n")

LEGACY_HEADERS = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("Server", "Apache/2.4.29 (Ubuntu)"),
    ("X-Powered-By", "PHP/7.2.24"),
    ("Strict-Transport-Security", "max-age=86400"),
    ("Content-Security-Policy", "script-src 'self' 'unsafe-inline' 'unsafe-eval' https:"),
    ("Referrer-Policy", "unsafe-url"),
    ("Set-Cookie", "PHPSESSID=5f2b9c; path=/"),
]
LEGACY_BODY = (b"<!doctype html><html><head><title>Legacy Learning Portal</title>"
               b"<script src=\"http://cdn.example.net/jquery.js\"></script>"
               b"<link rel=\"stylesheet\" href=\"http://cdn.example.net/site.css\"></head><body>"
               b"<form action=\"http://legacy.demo.pledgescan.test/login\" method=\"post\">"
               b"<input name=\"user\"><input type=\"password\" name=\"pw\"></form></body></html>\n")


# Mozilla "intermediate" TLS 1.2 suites: forward secrecy and AEAD only.
MODERN_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
NOT_FOUND = HttpResponseSpec(status=404, reason="Not Found",
                             headers=[("Content-Type", "text/html; charset=utf-8"),
                                      ("X-Content-Type-Options", "nosniff")],
                             body=b"<!doctype html><title>Not found</title><h1>Not found</h1>\n")


def security_txt() -> HttpResponseSpec:
    """An RFC 9116 security.txt that expires in about six months."""
    import datetime as dt

    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=180)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = f"Contact: mailto:security@{DEMO_DOMAIN}\nExpires: {expires}\nPreferred-Languages: en, fr\n"
    return HttpResponseSpec(headers=[("Content-Type", "text/plain; charset=utf-8")], body=body.encode())


def text(body: str, ctype: str = "text/plain") -> HttpResponseSpec:
    return HttpResponseSpec(headers=[("Content-Type", ctype)], body=body.encode())


LEGACY_LEAKS = {
    "/.git/HEAD": text("ref: refs/heads/main\n"),
    "/.git/config": text("[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n"
                         "[remote \"origin\"]\n\turl = https://git.example.net/portal.git\n"),
    "/.env": text("APP_ENV=production\nAPP_KEY=base64:8hX2s9Q0c1fFz\nDB_HOST=10.0.0.12\n"
                  "DB_PASSWORD=hunter2-demo\nMAIL_PASSWORD=secret-demo\n"),
}


@dataclass(frozen=True)
class DemoSite:
    name: str
    https_port: int
    http_port: int
    description: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((DEMO_ADDR, 0))
        return int(s.getsockname()[1])


def start_demo_sites(stack: ExitStack, workdir: Path) -> tuple[list[DemoSite], Path]:
    """Start the demo servers (stopped when ``stack`` closes). Returns the sites and the CA bundle."""
    pki = TestPKI.create("pledgescan demo")
    ca = pki.write_ca_bundle(workdir / "demo-ca.pem")
    sites: list[DemoSite] = []

    def site(label: str, description: str, issued, https_kw: dict, http_response: HttpResponseSpec | None,
             response: HttpResponseSpec, routes: dict[str, HttpResponseSpec] | None = None) -> None:
        name = f"{label}.{DEMO_DOMAIN}"
        hp, pp = _free_port(), _free_port()
        if routes is not None:
            routes = {"/": response, **routes}
            response = NOT_FOUND
        stack.enter_context(start_https_server(DEMO_ADDR, hp, issued.chain_pem, issued.key_pem,
                                               response=response, routes=routes, **https_kw))
        if http_response is not None:
            stack.enter_context(start_http_server(DEMO_ADDR, pp, http_response))
        sites.append(DemoSite(name, hp, pp, description))

    good = f"good.{DEMO_DOMAIN}"
    site("good", "modern TLS, every header, a well-flagged session cookie",
         pki.leaf([good], key="ec256"), {"ciphers": MODERN_CIPHERS}, None,
         HttpResponseSpec(headers=GOOD_HEADERS, body=GOOD_BODY),
         {"/.well-known/security.txt": security_txt(), "/app.js": text("console.log('hi');\n",
                                                                         "application/javascript")})
    # The good site's plain-HTTP port redirects to HTTPS (its port is known only once allocated).
    g = sites[-1]
    stack.enter_context(start_http_server(DEMO_ADDR, g.http_port,
                                          redirect_response(f"https://{good}:{g.https_port}/")))
    legacy = f"legacy.{DEMO_DOMAIN}"
    site("legacy", "TLS 1.0 and 1.1 still on, weak headers, version banners, mixed content",
         pki.leaf([legacy]), {"tls_min": ssl.TLSVersion.TLSv1, "weak": True},
         HttpResponseSpec(headers=LEGACY_HEADERS, body=LEGACY_BODY),
         HttpResponseSpec(headers=LEGACY_HEADERS, body=LEGACY_BODY), LEGACY_LEAKS)
    expired = f"expired.{DEMO_DOMAIN}"
    site("expired", "a certificate that expired 10 days ago",
         pki.leaf([expired], days=(-100, -10)), {}, None,
         HttpResponseSpec(headers=GOOD_HEADERS, body=GOOD_BODY))

    site("wronghost", "a self-signed certificate for another name",
         pki.leaf([f"elsewhere.{DEMO_DOMAIN}"], self_signed=True), {}, None,
         HttpResponseSpec(headers=GOOD_HEADERS[:3], body=GOOD_BODY))
    return sites, ca


def demo_settings(sites: list[DemoSite], ca: Path) -> Settings:
    resolve: dict[tuple[str, int], str] = {}
    for s in sites:
        resolve[(s.name, s.https_port)] = DEMO_ADDR
        resolve[(s.name, s.http_port)] = DEMO_ADDR
    return Settings(resolve=resolve, ca_bundle=ca, timeout=5.0, target_deadline=90.0, concurrency=4,
                    rate_limit=0)


def scan_demo(sites: list[DemoSite], ca: Path) -> Report:
    from scanner.engine import Scanner, run_main

    targets = [endpoint(f"https://{s.name}:{s.https_port}/").model_copy(update={"http_port": s.http_port})
               for s in sites]
    return run_main(Scanner(demo_settings(sites, ca)).run(targets))


def run_demo(output: Path, keep_running: bool = False) -> Path:
    """Start the demo sites, scan them, write the HTML report to ``output``; return its path."""
    from scanner.reporters import render_all
    from scanner.reporters.terminal import print_summary

    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="pledgescan-demo-") as tmp:
        sites, ca = start_demo_sites(stack, Path(tmp))
        report = scan_demo(sites, ca)
        paths = render_all(report, ("html",), output)
        print_summary(report)
        if keep_running:
            print("demo servers (Ctrl-C to stop):")
            for s in sites:
                print(f"  https://{s.name}:{s.https_port}/  ->  {DEMO_ADDR}  ({s.description})")
            print(f"  CA bundle: {ca}")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        return paths[0]
