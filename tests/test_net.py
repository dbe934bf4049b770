"""The shared network plumbing against real local servers: trust, caps, blocking, errors."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from scanner.errors import ErrorKind
from scanner.net.fetcher import Fetcher
from scanner.net.names import is_internal_address
from scanner.net.politeness import Politeness
from scanner.net.resolver import ResolutionError, Resolver
from scanner.net.stats import ScanStats
from scanner.settings import Settings
from scanner.testbed.certs import TestPKI
from scanner.testbed.tls_servers import (
    HttpResponseSpec,
    start_garbage_server,
    start_http_server,
    start_https_server,
    start_stalling_server,
)

ADDR = "127.0.60.1"
NAME = "site.net.test"


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> tuple[TestPKI, Path]:
    p = TestPKI.create("net tests")
    return p, p.write_ca_bundle(tmp_path_factory.mktemp("ca") / "ca.pem")


@pytest.fixture(scope="module")
def servers(pki):
    p, _ = pki
    good = p.leaf([NAME])
    big = HttpResponseSpec(headers=[("Content-Type", "text/plain"), ("X-Test", "a"), ("X-Test", "b")],
                           body=b"x" * 200_000)
    selfsigned = p.leaf([NAME], self_signed=True)
    started = [
        start_https_server(ADDR, 18443, good.chain_pem, good.key_pem, response=big),
        start_https_server(ADDR, 18444, selfsigned.chain_pem, selfsigned.key_pem),
        start_http_server(ADDR, 18080),
        start_stalling_server(ADDR, 18445),
    ]
    yield
    for s in started:
        s.stop()


def make_fetcher(settings: Settings) -> Fetcher:
    return Fetcher(settings, Resolver(settings), Politeness.local(2, 0), ScanStats())


def run(coro):
    return asyncio.run(coro)


def fetch(settings: Settings, url: str, **kw):
    async def go():
        f = make_fetcher(settings)
        try:
            return await f.fetch(url, **kw)
        finally:
            await f.aclose()

    return run(go())


def test_https_fetch_validates_with_ca_bundle_and_keeps_duplicate_headers(servers, pki):
    _, ca = pki
    s = Settings(resolve={(NAME, 18443): ADDR}, ca_bundle=ca, max_body_bytes=1000)
    r = fetch(s, f"https://{NAME}:18443/")
    assert r.error is None and r.status == 200
    assert r.tls_verified is True
    assert r.header_all("x-test") == ["a", "b"]
    assert r.address == ADDR
    assert len(r.body) == 1000 and r.body_truncated


def test_the_store_loaded_before_the_fetcher_is_made_trusts_the_ca_bundle_too(servers, pki):
    """load_backend starts loading Mozilla's store for the next fetcher made, which adds --ca-bundle to it:
    the private CA's site validates, a certificate that neither signed does not."""
    from scanner.net import fetcher as fetcher_module

    _, ca = pki
    s = Settings(resolve={(NAME, 18443): ADDR, (NAME, 18444): ADDR}, ca_bundle=ca)
    fetcher_module.load_backend()
    assert fetcher_module._STORE is not None
    good = fetch(s, f"https://{NAME}:18443/")
    assert fetcher_module._STORE is None  # taken by that fetcher
    assert good.status == 200 and good.tls_verified is True
    fetcher_module.load_backend()
    bad = fetch(s, f"https://{NAME}:18444/")
    assert bad.status == 200 and bad.tls_verified is False and bad.tls_error


def test_untrusted_certificate_is_recorded_and_page_still_fetched(servers, pki):
    _, ca = pki
    s = Settings(resolve={(NAME, 18444): ADDR}, ca_bundle=ca)
    r = fetch(s, f"https://{NAME}:18444/")
    assert r.status == 200
    assert r.tls_verified is False
    assert r.tls_error


def test_certificate_decided_once_per_host_never_two_requests_per_probe(servers, pki):
    """Given a host whose certificate does not validate, when ten paths are fetched at once, then the
    first request decides (verified, then once unverified) and the nine others go unverified at once,
    each recording why: 11 requests, never 20."""
    _, ca = pki
    s = Settings(resolve={(NAME, 18444): ADDR}, ca_bundle=ca)

    async def go():
        f = make_fetcher(s)
        try:
            got = await asyncio.gather(*(f.fetch(f"https://{NAME}:18444/p{i}") for i in range(10)))
            return got, f.stats.http_requests[NAME]
        finally:
            await f.aclose()

    responses, requests = run(go())
    assert all(r.status == 200 and r.tls_verified is False and r.tls_error for r in responses)
    assert requests == 11


def test_without_ca_bundle_private_ca_is_not_trusted(servers):
    s = Settings(resolve={(NAME, 18443): ADDR})
    r = fetch(s, f"https://{NAME}:18443/")
    assert r.tls_verified is False and r.status == 200


def test_internal_address_not_in_scope_is_refused(servers):
    r = fetch(Settings(), f"http://{ADDR}:18080/")
    assert r.status is None and r.error_kind is ErrorKind.BLOCKED


def test_operator_mapped_address_is_allowed(servers):
    r = fetch(Settings(resolve={(NAME, 18080): ADDR}), f"http://{NAME}:18080/")
    assert r.status == 200


def test_closed_port_is_a_refused_connection(servers):
    r = fetch(Settings(resolve={(NAME, 18999): ADDR}), f"http://{NAME}:18999/")
    assert r.status is None and r.error_kind is ErrorKind.REFUSED


def test_stalled_server_times_out(servers):
    r = fetch(Settings(resolve={(NAME, 18445): ADDR}, timeout=0.5), f"https://{NAME}:18445/")
    assert r.status is None and r.error_kind in (ErrorKind.TIMEOUT, ErrorKind.TLS)


def test_only_get_and_head():
    with pytest.raises(ValueError):
        fetch(Settings(), "https://example.org/", method="POST")


def test_unreachable_nameserver_gives_resolution_error():
    s = Settings(nameservers=(("127.0.60.250", 53),), timeout=1.0)

    async def go():
        return await Resolver(s).resolve("nowhere.example")

    with pytest.raises(ResolutionError):
        run(go())


def test_internal_address_classification():
    for a in ("127.0.0.1", "10.1.2.3", "192.168.0.1", "169.254.169.254", "::1", "fe80::1", "0.0.0.0",
              "::ffff:127.0.0.1"):
        assert is_internal_address(a), a
    for a in ("8.8.8.8", "2001:4860:4860::8888"):
        assert not is_internal_address(a), a


def test_compressed_bodies_are_decoded_and_bombs_stay_bounded(pki):
    import gzip

    page = b"<html>" + b"hello " * 100 + b"</html>"
    bomb = gzip.compress(b"\0" * 20_000_000)
    gz = [("Content-Type", "text/html"), ("Content-Encoding", "gzip")]
    s1 = start_http_server(ADDR, 18081, HttpResponseSpec(headers=gz, body=gzip.compress(page)))
    s2 = start_http_server(ADDR, 18082, HttpResponseSpec(headers=gz, body=bomb))
    try:
        settings = Settings(resolve={(NAME, 18081): ADDR, (NAME, 18082): ADDR}, max_body_bytes=100_000)
        r = fetch(settings, f"http://{NAME}:18081/")
        assert r.body == page and not r.body_truncated
        r = fetch(settings, f"http://{NAME}:18082/")
        assert len(r.body) == 100_000 and r.body_truncated
    finally:
        s1.stop()
        s2.stop()


def test_unresolvable_names_are_told_apart_from_unanswered_queries():
    """NXDOMAIN is an answer (dns_nxdomain); a silent name server is not (timeout)."""
    r = fetch(Settings(nameservers=(("127.0.60.250", 53),), timeout=1.0), "https://x.net.test/")
    assert r.error_kind is ErrorKind.TIMEOUT


ERR_ADDR = "127.0.210.1"  # issue 12's block: servers that fail in one way each


@pytest.fixture(scope="module")
def failing_servers(pki):
    p, _ = pki
    leaf = p.leaf([NAME])
    started = [
        # TLS 1.2 with a NULL cipher only: no client offers it, the server answers with an alert
        start_https_server(ERR_ADDR, 18601, leaf.chain_pem, leaf.key_pem, tls_max=ssl.TLSVersion.TLSv1_2,
                           ciphers="NULL-SHA256", weak=True),
        start_garbage_server(ERR_ADDR, 18602),
    ]
    yield
    for s in started:
        s.stop()


@pytest.mark.parametrize(("port", "kind"), [
    (18601, ErrorKind.TLS_ALERT),  # the server's handshake_failure alert
    (18602, ErrorKind.PROTOCOL),  # bytes that are not TLS (OpenSSL: WRONG_VERSION_NUMBER or the like)
    (18603, ErrorKind.REFUSED),  # nothing listens
])
def test_real_failures_are_kinded(failing_servers, pki, port: int, kind: ErrorKind):
    _, ca = pki
    r = fetch(Settings(resolve={(NAME, port): ERR_ADDR}, ca_bundle=ca, timeout=3), f"https://{NAME}:{port}/")
    assert r.status is None and r.error_kind is kind, (r.error_kind, r.error)
    assert r.error  # the words are kept beside the kind


def test_requests_are_built_as_httpx_builds_them():
    """The fetcher builds its requests for the pool itself (httpx's build_request merges headers at ~3x the
    CPU, and its transport converts the request again): the same method, URL, headers in the same order
    and extensions as httpx's transport gives the pool for ``client.build_request``."""
    import httpcore
    import httpx

    from scanner.net.fetcher import _Client, _NoCookieJar, _request

    pool = httpcore.AsyncConnectionPool()
    client = _Client(pool, follow_redirects=False, timeout=httpx.Timeout(7.0, pool=None), trust_env=False,
                     cookies=_NoCookieJar())
    for headers in ({"User-Agent": "ua", "Accept": "*/*", "Accept-Encoding": "identity", "Host": NAME},
                    {"user-agent": "x", "Range": "bytes=0-511", "Origin": "null", "Host": f"{NAME}:8443"}):
        for url in (f"https://{NAME}:8443/a/b.php?x=1", f"http://{NAME}/",
                    f"https://{NAME}:443/a b/%7e/\u00e9?q=a b", f"HTTPS://{NAME.upper()}:8443/x#frag"):
            want = client.build_request("GET", url, headers=headers, extensions={"trace": print})
            wire = httpcore.URL(scheme=want.url.raw_scheme, host=want.url.raw_host, port=want.url.port,
                                target=want.url.raw_path)
            got = _request(client, "GET", url, headers, {"trace": print})
            assert (got.method, got.url, got.headers, got.extensions) == (
                want.method.encode(), wire, want.headers.raw, want.extensions)
    odd = ["https://a.test:443/../x/./y/%2e%2E/z?q=%zz&b=\u00e9 #f", "http://[::1]:80/?",
           "http://a.test:8080?x=/y", "https://\u00e9.test/p", "https://a.test:8443/a\tb", "http://a.test:99999/",
           "https://a.test/" + "x" * 3000, "https://a.test//double//slash", "Http://A.Test:0080/Upper?Q#/frag/",
           "https://a.test:x/", "https://a.test/ab\x7f"]
    for url in odd * 2:  # asked again: from what is remembered
        try:
            wire = httpx.URL(url)
        except httpx.InvalidURL as exc:
            with pytest.raises(httpx.InvalidURL) as ours:
                _request(client, "GET", url, {}, {})
            assert str(ours.value) == str(exc), url
            continue
        got = _request(client, "GET", url, {}, {})
        assert got.url == httpcore.URL(scheme=wire.raw_scheme, host=wire.raw_host, port=wire.port,
                                       target=wire.raw_path), url
    bad = {"User-Agent": "ua", "Host": "\u00e9.example"}
    with pytest.raises(UnicodeEncodeError) as built:
        client.build_request("GET", f"https://{NAME}/", headers=bad)
    with pytest.raises(UnicodeEncodeError) as ours:
        _request(client, "GET", f"https://{NAME}/", bad, {})
    assert str(ours.value) == str(built.value)


def test_answer_headers_decode_as_hpack_decodes_them():
    """hpack's Huffman decoder is memoised for short strings (scanner.net.fetcher): header blocks decode
    to the same headers, asked once or again, short or long, and bad input still fails."""
    import hpack
    import hpack.hpack

    from scanner.net.fetcher import _memoised_huffman

    assert getattr(hpack.hpack.decode_huffman, "memoised", False)
    headers = [(":status", "404"), ("server", "nginx"), ("content-type", "text/html"),
               ("x-long", "v" * 300 + "é"), ("content-security-policy", "default-src 'self'")]
    block = hpack.Encoder().encode([hpack.NeverIndexedHeaderTuple(k, v) for k, v in headers], huffman=True)
    for _ in range(2):
        assert hpack.Decoder().decode(block) == headers
    plain = _memoised_huffman(hpack.huffman_table.decode_huffman)
    with pytest.raises(hpack.HPACKDecodingError):
        plain(b"\xff\xff\xff\xff")


def test_each_answer_is_logged_as_httpx_logged_it(servers, pki, caplog):
    """With ``-v`` (INFO) every answer has the line httpx's client logged for it (the fetcher hands its
    requests to the pool itself): method, URL as httpx writes it, version, status and reason."""
    import logging

    _, ca = pki
    s = Settings(resolve={(NAME, 18443): ADDR, (NAME, 18080): ADDR}, ca_bundle=ca, max_body_bytes=1000)
    with caplog.at_level(logging.INFO, logger="httpx"):
        fetch(s, f"https://{NAME}:18443/a?b=1")
        fetch(s, f"http://{NAME}:18080/", method="HEAD")
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert lines == [f'HTTP Request: GET https://{NAME}:18443/a?b=1 "HTTP/1.1 200 OK"',
                     f'HTTP Request: HEAD http://{NAME}:18080/ "HTTP/1.1 200 OK"'], lines


def test_the_first_connection_or_fetch_tells_that_http_is_under_way(servers, pki):
    """``Fetcher.under_way`` (what a heavy import waits for, ``ScanContext.http_under_way``) is set once the
    first connection is being opened (https or http, refused or not), or once a first fetch ended."""
    _, ca = pki
    s = Settings(resolve={(NAME, 18443): ADDR, (NAME, 18080): ADDR, (NAME, 18446): ADDR}, ca_bundle=ca)

    async def go(url: str) -> tuple[bool, bool]:
        f = make_fetcher(s)
        before = f.under_way.is_set()
        await f.fetch(url)
        after = f.under_way.is_set()
        await f.aclose()
        return before, after

    assert run(go(f"https://{NAME}:18443/")) == (False, True)
    assert run(go(f"http://{NAME}:18080/")) == (False, True)
    assert run(go(f"https://{NAME}:18446/")) == (False, True)  # nothing listens there: refused


def test_waiting_for_http_under_way_ends_at_its_bound_when_nothing_starts():
    """A scan whose HTTP work never starts does not hold a heavy import back beyond the bound."""
    from scanner.net.context import ScanContext

    async def go() -> bool:
        ctx = ScanContext.create(Settings())
        await ctx.http_under_way(0.01)
        done = ctx.fetcher.under_way.is_set()
        await ctx.aclose()
        return done

    assert run(go()) is False
