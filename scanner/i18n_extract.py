"""Babel extractors for data that members read: check metadata (``checks/metadata/*.yaml``: title,
description, risk, remediation), the baseline (``scanner/baselines/*.json``: title, area names,
control titles and requirements) and the exposure catalogue (``scanner/exposure_catalogue/*.yaml``:
each entry's remediation). Registered in ``babel.cfg``; each text becomes a message whose ID is
the English text, found at run time by ``scanner.i18n.tr``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO, Any

import yaml

METADATA_FIELDS = ("title", "description", "risk", "remediation")
Message = tuple[int, str | None, str, list[str]]


def _line_of(text: str, needle: str) -> int:
    pos = text.find(needle[:40])
    return text.count("\n", 0, pos) + 1 if pos >= 0 else 1


def extract_metadata(fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Any) -> Iterator[Message]:
    """Every translatable field of every check in a metadata YAML file (comment: check ID and field)."""
    text = fileobj.read().decode("utf-8")
    for item in yaml.safe_load(text) or []:
        for fld in METADATA_FIELDS:
            value = item.get(fld)
            if isinstance(value, str) and value.strip():
                yield _line_of(text, value), None, value, [f"check {item.get('id')}: {fld}"]


def extract_baseline(fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Any) -> Iterator[Message]:
    """The baseline's title, description, area names, and each control's title and requirement."""
    text = fileobj.read().decode("utf-8")
    data = json.loads(text)
    for fld in ("title", "description"):
        if data.get(fld):
            yield _line_of(text, data[fld]), None, data[fld], [f"baseline {fld}"]
    for code, name in (data.get("areas") or {}).items():
        yield _line_of(text, name), None, name, [f"area {code}"]
    for c in data.get("controls") or []:
        for fld in ("title", "requirement"):
            if c.get(fld):
                yield _line_of(text, c[fld]), None, c[fld], [f"control {c['id']}: {fld}"]


def extract_exposure(fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Any) -> Iterator[Message]:
    """The remediation of every entry of an exposure catalogue file (comment: the entry's ID)."""
    text = fileobj.read().decode("utf-8")
    data = yaml.safe_load(text) or {}
    for entry in data.get("entries") or []:
        value = entry.get("remediation")
        if isinstance(value, str) and value.strip():
            yield _line_of(text, value), None, value, [f"exposure {entry.get('id')}: remediation"]
