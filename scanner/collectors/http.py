"""The http collector (placeholder until the family lands)."""

from __future__ import annotations

from typing import Any

from scanner.evidence.http import HTTPEvidence
from scanner.models import Target
from scanner.net import ScanContext


async def collect(target: Target, ctx: ScanContext, addresses: tuple[str, ...],
                  prior: dict[str, Any]) -> HTTPEvidence:
    """Placeholder: reports that the collector is not available yet."""
    return HTTPEvidence(error="http collector not implemented yet")
