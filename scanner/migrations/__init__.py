"""Schema migrations of the history store (Alembic), run by ``Store`` when it opens a store (or by
``pledgescan store upgrade``). Every table comes from a revision here, so a store written by any earlier
version upgrades in place; a new (empty) store is built at the head at once from the tables' declarations
(``runner.head_metadata``), which ``tests/test_store_create.py`` holds to the revisions' schema.

Adding a table or a column (e.g. a "messages sent" table):

1. Write ``versions/NNNN_<what>.py`` with ``revision = "NNNN"`` and ``down_revision`` = the current head
   (the highest number here), and ``upgrade()`` using ``alembic.op`` (``op.create_table(...)``,
   ``op.add_column(...)``; for SQLite, alter other columns inside ``op.batch_alter_table``). Use
   ``JSON_TYPE`` below for JSON columns (JSONB on PostgreSQL). Or let Alembic write the file:
   ``alembic -c scanner/migrations/alembic.ini revision --rev-id 0003 -m "messages sent"``.
2. Declare the same table in the module that uses it (a SQLAlchemy Core ``Table``, as
   ``scanner.history.tables`` does) and list its ``MetaData`` in ``runner.head_metadata``:
   ``tests/test_store_create.py`` fails until the declaration and the revisions give the same schema.
3. ``tests/test_migrations.py`` upgrades an empty store and the committed old store to the head on
   SQLite and PostgreSQL; add an assertion for the new table there.

A revision that changes what stored JSON means (a field of ``TargetResult`` renamed, made required)
rewrites the stored rows in its ``upgrade()``: rows are read back through ``scanner.history.stored_records``,
which ignores fields a model no longer has and fills defaults, but cannot invent a required value.
"""

from __future__ import annotations

from pathlib import Path

from scanner.history.tables import JSONType

HERE = Path(__file__).resolve().parent
JSON_TYPE = JSONType()  # JSONB on PostgreSQL
