"""The check plugin API and the registry, loaded through entry points.

A check is metadata (data, validated at load), the evidence family it needs, and a pure function
``(evidence, meta) -> findings``. A check module is published under the entry-point group
``pledgescan.checks`` (see setup.cfg); third parties do the same from their own package. Reporters are
published under ``pledgescan.reporters``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any, Protocol

from pydantic import Field, ValidationError, field_validator

from scanner.errors import ErrorKind
from scanner.evidence import EVIDENCE_LABELS, FAMILY_KINDS
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
                remediation: str | None = None, error_kind: ErrorKind | None = None) -> Finding:
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
            error_kind=error_kind if status == Status.ERROR else None,
        )

    def errors(self, reason: str, evidence: dict[str, Any] | None = None,
               kind: ErrorKind | None = None) -> list[Finding]:
        """One ``error`` finding per control this check feeds: it could not decide, why (``reason``) and
        what kind of trouble it was (``kind``, when the evidence says)."""
        return [
            self.finding(Status.ERROR, f"Could not be assessed: {reason}", reason, control=c,
                         evidence=evidence, error_kind=kind)
            for c in self.controls
        ]


CheckFunc = Callable[[Any, CheckMeta], Iterable[Finding]]
Unusable = Callable[[Any], str | None]


def _errored(evidence: Any) -> str | None:
    return evidence.error


def _error_kind(evidence: Any) -> ErrorKind | None:
    return getattr(evidence, "error_kind", None)


@dataclass(frozen=True)
class Needs:
    """The evidence family a check reads (a ``Snapshot`` field) and when that evidence can be judged.

    ``unusable(evidence)`` says why collected evidence cannot be judged (default: its ``error``);
    ``error_evidence(evidence)`` is attached to the ``error`` findings and ``kind(evidence)`` is their
    ``error_kind`` (default: the evidence's own). Families declare stronger needs
    (``Needs("http", _no_https_answer)``) once, and their checks name them.
    """

    family: str
    unusable: Unusable = _errored
    error_evidence: Callable[[Any], dict[str, Any]] | None = None
    kind: Callable[[Any], ErrorKind | None] = _error_kind

    def evidence(self, snapshot: Any, meta: CheckMeta) -> Any:
        """The evidence to judge, or the check's ``error`` findings (a list) saying why there is none."""
        ev = getattr(snapshot, self.family, None)
        kind = self.kind(ev) if ev is not None else None
        if getattr(snapshot, "resolution_error", None):
            return meta.errors(f"host not resolved: {snapshot.resolution_error}", kind=kind or ErrorKind.DNS)
        if ev is None:
            return meta.errors(f"{EVIDENCE_LABELS.get(self.family, self.family)} evidence was not collected")
        why = self.unusable(ev)
        if why:
            return meta.errors(why, self.error_evidence(ev) if self.error_evidence else None,
                               kind=kind or ErrorKind.UNKNOWN)
        return ev


@dataclass(frozen=True)
class Check:
    """A registered check: its metadata, the evidence it needs and the pure function that judges it.

    ``run`` is the shared preamble: evidence missing, unresolved or unusable gives ``error`` findings for
    every control the check feeds; otherwise ``func(evidence, meta)`` decides.
    """

    meta: CheckMeta
    func: CheckFunc
    needs: Needs

    @property
    def id(self) -> str:
        return self.meta.id

    def run(self, snapshot: Any) -> list[Finding]:
        ev = self.needs.evidence(snapshot, self.meta)
        if isinstance(ev, list):
            return ev
        return list(self.func(ev, self.meta))


def safe_yaml(text: str) -> Any:
    """``yaml.safe_load`` through libyaml when PyYAML was built with it (the pure-Python parser took
    half of the registry's start-up: about 0.1 s for the five built-in metadata files)."""
    import yaml

    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 (safe)


def _entry_points(group: str) -> tuple[Any, ...]:
    """The entry points of ``group``; every group's read at once, once per ``sys.path``
    (``importlib.metadata`` reads every installed distribution's metadata at each call, ~15 ms here,
    and a scan asks for the checks' and the reporters' groups, several times)."""
    key = tuple(sys.path)
    found = _ENTRY_POINTS.get(key)
    if found is None:
        found = _ENTRY_POINTS[key] = entry_points()
    return tuple(found.select(group=group))


_ENTRY_POINTS: dict[tuple[str, ...], Any] = {}


@cache
def load_metadata(module: str) -> dict[str, CheckMeta]:
    """Read and validate the metadata of a check module: ``<package>/metadata/<module>.yaml`` beside it
    (``checks.http`` -> ``checks/metadata/http.yaml``), a list of check metadata records."""
    package, _, name = module.rpartition(".")
    if not package:
        raise LookupError(f"check module {module!r} is not in a package: no metadata/ folder to read")
    text = resources.files(package).joinpath("metadata", f"{name}.yaml").read_text("utf-8")
    data = safe_yaml(text) or []
    metas = [CheckMeta.model_validate(item) for item in data]
    return {m.id: m for m in metas}


def check(check_id: str, needs: str | Needs) -> Callable[[CheckFunc], Check]:
    """Decorator: ``@check("tls-protocols", needs="tls")`` turns ``func(evidence, meta)`` into a ``Check``
    whose metadata is the record ``check_id`` of the module's metadata file."""
    need = needs if isinstance(needs, Needs) else Needs(needs)

    def wrap(func: CheckFunc) -> Check:
        metas = load_metadata(func.__module__)
        if check_id not in metas:
            raise LookupError(f"check {check_id!r} has no metadata in {func.__module__}'s metadata file")
        return Check(meta=metas[check_id], func=func, needs=need)

    return wrap


def _builtin_first(ep: Any) -> tuple[bool, str]:
    return (_dist_name(getattr(ep, "dist", None)) != "pledgescan", ep.name)


@cache
def _dist_name(dist: Any) -> str:
    """A distribution's name, read once: ``Distribution.name`` parses its METADATA file at every call,
    and a sort asks once per entry point (a distribution's entry points share one object)."""
    return str(getattr(dist, "name", "") or "")


@cache
def check_metadata() -> dict[str, CheckMeta]:
    """Every published check's metadata by ID (and alias), read as data: no check code is imported, so
    reporters and messages can describe checks. A plugin whose metadata cannot be read is left out."""
    out: dict[str, CheckMeta] = {}
    for ep in sorted(_entry_points(CHECK_GROUP), key=_builtin_first):
        try:
            metas = load_metadata(ep.value.partition(":")[0])
        except Exception as exc:  # LookupError, OSError, yaml or validation errors of a broken plugin
            log.debug("no metadata for check plugin %r: %s", ep.name, exc)
            continue
        for m in metas.values():
            out.setdefault(m.id, m)
            for alias in m.aliases:
                out.setdefault(alias, m)
    return out


def checks_in(module: ModuleType) -> list[Check]:
    """The checks a module defines, in the order it defines them (an entry point may name the module)."""
    return [v for v in vars(module).values()
            if isinstance(v, Check) and getattr(v.func, "__module__", None) == module.__name__]


@dataclass
class Registry:
    """The checks that loaded, and the plugins that were refused (with a clear reason each)."""

    checks: list[Check] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def by_control(self) -> dict[str, list[str]]:
        """The IDs of the checks feeding each control, from the checks' metadata (the only mapping)."""
        out: dict[str, list[str]] = {}
        for c in self.checks:
            for control in c.meta.controls:
                out.setdefault(control, []).append(c.id)
        return out

    def by_id(self) -> dict[str, Check]:
        out: dict[str, Check] = {}
        for c in self.checks:
            out[c.id] = c
            for alias in c.meta.aliases:
                out.setdefault(alias, c)
        return out


def _selected(ep: Any, only: frozenset[str], skip: frozenset[str]) -> bool:
    """Whether a selection with ``--only`` needs the checks of entry point ``ep``: a built-in family is
    left unimported when its metadata (data, read without its code) shows no check the selection runs
    or names (``--only T1`` needs the tls family alone). Checks named by ``--skip`` load too: the
    selection reads them (a control whose checks were all skipped by name is not reported). Third-party
    plugins always load: their metadata need not tell."""
    if not only or _builtin_first(ep)[0]:
        return True
    try:
        metas = load_metadata(ep.value.partition(":")[0])
    except Exception:  # unreadable: load it, and let loading say what is wrong
        return True
    names = only | skip
    return any(m.id in names or names.intersection(m.aliases) or only.intersection(m.controls)
               for m in metas.values())


def load_checks(known_controls: Iterable[str] | None = None, only: Iterable[str] = (),
                skip: Iterable[str] = ()) -> Registry:
    """Load the checks published under ``pledgescan.checks``; refuse broken ones, keep going.

    Every check, unless ``only`` (``--only``) is given: then the built-in families none of whose checks
    the selection (``only`` and ``skip``) runs or names are not imported (``_selected``); the selection
    made from this registry is the same as from the whole one."""
    controls = set(known_controls) if known_controls is not None else None
    only, skip = frozenset(only), frozenset(skip)
    reg = Registry()
    seen: set[str] = set()
    # Built-in families load first, so a third-party plugin can never shadow a built-in check ID.
    for ep in sorted(_entry_points(CHECK_GROUP), key=_builtin_first):
        if not _selected(ep, only, skip):
            continue
        try:
            loaded = ep.load()
        except Exception as exc:  # a broken plugin must not stop the scan
            reg.refused.append(f"check plugin {ep.name!r} ({ep.value}) failed to load: {exc}")
            continue
        if isinstance(loaded, ModuleType):
            items: list[Any] = checks_in(loaded)
        elif isinstance(loaded, Check):
            items = [loaded]
        else:
            items = list(loaded) if _iterable(loaded) else [loaded]
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
    if item.needs.family not in EVIDENCE_LABELS:
        return (f"check {item.id!r} needs evidence family {item.needs.family!r}; known: "
                f"{', '.join(EVIDENCE_LABELS)}")
    kind = FAMILY_KINDS.get(item.needs.family)
    if kind is not None and kind != item.meta.target_kind:
        # the engine collects a family only for its own kind of target: such a check would never run
        return (f"check {item.id!r} is for {item.meta.target_kind} targets but needs the "
                f"{item.needs.family!r} evidence of {kind} targets")
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


def reporter_entry_points() -> tuple[Any, ...]:
    """The entry points published under ``pledgescan.reporters`` (none loaded)."""
    return _entry_points(REPORTER_GROUP)


def reporter_names() -> list[str]:
    """Formats published under ``pledgescan.reporters`` (pledgescan's own first), without loading any."""
    eps = _entry_points(REPORTER_GROUP)
    own = [ep.name for ep in eps if getattr(getattr(ep, "dist", None), "name", "") == "pledgescan"]
    return list(dict.fromkeys(own + sorted(ep.name for ep in eps)))


def load_reporter(ep: Any) -> Reporter | None:
    """A new instance of the reporter published by entry point ``ep``; None, with a warning, when the
    plugin fails to load (a broken plugin must not stop the scan)."""
    try:
        return ep.load()()
    except Exception as exc:
        log.warning("reporter plugin %r refused: %s", ep.name, exc)
        return None


def load_reporters() -> dict[str, Reporter]:
    """Reporters published under ``pledgescan.reporters``, by format name."""
    loaded = {ep.name: load_reporter(ep) for ep in _entry_points(REPORTER_GROUP)}
    return {name: rep for name, rep in loaded.items() if rep is not None}
