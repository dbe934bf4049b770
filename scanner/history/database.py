"""Where the history lives: the store's URL, its SQLAlchemy engine, and the errors a user can act on."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine

ENV_VAR = "PLEDGESCAN_STORE"


class StoreError(Exception):
    """A history-store problem the user can act on (one line)."""


class StoreBusy(StoreError):
    """Another run holds the store's lock."""



def default_url() -> str:
    """``PLEDGESCAN_STORE`` or SQLite in the user's data directory."""
    env = os.environ.get(ENV_VAR)
    if env:
        return env
    from platformdirs import user_data_dir

    return f"sqlite:///{Path(user_data_dir('pledgescan')) / 'history.sqlite3'}"



def as_utc(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_engine(url: str) -> Engine:
    """An engine for the URL; SQLite gets WAL, a busy timeout and ``BEGIN IMMEDIATE`` transactions."""
    if url.startswith("sqlite"):
        from sqlalchemy.engine import make_url

        db = make_url(url).database
        if db and db != ":memory:" and not db.startswith("file:"):
            Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
            create_in_wal_mode(Path(db).expanduser())
        engine = create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _rec: Any) -> None:
            dbapi_conn.isolation_level = None  # let the "begin" hook below issue BEGIN
            cur = dbapi_conn.cursor()
            if cur.execute("PRAGMA journal_mode").fetchone()[0] != "wal":  # a store made before WAL
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            readonly = conn.get_execution_options().get("pledgescan_readonly", False)
            conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

        return engine
    try:
        return create_engine(url, pool_pre_ping=True)
    except Exception as exc:  # bad URL or missing driver: one clear line
        raise StoreError(f"cannot open the history store {redact(url)}: {exc}") from None


def create_in_wal_mode(db: Path) -> None:
    """Create the SQLite file ``db``, if it does not exist, already in WAL mode.

    Switching a database to WAL takes an exclusive lock that SQLite does not wait for (no busy handler):
    processes opening a new store at once failed with "database is locked" on ``PRAGMA journal_mode=WAL``.
    So the file is made in WAL mode under a name of this process's own and linked into place; a process
    that loses the race finds the winner's file, whose header already says WAL, and switches nothing.
    """
    if db.exists():
        return
    tmp = db.with_name(f"{db.name}.{os.getpid()}.new")
    try:
        conn = sqlite3.connect(tmp)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
        finally:
            conn.close()
        os.link(tmp, db)
    except FileExistsError:
        pass  # another process created it first
    except (OSError, sqlite3.Error):
        pass  # no hard links here (or no room): the connection creates the file, as before
    finally:
        tmp.unlink(missing_ok=True)


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<store URL>"

