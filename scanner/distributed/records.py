"""The store's side of distributed work: one row per (run, target, family), written idempotently.

A message may run twice (a killed worker's messages are redelivered; a duplicate can be enqueued after
an outage), so every write here is keyed by (run, target, family) and the first finished write wins:
a target is never recorded twice. The row also counts attempts, which bounds the redeliveries of a
message that kills its worker: past ``MAX_ATTEMPTS`` the family is recorded as an ``error``.

The table lives in the history store beside ``runs`` and ``results`` (same database, its own
``work_items`` and ``work_meta`` tables, from the store's migration 0004).
"""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from scanner.history.store import Store
from scanner.history.tables import JSONType, LockRow

MAX_ATTEMPTS = 3
ASSESS = "-"  # the family of a target that needs no evidence (all its checks skipped): assess only
BROKER_OWNER = "broker"  # lock owner prefix of a run handed to the workers

_JSON = JSONType()
metadata = MetaData()
work_items = Table(
    "work_items", metadata,
    Column("run_id", Integer, primary_key=True),
    Column("target_key", Text, primary_key=True),
    Column("family", String(16), primary_key=True),
    Column("status", String(16), nullable=False),  # queued | done
    Column("attempts", Integer, nullable=False, default=0),
    Column("evidence", _JSON, nullable=True),
    Column("addresses", _JSON, nullable=True),
    Column("resolution_error", Text, nullable=True),
    Column("stats", _JSON, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
work_meta = Table(
    "work_meta", metadata,
    Column("key", String(32), primary_key=True),
    Column("value", Text, nullable=False),
)


def _now() -> datetime:
    return datetime.now(UTC)


def _insert(store: Store) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT (PostgreSQL and SQLite)."""
    if store.engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def ensure_schema(store: Store) -> None:
    """The tables come from the store's migrations (applied when ``Store`` opens it): nothing to do."""


def store_id(store: Store) -> str:
    """A random identity of this store, made once: the broker namespace of its runs, so that workers of
    another store sharing the same Redis never take (and misfile) this store's messages."""
    ensure_schema(store)
    stmt = _insert(store)(work_meta).values(key="store_id", value=uuid.uuid4().hex[:16])
    with store.engine.begin() as c:
        c.execute(stmt.on_conflict_do_nothing())
        return str(c.execute(select(work_meta.c.value).where(work_meta.c.key == "store_id")).scalar_one())


def claim(store: Store, run_id: int, target_key: str, family: str) -> bool:
    """Record that this work is enqueued; False when it already was (someone else enqueued it).

    Whether the row was inserted is read from ``RETURNING``, not from the row count: SQLAlchemy 2.1 does
    not keep the row count of an INSERT on psycopg (-1), which made every claim look lost on PostgreSQL
    and left the families enqueued by workers (exposure after HTTP) never enqueued."""
    stmt = _insert(store)(work_items).values(run_id=run_id, target_key=target_key, family=family,
                                             status="queued", attempts=0, updated_at=_now())
    with store.engine.begin() as c:
        inserted = c.execute(stmt.on_conflict_do_nothing().returning(work_items.c.family)).first()
    return inserted is not None


def begin_attempt(store: Store, run_id: int, target_key: str, family: str) -> tuple[str, int]:
    """Count one more attempt at this work; ``(status, attempts)`` after counting."""
    claim(store, run_id, target_key, family)
    key = and_(work_items.c.run_id == run_id, work_items.c.target_key == target_key,
               work_items.c.family == family)
    with store.engine.begin() as c:
        c.execute(update(work_items).where(key, work_items.c.status != "done")
                  .values(attempts=work_items.c.attempts + 1, updated_at=_now()))
        row = c.execute(select(work_items.c.status, work_items.c.attempts).where(key)).one()
    return str(row.status), int(row.attempts)


def write_evidence(store: Store, run_id: int, target_key: str, family: str, evidence: Any,
                   addresses: tuple[str, ...], resolution_error: str | None,
                   stats: dict[str, Any] | None) -> bool:
    """Record a family's evidence once: the first finished write wins; False when it was already done."""
    data = evidence.model_dump(mode="json") if hasattr(evidence, "model_dump") else evidence
    with store.engine.begin() as c:
        n = c.execute(update(work_items).where(
            work_items.c.run_id == run_id, work_items.c.target_key == target_key,
            work_items.c.family == family, work_items.c.status != "done",
        ).values(status="done", evidence=data, addresses=list(addresses), resolution_error=resolution_error,
                 stats=stats or {}, updated_at=_now())).rowcount
    return n == 1


def done_families(store: Store, run_id: int, target_key: str) -> dict[str, Any]:
    """The finished families of a target: family -> row (evidence, addresses, resolution_error)."""
    with store.engine.connect() as c:
        rows = c.execute(select(work_items).where(
            work_items.c.run_id == run_id, work_items.c.target_key == target_key,
            work_items.c.status == "done")).all()
    return {r.family: r for r in rows}


def unfinished(store: Store, run_id: int) -> list[tuple[str, str]]:
    """(target_key, family) of the run's enqueued work that has not finished."""
    with store.engine.connect() as c:
        rows = c.execute(select(work_items.c.target_key, work_items.c.family).where(
            work_items.c.run_id == run_id, work_items.c.status != "done")).all()
    return [(r.target_key, r.family) for r in rows]


def forget_run(store: Store, run_id: int) -> None:
    """Drop a run's work rows (its results stay); used when its work is enqueued anew."""
    with store.engine.begin() as c:
        c.execute(delete(work_items).where(work_items.c.run_id == run_id, work_items.c.status != "done"))


def has_result(store: Store, run_id: int, target_key: str) -> bool:
    from scanner.history.tables import ResultRow

    with store.engine.connect() as c:
        return c.execute(select(func.count()).select_from(ResultRow).where(
            ResultRow.run_id == run_id, ResultRow.target_key == target_key)).scalar_one() > 0


def add_result_once(store: Store, run_id: int, result: Any, snapshot: Any) -> None:
    """Store a target's result unless another worker stored it first (same evidence, same result)."""
    key = result.key
    if has_result(store, run_id, key):
        return
    with contextlib.suppress(IntegrityError):  # a concurrent writer won the unique (run, target) key
        store.add_result(run_id, result, snapshot)


def run_stats(store: Store, run_id: int) -> dict[str, Any]:
    """The run's request counters, summed over its work rows (what the in-process scan reports)."""
    per_host: Counter[str] = Counter()
    tls = 0
    with store.engine.connect() as c:
        for (stats,) in c.execute(select(work_items.c.stats).where(work_items.c.run_id == run_id)):
            per_host.update((stats or {}).get("http_requests_per_host", {}))
            tls += int((stats or {}).get("tls_connections", 0))
    return {"http_requests": sum(per_host.values()), "http_requests_per_host": dict(per_host),
            "tls_connections": tls, "workers": "dramatiq"}


# -- the run lock, held by the workers while the run is theirs --------------------------------------------
def hand_over_lock(store: Store, lock: Any, run_id: int) -> str:
    """Give the scan's store lock to the workers: they keep its heartbeat and release it when the run is
    complete, so the lock holds across machines even when the scan command detaches."""
    owner = f"{BROKER_OWNER}:run{run_id}:{uuid.uuid4().hex[:12]}"
    lock._stop.set()
    if lock._thread is not None:
        lock._thread.join(timeout=5)
    with store.engine.begin() as c:
        c.execute(update(LockRow).where(LockRow.name == lock.name, LockRow.owner == lock.owner)
                  .values(owner=owner, run_id=run_id, heartbeat_at=_now()))
    lock.held = False
    return owner


def touch_lock(store: Store, run_id: int) -> None:
    """Heartbeat of a run's lock held by the workers (no effect when someone else holds the store)."""
    with store.engine.begin() as c:
        c.execute(update(LockRow).where(LockRow.run_id == run_id, LockRow.owner.like(f"{BROKER_OWNER}:%"))
                  .values(heartbeat_at=_now()))


def take_back_for_resume(store: Store) -> int | None:
    """``scan --resume --broker``: when the latest unfinished run's lock is the workers' (a scan that exited
    5 left it to them), release it so that the resume takes it (its heartbeat would otherwise keep the
    run "in progress" for 90 s). Safe while workers still work on it: the resumed work is idempotent.
    Returns the run whose lock was released, if any."""
    from scanner.history.tables import RunRow

    with store.engine.begin() as c:
        latest = select(func.max(RunRow.id)).where(RunRow.status != "complete")
        run_id = c.execute(latest).scalar_one_or_none()
        if run_id is None:
            return None
        n = c.execute(delete(LockRow).where(LockRow.run_id == run_id,
                                            LockRow.owner.like(f"{BROKER_OWNER}:%"))).rowcount
    return run_id if n else None


def release_lock(store: Store, run_id: int) -> None:
    with store.engine.begin() as c:
        c.execute(delete(LockRow).where(LockRow.run_id == run_id, LockRow.owner.like(f"{BROKER_OWNER}:%")))


def finish_if_complete(store: Store, run_id: int) -> bool:
    """Mark the run complete and release its lock when every target has a result."""
    run = store.run(run_id)
    if run.targets_done < run.targets_total:
        return False
    if run.status != "complete":
        store.finish_run(run_id, complete=True, stats={**run.stats, **run_stats(store, run_id)})
    release_lock(store, run_id)
    return True


__all__ = ["MAX_ATTEMPTS", "ASSESS", "ensure_schema", "store_id", "claim", "begin_attempt", "write_evidence",
           "done_families", "unfinished", "add_result_once", "hand_over_lock", "touch_lock", "release_lock",
           "finish_if_complete", "run_stats", "forget_run", "take_back_for_resume"]
