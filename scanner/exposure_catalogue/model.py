"""The exposure catalogue: what to probe and how to recognise it, kept as YAML data, one file per family.

Each entry names a product, the paths to ask for, the statuses it answers with and the signals
(title, body, header, cookie, content type, magic bytes, redirect target) that recognise it. A probe
result is a finding only when its status matches AND enough other signals match (``min_signals``
counts the status as one), so one word in a page is never enough.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import Field, field_validator, model_validator

from scanner.models import Frozen, Severity

FAMILIES = ("source_secrets", "admin_consoles", "diagnostics", "listings", "platforms")
MAGIC_TYPES = ("zip", "gzip", "sqlite", "bzip2", "xz", "7z", "rar", "tar", "sql", "ds_store", "vim_swap",
               "hprof", "html", "json", "text", "binary", "empty")


def _compile(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"bad regular expression {pattern!r}: {exc}") from exc
    return pattern


class Signal(Frozen):
    """One independent way to recognise a product. Exactly one kind is set; regexes are searched
    case-insensitively."""

    title: str | None = None  # regex on the HTML <title>
    body: str | None = None  # regex on the (masked, bounded) body text
    header: str | None = None  # header name (lower-case); ``value`` regex, or presence when omitted
    value: str | None = None
    cookie: str | None = None  # regex on Set-Cookie names
    content_type: str | None = None  # regex on Content-Type
    magic: tuple[str, ...] = ()  # sniffed file types (see MAGIC_TYPES)
    location: str | None = None  # regex on the Location header of a redirect
    required: bool = False  # this signal must match (e.g. the magic bytes of an archive)

    @model_validator(mode="after")
    def _one_kind(self) -> Signal:
        kinds = [k for k in ("title", "body", "header", "cookie", "content_type", "location")
                 if getattr(self, k) is not None] + (["magic"] if self.magic else [])
        if len(kinds) != 1:
            raise ValueError(f"a signal sets exactly one of title/body/header/cookie/content_type/"
                             f"magic/location, not {kinds or 'none'}")
        for k in ("title", "body", "value", "cookie", "content_type", "location"):
            v = getattr(self, k)
            if v is not None:
                _compile(v)
        bad = [m for m in self.magic if m not in MAGIC_TYPES]
        if bad:
            raise ValueError(f"unknown magic type(s) {bad}; known: {', '.join(MAGIC_TYPES)}")
        return self

    @property
    def kind(self) -> str:
        if self.magic:
            return "magic"
        return next(k for k in ("title", "body", "header", "cookie", "content_type", "location")
                    if getattr(self, k) is not None)

    @property
    def label(self) -> str:
        """Short, stable description used in evidence (``title~phpMyAdmin``)."""
        if self.header is not None:
            return f"header:{self.header}" + (f"~{self.value}" if self.value else "")
        if self.magic:
            return "magic:" + "|".join(self.magic)
        for k in ("title", "body", "cookie", "content_type", "location"):
            v = getattr(self, k)
            if v is not None:
                return f"{k}~{v}"
        return "?"


class VersionRule(Frozen):
    """Where a product's version is read: a regex with one group over a title, body or header."""

    title: str | None = None
    body: str | None = None
    header: str | None = None
    pattern: str = r"([0-9]+(?:\.[0-9]+)+[0-9a-z.+~-]*)"

    @field_validator("title", "body", "pattern")
    @classmethod
    def _re(cls, v: str | None) -> str | None:
        return _compile(v) if v is not None else v


class Entry(Frozen):
    """One recognisable exposure."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    product: str
    category: str = ""
    outcome: Literal["fail", "warn"] = "fail"
    severity: Severity | None = None  # finer weight than the control's, when the spec gives one
    paths: tuple[str, ...] = ()  # "/" is the landing page; {host} and {label} are the target's name
    on_calibration: bool = False  # also matched against the answers to the random calibration paths
    method: Literal["GET", "HEAD", "RANGE"] = "GET"  # RANGE: GET with Range: bytes=0-511
    status: tuple[int, ...] = (200,)
    signals: tuple[Signal, ...] = Field(min_length=1)
    min_signals: int = Field(default=2, ge=2)  # the status counts as one
    version: VersionRule | None = None
    secrets: Literal["none", "env", "config"] = "none"  # how to list masked secrets in evidence
    remediation: str = Field(min_length=10)

    @field_validator("paths")
    @classmethod
    def _paths(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for p in v:
            if not p.startswith("/") or "://" in p or ".." in p or " " in p:
                raise ValueError(f"path {p!r} must be an absolute path on the target's origin")
        return v

    @model_validator(mode="after")
    def _reachable(self) -> Entry:
        if not self.paths and not self.on_calibration:
            raise ValueError(f"{self.id}: an entry needs paths or on_calibration")
        if self.min_signals - 1 > len(self.signals):
            raise ValueError(f"{self.id}: min_signals={self.min_signals} can never be met "
                             f"with {len(self.signals)} signal(s)")
        return self


class Family(Frozen):
    """One catalogue file."""

    family: Literal["source_secrets", "admin_consoles", "diagnostics", "listings", "platforms"]
    control: Literal["E1", "E2", "E3", "E4"]
    description: str = ""
    linked_directories: bool = False  # listings: also probe directories linked from the landing page
    max_linked_directories: int = 8
    entries: tuple[Entry, ...] = Field(min_length=1)


class Catalogue(Frozen):
    families: tuple[Family, ...]

    @model_validator(mode="after")
    def _unique(self) -> Catalogue:
        seen: set[str] = set()
        for fam in self.families:
            for e in fam.entries:
                if e.id in seen:
                    raise ValueError(f"duplicate catalogue entry id {e.id!r}")
                seen.add(e.id)
        return self

    def entries(self) -> list[tuple[Family, Entry]]:
        return [(f, e) for f in self.families for e in f.entries]

    def entry(self, entry_id: str) -> tuple[Family, Entry] | None:
        for f, e in self.entries():
            if e.id == entry_id:
                return f, e
        return None

    def family(self, name: str) -> Family | None:
        return next((f for f in self.families if f.family == name), None)


def parse_family(text: str) -> Family:
    """Validate one catalogue file's YAML text."""
    # libyaml's parser when there is one (the same YAML, ~10x faster: the catalogue is read on the first
    # target of a scan).
    return Family.model_validate(yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))


@lru_cache(maxsize=1)
def load_catalogue() -> Catalogue:
    """The packaged catalogue (scanner/exposure_catalogue/*.yaml), validated."""
    root = resources.files("scanner.exposure_catalogue")
    fams = [parse_family(root.joinpath(f"{name}.yaml").read_text("utf-8")) for name in FAMILIES]
    return Catalogue(families=tuple(fams))
