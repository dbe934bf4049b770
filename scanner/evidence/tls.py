"""Evidence recorded by the tls collector (placeholder until the family lands)."""

from __future__ import annotations

from scanner.evidence.base import Evidence


class TLSEvidence(Evidence):
    """What the tls collector recorded about one target."""
