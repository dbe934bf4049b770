"""The history store's tables (SQLAlchemy declarative). A new store is created from these declarations
(``scanner.migrations.runner.head_metadata``); older stores reach the same schema through the Alembic
revisions in ``scanner.migrations``, which these models must match exactly (``tests/test_store_create.py``
compares the two on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    pass


class RunRow(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # running | complete | incomplete
    baseline_id: Mapped[str] = mapped_column(String(64))
    baseline_version: Mapped[str] = mapped_column(String(32))
    tool_version: Mapped[str] = mapped_column(String(32))
    inventory_key: Mapped[str] = mapped_column(String(64), index=True)  # the targets' content hash
    # identity: lock and --resume scope (the server defaults are revision 0002's, for rows before it)
    inventory: Mapped[str] = mapped_column(String(255), index=True, server_default="")
    selection: Mapped[str] = mapped_column(String(255), server_default="")  # --only/--skip; "": all
    targets_total: Mapped[int] = mapped_column(Integer)
    plan: Mapped[list[Any]] = mapped_column(JSONType)  # the targets, as JSON, in scan order
    members: Mapped[list[Any]] = mapped_column(JSONType)  # members file entries (id, name, contact...)
    options: Mapped[dict[str, Any]] = mapped_column(JSONType)  # settings, to resume with the same ones
    stats: Mapped[dict[str, Any]] = mapped_column(JSONType)


class ResultRow(Base):
    __tablename__ = "results"
    __table_args__ = (UniqueConstraint("run_id", "target_key", name="uq_results_run_target"),
                      Index("ix_results_target_run", "target_key", "run_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    target_key: Mapped[str] = mapped_column(Text)
    member: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(Text)
    grade: Mapped[str] = mapped_column(String(4))
    score: Mapped[int] = mapped_column(Integer)
    decided: Mapped[int] = mapped_column(Integer)
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    controls: Mapped[dict[str, Any]] = mapped_column(JSONType)  # {control: [status, severity]}
    result: Mapped[dict[str, Any]] = mapped_column(JSONType)  # TargetResult, JSON mode
    snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)


class LockRow(Base):
    __tablename__ = "locks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

