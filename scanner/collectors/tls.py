"""The tls collector (placeholder until the family lands)."""

from __future__ import annotations

from typing import Any

from scanner.evidence.tls import TLSEvidence
from scanner.models import Target
from scanner.net import ScanContext


async def collect(target: Target, ctx: ScanContext, addresses: tuple[str, ...],
                  prior: dict[str, Any]) -> TLSEvidence:
    """Placeholder: reports that the collector is not available yet."""
    return TLSEvidence(error="tls collector not implemented yet")
