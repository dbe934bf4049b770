"""Evidence recorded by the exposure collector (placeholder until the family lands)."""

from __future__ import annotations

from scanner.evidence.base import Evidence


class ExposureEvidence(Evidence):
    """What the exposure collector recorded about one target."""
