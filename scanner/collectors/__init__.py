"""Collectors: all network I/O of a scan, one module per evidence family.

Each module exposes ``async def collect(target, ctx, addresses, prior) -> <Family>Evidence``:
``target`` is the ``Target``, ``ctx`` the ``ScanContext`` (settings, resolver, fetcher, limits, stats),
``addresses`` the target host's resolved addresses (empty for domain targets), and ``prior`` the
evidence already collected for this target by earlier stages (``{"http": HTTPEvidence, ...}``).
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
    stage: int  # stages run in order; collectors of one stage run concurrently
    module: str

    def load(self) -> Callable[..., Awaitable[Any]]:
        import importlib

        return importlib.import_module(self.module).collect


COLLECTORS: tuple[CollectorSpec, ...] = (
    CollectorSpec("tls", "endpoint", 0, "scanner.collectors.tls"),
    CollectorSpec("http", "endpoint", 0, "scanner.collectors.http"),
    CollectorSpec("exposure", "endpoint", 1, "scanner.collectors.exposure"),
    CollectorSpec("dns", "domain", 0, "scanner.collectors.dns"),
)
