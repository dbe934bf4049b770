"""Evidence recorded by the http collector (placeholder until the family lands)."""

from __future__ import annotations

from scanner.evidence.base import Evidence


class HTTPEvidence(Evidence):
    """What the http collector recorded about one target."""
