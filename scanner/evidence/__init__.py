"""The evidence model: what collectors record and checks read. One module per family.

A ``Snapshot`` is everything collected about one target, immutable and JSON-serialisable, so a scan can
be re-analysed later from stored evidence. Checks import only this package and ``scanner.models``.
"""

from __future__ import annotations

from scanner.errors import ErrorKind
from scanner.evidence.base import Evidence
from scanner.evidence.dns import DNSEvidence
from scanner.evidence.exposure import ExposureEvidence
from scanner.evidence.http import HTTPEvidence
from scanner.evidence.tls import TLSEvidence
from scanner.models import Frozen, Target, TargetKind


class Snapshot(Frozen):
    """All evidence about one target. A family is None when its collector did not run (skipped)."""

    target: Target
    addresses: tuple[str, ...] = ()
    resolution_error: str | None = None  # the target's host name could not be resolved
    tls: TLSEvidence | None = None
    http: HTTPEvidence | None = None
    exposure: ExposureEvidence | None = None
    dns: DNSEvidence | None = None


# The evidence families a check can need (``Snapshot`` fields), with the name used in messages.
EVIDENCE_LABELS: dict[str, str] = {"tls": "TLS", "http": "HTTP", "exposure": "exposure", "dns": "DNS"}
#: The kind of target each family is collected for (the collectors' specs and the check registry read it).
FAMILY_KINDS: dict[str, TargetKind] = {"tls": "endpoint", "http": "endpoint", "exposure": "endpoint",
                                       "dns": "domain"}
FAMILIES: dict[str, type[Evidence]] = {"tls": TLSEvidence, "http": HTTPEvidence, "exposure": ExposureEvidence,
                                       "dns": DNSEvidence}


def error_evidence(family: str, reason: str, kind: ErrorKind) -> Evidence:
    """A family's evidence that says only why it could not be collected (unresolved, deadline, crash)."""
    return FAMILIES[family](error=reason, error_kind=kind)


__all__ = ["EVIDENCE_LABELS", "FAMILY_KINDS", "FAMILIES", "error_evidence", "Evidence", "Snapshot",
           "TLSEvidence", "HTTPEvidence", "ExposureEvidence", "DNSEvidence"]
