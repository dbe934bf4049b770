"""Applying the revisions to a store: one transaction that holds off other processes while it runs
(``BEGIN IMMEDIATE`` on SQLite, a transaction-level advisory lock on PostgreSQL), so two processes
opening a new store at once neither race nor fail."""

from __future__ import annotations

from functools import cache
from typing import Any

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from scanner.migrations import HERE

ADVISORY_LOCK_ID = 0x706C6564  # "pled": any constant other programs on the server do not use


def config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    return cfg


class NewerSchema(Exception):
    """The store was upgraded by a newer pledgescan: this version does not know its revision."""


def known(revision: str) -> bool:
    try:
        return ScriptDirectory(str(HERE)).get_revision(revision) is not None
    except Exception:  # alembic.util.CommandError / ResolutionError: not one of ours
        return False


@cache
def head() -> str:
    return str(ScriptDirectory(str(HERE)).get_current_head())


def current(engine: Engine) -> str | None:
    with engine.connect().execution_options(pledgescan_readonly=True) as c:
        return MigrationContext.configure(c).get_current_revision()


def upgrade(engine: Engine) -> list[str]:
    """Upgrade to the head revision; the revisions applied, oldest first."""
    if current(engine) == head():  # the usual case: a cheap read, no write lock
        return []
    from alembic import command

    applied: list[str] = []
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK_ID})")
        before = MigrationContext.configure(conn).get_current_revision()
        if before == head():
            return []  # another process upgraded it while we waited
        if before is not None and not known(before):
            raise NewerSchema(f"the history store has schema revision {before}, newer than this pledgescan "
                              f"knows (up to {head()}): upgrade pledgescan to use it")
        cfg = config()
        cfg.attributes["connection"] = conn

        def note(step: Any, **_kw: Any) -> None:
            applied.extend(str(r) for r in step.up_revision_ids if step.is_upgrade)

        cfg.attributes["on_version_apply"] = note
        command.upgrade(cfg, "head")
    return applied
