"""The history store's tables (SQLAlchemy Core). A new store is created from these declarations
(``scanner.migrations.runner.head_metadata``); older stores reach the same schema through the Alembic
revisions in ``scanner.migrations``, which these tables must match exactly (``tests/test_store_create.py``
compares the two on SQLite and PostgreSQL).

Core, not the ORM: the store reads and writes rows, never objects, and ``sqlalchemy.orm`` cost a tenth of
a second of every scan's start-up. ``Rows`` keeps the ORM's spelling (``RunRow.status``,
``insert(RunRow)``, ``RunRow.__table__``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine


class JSONType(TypeDecorator[Any]):
    """JSON, and JSONB on PostgreSQL (whose dialect module is imported only by a PostgreSQL store)."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(JSON())


class Rows:
    """A table's columns as attributes (``RunRow.status``) and the table as ``__table__``; it stands for
    the table wherever SQLAlchemy takes one (``insert(RunRow)``, ``select_from(ResultRow)``)."""

    def __init__(self, table: Table) -> None:
        self.__table__ = table

    def __getattr__(self, name: str) -> Column[Any]:
        try:
            return self.__table__.c[name]  # type: ignore[no-any-return]
        except KeyError:
            raise AttributeError(name) from None

    def __clause_element__(self) -> Table:
        return self.__table__


def _dt(name: str, nullable: bool = False) -> Column[Any]:
    return Column(name, DateTime(timezone=True), nullable=nullable)


metadata = MetaData()

RunRow = Rows(Table(
    "runs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _dt("started_at"),
    _dt("finished_at", nullable=True),
    Column("status", String(16), nullable=False),  # running | complete | incomplete
    Column("baseline_id", String(64), nullable=False),
    Column("baseline_version", String(32), nullable=False),
    Column("tool_version", String(32), nullable=False),
    Column("inventory_key", String(64), nullable=False, index=True),  # the targets' content hash
    # identity: lock and --resume scope (the server defaults are revision 0002's, for rows before it)
    Column("inventory", String(255), nullable=False, index=True, server_default=""),
    Column("selection", String(255), nullable=False, server_default=""),  # --only/--skip; "": all
    Column("targets_total", Integer, nullable=False),
    Column("plan", JSONType(), nullable=False),  # the targets, as JSON, in scan order
    Column("members", JSONType(), nullable=False),  # members file entries (id, name, contact...)
    Column("options", JSONType(), nullable=False),  # settings, to resume with the same ones
    Column("stats", JSONType(), nullable=False),
))

ResultRow = Rows(Table(
    "results", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("target_key", Text, nullable=False),
    Column("member", String(64), nullable=True, index=True),
    Column("kind", String(16), nullable=False),
    Column("target", Text, nullable=False),
    Column("grade", String(4), nullable=False),
    Column("score", Integer, nullable=False),
    Column("decided", Integer, nullable=False),
    _dt("finished_at"),
    Column("controls", JSONType(), nullable=False),  # {control: [status, severity]}
    Column("result", JSONType(), nullable=False),  # TargetResult, JSON mode
    Column("snapshot", JSONType(), nullable=True),
    UniqueConstraint("run_id", "target_key", name="uq_results_run_target"),
    Index("ix_results_target_run", "target_key", "run_id"),
))

LockRow = Rows(Table(
    "locks", metadata,
    Column("name", String(64), primary_key=True),
    Column("owner", String(255), nullable=False),
    Column("run_id", Integer, nullable=True),
    _dt("acquired_at"),
    _dt("heartbeat_at"),
))
