"""Reporters: turn a finished ``Report`` into documents (HTML, JSON, CSV, SARIF) and a terminal summary.

Reporters read ``scanner.models.Report`` (and the baseline data for requirement texts and area names);
they never import checks or collectors. Formats are published under the ``pledgescan.reporters``
entry-point group; ``render_all`` is what the CLI calls to write them.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from scanner.baseline import Baseline, load_baseline
from scanner.models import ControlResult, Finding, Report, Severity, Status
from scanner.reporters.output import OutputRefused, is_stdout, write_atomic
from scanner.reporters.stream import ReportStream, as_stream

#: File name (without extension) of every report written by ``render_all``.
REPORT_STEM = "report"


class ReporterError(ValueError):
    """An unknown format or an unusable output path (the CLI turns it into a usage error)."""


def write_stdout(data: str | bytes) -> None:
    """``-o -``: the one requested format on standard output."""
    if isinstance(data, str):
        sys.stdout.write(data)
        sys.stdout.flush()
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


#: The reporters shipped with pledgescan: format -> (module, class). Each is imported when its format
#: is written (the HTML one brings Jinja2, the spreadsheet openpyxl: a JSON scan needs neither).
BUILTIN_REPORTERS = {
    "html": ("scanner.reporters.html", "HtmlReporter"),
    "json": ("scanner.reporters.json_report", "JsonReporter"),
    "csv": ("scanner.reporters.csv_report", "CsvReporter"),
    "sarif": ("scanner.reporters.sarif", "SarifReporter"),
    "xlsx": ("scanner.reporters.xlsx_report", "XlsxReporter"),
}


def builtin_reporter(fmt: str) -> Any:
    """A new instance of the built-in reporter of ``fmt`` (``KeyError`` when there is none)."""
    import importlib

    module, cls = BUILTIN_REPORTERS[fmt]
    return getattr(importlib.import_module(module), cls)()


def builtin_reporters() -> dict[str, Any]:
    """The reporters shipped with pledgescan, by format (used when entry points are not installed)."""
    return {fmt: builtin_reporter(fmt) for fmt in BUILTIN_REPORTERS}


class Reporters(Mapping[str, Any]):
    """Built-in reporters plus any published under ``pledgescan.reporters`` (plugins win), each loaded
    when its format is looked up. A plugin that fails to load is refused with a warning (its format
    then falls back to the built-in one, if any), by ``scanner.plugins.load_reporter``."""

    def __init__(self) -> None:
        from scanner.plugins import reporter_entry_points

        self._eps = {ep.name: ep for ep in reporter_entry_points()}
        self._loaded: dict[str, Any] = {}
        self._refused: set[str] = set()

    def _load(self, fmt: str) -> Any | None:
        from scanner.plugins import load_reporter

        if fmt in self._loaded:
            return self._loaded[fmt]
        rep = None
        ep = self._eps.get(fmt)
        if ep is not None and fmt not in self._refused:
            rep = load_reporter(ep)
            if rep is None:
                self._refused.add(fmt)
        if rep is None and fmt in BUILTIN_REPORTERS:
            rep = builtin_reporter(fmt)
        if rep is not None:
            self._loaded[fmt] = rep
        return rep

    def __getitem__(self, fmt: str) -> Any:
        rep = self._load(fmt) if isinstance(fmt, str) else None
        if rep is None:
            raise KeyError(fmt)
        return rep

    def __contains__(self, fmt: object) -> bool:
        return isinstance(fmt, str) and self._load(fmt) is not None

    def __iter__(self) -> Iterator[str]:
        names = list(dict.fromkeys([*BUILTIN_REPORTERS, *self._eps]))
        return iter([n for n in names if n in self])

    def __len__(self) -> int:
        return sum(1 for _ in self)


def available_reporters() -> Reporters:
    """Built-in reporters plus any published under ``pledgescan.reporters`` (plugins win), loaded as
    their formats are looked up."""
    return Reporters()


def format_names() -> list[str]:
    """Every format ``render_all`` accepts: the ``pledgescan.reporters`` entry points (built-ins when
    pledgescan itself runs uninstalled)."""
    from scanner.plugins import reporter_names

    return reporter_names() or list(BUILTIN_REPORTERS)


def render_all(report: Report | ReportStream, formats: Iterable[str],
               output: str | os.PathLike[str] | None = None) -> list[Path]:
    """Render ``report`` in each format and write it; return the paths written.

    A ``ReportStream`` (a stored run read from the store) is written target by target by the reporters
    that can (``write``: JSON, CSV, SARIF; the spreadsheet keeps rows only); the others get the whole
    report in memory.

    With one format, ``output`` is the file to write (an existing directory gets ``report.<ext>``
    inside it; ``-`` is standard output); with several, ``output`` is a directory that receives
    ``report.<ext>`` per format. ``None`` means the current directory.
    """
    wanted = list(dict.fromkeys(f.strip().lower() for f in formats if f and f.strip()))
    if not wanted:
        return []
    reporters = available_reporters()
    unknown = [f for f in wanted if f not in reporters]
    if unknown:
        raise ReporterError(f"unknown report format(s): {', '.join(unknown)} "
                            f"(available: {', '.join(sorted(reporters))})")
    stream = as_stream(report)
    whole: list[Report] = []

    def content(rep: Any) -> Any:
        if hasattr(rep, "write") and rep.format in STREAMING_FORMATS:
            return lambda out: rep.write(stream, out)
        if rep.format == "xlsx" and hasattr(rep, "render"):
            return rep.render(stream)
        if not whole:
            whole.append(stream.materialize())
        return rep.render(whole[0])

    if is_stdout(output):
        if len(wanted) != 1:
            raise ReporterError("-o - writes one format to standard output: ask for one --format")
        data = content(reporters[wanted[0]])
        if callable(data):
            data(sys.stdout)
            sys.stdout.flush()
        else:
            write_stdout(data)
        return []
    out = Path(output) if output is not None else Path.cwd()
    paths: list[Path] = []
    if len(wanted) == 1:
        rep = reporters[wanted[0]]
        dest = out / f"{REPORT_STEM}.{rep.extension}" if out.is_dir() or output is None else out
        paths.append(write_atomic(dest, content(rep)))
        return paths
    if out.exists() and not out.is_dir():
        raise ReporterError(f"{out} is a file; with several formats --output must be a directory")
    out.mkdir(parents=True, exist_ok=True)
    for fmt in wanted:
        rep = reporters[fmt]
        paths.append(write_atomic(out / f"{REPORT_STEM}.{rep.extension}", content(rep)))
    return paths


#: Built-in formats written target by target (``write(stream, out)``).
STREAMING_FORMATS = ("json", "csv", "sarif", "html")


# -- helpers shared by the reporters ------------------------------------------------------------

STATUS_ORDER = (Status.FAIL, Status.ERROR, Status.WARN, Status.PASS, Status.NOT_APPLICABLE)


def jsonable(value: Any, _depth: int = 0) -> Any:
    """Plain JSON data from anything a record may hold: bytes become text (invalid UTF-8 replaced),
    enums their value, dates ISO 8601, tuples/sets lists, NaN/inf ``None``, keys strings."""
    kind = type(value)
    if _depth < 64:  # the plain JSON types (all of a result read back from the store) without the checks
        if kind is str or kind is int or kind is bool or value is None:
            return value
        if kind is dict:  # a str key below depth 64 is itself, as the general path gives it
            return {k if type(k) is str else str(jsonable(k, _depth + 1)): jsonable(v, _depth + 1)
                    for k, v in value.items()}
        if kind is list:
            return [jsonable(v, _depth + 1) for v in value]
    if _depth > 64:
        return "…"
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Enum):
        return jsonable(value.value, _depth + 1)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(jsonable(k, _depth + 1)): jsonable(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [jsonable(v, _depth + 1) for v in items]
    if hasattr(value, "model_dump"):
        return jsonable(value.model_dump(mode="python"), _depth + 1)
    return str(value)


_REPR_NAME = re.compile(r"<Name\(([^<>]*)\)>")
_REPR_CERT = re.compile(r"<Certificate\(subject=([^<>]*?)(?:, \.\.\.)?\)>")


def readable(text: str) -> str:
    """Python reprs that libraries put into error messages, as text: "<Certificate(subject=<Name(CN=a)>,
    ...)>" -> "certificate CN=a" (reports for people; the JSON keeps the evidence as recorded)."""
    if "<" not in text:
        return text
    return _REPR_CERT.sub(r"certificate \1", _REPR_NAME.sub(r"\1", text))


_BASELINE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def report_baseline(report: Report) -> Baseline | None:
    """The bundled baseline a report names (for requirement texts and area names), or ``None``.

    The name comes from the report (possibly a stored one), so it is checked before it becomes part
    of a resource path."""
    ref = report.baseline
    if not (_BASELINE_NAME.match(ref.id) and _BASELINE_NAME.match(ref.version)):
        return None
    try:
        baseline = load_baseline(f"{ref.id}-v{ref.version}")
    except (OSError, ValueError):
        return None
    return baseline if (baseline.id, baseline.version) == (ref.id, ref.version) else None


def finding_severity(finding: Finding, control: ControlResult | None) -> Severity | None:
    """A finding's weight: its own, else its control's."""
    if finding.severity is not None:
        return finding.severity
    return control.severity if control is not None else None


def top_finding(control: ControlResult) -> Finding | None:
    """The finding that explains a control's status: same status, heaviest severity first."""
    same = [f for f in control.findings if f.status == control.status]
    if not same:
        return control.findings[0] if control.findings else None
    return max(same, key=lambda f: (finding_severity(f, control) or Severity.INFO).rank)


def severity_counts(controls: Iterable[ControlResult], status: Status = Status.FAIL) -> dict[str, int]:
    """How many controls have ``status``, per severity (critical first)."""
    counts = {s.value: 0 for s in sorted(Severity, key=lambda s: -s.rank)}
    for c in controls:
        if c.status == status:
            counts[c.severity.value] += 1
    return counts


__all__ = [
    "REPORT_STEM",
    "OutputRefused",
    "ReportStream",
    "ReporterError",
    "BUILTIN_REPORTERS",
    "Reporters",
    "available_reporters",
    "builtin_reporter",
    "builtin_reporters",
    "finding_severity",
    "jsonable",
    "readable",
    "render_all",
    "report_baseline",
    "severity_counts",
    "top_finding",
    "write_atomic",
    "write_stdout",
]
