"""Inventory: turn command-line names and URLs into typed ``Target`` records."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from scanner.models import Target
from scanner.net.names import is_ip_literal, registrable_domain


class InputError(ValueError):
    """Bad user input; the message is one clear line."""


_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
# "http//host", "https:/host", "http:host": a scheme with its "://" mistyped (else read as host "http")
_SCHEME_TYPO = re.compile(r"^(https?)(?::/?|//|:?\\\\)(?!/)(?P<rest>.+)$", re.IGNORECASE)


def not_a_target(text: str, why: str = "") -> InputError:
    """The one-line error for an argument that is neither a URL nor a host name."""
    typo = _SCHEME_TYPO.match(text.strip())
    hint = f" (did you mean {typo.group(1).lower()}://{typo.group('rest')} ?)" if typo else ""
    return InputError(f"{text!r} is not a URL or host name{hint}{': ' + why if why and not hint else ''}")


def normalise_host(name: str) -> str:
    """Lower-case, IDNA-encoded host name; raises ``InputError`` when it is not a valid name."""
    host = name.strip().rstrip(".").lower()
    if is_ip_literal(host):
        return host.strip("[]")
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise InputError(f"not a valid host name: {name!r}") from exc
    labels = host.split(".")
    if not host or len(host) > 253 or not all(_LABEL.match(lbl) for lbl in labels):
        raise InputError(f"not a valid host name: {name!r}")
    return host


def endpoint(url: str, member: str | None = None, member_name: str | None = None,
             scope: tuple[str, ...] = ()) -> Target:
    """An endpoint target from a URL (https assumed when the scheme is missing)."""
    raw = url.strip()
    schemeless = "://" not in raw
    if schemeless:
        if _SCHEME_TYPO.match(raw):
            raise not_a_target(url)
        raw = "https://" + raw
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        if schemeless:
            raise not_a_target(url) from exc
        raise InputError(f"malformed URL {url!r}: {exc}") from exc
    if port == 0:
        raise InputError(f"malformed URL {url!r}: port 0 cannot be connected to")
    if parts.scheme.lower() not in ("http", "https"):
        raise InputError(f"malformed URL {url!r}: only http and https URLs can be scanned")
    if not parts.hostname:
        if schemeless:
            raise not_a_target(url)
        raise InputError(f"malformed URL {url!r}: no host name")
    host = normalise_host(parts.hostname)
    # An endpoint is assessed over HTTPS; an http:// URL means the same site's https:// endpoint (on
    # 443), and its port, if any, is where that site's plain HTTP is probed (H1).
    plain = parts.scheme.lower() == "http"
    https_port = port if (port and not plain) else 443
    netloc = host if ":" not in host else f"[{host}]"
    if https_port != 443:
        netloc += f":{https_port}"
    norm = urlunsplit(("https", netloc, parts.path or "/", parts.query, ""))
    own_scope = scope or (registrable_domain(host),)
    return Target(kind="endpoint", target=norm, host=host, port=https_port, member=member,
                  member_name=member_name, scope=tuple(own_scope), http_port=port if (port and plain) else 80)


def domain(name: str, member: str | None = None, member_name: str | None = None) -> Target:
    """A domain target."""
    host = normalise_host(name)
    if is_ip_literal(host):
        raise InputError(f"{name!r} is an IP address, not a domain")
    return Target(kind="domain", target=host, host=host, member=member, member_name=member_name,
                  scope=(host,))


def from_cli(args: list[str], domains: list[str]) -> list[Target]:
    """A URL is an endpoint; a bare host name is its https:// endpoint plus the domain."""
    out: list[Target] = []
    for arg in args:
        if "://" in arg or "/" in arg:
            out.append(endpoint(arg))
        else:
            out.append(endpoint(arg))
            if not is_ip_literal(arg.strip("[]")):
                out.append(domain(arg))
    out.extend(domain(d) for d in domains)
    return link_related(dedupe(out))


def dedupe(targets: list[Target]) -> list[Target]:
    seen: set[str] = set()
    out = []
    for t in targets:
        if t.key not in seen:
            seen.add(t.key)
            out.append(t)
    return out


def link_related(targets: list[Target]) -> list[Target]:
    """Give each domain target the endpoint host names at or under it (for dangling-CNAME checks)."""
    hosts = sorted({t.host for t in targets if t.kind == "endpoint"})
    out = []
    for t in targets:
        if t.kind == "domain":
            rel = tuple(h for h in hosts if h == t.host or h.endswith("." + t.host))
            t = t.model_copy(update={"related_hosts": rel})
        out.append(t)
    return out
