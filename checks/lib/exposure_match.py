"""The exposure matcher (E1-E4): recorded probe answers + the catalogue -> hits. Pure, no I/O.

A probe answer is a hit for a catalogue entry when
1. it does not look like the host's answer to random paths (soft 404: same status and a similar page,
   or a redirect to the same place), recorded by the collector's calibration;
2. its status is one the entry expects, every ``required`` signal matches, and at least
   ``min_signals`` signals match in all (the status counts as one), so one word is never enough;
3. a random sibling path in the same directory (the collector's confirmation probe) does not give the
   same answer, which would mean the directory answers everything alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import quote, urlsplit

from scanner.evidence.exposure import ExposureEvidence, Probe, mask_secrets, mask_value, similar
from scanner.exposure_catalogue.model import Catalogue, Entry, Family, Signal, VersionRule, load_catalogue

__all__ = ["Hit", "analyse", "mask_secrets", "mask_value", "match_entry", "matches_calibration",
           "secret_summary", "signal_matches"]

_FLAGS = re.IGNORECASE | re.MULTILINE
_REDIRECTS = (301, 302, 303, 307, 308)
# Families reported once per product (a console found at two paths is one exposure); the others once
# per path (two leaked files are two exposures).
_PER_PRODUCT = {"admin_consoles", "diagnostics", "platforms"}


@dataclass(frozen=True)
class Hit:
    """One exposure: the entry it matched, the answer that matched and why."""

    family: Family
    entry: Entry
    probe: Probe
    signals: tuple[str, ...]
    version: str | None = None
    secrets: tuple[str, ...] = ()
    also_at: tuple[str, ...] = field(default=())

    @property
    def control(self) -> str:
        return self.family.control


@lru_cache(maxsize=512)
def _re(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, _FLAGS)


def signal_matches(sig: Signal, p: Probe) -> bool:
    """Does one signal match one recorded answer?"""
    kind = sig.kind
    if kind == "title":
        return bool(p.title and _re(sig.title or "").search(p.title))
    if kind == "body":
        return bool(p.excerpt and _re(sig.body or "").search(p.excerpt))
    if kind == "header":
        value = p.header(sig.header or "")
        if value is None:
            return False
        return sig.value is None or bool(_re(sig.value).search(value))
    if kind == "cookie":
        return any(_re(sig.cookie or "").search(c) for c in p.cookies)
    if kind == "content_type":
        return bool(p.content_type and _re(sig.content_type or "").search(p.content_type))
    if kind == "magic":
        return p.magic in sig.magic
    if kind == "location":
        return bool(p.location and _re(sig.location or "").search(p.location))
    return False


def _version(rule: VersionRule | None, p: Probe) -> str | None:
    if rule is None:
        return None
    if rule.header:
        text = p.header(rule.header) or ""
        m = _re(rule.pattern).search(text)
    elif rule.title:
        m = _re(rule.title).search(p.title or "")
    elif rule.body:
        m = _re(rule.body).search(p.excerpt)
    else:
        return None
    if not m:
        return None
    found = next((g for g in m.groups() if g), None) if m.groups() else m.group(0)
    return found[:40] if found else None


def match_entry(entry: Entry, p: Probe) -> tuple[tuple[str, ...], str | None] | None:
    """The signals of ``entry`` that match ``p`` (status first) and the version, or None."""
    if p.error or p.status is None or p.status not in entry.status:
        return None
    matched = [f"status {p.status}"]
    for sig in entry.signals:
        if signal_matches(sig, p):
            matched.append(sig.label)
        elif sig.required:
            return None
    if len(matched) < entry.min_signals:
        return None
    return tuple(matched), _version(entry.version, p)


def _strip_path(location: str, path: str) -> str:
    """A redirect target with the requested path removed, so ``/login?next=/x`` and ``/login?next=/y``
    compare equal."""
    loc = location
    for variant in (path, quote(path, safe=""), quote(path)):
        if len(variant) > 1:
            loc = loc.replace(variant, "")
    parts = urlsplit(loc)
    return f"{parts.netloc.lower()}{parts.path}?{parts.query}"


def matches_calibration(p: Probe, calibration: tuple[Probe, ...]) -> bool:
    """Is this answer the host's usual answer to an unknown path (soft 404)?"""
    for c in calibration:
        if c.error or c.status is None or p.status != c.status:
            continue
        if similar(p, c):
            return True
        if (p.status in _REDIRECTS and p.location and c.location
                and _strip_path(p.location, p.path) == _strip_path(c.location, c.path)):
            return True
    return False


_SECRET_LINE = re.compile(r"^[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_.-]{0,80})[ \t]*[=:][ \t]*"
                          r"(\S?\*{5})[ \t]*$", re.MULTILINE)
_SECRET_PHP = re.compile(r"""define\(\s*['"](\w{1,80})['"]\s*,\s*['"](\S?\*{5})['"]|"""
                         r"""\$([A-Za-z_][\w\[\]'"-]{0,80})\s*=\s*['"](\S?\*{5})['"]""")


_MASKED_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:\*{5}@[^\s\"'<>]{1,200}", re.IGNORECASE)


def secret_summary(excerpt: str, limit: int = 30) -> tuple[str, ...]:
    """``KEY=v*****`` for every masked value in an (already masked) excerpt. Values never appear: the
    excerpt is re-masked first, so this is safe even on raw text."""
    text = mask_secrets(excerpt)
    out: list[str] = []
    for m in _SECRET_LINE.finditer(text):
        out.append(f"{m.group(1)}={m.group(2)}")
    for m in _SECRET_PHP.finditer(text):
        key, val = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        out.append(f"{key}={val}")
    for m in _MASKED_URL.finditer(text):
        out.append(m.group(0))
    seen: dict[str, None] = dict.fromkeys(out)
    return tuple(seen)[:limit]


def _confirmation(ev: ExposureEvidence, p: Probe) -> Probe | None:
    return next((c for c in ev.confirmations if c.confirms == p.path), None)


def _hits_for(ev: ExposureEvidence, fam: Family, entry: Entry, answers: list[Probe],
              calibration: tuple[Probe, ...]) -> list[Hit]:
    out: list[Hit] = []
    for p in answers:
        if p.purpose in ("probe", "landing") and matches_calibration(p, calibration):
            continue
        got = match_entry(entry, p)
        if got is None:
            continue
        conf = _confirmation(ev, p)
        if conf is not None and not conf.error and (similar(conf, p) or match_entry(entry, conf)):
            continue  # the directory answers a random name the same way: not this file
        signals, version = got
        secrets = secret_summary(p.excerpt) if entry.secrets != "none" else ()
        out.append(Hit(family=fam, entry=entry, probe=p, signals=signals, version=version, secrets=secrets))
    return out


def analyse(ev: ExposureEvidence, catalogue: Catalogue | None = None) -> list[Hit]:
    """Every exposure in the recorded evidence, in catalogue order."""
    return list(_analyse(ev, catalogue or load_catalogue()))


@lru_cache(maxsize=16)
def _analyse(ev: ExposureEvidence, catalogue: Catalogue) -> tuple[Hit, ...]:
    if ev.error:
        return ()
    answers = list(ev.probes) + ([ev.landing] if ev.landing else [])
    by_path: dict[str, list[Probe]] = {}
    for p in answers:
        by_path.setdefault(p.path, []).append(p)
    linked = list(ev.linked_directories)
    hits: list[Hit] = []
    for fam in catalogue.families:
        fam_hits: list[Hit] = []
        for entry in fam.entries:
            paths = list(entry.paths)
            if fam.linked_directories:
                paths += [d for d in linked if d not in entry.paths]
            mine = [p for path in paths for p in by_path.get(path, ())
                    if p.method == entry.method or (p.path == "/" and entry.method == "GET")]
            found = _hits_for(ev, fam, entry, mine, ev.calibration)
            if entry.on_calibration:
                found += _hits_for(ev, fam, entry, list(ev.calibration), ())
            if fam.family in _PER_PRODUCT and len(found) > 1:
                first = found[0]
                found = [Hit(family=fam, entry=entry, probe=first.probe, signals=first.signals,
                             version=first.version or next((h.version for h in found if h.version), None),
                             secrets=first.secrets, also_at=tuple(h.probe.path for h in found[1:])[:10])]
            fam_hits.extend(found)
        # One finding per path within a family (an index page matches several listing flavours).
        seen: set[str] = set()
        for h in fam_hits:
            key = h.probe.path if fam.family not in _PER_PRODUCT else h.entry.id
            if key in seen:
                continue
            seen.add(key)
            hits.append(h)
    return tuple(hits)
