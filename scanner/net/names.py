"""Host-name and address rules: IP literals, internal addresses, registrable domains and scope.

Pure functions (the public suffix list is data): the inventory, the members file and the collectors share
them, and nothing here touches the network.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Container
from typing import Any


@functools.lru_cache(maxsize=4096)  # asked per request; a host name's failed parse is the costly case
def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=4096)
def is_internal_address(addr: str) -> bool:
    """True for loopback, private, link-local (cloud metadata), reserved, multicast and unspecified."""
    ip = ipaddress.ip_address(addr)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


def address_allowed(addr: str, targets: Container[str], operator_mapped: Callable[[str], bool]) -> bool:
    """May a scan connect to ``addr``? Public addresses always; internal ones only when they are targets'
    own or an operator's mapping (``--resolve``, ``operator_mapped``) names them."""
    return not is_internal_address(addr) or addr in targets or operator_mapped(addr)


def registrable_domain(host: str) -> str:
    """The organisational (registrable) domain of a host name, from the public suffix list."""
    host = host.lower().rstrip(".")
    if is_ip_literal(host):
        return host
    return _psl(idn="xn--" in host or not host.isascii()).privatesuffix(host) or host


@functools.cache
def _psl(idn: bool = True) -> Any:
    """publicsuffixlist's list, parsed once per process (the first target's scope asks for it). Without
    ``idn``, the IDN rules (~460, each in Unicode and IDNA-encoded) are left out: they can match only a
    host with a Unicode or ``xn--`` label, and encoding them was most of the parse (~20 -> ~5 ms)."""
    from publicsuffixlist import PublicSuffixList

    class _Parsed(PublicSuffixList):  # type: ignore[misc]
        """The library's parse (``_parse``) of its own file, without IDNA-encoding the ASCII rules (all but
        ~460 of ~10,000; an ASCII rule encodes to itself, so the set is the same): ~105 -> ~55 ms of
        every scan's start-up. Other sources and options parse as the library does."""

        def _parse(self, source: Any, accept_encoded_idn: bool, only_icann: bool = False) -> None:
            if only_icann or not accept_encoded_idn or not hasattr(source, "read"):
                super()._parse(source, accept_encoded_idn, only_icann)
                return
            raw = source.read()
            text = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes | bytearray) else raw
            rules = {line.split(" ", 1)[0].rstrip() for line in text.lower().splitlines()}
            rules = {r for r in rules if r and not r.startswith("//")}
            self._maxlabel = max((r.count(".") + 1 for r in rules), default=0)
            for rule in [r for r in rules if not r.isascii()]:
                if idn:
                    bang = "!" if rule[0] == "!" else ""
                    rules.add(bang + rule.lstrip("!").encode("idna").decode("ascii"))
                else:
                    rules.discard(rule)
            self._publicsuffix = frozenset(rules)

    return _Parsed()


def in_scope(host: str, scope: tuple[str, ...]) -> bool:
    """Is ``host`` one of the scope's names or below one of them?"""
    host = host.lower().rstrip(".").strip("[]")
    return any(host == s or host.endswith("." + s) for s in scope)
