"""Typed, immutable records that flow through a scan: targets, findings, results, reports.

Data flows one way: ``Target`` -> (collectors) ``Snapshot`` -> (checks) ``Finding`` ->
(baseline) ``ControlResult`` / ``TargetResult`` -> ``Report`` -> reporters.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from scanner.errors import ErrorKind

#: Version of the report format (``Report.schema_version``; the major is the JSON Schema's ``$id``).
#: 1.1: findings carry ``error_kind``.
SCHEMA_MAJOR = 1
SCHEMA_VERSION = f"{SCHEMA_MAJOR}.1"
CHECK_ID_PATTERN = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"  # a check's ID, or "pledgescan" for the engine's own

# Values the baseline defines: the generated JSON Schema takes their $defs from the baseline file.
ControlId = Annotated[str, WithJsonSchema({"x-baseline": "control_id"})]
AreaId = Annotated[str, WithJsonSchema({"x-baseline": "area"})]
Grade = Annotated[str, WithJsonSchema({"x-baseline": "grade"})]


class Frozen(BaseModel):
    """Base of every record: immutable, no unknown fields. Serialised, every field is written (so the
    generated JSON Schema requires it)."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_serialization_defaults_required=True)


class Status(StrEnum):
    """Outcome of a finding or a control, per the baseline spec."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"
    NOT_APPLICABLE = "not_applicable"

    def __str__(self) -> str:
        return self.value


class Severity(StrEnum):
    """Weight of a failure. Ordered: ``Severity.rank``."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]

    def __str__(self) -> str:
        return self.value


_SEVERITY_RANK = {
    Severity.INFO: 0,
    Severity.LOW: 1,
    Severity.MEDIUM: 2,
    Severity.HIGH: 3,
    Severity.CRITICAL: 4,
}

TargetKind = Literal["endpoint", "domain"]


class Target(Frozen):
    """One thing to scan: a web endpoint (URL) or a domain, optionally tied to a member."""

    kind: TargetKind
    target: str  # normalised URL for endpoints, lower-case domain name for domains
    host: str  # host name (endpoint) or the domain itself
    port: int | None = None  # HTTPS port for endpoints
    http_port: int = 80  # where the endpoint's plain-HTTP URL is probed (H1); 80 unless told otherwise
    member: str | None = None  # member id
    member_name: str | None = None
    scope: tuple[str, ...] = ()  # registrable domains this target may lead the scanner to
    related_hosts: tuple[str, ...] = ()  # domain targets: endpoint host names of the scan under it

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.target}"


class Finding(Frozen):
    """One observation by one check. ``evidence`` is plain JSON data, already bounded."""

    check: str = Field(pattern=CHECK_ID_PATTERN)
    control: ControlId
    status: Status
    severity: Severity | None = None  # weight if this is a fail/warn; defaults to the control's
    title: str
    detail: str = ""
    evidence: dict[str, Any] = Field(default_factory=dict)
    remediation: str | None = None
    error_kind: ErrorKind | None = None  # status error: why it could not be decided (timeout, refused, ...)


class ControlResult(Frozen):
    """The status of one baseline control on one target."""

    id: ControlId
    title: str
    area: AreaId
    status: Status
    severity: Severity
    findings: tuple[Finding, ...] = ()


class TargetResult(Frozen):
    """Everything decided about one target."""

    member: str | None
    member_name: str | None = None
    kind: TargetKind
    target: str = Field(min_length=1)
    addresses: tuple[str, ...] = ()
    grade: Grade
    score: int = Field(ge=0, le=100)
    decided: int = Field(ge=0)  # controls that could be decided (not error, not n/a)
    applicable: int = Field(ge=0)  # controls that apply (not n/a)
    controls: tuple[ControlResult, ...]
    findings: tuple[Finding, ...]
    errors: tuple[str, ...] = ()
    started_at: datetime | None = None
    duration_s: float | None = Field(default=None, ge=0)
    stats: dict[str, Any] = Field(default_factory=dict)

    @property
    def key(self) -> str:
        """The key of the target it is about (``Target.key``)."""
        return f"{self.kind}:{self.target}"


class ToolInfo(Frozen):
    name: str = Field(default="pledgescan", min_length=1)
    version: str = Field(min_length=1)


class BaselineRef(Frozen):
    id: str = Field(min_length=1)
    version: str = Field(min_length=1)


TargetState = Literal["assessed", "back", "new", "unreachable", "not_assessed", "removed"]


class TargetComparison(Frozen):
    """A stored target against its own past (reports of the history store only): its state, and the
    last decided result it is compared with. ``unreachable``: it answered before and not now (neutral,
    left out of grades and scores); ``back``: it answers again after that; ``new``/``removed``: it joined
    or left the inventory; ``not_assessed``: never reached yet."""

    member: str | None
    target: str
    state: TargetState
    grade_before: str | None = None  # grade of the result it is compared with
    compared_run: str | None = None  # the run holding that result
    last_assessed: datetime | None = None
    unreachable_since: datetime | None = None
    summary: str = ""  # the state in words


class Report(Frozen):
    """One scan run: what reporters render."""

    schema_version: str = Field(pattern=rf"^{SCHEMA_MAJOR}\.[0-9]+$")
    tool: ToolInfo
    baseline: BaselineRef
    generated_at: datetime
    targets: tuple[TargetResult, ...]
    run_id: str | None = None
    stats: dict[str, Any] = Field(default_factory=dict)
    comparison: tuple[TargetComparison, ...] = ()  # stored runs: each target against its own past
