"""Evidence recorded by the dns collector (placeholder until the family lands)."""

from __future__ import annotations

from scanner.evidence.base import Evidence


class DNSEvidence(Evidence):
    """What the dns collector recorded about one target."""
