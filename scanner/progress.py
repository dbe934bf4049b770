"""Terminal progress for long scans (rich), on stderr, only when it is a terminal."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class ScanProgress:
    """A progress bar over targets; silent when disabled or when stderr is not a terminal."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        self.console = Console(stderr=True)
        self.enabled = enabled and self.console.is_terminal and total > 0
        self._progress: Progress | None = None
        self._task: Any = None
        self.total = total

    def __enter__(self) -> ScanProgress:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]scanning"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("{task.description}"), console=self.console, transient=True,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)

    def start(self, target: Any) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=str(getattr(target, "target", "")))

    def done(self, result: Any) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)
        elif not self.enabled and sys.stderr.isatty():
            pass
