"""The single-run HTML report written target by target (``HtmlReporter.write``): the same bytes as
``HtmlReporter.render``, with memory that does not grow with the number of targets.

The report's summary (grade counts, members, "what to fix first", the overview table) needs every
target, worst first, but only a little of each: one pass over the stream keeps that summary of each
target (``summary_view``: no evidence, no findings) and sets the full results aside in a temporary file
(pickled, so that they come back exactly as they went). The targets' own sections are then rendered
from that file one at a time, worst first, as Jinja2 ``generate()`` reaches them.
"""

from __future__ import annotations

import contextlib
import pickle
import tempfile
from collections.abc import Iterator
from typing import IO, Any

from scanner.baseline import Baseline
from scanner.models import TargetResult
from scanner.reporters import report_baseline
from scanner.reporters.html import (
    ControlView,
    TargetView,
    fix_first,
    grade_distribution,
    member_views,
    shape_evidence,
    target_rank,
    target_view,
)
from scanner.reporters.stream import ReportStream


class _Spool:
    """Targets set aside in a temporary file, read back one at a time by their position."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self._spans: list[tuple[int, int]] = []

    def add(self, result: TargetResult) -> None:
        data = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        self._file.seek(0, 2)
        self._spans.append((self._file.tell(), len(data)))
        self._file.write(data)

    def get(self, index: int) -> TargetResult:
        start, size = self._spans[index]
        self._file.seek(start)
        result: TargetResult = pickle.loads(self._file.read(size))  # our own file, written above
        return result


def summary_view(result: TargetResult, baseline: Baseline | None) -> TargetView:
    """What the summary parts of the report read of a target (``target_view`` without evidence, its
    result without controls, findings and statistics, its priorities without findings)."""
    full = target_view(result, 0, baseline, evidence=False)
    priorities = [ControlView(result=cv.result.model_copy(update={"findings": ()}), anchor=cv.anchor,
                              requirement=None, references=(), findings=[],
                              top=cv.top.model_copy(update={"evidence": {}}) if cv.top is not None else None,
                              open=cv.open, shared_remediation=cv.shared_remediation, show_top=cv.show_top)
                  for cv in full.priorities]
    light = result.model_copy(update={"controls": (), "findings": (), "stats": {}})
    return TargetView(result=light, anchor=full.anchor, areas=[], priorities=priorities, fails=full.fails,
                      warns=full.warns, not_assessed=full.not_assessed, not_applicable=full.not_applicable,
                      grade_note=full.grade_note, untrusted_tls=full.untrusted_tls)


class _Details:
    """The targets' full views, worst first, built one at a time from the spool as they are iterated."""

    def __init__(self, spool: _Spool, order: list[int], baseline: Baseline | None) -> None:
        self._spool, self._order, self._baseline = spool, order, baseline

    def __len__(self) -> int:
        return len(self._order)

    def __iter__(self) -> Iterator[TargetView]:
        for position, index in enumerate(self._order, start=1):
            yield target_view(self._spool.get(index), position, self._baseline)


@contextlib.contextmanager
def stream_context(stream: ReportStream) -> Iterator[dict[str, Any]]:
    """Everything ``report.html`` needs (as ``html.report_context``), reading ``stream`` once; the
    targets' sections (``target_details``) come from a temporary file removed on exit."""
    head = stream.head
    baseline = report_baseline(head)
    with tempfile.TemporaryFile(prefix="pledgescan-html-") as file:
        spool = _Spool(file)
        summaries: list[TargetView] = []
        ranks: list[tuple[int, float, str]] = []
        grades: list[str] = []
        for result in stream.targets():
            spool.add(result)
            ranks.append(target_rank(result))
            grades.append(result.grade)
            summaries.append(summary_view(result, baseline))
        order = sorted(range(len(ranks)), key=ranks.__getitem__)  # stable, as ``worst_first``
        targets = [summaries[i] for i in order]
        del summaries, ranks
        for position, tv in enumerate(targets, start=1):  # anchors as ``target_view`` gives them
            tv.anchor = f"t{position}"
            for cv in tv.priorities:
                cv.anchor = f"{tv.anchor}-{cv.result.id}"
        yield {
            "report": head,
            "baseline": baseline,
            "baseline_title": baseline.title if baseline else f"Baseline {head.baseline.id}",
            "targets": targets,
            "target_details": _Details(spool, order, baseline),
            "members": member_views(targets),
            "fixes": fix_first(targets),
            "grades": grade_distribution(grades),
            "stats": shape_evidence(head.stats) if head.stats else None,
        }


__all__ = ["stream_context", "summary_view"]
