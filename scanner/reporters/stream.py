"""Reports written target by target, so that memory does not grow with the inventory.

A ``ReportStream`` is a report whose targets are read when a writer needs them (from the history store,
one batch at a time), once per pass. The built-in JSON, CSV, SARIF and spreadsheet writers take one,
and write the same bytes as rendering the whole ``Report`` at once (``json_splice`` keeps the JSON
layout of ``json.dumps(..., indent=2)``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any, TextIO

from scanner.models import Report, TargetResult

_SLOT = "\x00pledgescan-stream-slot\x00"


@dataclass(frozen=True)
class ReportStream:
    """``head`` is the report without its targets (tool, baseline, dates, stats, comparison); ``source``
    gives the targets afresh each time it is called (each pass over a run reads the store again)."""

    head: Report
    source: Callable[[], Iterable[TargetResult]]

    @classmethod
    def of(cls, report: Report) -> ReportStream:
        """A report already in memory, as a stream."""
        return cls(report.model_copy(update={"targets": ()}), lambda: report.targets)

    def targets(self) -> Iterator[TargetResult]:
        return iter(self.source())

    def materialize(self) -> Report:
        """The whole report in memory (for writers that need every target at once)."""
        return self.head.model_copy(update={"targets": tuple(self.source())})


def as_stream(report: Report | ReportStream) -> ReportStream:
    return report if isinstance(report, ReportStream) else ReportStream.of(report)


def json_splice(out: TextIO, document: dict[str, Any], key: str, indent: int,
                items: Iterable[Any]) -> None:
    """Write ``json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\\n"`` where the
    list under ``key`` (a key written at ``indent`` spaces, found by walking the document) is ``items``,
    produced and written one at a time. ``document[...][key]`` must be the slot placeholder: use
    ``slot()`` for it. JSON strings never hold a raw newline, so the slot's line is found exactly."""
    text = json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    marker = "\n" + " " * indent + json.dumps(key) + ": " + json.dumps(_SLOT, ensure_ascii=False)
    before, found, after = text.partition(marker)
    if not found:
        raise ValueError(f"no stream slot for {key!r} at indent {indent}")
    out.write(before)
    out.write(marker[: -len(json.dumps(_SLOT, ensure_ascii=False))])
    pad = " " * (indent + 2)
    first = True
    for item in items:
        parts = ["[\n" if first else ",\n", pad]
        dump_indented(item, parts.append, pad)
        out.write("".join(parts))
        first = False
    out.write("[]" if first else "\n" + " " * indent + "]")
    out.write(after)


_INF = float("inf")


def _float(value: float) -> str:
    if value != value or value == _INF or value == -_INF:
        raise ValueError("Out of range float values are not JSON compliant: " + repr(value))
    return float.__repr__(value)


def _key(key: Any) -> str:
    """A dict key as ``json.dumps`` turns it into a string (before quoting it)."""
    if isinstance(key, str):
        return key
    if isinstance(key, float):
        return _float(key)
    if key is True or key is False or key is None:
        return {True: "true", False: "false", None: "null"}[key]
    if isinstance(key, int):
        return int.__repr__(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def dump_indented(value: Any, out: Callable[[str], Any], pad: str = "") -> None:
    """Give ``out`` the pieces of ``json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False)``
    with ``pad`` after every line break (the text ``json_splice`` needs for an item of its list).

    The same text as ``json.dumps``, twice as fast: with ``indent`` the standard library encodes in
    pure Python through generators, and a portfolio's scan.json is most of a second per 100 targets of
    it. The plain JSON types (every target of a report, as ``target_dict`` makes it) are written here;
    any other value goes through ``json.dumps`` itself."""
    kind = type(value)
    if kind is str:
        out(encode_basestring(value))
    elif kind is dict:
        if not value:
            out("{}")
            return
        inner = pad + "  "
        sep = "{\n" + inner
        for k, v in value.items():
            out(sep)
            out(encode_basestring(k if type(k) is str else _key(k)))
            out(": ")
            dump_indented(v, out, inner)
            sep = ",\n" + inner
        out("\n" + pad + "}")
    elif kind is list:
        if not value:
            out("[]")
            return
        inner = pad + "  "
        sep = "[\n" + inner
        for v in value:
            out(sep)
            dump_indented(v, out, inner)
            sep = ",\n" + inner
        out("\n" + pad + "]")
    elif value is None:
        out("null")
    elif value is True:
        out("true")
    elif value is False:
        out("false")
    elif kind is int:
        out(int.__repr__(value))
    elif kind is float:
        out(_float(value))
    else:
        out(json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False).replace("\n", "\n" + pad))


def slot() -> str:
    """The placeholder ``json_splice`` replaces with the streamed list."""
    return _SLOT


__all__ = ["ReportStream", "as_stream", "dump_indented", "json_splice", "slot"]
