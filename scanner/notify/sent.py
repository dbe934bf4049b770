"""What was sent to whom and when: one row per item a message mentioned (a problem reported or
reminded, or a fix thanked for), so the next message repeats an item only when its reminder is due.

The table lives in the history store's database: migration 0003 adds it to an older store; a new store
is built from the declaration below (``scanner.migrations.runner.head_metadata``), the same schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, func, insert, select

from scanner.history.store import Store
from scanner.history.tables import Rows

metadata = MetaData()
SentRow = Rows(Table(
    "notifications_sent", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("member", String(64), nullable=False, index=True),
    Column("item_key", Text, nullable=False),  # "<target key>|<control ID>"
    Column("severity", String(16), nullable=False),
    Column("state", String(8), nullable=False),  # open (reported or reminded) | fixed (thanked for)
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=False),
    Column("run_id", Integer, nullable=False),
    Column("recipient", Text, nullable=False),
    Column("message_id", Text, nullable=False),
))


@dataclass(frozen=True)
class SentState:
    """The last thing said about one item to one member."""

    item_key: str
    severity: str
    state: str
    first_seen: datetime
    sent_at: datetime


@dataclass(frozen=True)
class SentRecord:
    """One item mentioned in a message that was delivered."""

    item_key: str
    severity: str
    state: str
    first_seen: datetime


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


class SentLog:
    """The record of messages sent, in the history store's database."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine

    def last_states(self, member: str) -> dict[str, SentState]:
        """Per item key, the latest row recorded for this member."""
        with self.engine.connect().execution_options(pledgescan_readonly=True) as c:
            latest = (select(SentRow.item_key, func.max(SentRow.id).label("id"))
                      .where(SentRow.member == member).group_by(SentRow.item_key).subquery())
            rows = c.execute(select(SentRow.item_key, SentRow.severity, SentRow.state, SentRow.first_seen,
                                    SentRow.sent_at).join(latest, SentRow.id == latest.c.id)).all()
        return {r.item_key: SentState(r.item_key, r.severity, r.state, _utc(r.first_seen), _utc(r.sent_at))
                for r in rows}

    def record(self, member: str, records: list[SentRecord], *, sent_at: datetime, run_id: int,
               recipient: str, message_id: str) -> None:
        """Remember a delivered message: one row per item it mentioned (one transaction)."""
        if not records:
            return
        with self.engine.begin() as c:
            c.execute(insert(SentRow), [
                {"member": member, "item_key": r.item_key, "severity": r.severity, "state": r.state,
                 "first_seen": r.first_seen, "sent_at": sent_at, "run_id": run_id, "recipient": recipient,
                 "message_id": message_id} for r in records])

    def history(self, member: str) -> list[tuple[datetime, str, str]]:
        """(sent at, item key, state) of every row of a member, oldest first (for tests and audits)."""
        with self.engine.connect().execution_options(pledgescan_readonly=True) as c:
            rows = c.execute(select(SentRow.sent_at, SentRow.item_key, SentRow.state)
                             .where(SentRow.member == member).order_by(SentRow.id)).all()
        return [(_utc(r.sent_at), r.item_key, r.state) for r in rows]
