"""Scan settings: every politeness limit, timeout and trust option lives here, set once by the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from scanner import __version__

DEFAULT_USER_AGENT = (
    f"pledgescan/{__version__} (+https://github.com/pledgescan/pledgescan; Pledge 4 posture scan)"
)


@dataclass(frozen=True)
class Settings:
    """Global limits and options of one scan. Collectors read them; nothing else sets them."""

    timeout: float = 10.0  # seconds, each network operation
    target_deadline: float = 120.0  # seconds, all the work on one target
    concurrency: int = 16  # targets in flight: politeness is per address; this bounds the machine's work
    per_host_connections: int = 4  # open connections to one IP address, every prober together
    rate_limit: float = 100.0  # requests (and TLS handshakes) per second to one IP address (0 = unlimited)
    max_sockets: int = 512  # sockets in flight from this machine, every address together
    user_agent: str = DEFAULT_USER_AGENT
    contact_url: str | None = None
    ca_bundle: Path | None = None
    resolve: dict[tuple[str, int], str] = field(default_factory=dict)  # (host, port) -> address
    nameservers: tuple[tuple[str, int], ...] = ()
    trust_anchors: tuple[Path, ...] = ()
    max_body_bytes: int = 1_000_000
    max_header_bytes: int = 64_000
    max_redirects: int = 10
    exposure_max_requests: int = 150  # per host, see README
    only: frozenset[str] = frozenset()  # check or control IDs
    skip: frozenset[str] = frozenset()

    @property
    def effective_user_agent(self) -> str:
        if self.contact_url:
            return f"{self.user_agent} contact: {self.contact_url}"
        return self.user_agent
