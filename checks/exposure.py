"""Exposed surfaces (E1-E4): leaked source and secrets, infrastructure consoles, diagnostics, listings.

Pure functions of the snapshot's exposure evidence: the matcher (``checks.lib.exposure_match``) turns
recorded probe answers into hits, after discarding anything that looks like the host's answer to
random paths. Each exposure is its own finding.
"""

from __future__ import annotations

from typing import Any

from checks.lib.exposure_match import Hit, analyse
from scanner.evidence import Snapshot
from scanner.evidence.exposure import ExposureEvidence
from scanner.models import Finding, Status
from scanner.plugins import CheckMeta, check, load_metadata

META = load_metadata("exposure")


def _summary(ev: ExposureEvidence) -> dict[str, Any]:
    out: dict[str, Any] = {
        "origin": ev.origin,
        "requests": ev.requests,
        "request_budget": ev.budget,
        "paths_probed": len(ev.probes),
        "not_found_behaviour": ev.behaviour,
        "catch_all": ev.catch_all,
    }
    if ev.budget_exhausted:
        out["paths_not_probed"] = list(ev.skipped)[:50]
    return out


def _hit_finding(meta: CheckMeta, hit: Hit) -> Finding:
    p, e = hit.probe, hit.entry
    where = p.path if p.purpose != "calibration" else "a page that does not exist (debug 404 page)"
    evidence: dict[str, Any] = {
        "url": p.url,
        "path": p.path,
        "status": p.status,
        "product": e.product,
        "catalogue_entry": e.id,
        "signals": list(hit.signals),
    }
    if e.category:
        evidence["category"] = e.category
    if hit.version:
        evidence["version"] = hit.version
    if hit.secrets:
        evidence["secrets"] = list(hit.secrets)  # key names with masked values only
    if hit.also_at:
        evidence["also_at"] = list(hit.also_at)
    if p.content_type:
        evidence["content_type"] = p.content_type
    version = f" {hit.version}" if hit.version else ""
    if e.outcome == "warn":
        title = f"{e.product}{version} admin login reachable at {where}"
    else:
        title = f"{e.product}{version} exposed at {where}"
    # plain words first; the matched patterns (regexes) are in the evidence for whoever wants them
    n = len(hit.signals)
    detail = (f"{where} answered with status {p.status} and content recognised as {e.product} "
              f"({n} matching sign{'s' if n != 1 else ''}, listed under signals in the evidence).")
    if hit.secrets:
        detail += f" The file holds {len(hit.secrets)} configuration value(s); keys shown with masked values."
    return meta.finding(Status(e.outcome), title, detail, control=hit.control, severity=e.severity,
                        evidence=evidence, remediation=e.remediation)


def _assess(snap: Snapshot, meta: CheckMeta, what: str) -> list[Finding]:
    ev = snap.exposure
    if ev is None:
        return meta.errors("the exposure probes did not run")
    if ev.error:
        return meta.errors(ev.error, evidence={"origin": ev.origin, "requests": ev.requests})
    control = meta.controls[0]
    hits = [h for h in analyse(ev) if h.control == control]
    if not hits:
        detail = f"{len(ev.probes)} paths probed with {ev.requests} requests; host answers unknown paths " \
                 f"with: {ev.behaviour or 'n/a'}."
        if ev.budget_exhausted:
            detail += f" The request budget ({ev.budget}) ran out: {len(ev.skipped)} path(s) not probed."
        return [meta.finding(Status.PASS, f"No {what} found", detail, evidence=_summary(ev))]
    return [_hit_finding(meta, h) for h in hits]


@check(META["exposure-source-secrets"])
def source_secrets(snap: Snapshot) -> list[Finding]:
    return _assess(snap, META["exposure-source-secrets"], "exposed source control, secrets or backups")


@check(META["exposure-admin-consoles"])
def admin_consoles(snap: Snapshot) -> list[Finding]:
    return _assess(snap, META["exposure-admin-consoles"], "exposed consoles or admin logins")


@check(META["exposure-diagnostics"])
def diagnostics(snap: Snapshot) -> list[Finding]:
    return _assess(snap, META["exposure-diagnostics"], "exposed diagnostics")


@check(META["exposure-directory-listing"])
def directory_listing(snap: Snapshot) -> list[Finding]:
    return _assess(snap, META["exposure-directory-listing"], "directory listings")


CHECKS = [source_secrets, admin_consoles, diagnostics, directory_listing]
