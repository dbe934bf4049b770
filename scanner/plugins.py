"""The check plugin API and the registry, loaded through entry points.

A check is metadata (data, validated at load) plus a pure function ``Snapshot -> findings``. Families
publish a list of checks under the entry-point group ``pledgescan.checks`` (see setup.cfg); third parties
do the same from their own package. Reporters are published under ``pledgescan.reporters``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from importlib.metadata import entry_points
from typing import Any, Protocol

import yaml
from pydantic import Field, ValidationError, field_validator

from scanner.models import Finding, Frozen, Report, Severity, Status, TargetKind

log = logging.getLogger(__name__)

CHECK_GROUP = "pledgescan.checks"
REPORTER_GROUP = "pledgescan.reporters"
ID_PATTERN = r"^[a-z][a-z0-9]*(-[a-z0-9]+)+$"


class CheckMeta(Frozen):
    """A check's metadata. The ID never changes and is never reused; renames keep the old as alias."""

    id: str = Field(pattern=ID_PATTERN)
    title: str = Field(min_length=3)
    severity: Severity
    controls: tuple[str, ...] = Field(min_length=1)
    target_kind: TargetKind
    description: str = Field(min_length=10)
    risk: str = Field(min_length=10)
    remediation: str = Field(min_length=10)
    references: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()

    @field_validator("controls")
    @classmethod
    def _control_ids(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for c in v:
            if not (len(c) >= 2 and c[0] in "THCED" and c[1:].isdigit()):
                raise ValueError(f"{c!r} is not a baseline control ID")
        return v

    def finding(self, status: Status | str, title: str, detail: str = "", *, control: str | None = None,
                severity: Severity | str | None = None, evidence: dict[str, Any] | None = None,
                remediation: str | None = None) -> Finding:
        """A finding of this check. Fails and warns get the check's remediation unless given one."""
        status = Status(status)
        if remediation is None and status in (Status.FAIL, Status.WARN):
            remediation = self.remediation
        return Finding(
            check=self.id,
            control=control or self.controls[0],
            status=status,
            severity=Severity(severity) if severity else None,
            title=title,
            detail=detail,
            evidence=evidence or {},
            remediation=remediation,
        )

    def errors(self, reason: str, evidence: dict[str, Any] | None = None) -> list[Finding]:
        """One ``error`` finding per control this check feeds: it could not decide, and why."""
        return [
            self.finding(Status.ERROR, f"Could not be assessed: {reason}", reason, control=c,
                         evidence=evidence)
            for c in self.controls
        ]


CheckFunc = Callable[[Any], Iterable[Finding]]


@dataclass(frozen=True)
class Check:
    """A registered check: its metadata and the pure function that analyses a ``Snapshot``."""

    meta: CheckMeta
    func: CheckFunc
    family: str = ""

    @property
    def id(self) -> str:
        return self.meta.id

    def run(self, snapshot: Any) -> list[Finding]:
        return list(self.func(snapshot))


def load_metadata(family: str) -> dict[str, CheckMeta]:
    """Read and validate ``checks/metadata/<family>.yaml``: a list of check metadata records."""
    text = resources.files("checks").joinpath("metadata", f"{family}.yaml").read_text("utf-8")
    data = yaml.safe_load(text) or []
    metas = [CheckMeta.model_validate(item) for item in data]
    return {m.id: m for m in metas}


def check(meta: CheckMeta) -> Callable[[CheckFunc], Check]:
    """Decorator: ``@check(META["tls-protocols"])`` turns a function into a ``Check``."""

    def wrap(func: CheckFunc) -> Check:
        return Check(meta=meta, func=func, family=func.__module__.rsplit(".", 1)[-1])

    return wrap


@dataclass
class Registry:
    """The checks that loaded, and the plugins that were refused (with a clear reason each)."""

    checks: list[Check] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def by_id(self) -> dict[str, Check]:
        out: dict[str, Check] = {}
        for c in self.checks:
            out[c.id] = c
            for alias in c.meta.aliases:
                out.setdefault(alias, c)
        return out


def load_checks(known_controls: Iterable[str] | None = None) -> Registry:
    """Load every check published under ``pledgescan.checks``; refuse broken ones, keep going."""
    controls = set(known_controls) if known_controls is not None else None
    reg = Registry()
    seen: set[str] = set()
    # Built-in families load first, so a third-party plugin can never shadow a built-in check ID.
    def order(ep: Any) -> tuple[bool, str]:
        dist = getattr(ep, "dist", None)
        return (getattr(dist, "name", "") != "pledgescan", ep.name)

    for ep in sorted(entry_points(group=CHECK_GROUP), key=order):
        try:
            loaded = ep.load()
        except Exception as exc:  # a broken plugin must not stop the scan
            reg.refused.append(f"check plugin {ep.name!r} ({ep.value}) failed to load: {exc}")
            continue
        items = [loaded] if isinstance(loaded, Check) else list(loaded) if _iterable(loaded) else [loaded]
        for item in items:
            problem = _validate(item, seen, controls)
            if problem:
                reg.refused.append(f"check plugin {ep.name!r}: {problem}")
                continue
            seen.add(item.id)
            seen.update(item.meta.aliases)
            reg.checks.append(item)
    for msg in reg.refused:
        log.warning(msg)
    return reg


def _iterable(obj: object) -> bool:
    return isinstance(obj, list | tuple)


def _validate(item: object, seen: set[str], controls: set[str] | None) -> str | None:
    if not isinstance(item, Check):
        return f"{item!r} is not a Check"
    try:
        CheckMeta.model_validate(item.meta.model_dump())
    except ValidationError as exc:
        return f"invalid metadata: {exc.errors()[0]['msg']}"
    if item.id in seen:
        return f"duplicate check ID {item.id!r} refused"
    if controls is not None:
        unknown = [c for c in item.meta.controls if c not in controls]
        if unknown:
            return f"check {item.id!r} feeds unknown control(s) {', '.join(unknown)}"
    return None


class Reporter(Protocol):
    """A report format. ``render`` returns the whole document: text, or bytes for a binary format (xlsx)."""

    format: str
    extension: str

    def render(self, report: Report) -> str | bytes: ...


def load_reporters() -> dict[str, Reporter]:
    """Reporters published under ``pledgescan.reporters``, by format name."""
    out: dict[str, Reporter] = {}
    for ep in entry_points(group=REPORTER_GROUP):
        try:
            cls = ep.load()
            out[ep.name] = cls()
        except Exception as exc:
            log.warning("reporter plugin %r refused: %s", ep.name, exc)
    return out
