"""The exposure collector (placeholder until the family lands)."""

from __future__ import annotations

from typing import Any

from scanner.evidence.exposure import ExposureEvidence
from scanner.models import Target
from scanner.net import ScanContext


async def collect(target: Target, ctx: ScanContext, addresses: tuple[str, ...],
                  prior: dict[str, Any]) -> ExposureEvidence:
    """Placeholder: reports that the collector is not available yet."""
    return ExposureEvidence(error="exposure collector not implemented yet")
