"""History store (SQLAlchemy 2.x): runs, per-target results and snapshots, and a lock per inventory.

SQLite by default (``platformdirs.user_data_dir("pledgescan")/history.sqlite3``); any SQLAlchemy URL
via ``--store`` or ``PLEDGESCAN_STORE`` (PostgreSQL is tested). The schema comes from the Alembic
revisions in ``scanner.migrations``, applied when a store is opened (or by ``pledgescan store
upgrade``); a store written before migrations existed is adopted and upgraded in place.

Results are written as each target finishes, so an interrupted run keeps what it finished and
``--resume`` completes it. Each run belongs to an *inventory* (a members file, or the set of targets of
an ad hoc scan): a row in the ``locks`` table per inventory, kept alive by a heartbeat thread, makes
sure two runs of one inventory never overlap, while scans of other inventories proceed at once. The
lock is a plain row, so it holds across machines sharing a PostgreSQL store; a lock whose owner died
(same host, dead pid) or stopped heart-beating is taken over.

SQLite transactions are started with ``BEGIN IMMEDIATE`` (SQLAlchemy's documented pysqlite recipe) so
that two processes queue on the busy timeout instead of failing with "database is locked" on a
read-to-write upgrade.

This module holds the ``Store`` (reads and writes, one short transaction each) and the ``RunRecorder``;
its parts live beside it, one job each: ``tables`` (the schema), ``database`` (URL, engine, errors),
``keys`` (inventory and selection identities) and ``lock`` (the run lock). Their names are re-exported
here for callers that need only the store.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from scanner.history.database import (
    ENV_VAR,
    StoreBusy,
    StoreError,
    default_url,
    make_engine,
    redact,
)
from scanner.history.database import as_utc as _utc
from scanner.history.database import utcnow as _now
from scanner.history.keys import inventory_key, members_inventory, selection_key
from scanner.history.lock import RunLock
from scanner.history.stored_records import load_result
from scanner.history.tables import LockRow, ResultRow, RunRow, metadata
from scanner.models import Target, TargetResult
from scanner.settings import Settings, settings_to_json

log = logging.getLogger(__name__)


# -- records handed to callers ----------------------------------------------------------------------------
@dataclass(frozen=True)
class RunInfo:
    id: int
    started_at: datetime
    finished_at: datetime | None
    status: str  # complete | incomplete | running
    baseline_id: str
    baseline_version: str
    tool_version: str
    inventory_key: str
    targets_total: int
    targets_done: int
    inventory: str = ""
    selection: str = ""
    members: list[dict[str, Any]] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def baseline(self) -> str:
        return f"{self.baseline_id}-v{self.baseline_version}"


@dataclass(frozen=True)
class ResultSummary:
    """A stored result without its findings and evidence (cheap to load for a whole run)."""

    member: str | None
    target_key: str
    kind: str
    target: str
    grade: str
    score: int
    decided: int
    controls: dict[str, tuple[str, str]]  # control -> (status, severity)


@dataclass(frozen=True)
class Observation:
    """One stored result of a target, without findings: in which run, and whether it was reached
    (``decided`` > 0: at least one control could be assessed)."""

    result_id: int
    run_id: int
    started_at: datetime  # when its run started
    member: str | None
    target_key: str
    grade: str
    score: int
    decided: int
    controls: dict[str, tuple[str, str]] = field(default_factory=dict)  # only when asked for

    @property
    def reached(self) -> bool:
        return self.decided > 0


def _summary(r: Any) -> ResultSummary:
    return ResultSummary(member=r.member, target_key=r.target_key, kind=r.kind, target=r.target,
                         grade=r.grade, score=r.score, decided=r.decided,
                         controls={k: (v[0], v[1]) for k, v in (r.controls or {}).items()})


# -- the store --------------------------------------------------------------------------------------------
class Store:
    """The history store. Every method uses its own short transaction."""

    def __init__(self, url: str | None = None, upgrade: bool = True) -> None:
        self.url = url or default_url()
        self.engine = make_engine(self.url)
        if upgrade:
            self.upgrade()

    def upgrade(self) -> list[str]:
        """Bring the schema to the newest revision; return the revisions applied (none: up to date)."""
        from scanner.migrations.runner import NewerSchema, upgrade

        try:
            return upgrade(self.engine)
        except NewerSchema as exc:
            raise StoreError(str(exc)) from None
        except OperationalError as exc:
            raise StoreError(f"cannot open the history store {redact(self.url)}: "
                             f"{str(exc.orig).splitlines()[0]}") from None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self) -> Connection:
        return self.engine.connect().execution_options(pledgescan_readonly=True)

    # -- writing a run ----------------------------------------------------------------------------------
    def start_run(self, targets: list[Target], *, baseline_id: str, baseline_version: str,
                  tool_version: str, settings: Settings | None = None,
                  members: list[dict[str, Any]] | None = None, wait: float = 0.0,
                  inventory: str | None = None, resume_unfinished: bool = False) -> RunRecorder:
        """Take the inventory's lock (waiting up to ``wait`` seconds), create a run, return its recorder.

        ``inventory`` names what is scanned (``members_inventory(path)`` for a members file; default:
        a hash of the targets). With ``resume_unfinished``, the inventory's latest run is reopened
        instead when it did not complete."""
        inventory = inventory or f"targets:{inventory_key(targets, settings)}"
        lock = RunLock(self, inventory)
        lock.acquire(wait)
        try:
            if resume_unfinished:
                with self._read() as c:
                    last = c.execute(select(RunRow.id, RunRow.status).where(RunRow.inventory == inventory)
                                     .order_by(RunRow.id.desc()).limit(1)).first()
                if last is not None and last.status != "complete":
                    return self._reopen(last.id, lock)
            with self.engine.begin() as c:
                run_id = c.execute(insert(RunRow).values(
                    started_at=_now(), status="running", baseline_id=baseline_id,
                    baseline_version=baseline_version, tool_version=tool_version,
                    inventory_key=inventory_key(targets, settings), inventory=inventory,
                    selection=selection_key(settings), targets_total=len(targets),
                    plan=[t.model_dump(mode="json") for t in targets], members=members or [],
                    options=settings_to_json(settings) if settings else {}, stats={},
                ).returning(RunRow.id)).scalar_one()
            lock.set_run(run_id)
        except BaseException:
            lock.release()
            raise
        return RunRecorder(self, run_id, list(targets), set(), lock)

    def resume_run(self, run_id: int | None = None, wait: float = 0.0) -> RunRecorder:
        """Take the run's inventory lock and reopen it (default: the latest unfinished run)."""
        with self._read() as c:
            if run_id is None:  # the latest unfinished run that no live process is running
                live = self._live_runs(c)
                unfinished = c.execute(select(RunRow.id).where(RunRow.status != "complete")
                                       .order_by(RunRow.id.desc()).limit(len(live) + 1)).scalars().all()
                run_id = next((r for r in unfinished if r not in live), unfinished[0] if unfinished else None)
                any_run = c.execute(select(func.max(RunRow.id))).scalar_one_or_none()
                if run_id is None:
                    raise StoreError("nothing to resume: " + ("every run in the store is complete"
                                     if any_run is not None else "the store has no runs yet"))
            inventory = c.execute(select(RunRow.inventory).where(RunRow.id == run_id)).scalar_one_or_none()
        if inventory is None:
            self.run(run_id)  # raises the clear "no run N" error
        lock = RunLock(self, str(inventory))
        lock.acquire(wait)
        try:
            return self._reopen(run_id, lock)
        except BaseException:
            lock.release()
            raise

    def _reopen(self, run_id: int, lock: RunLock) -> RunRecorder:
        """Mark an unfinished run running again under ``lock`` (held by the caller)."""
        with self._read() as c:
            status = c.execute(select(RunRow.status).where(RunRow.id == run_id)).scalar_one()
        if status == "complete":  # finished by another process while we waited for the lock
            raise StoreError(f"run {run_id} is already complete")
        plan = [Target.model_validate(t) for t in self._plan(run_id)]
        with self._read() as c:
            done = set(c.execute(select(ResultRow.target_key).where(ResultRow.run_id == run_id)).scalars())
        with self.engine.begin() as c:
            c.execute(update(RunRow).where(RunRow.id == run_id).values(status="running"))
        lock.set_run(run_id)
        return RunRecorder(self, run_id, plan, done, lock, resumed=True)

    def add_result(self, run_id: int, result: TargetResult, snapshot: Any | None = None) -> None:
        """Store one finished target (replacing an earlier result for it in the same run)."""
        key = result.key
        snap = snapshot.model_dump(mode="json") if hasattr(snapshot, "model_dump") else snapshot
        controls = {c.id: [c.status.value, c.severity.value] for c in result.controls}
        with self.engine.begin() as c:
            c.execute(delete(ResultRow).where(ResultRow.run_id == run_id, ResultRow.target_key == key))
            c.execute(insert(ResultRow).values(
                run_id=run_id, target_key=key, member=result.member, kind=result.kind,
                target=result.target, grade=result.grade, score=result.score, decided=result.decided,
                finished_at=_now(), controls=controls, result=result.model_dump(mode="json"), snapshot=snap))

    def finish_run(self, run_id: int, *, complete: bool, stats: dict[str, Any] | None = None) -> None:
        values: dict[str, Any] = {"status": "complete" if complete else "incomplete"}
        if complete:
            values["finished_at"] = _now()
        if stats is not None:
            values["stats"] = stats
        with self.engine.begin() as c:
            c.execute(update(RunRow).where(RunRow.id == run_id).values(**values))

    # -- reading ----------------------------------------------------------------------------------------
    def _plan(self, run_id: int) -> list[Any]:
        with self._read() as c:
            return list(c.execute(select(RunRow.plan).where(RunRow.id == run_id)).scalar_one())

    def _info(self, row: Any, done: int, live: set[int]) -> RunInfo:
        status = row.status
        if status == "running" and row.id not in live:
            status = "incomplete"  # its process died without marking it
        return RunInfo(id=row.id, started_at=_utc(row.started_at) or _now(),
                       finished_at=_utc(row.finished_at), status=status, baseline_id=row.baseline_id,
                       baseline_version=row.baseline_version, tool_version=row.tool_version,
                       inventory_key=row.inventory_key, targets_total=row.targets_total,
                       targets_done=done, members=list(row.members or []), options=dict(row.options or {}),
                       stats=dict(row.stats or {}), inventory=row.inventory, selection=row.selection)

    def _live_runs(self, c: Connection) -> set[int]:
        """Runs whose process still holds their inventory's lock."""
        return {r.run_id for r in c.execute(select(LockRow.__table__)).all()
                if r.run_id is not None and not RunLock.is_stale(r)}

    def runs(self, member: str | None = None, limit: int = 50) -> list[RunInfo]:
        """Past runs, newest first (only those that scanned ``member`` when given)."""
        cols = [RunRow.id, RunRow.started_at, RunRow.finished_at, RunRow.status, RunRow.baseline_id,
                RunRow.baseline_version, RunRow.tool_version, RunRow.inventory_key, RunRow.targets_total,
                RunRow.members, RunRow.options, RunRow.stats, RunRow.inventory, RunRow.selection]
        with self._read() as c:
            q = select(*cols).order_by(RunRow.id.desc()).limit(limit)
            if member:
                q = q.where(RunRow.id.in_(select(ResultRow.run_id).where(ResultRow.member == member)))
            rows = c.execute(q).all()
            counts = dict(c.execute(select(ResultRow.run_id, func.count()).where(
                ResultRow.run_id.in_([r.id for r in rows])).group_by(ResultRow.run_id)).all())
            live = self._live_runs(c)
        return [self._info(r, counts.get(r.id, 0), live) for r in rows]

    def run(self, ref: int | str) -> RunInfo:
        """A run by ID, or ``latest`` / ``previous``; ``StoreError`` when absent."""
        if isinstance(ref, str) and ref in ("latest", "last", "previous"):
            runs = self.runs(limit=2)
            idx = 0 if ref != "previous" else 1
            if len(runs) <= idx:
                raise StoreError(f"no {ref} run in the store {redact(self.url)}")
            return runs[idx]
        try:
            run_id = int(ref)
        except ValueError:
            raise StoreError(f"{ref!r} is not a run ID (a number, 'latest' or 'previous')") from None
        with self._read() as c:
            row = c.execute(select(RunRow.__table__).where(RunRow.id == run_id)).first()
            if row is None:
                latest = c.execute(select(func.max(RunRow.id))).scalar_one_or_none()
                hint = f" (latest is {latest})" if latest else " (the store has no runs yet)"
                raise StoreError(f"no run {run_id} in the store{hint}")
            done = c.execute(select(func.count()).where(ResultRow.run_id == run_id)).scalar_one()
            live = self._live_runs(c)
        return self._info(row, done, live)

    def previous_run(self, run_id: int, same_inventory: bool = True) -> RunInfo | None:
        """The latest complete run before ``run_id`` with the same check selection (and of the same
        inventory, by default)."""
        with self._read() as c:
            row = c.execute(select(RunRow.inventory, RunRow.selection).where(RunRow.id == run_id)).one()
            q = select(func.max(RunRow.id)).where(RunRow.id < run_id, RunRow.status == "complete",
                                                  RunRow.selection == row.selection)
            if same_inventory:
                q = q.where(RunRow.inventory == row.inventory)
            prev = c.execute(q).scalar_one_or_none()
        return self.run(prev) if prev is not None else None

    def observations(self, *, upto: int, selection: str, target_keys: Iterable[str] | None = None,
                     member: str | None = None, with_controls: bool = False) -> list[Observation]:
        """Every stored result of these targets (or of ``member``) in runs up to ``upto`` with this check
        selection, oldest first: the history a target is compared with."""
        cols = [ResultRow.id, ResultRow.run_id, RunRow.started_at, ResultRow.member, ResultRow.target_key,
                ResultRow.grade, ResultRow.score, ResultRow.decided]
        if with_controls:
            cols.append(ResultRow.controls)
        base = select(*cols).join(RunRow, RunRow.id == ResultRow.run_id).where(
            ResultRow.run_id <= upto, RunRow.selection == selection).order_by(ResultRow.run_id, ResultRow.id)
        if member is not None:
            base = base.where(ResultRow.member == member)
        queries = [base]
        if target_keys is not None:
            keys = sorted(set(target_keys))
            queries = [base.where(ResultRow.target_key.in_(keys[i:i + 500]))
                       for i in range(0, len(keys), 500)]
        out: list[Observation] = []
        with self._read() as c:
            for q in queries:
                for r in c.execute(q).all():
                    controls = ({k: (v[0], v[1]) for k, v in (r.controls or {}).items()}
                                if with_controls else {})
                    out.append(Observation(
                        result_id=r.id, run_id=r.run_id, started_at=_utc(r.started_at) or _now(),
                        member=r.member, target_key=r.target_key, grade=r.grade, score=r.score,
                        decided=r.decided, controls=controls))
        out.sort(key=lambda o: (o.run_id, o.result_id))
        return out

    def summaries_by_id(self, result_ids: Iterable[int]) -> dict[int, ResultSummary]:
        """Stored results by their row ID, without findings."""
        ids = sorted(set(result_ids))
        out: dict[int, ResultSummary] = {}
        with self._read() as c:
            for i in range(0, len(ids), 500):
                q = select(ResultRow.id, ResultRow.member, ResultRow.target_key, ResultRow.kind,
                           ResultRow.target, ResultRow.grade, ResultRow.score, ResultRow.decided,
                           ResultRow.controls).where(ResultRow.id.in_(ids[i:i + 500]))
                for r in c.execute(q).all():
                    out[r.id] = _summary(r)
        return out

    def plan_keys(self, run_id: int) -> list[tuple[str | None, str]]:
        """(member, target key) of every target a run set out to scan."""
        return [(t.get("member"), f"{t['kind']}:{t['target']}") for t in self._plan(run_id)]

    def summaries(self, run_id: int, member: str | None = None) -> list[ResultSummary]:
        """Grades and control statuses of a run's targets, in scan order, without findings."""
        with self._read() as c:
            q = select(ResultRow.member, ResultRow.target_key, ResultRow.kind, ResultRow.target,
                       ResultRow.grade, ResultRow.score, ResultRow.decided, ResultRow.controls
                       ).where(ResultRow.run_id == run_id).order_by(ResultRow.id)
            if member is not None:
                q = q.where(ResultRow.member == member)
            rows = c.execute(q).all()
        return [_summary(r) for r in rows]

    def member_history(self, member: str, upto: int, limit: int
                       ) -> list[tuple[int, datetime, list[ResultSummary]]]:
        """The member's last ``limit`` runs up to run ``upto``, newest first: (run ID, start, the member's
        results without findings). Two queries whatever ``limit`` is (the notify plan reads it per member:
        one query per past run, each decoding the run's whole members list, took 78 ms a member)."""
        with self._read() as c:
            runs = c.execute(select(RunRow.id, RunRow.started_at).where(
                RunRow.id <= upto, RunRow.id.in_(select(ResultRow.run_id).where(ResultRow.member == member))
            ).order_by(RunRow.id.desc()).limit(limit)).all()
            by_run: dict[int, list[ResultSummary]] = {r.id: [] for r in runs}
            if by_run:
                q = select(ResultRow.run_id, ResultRow.member, ResultRow.target_key, ResultRow.kind,
                           ResultRow.target, ResultRow.grade, ResultRow.score, ResultRow.decided,
                           ResultRow.controls).where(ResultRow.member == member,
                                                     ResultRow.run_id.in_(list(by_run))).order_by(ResultRow.id)
                for r in c.execute(q).all():
                    by_run[r.run_id].append(_summary(r))
        return [(r.id, _utc(r.started_at) or _now(), by_run[r.id]) for r in runs]

    def results(self, run_id: int, member: str | None = None, batch: int = 50) -> Iterator[TargetResult]:
        """Full results of a run, streamed in batches (each batch its own short read)."""
        if member is not None:
            yield from self._member_results(run_id, member, batch)
            return
        last = 0
        while True:
            with self._read() as c:
                q = select(ResultRow.id, ResultRow.result).where(
                    ResultRow.run_id == run_id, ResultRow.id > last).order_by(ResultRow.id).limit(batch)
                if member is not None:
                    q = q.where(ResultRow.member == member)
                rows = c.execute(q).all()
            if not rows:
                return
            for r in rows:
                yield load_result(r.result)
            last = rows[-1].id

    def _member_results(self, run_id: int, member: str, batch: int) -> Iterator[TargetResult]:
        """One member's results of a run, in row order. Found through the member's index (a few rows per
        run) and not by the run's: filtering the run's rows by member reads every row of the run, for
        each member (a portfolio of 1,000 endpoints read 333 x 1,000 rows for its member pages)."""
        with self._read() as c:
            rows = c.execute(select(ResultRow.id, ResultRow.run_id).where(ResultRow.member == member)).all()
        ids = sorted(r.id for r in rows if r.run_id == run_id)
        yield from self._results_by_id(ids, batch)

    def _results_by_id(self, ids: list[int], batch: int) -> Iterator[TargetResult]:
        """The results of these rows, in this order, read ``batch`` rows at a time."""
        for i in range(0, len(ids), batch):
            chunk = ids[i:i + batch]
            with self._read() as c:
                got = dict(c.execute(select(ResultRow.id, ResultRow.result)
                                     .where(ResultRow.id.in_(chunk))).all())
            for rid in chunk:
                if rid in got:
                    yield load_result(got[rid])

    def results_in_plan_order(self, run_id: int, batch: int = 50) -> Iterator[TargetResult]:
        """Full results of a run in the order its plan lists the targets (the order a scan reports
        them), streamed in batches: memory holds one batch, whatever the size of the run."""
        order = {k: i for i, (_m, k) in enumerate(self.plan_keys(run_id))}
        with self._read() as c:
            rows = c.execute(select(ResultRow.id, ResultRow.target_key)
                             .where(ResultRow.run_id == run_id)).all()
        ids = [r.id for r in sorted(rows, key=lambda r: (order.get(r.target_key, len(order)), r.id))]
        yield from self._results_by_id(ids, batch)

    def snapshot(self, run_id: int, target_key: str) -> dict[str, Any] | None:
        """The stored evidence of one target (JSON), for re-analysis."""
        with self._read() as c:
            return c.execute(select(ResultRow.snapshot).where(
                ResultRow.run_id == run_id, ResultRow.target_key == target_key)).scalar_one_or_none()

    def member_scores(self, run_ids: list[int]) -> dict[int, dict[str | None, tuple[str, float | None]]]:
        """For each run: member -> (worst grade, mean score of its decided targets)."""
        from scanner.baseline import Baseline

        out: dict[int, dict[str | None, tuple[str, float | None]]] = {r: {} for r in run_ids}
        if not run_ids:
            return out
        with self._read() as c:
            rows = c.execute(select(ResultRow.run_id, ResultRow.member, ResultRow.grade, ResultRow.score,
                                    ResultRow.decided).where(ResultRow.run_id.in_(run_ids))).all()
        acc: dict[tuple[int, str | None], list[Any]] = {}
        for r in rows:
            acc.setdefault((r.run_id, r.member), []).append(r)
        for (run_id, member), rs in acc.items():
            scores = [r.score for r in rs if r.decided]
            out[run_id][member] = (Baseline.worst_grade(r.grade for r in rs),
                                   round(sum(scores) / len(scores), 1) if scores else None)
        return out


# -- a run in progress ------------------------------------------------------------------------------------
class RunRecorder:
    """Writes one run's results as targets finish; a context manager that marks the run at the end."""

    def __init__(self, store: Store, run_id: int, plan: list[Target], done: set[str], lock: RunLock,
                 resumed: bool = False) -> None:
        self.store = store
        self.resumed = resumed  # an unfinished run reopened, not a new one
        self.run_id = run_id
        self.plan = plan
        self.done = set(done)
        self.lock = lock

    @property
    def pending(self) -> list[Target]:
        """Targets of the plan that have no stored result yet."""
        return [t for t in self.plan if t.key not in self.done]

    def on_result(self, result: TargetResult, snapshot: Any = None) -> None:
        """The engine's ``on_result`` callback: store the target's result and evidence."""
        self.store.add_result(self.run_id, result, snapshot)
        self.done.add(result.key)

    def finish(self, stats: dict[str, Any] | None = None) -> RunInfo:
        complete = not self.pending
        self.store.finish_run(self.run_id, complete=complete, stats=stats)
        self.lock.release()
        return self.store.run(self.run_id)

    def __enter__(self) -> RunRecorder:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self.lock.held:
            if exc_type is not None:
                try:
                    self.store.finish_run(self.run_id, complete=False)
                finally:
                    self.lock.release()
            else:
                self.finish()


__all__ = ["Store", "StoreError", "StoreBusy", "RunInfo", "RunRecorder", "RunLock", "ResultSummary",
           "Observation", "default_url", "inventory_key", "members_inventory", "selection_key", "redact",
           "make_engine", "ENV_VAR", "metadata", "RunRow", "ResultRow", "LockRow"]
