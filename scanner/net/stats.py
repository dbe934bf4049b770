"""The scan's network counters (reported in JSON and the benchmarks)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class ScanStats:
    """Counters for the scan's statistics (reported in JSON and the benchmark)."""

    http_requests: Counter[str] = field(default_factory=Counter)  # per host
    http_connections: Counter[str] = field(default_factory=Counter)  # per address: TCP connections opened
    tls_connections: Counter[str] = field(default_factory=Counter)
    dns_queries: int = 0
    blocked: list[str] = field(default_factory=list)
