"""Terminal progress for long scans (rich), on stderr, only when it is a terminal: targets done/total,
elapsed and estimated time left, and the targets in work."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

MAX_SHOWN = 2  # targets named in the bar; "+N more" for the rest


class ScanProgress:
    """A progress bar over targets; silent when disabled or when stderr is not a terminal."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        self.console: Console | None = None
        self.enabled = False
        if enabled and total > 0:  # rich only then: -q and empty scans skip its import (CPU at start-up)
            from rich.console import Console

            self.console = Console(stderr=True)
            self.enabled = self.console.is_terminal
        self._progress: Progress | None = None
        self._task: Any = None
        self.total = total
        self._in_work: dict[str, None] = {}  # insertion-ordered set of targets being scanned

    def __enter__(self) -> ScanProgress:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]scanning"), BarColumn(), MofNCompleteColumn(),
                TextColumn("elapsed"), TimeElapsedColumn(), TextColumn("left ~"),
                TimeRemainingColumn(elapsed_when_finished=False),
                TextColumn("{task.description}"), console=self.console, transient=True,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)

    def describe(self) -> str:
        names = list(self._in_work)
        shown = ", ".join(names[:MAX_SHOWN])
        return shown + (f" +{len(names) - MAX_SHOWN} more" if len(names) > MAX_SHOWN else "")

    def start(self, target: Any) -> None:
        self._in_work[str(getattr(target, "target", target))] = None
        if self._progress is not None:
            self._progress.update(self._task, description=self.describe())

    def done(self, result: Any) -> None:
        self._in_work.pop(str(getattr(result, "target", result)), None)
        if self._progress is not None:
            self._progress.update(self._task, advance=1, description=self.describe())
