"""History stores in states a user can meet: one written by a newer pledgescan."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from scanner.history.store import Store


def newer_store(path: Path, revision: str = "0999") -> str:
    """The URL of a SQLite store whose schema claims ``revision``, newer than this code knows."""
    url = f"sqlite:///{path}"
    Store(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    engine.dispose()
    return url
