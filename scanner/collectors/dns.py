"""The dns collector (placeholder until the family lands)."""

from __future__ import annotations

from typing import Any

from scanner.evidence.dns import DNSEvidence
from scanner.models import Target
from scanner.net import ScanContext


async def collect(target: Target, ctx: ScanContext, addresses: tuple[str, ...],
                  prior: dict[str, Any]) -> DNSEvidence:
    """Placeholder: reports that the collector is not available yet."""
    return DNSEvidence(error="dns collector not implemented yet")
