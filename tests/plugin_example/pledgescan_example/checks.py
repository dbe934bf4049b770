"""The example plugin's check: one function, its ID written once, the evidence family it needs declared."""

from __future__ import annotations

from scanner.evidence import HTTPEvidence
from scanner.models import Finding, Status
from scanner.plugins import CheckMeta, check

BACKEND_HEADERS = ("x-backend-server", "x-served-by")


@check("example-backend-banner", needs="http")
def backend_banner(ev: HTTPEvidence, meta: CheckMeta) -> list[Finding]:
    hop = ev.https.landing if ev.https else None
    if hop is None:
        return meta.errors("the HTTPS URL did not answer")
    found = {name: value[:200] for name in BACKEND_HEADERS for value in hop.header_all(name)}
    if found:
        return [meta.finding(Status.FAIL, "A back-end host name is disclosed",
                             ", ".join(f"{k}: {v}" for k, v in found.items()), evidence=found)]
    return [meta.finding(Status.PASS, "No back-end host names in headers")]
