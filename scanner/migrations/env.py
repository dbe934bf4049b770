"""Alembic environment: migrations run on the connection ``scanner.history.store`` hands over (already inside
its transaction: SQLite ``BEGIN IMMEDIATE``, PostgreSQL with an advisory lock), never one of their own."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # the ``alembic`` command line: a URL from alembic.ini / -x url=...
    from scanner.history.database import make_engine

    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option(
        "sqlalchemy.url")
    with make_engine(url or "sqlite:///history.sqlite3").connect() as conn:
        context.configure(connection=conn, target_metadata=None)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=None,
                      on_version_apply=context.config.attributes.get("on_version_apply"))
    with context.begin_transaction():
        context.run_migrations()
