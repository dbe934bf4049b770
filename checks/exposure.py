"""Exposed surfaces (E1-E4): leaked source and secrets, infrastructure consoles, diagnostics, listings.

Pure functions of the snapshot's exposure evidence: the matcher (``checks.lib.exposure_match``) turns
recorded probe answers into hits, after discarding anything that looks like the host's answer to
random paths. Each exposure is its own finding.
"""

from __future__ import annotations

from typing import Any

from checks.lib import N_
from checks.lib.exposure_match import Hit, analyse
from scanner.evidence.exposure import ExposureEvidence
from scanner.models import Finding, Status
from scanner.plugins import CheckMeta, Needs, check

# Server lines added under a catalogue entry's own fix: nginx, Apache and IIS (one message per line for
# the translators; snippets between backticks stay as they are).
_DENY_LINES = (
    N_("nginx: `location ~ /\\.(?!well-known/) { deny all; }` and "
       "`location ~* \\.(bak|old|save|swp|sql|zip|tar|gz)$ { deny all; }`"),
    N_("Apache: `RedirectMatch 404 \"/\\.(?!well-known/)\"` and "
       "`<FilesMatch \"\\.(bak|old|save|swp|sql|zip|tar|gz)$\">Require all denied</FilesMatch>`"),
    N_("IIS: in web.config, `<hiddenSegments><add segment=\".git\"/><add segment=\".env\"/>"
       "</hiddenSegments>` and `<fileExtensions><add fileExtension=\".bak\" allowed=\"false\"/>"
       "</fileExtensions>` under `<requestFiltering>`"),
)
_RESTRICT_LINES = (
    N_("nginx: `location /PATH/ { allow 192.0.2.0/24; deny all; }` (PATH: where it was found; "
       "192.0.2.0/24: your admin network)"),
    N_("Apache: `<Location \"/PATH/\">Require ip 192.0.2.0/24</Location>`"),
    N_("IIS: `<location path=\"PATH\">` with `<ipSecurity allowUnlisted=\"false\">"
       "<add ipAddress=\"192.0.2.0\" subnetMask=\"255.255.255.0\" allowed=\"true\"/></ipSecurity>` under "
       "`<system.webServer><security>` in web.config (the IP and Domain Restrictions feature)"),
)
_LISTING_LINES = (
    N_("nginx: `autoindex off;`"),
    N_("Apache: `Options -Indexes`"),
    N_("IIS: `<directoryBrowse enabled=\"false\"/>` in web.config"),
)
SERVER_LINES = {"source_secrets": _DENY_LINES, "admin_consoles": _RESTRICT_LINES,
                "platforms": _RESTRICT_LINES, "diagnostics": _RESTRICT_LINES, "listings": _LISTING_LINES}
# Fixed in the application or by deleting a file, not by a server rule; listings naming their server.
_NO_SERVER_LINES = frozenset({"phpinfo", "django-debug", "laravel-ignition", "symfony-profiler",
                              "listing-python", "listing-apache", "listing-nginx", "listing-iis"})


def remediation(hit: Hit) -> str:
    """The catalogue entry's fix, then the server lines of its family (one per line)."""
    lines = () if hit.entry.id in _NO_SERVER_LINES else SERVER_LINES.get(hit.family.family, ())
    return "\n".join([hit.entry.remediation, *lines])


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
                        evidence=evidence, remediation=remediation(hit))


PROBED = Needs("exposure", error_evidence=lambda ev: {"origin": ev.origin, "requests": ev.requests})


def _assess(ev: ExposureEvidence, meta: CheckMeta, what: str) -> list[Finding]:
    control = meta.controls[0]
    hits = [h for h in analyse(ev) if h.control == control]
    if not hits:
        detail = f"{len(ev.probes)} paths probed with {ev.requests} requests; host answers unknown paths " \
                 f"with: {ev.behaviour or 'n/a'}."
        if ev.budget_exhausted:
            detail += f" The request budget ({ev.budget}) ran out: {len(ev.skipped)} path(s) not probed."
        return [meta.finding(Status.PASS, f"No {what} found", detail, evidence=_summary(ev))]
    return [_hit_finding(meta, h) for h in hits]


@check("exposure-source-secrets", needs=PROBED)
def source_secrets(ev: ExposureEvidence, meta: CheckMeta) -> list[Finding]:
    return _assess(ev, meta, "exposed source control, secrets or backups")


@check("exposure-admin-consoles", needs=PROBED)
def admin_consoles(ev: ExposureEvidence, meta: CheckMeta) -> list[Finding]:
    return _assess(ev, meta, "exposed consoles or admin logins")


@check("exposure-diagnostics", needs=PROBED)
def diagnostics(ev: ExposureEvidence, meta: CheckMeta) -> list[Finding]:
    return _assess(ev, meta, "exposed diagnostics")


@check("exposure-directory-listing", needs=PROBED)
def directory_listing(ev: ExposureEvidence, meta: CheckMeta) -> list[Finding]:
    return _assess(ev, meta, "directory listings")

