"""Collectors: all network I/O of a scan, one module per evidence family.

Each module exposes ``async def collect(target, ctx, addresses, prior) -> <Family>Evidence``:
``target`` is the ``Target``, ``ctx`` the ``ScanContext`` (settings, resolver, fetcher, limits, stats),
``addresses`` the target host's resolved addresses (empty for domain targets), and ``prior`` the
evidence of the families it runs after (``{"http": HTTPEvidence}``). Collectors of one target run side by
side, each as soon as what it reads is there (an ``early`` one at once: it gets the tasks of the families
it reads and awaits them only where it needs their evidence); the address's politeness budget bounds
them all.
A collector never raises for network trouble: it returns evidence with ``error`` set.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from scanner.models import TargetKind


@dataclass(frozen=True)
class CollectorSpec:
    family: str  # the Snapshot field it fills
    kind: TargetKind
    module: str
    after: tuple[str, ...] = ()  # families whose evidence it reads (``prior``); it starts when they end
    # In process, start at once: ``prior`` then holds the tasks of ``after`` (await them, never cancel
    # them); distributed workers still hand it the stored evidence, after those families ended.
    early: bool = False
    # Its module's first import is heavy (sslyze's, ~60 ms of CPU): in a target that also has HTTP work, it
    # starts once that work's first connection is under way (``ScanContext.http_under_way``), so it runs
    # during that connection's round trips instead of holding the GIL before them.
    heavy_import: bool = False

    def load(self) -> Callable[..., Awaitable[Any]]:
        import importlib

        return importlib.import_module(self.module).collect


COLLECTORS: tuple[CollectorSpec, ...] = (
    CollectorSpec("tls", "endpoint", "scanner.collectors.tls", heavy_import=True),
    CollectorSpec("http", "endpoint", "scanner.collectors.http"),
    CollectorSpec("exposure", "endpoint", "scanner.collectors.exposure", after=("http",), early=True),
    CollectorSpec("dns", "domain", "scanner.collectors.dns"),
)
