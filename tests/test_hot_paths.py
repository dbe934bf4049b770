"""What a portfolio's profile found hot stays cheap (issue 9): no servers, the functions themselves."""

from __future__ import annotations

import importlib.util

from scanner.net.names import is_internal_address, is_ip_literal
from scanner.net.politeness import address_key


def test_httpcore_finds_sniffio():
    """httpcore asks sniffio which event loop runs at every lock it sets up; without it installed, each
    ask is a failed import that searches sys.path (about 15% of the event loop's CPU in a portfolio)."""
    assert importlib.util.find_spec("sniffio") is not None


def test_address_rules_are_answered_from_a_cache():
    address_key.cache_clear()
    for _ in range(3):
        assert address_key("::ffff:127.0.240.1") == "127.0.240.1"
        assert is_ip_literal("www.example.org") is False
        assert is_internal_address("127.0.240.1") is True
    assert address_key.cache_info().hits >= 2
    assert is_ip_literal.cache_info().hits >= 2
    assert is_internal_address.cache_info().hits >= 2
