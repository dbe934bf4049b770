"""Host-name and address rules: IP literals, internal addresses, registrable domains and scope.

Pure functions (the public suffix list is data): the inventory, the members file and the collectors share
them, and nothing here touches the network.
"""

from __future__ import annotations

import functools
import ipaddress


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


def registrable_domain(host: str) -> str:
    """The organisational (registrable) domain of a host name, from the public suffix list."""
    from publicsuffixlist import PublicSuffixList

    host = host.lower().rstrip(".")
    if is_ip_literal(host):
        return host
    psl = _psl(PublicSuffixList)
    return psl.privatesuffix(host) or host


_PSL = None


def _psl(factory):  # type: ignore[no-untyped-def]
    global _PSL
    if _PSL is None:
        _PSL = factory()
    return _PSL


def in_scope(host: str, scope: tuple[str, ...]) -> bool:
    """Is ``host`` one of the scope's names or below one of them?"""
    host = host.lower().rstrip(".").strip("[]")
    return any(host == s or host.endswith("." + s) for s in scope)
