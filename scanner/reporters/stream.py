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
from typing import Any, TextIO

import orjson

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
        out.write(("[\n" if first else ",\n") + pad + dump_indented(item, pad))
        first = False
    out.write("[]" if first else "\n" + " " * indent + "]")
    out.write(after)


def dump_indented(value: Any, pad: str = "") -> str:
    """``value`` as JSON laid out as ``json.dumps(value, indent=2, ensure_ascii=False)`` lays it out, with
    ``pad`` after every line break (the text ``json_splice`` needs for an item of its list).

    orjson writes it (about ten times faster than the standard library, which encodes with an indent in
    pure Python: most of a second per 100 targets of a portfolio's scan.json). The text can differ from
    ``json.dumps`` only in how a float's exponent is spelt (``1e-7``, not ``1e-07``): the same JSON. What
    orjson refuses (integers beyond 64 bits, such as certificate serial numbers) goes through ``json``."""
    try:
        text = orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        text = json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False)
    return text.replace("\n", "\n" + pad) if pad else text


def slot() -> str:
    """The placeholder ``json_splice`` replaces with the streamed list."""
    return _SLOT


__all__ = ["ReportStream", "as_stream", "dump_indented", "json_splice", "slot"]
