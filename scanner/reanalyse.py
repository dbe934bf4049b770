"""Re-analysis: a stored run's snapshots judged again by today's checks and a (possibly newer) baseline,
without any network, recorded as a new run of the history store."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from scanner import __version__
from scanner.baseline import Baseline
from scanner.engine import Scanner
from scanner.evidence import Snapshot
from scanner.history.store import RunInfo, Store, StoreError
from scanner.models import Target
from scanner.settings import settings_from_json


def load_baseline_file(path: Path) -> Baseline:
    """A baseline from a JSON file (the format of ``scanner/baselines/``); ``ValueError`` says why not."""
    try:
        return Baseline.model_validate(json.loads(path.read_text("utf-8")))
    except (OSError, ValueError) as exc:
        if isinstance(exc, ValidationError):
            err = exc.errors()[0]
            where = ".".join(str(x) for x in err["loc"])
            raise ValueError(f"baseline {path}: {where}: {err['msg']}") from None
        raise ValueError(f"baseline {path}: {getattr(exc, 'strerror', None) or exc}") from None


def _snapshot(store: Store, run_id: int, key: str) -> Snapshot:
    data = store.snapshot(run_id, key)
    if data is None:
        raise StoreError(f"run {run_id} kept no evidence for {key}: it cannot be re-analysed")
    try:
        return Snapshot.model_validate(data)
    except ValidationError as exc:
        raise StoreError(f"run {run_id}: the evidence of {key} does not fit this version's evidence model "
                         f"({exc.error_count()} problem(s), first: {exc.errors()[0]['msg']})") from None


def reanalyse_run(store: Store, run: RunInfo, baseline: Baseline, *, wait: float = 0.0,
              on_result: Callable[[Any], None] | None = None) -> RunInfo:
    """Judge every target ``run`` finished again from its snapshot; record the results as a new run
    (same targets, members and settings) under ``baseline``. No network: checks are pure."""
    settings = settings_from_json(run.options)
    scanner = Scanner(settings, baseline=baseline)
    keys = [s.target_key for s in store.summaries(run.id)]
    targets: list[Target] = [_snapshot(store, run.id, k).target for k in keys]
    recorder = store.start_run(targets, baseline_id=baseline.id, baseline_version=baseline.version,
                               tool_version=__version__, settings=settings, members=run.members,
                               wait=wait)
    with recorder:
        for old in store.results(run.id):
            snap = _snapshot(store, run.id, old.key)
            result = scanner.assess(snap.target, snap, scanner.analyse(snap), old.started_at,
                                    old.duration_s)
            recorder.on_result(result, snap)
            if on_result is not None:
                on_result(result)
        return recorder.finish({"reanalysed_from": run.id, "targets": len(targets)})
