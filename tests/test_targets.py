"""Targets from what a user types: the endpoint's HTTPS URL and port, and where its plain HTTP is probed."""

from __future__ import annotations

import pytest

from scanner.targets import InputError, endpoint


@pytest.mark.parametrize("url, target, port, http_port", [
    ("example.org", "https://example.org/", 443, 80),
    ("https://example.org:8443/app", "https://example.org:8443/app", 8443, 80),
    ("https://example.org:443/", "https://example.org/", 443, 80),
    ("http://example.org/", "https://example.org/", 443, 80),
    # the port of an http:// URL is the plain-HTTP site's, never the HTTPS endpoint's
    ("http://example.org:8080/login", "https://example.org/login", 443, 8080),
    ("http://[2001:db8::1]:8080/", "https://[2001:db8::1]/", 443, 8080),
    ("example.org:8443", "https://example.org:8443/", 8443, 80),
])
def test_endpoint_url_port_and_http_port(url: str, target: str, port: int, http_port: int) -> None:
    t = endpoint(url)
    assert (t.target, t.port, t.http_port) == (target, port, http_port)


@pytest.mark.parametrize("url, message", [
    ("https://example.org:0/", "port 0"),
    ("http://example.org:0/", "port 0"),
    ("https://example.org:65536/", "malformed URL"),
    ("gopher://example.org/", "only http and https"),
])
def test_unusable_urls_are_one_clear_input_error(url: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        endpoint(url)
