"""Applying the revisions to a store: one transaction that holds off other processes while it runs
(``BEGIN IMMEDIATE`` on SQLite, a transaction-level advisory lock on PostgreSQL), so two processes
opening a new store at once neither race nor fail.

A store already at the head revision (every store after its first run) is recognised by one plain read
of its version table, and a new store (an empty database) is built at the head at once from the tables'
declarations (``head_metadata``) with Alembic's version row written beside them: Alembic, its scripts
and their templates are imported only to upgrade an older store (importing it and running every
revision cost about as much as a whole scan's other start-up). ``tests/test_store_create.py`` proves
that both ways give the same schema, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table, inspect, text
from sqlalchemy.engine import Connection, Engine

from scanner.migrations import HERE

if TYPE_CHECKING:
    from alembic.config import Config

ADVISORY_LOCK_ID = 0x706C6564  # "pled": any constant other programs on the server do not use
VERSION_TABLE = "alembic_version"  # Alembic's default, which env.py keeps


def config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    return cfg


class NewerSchema(Exception):
    """The store was upgraded by a newer pledgescan: this version does not know its revision."""


def known(revision: str) -> bool:
    from alembic.script import ScriptDirectory

    try:
        return ScriptDirectory(str(HERE)).get_revision(revision) is not None
    except Exception:  # alembic.util.CommandError / ResolutionError: not one of ours
        return False


_REVISION = re.compile(r"^(down_revision|revision)\s*=\s*(None|[\"']([^\"']+)[\"'])\s*$", re.M)


@cache
def _parents() -> dict[str, str | None]:
    """Each revision of the revision files -> its ``down_revision``, read without importing Alembic."""
    parents: dict[str, str | None] = {}
    for path in (HERE / "versions").glob("*.py"):
        fields = {m.group(1): m.group(3) for m in _REVISION.finditer(path.read_text("utf-8"))}
        if fields.get("revision"):
            parents[fields["revision"]] = fields.get("down_revision")
    return parents


@cache
def head() -> str:
    """The head revision, read from the revision files without importing Alembic (the one revision no
    other names as its ``down_revision``; ``tests/test_migrations.py`` checks it is Alembic's head)."""
    parents = _parents()
    heads = set(parents) - {p for p in parents.values() if p}
    if len(heads) != 1:  # never in a released tree; Alembic says what is wrong
        from alembic.script import ScriptDirectory

        return str(ScriptDirectory(str(HERE)).get_current_head())
    return heads.pop()


def revisions() -> list[str]:
    """Every revision from the first to the head, oldest first (what building a store applies)."""
    chain, rev = [], head()
    while rev:
        chain.append(rev)
        rev = _parents().get(rev) or ""
    return chain[::-1]


def head_metadata() -> list[MetaData]:
    """The declarations of every table of the head schema, in creation order, Alembic's version table
    last: the modules that use the tables declare them (``tests/test_store_create.py`` checks that
    they match the revisions exactly)."""
    from scanner.distributed.records import metadata as work
    from scanner.history.tables import metadata as history
    from scanner.notify.sent import metadata as notify

    version = MetaData()
    Table(VERSION_TABLE, version, Column("version_num", String(32), nullable=False),
          PrimaryKeyConstraint("version_num", name=f"{VERSION_TABLE}_pkc"))  # as Alembic makes it
    return [history, notify, work, version]


def _create_new(conn: Connection) -> bool:
    """In the caller's locked transaction: build an empty database at the head revision (the tables
    from their declarations, then Alembic's version row) and say so; False when the database already
    has tables (a store, or one written before migrations): those are for Alembic."""
    if inspect(conn).get_table_names():
        return False
    for metadata in head_metadata():
        metadata.create_all(conn)
    conn.execute(text(f"INSERT INTO {VERSION_TABLE} (version_num) VALUES (:v)"), {"v": head()})
    return True


def current(engine: Engine) -> str | None:
    """The store's revision (``None``: no version table yet), read as Alembic reads it."""
    with engine.connect().execution_options(pledgescan_readonly=True) as c:
        return _revision_of(c)


def _revision_of(conn: Any) -> str | None:
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    if len(rows) > 1:  # branches: never made by pledgescan; let Alembic judge
        from alembic.runtime.migration import MigrationContext

        return MigrationContext.configure(conn).get_current_revision()
    return str(rows[0]) if rows else None


def upgrade(engine: Engine) -> list[str]:
    """Upgrade to the head revision; the revisions applied, oldest first."""
    if current(engine) == head():  # the usual case: a cheap read, no write lock, no Alembic
        return []
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK_ID})")
        if _create_new(conn):  # a new store: at the head in one transaction, without Alembic
            return revisions()
    return _upgrade_with_alembic(engine)


def _upgrade_with_alembic(engine: Engine) -> list[str]:
    """Apply the revisions a store lacks with Alembic, in one transaction that holds off others."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

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
