"""A new store is built at the head revision from the tables' declarations, without Alembic; an older
store is upgraded by the Alembic revisions. Both ways must give the same schema (tables, columns, types,
nullability, defaults, keys, indexes, constraints), on SQLite and PostgreSQL, so they never drift."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from scanner.history.database import make_engine
from scanner.history.store import Store
from scanner.migrations import runner
from tests.test_store import pg_store_url
from tests.testbed.stores import newer_store


def schema(engine: sa.engine.Engine) -> dict[str, Any]:
    """Everything the inspector reports of every table, in a form that compares (order-free)."""
    insp = sa.inspect(engine)
    out: dict[str, Any] = {}
    for table in sorted(insp.get_table_names()):
        out[table] = {
            "columns": {c["name"]: (repr(c["type"]), c["nullable"], c.get("default"), c.get("autoincrement"))
                        for c in insp.get_columns(table)},
            "primary_key": insp.get_pk_constraint(table),
            "foreign_keys": sorted((fk["name"] or "", tuple(fk["constrained_columns"]), fk["referred_table"],
                                    tuple(fk["referred_columns"]), tuple(sorted(fk["options"].items())))
                                   for fk in insp.get_foreign_keys(table)),
            "indexes": sorted((ix["name"], tuple(ix["column_names"]), bool(ix["unique"]))
                              for ix in insp.get_indexes(table)),
            "unique": sorted((uq["name"] or "", tuple(uq["column_names"]))
                             for uq in insp.get_unique_constraints(table)),
            "checks": sorted((ck["name"] or "", ck["sqltext"]) for ck in insp.get_check_constraints(table)),
        }
    return out


def url_for(backend: str, tmp_path: Any, name: str) -> str:
    return f"sqlite:///{tmp_path / name}" if backend == "sqlite" else pg_store_url()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_new_store_has_the_schema_the_revisions_build(backend: str, tmp_path) -> None:
    # Given a store built by running every Alembic revision on an empty database
    migrated = make_engine(url_for(backend, tmp_path, "migrated.sqlite3"))
    try:
        assert runner._upgrade_with_alembic(migrated) == runner.revisions()
        # and a new store opened the ordinary way (built from the declarations)
        store = Store(url_for(backend, tmp_path, "new.sqlite3"))
        try:
            # Then both are at the head revision, and their schemas are the same in every detail
            assert runner.current(migrated) == runner.current(store.engine) == runner.head()
            built, expected = schema(store.engine), schema(migrated)
            assert set(built) == {"runs", "results", "locks", "notifications_sent", "work_items",
                                  "work_meta", "alembic_version"}
            for table in expected:
                assert built[table] == expected[table], table
            assert built == expected
        finally:
            store.close()
    finally:
        migrated.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_new_store_reports_every_revision_and_then_opens_as_it_is(backend: str, tmp_path) -> None:
    url = url_for(backend, tmp_path, "h.sqlite3")
    engine = make_engine(url)
    try:
        # When a new store is opened, it reports the revisions its schema stands for
        assert runner.upgrade(engine) == runner.revisions() == sorted(runner.revisions())
        assert runner.revisions()[-1] == runner.head()
        # and one version row, the head; opened again, nothing is applied
        with engine.connect() as c:
            assert c.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() == [
                runner.head()]
        assert runner.upgrade(engine) == []
    finally:
        engine.dispose()


def test_a_database_with_tables_of_its_own_is_left_to_alembic(tmp_path) -> None:
    """A database that already has tables (a store written before migrations, say) is never built over:
    Alembic's revisions adopt it (0001 creates only the tables it lacks)."""
    url = f"sqlite:///{tmp_path / 'other.sqlite3'}"
    engine = make_engine(url)
    with engine.begin() as c:
        c.execute(sa.text("CREATE TABLE keep_me (x INTEGER)"))
        c.execute(sa.text("INSERT INTO keep_me VALUES (7)"))
    try:
        assert runner.upgrade(engine) == runner.revisions()
        with engine.connect() as c:
            assert c.execute(sa.text("SELECT x FROM keep_me")).scalar_one() == 7
        assert runner.current(engine) == runner.head()
        assert {"runs", "results", "locks", "keep_me"} <= set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.fixture
def silent_server():
    """A local TCP server that accepts connections (the kernel's backlog) and never answers: a scan of
    it is still waiting on the network when the history store fails (within a second of the scan's
    start)."""
    import socket

    sock = socket.socket()
    sock.bind(("127.8.0.2", 0))
    sock.listen(64)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@pytest.mark.parametrize("case", ["bad-url", "unwritable", "newer"])
def test_a_store_that_cannot_open_fails_the_scan_in_one_line(case: str, tmp_path, silent_server) -> None:
    """The scan starts while the store opens: when the store fails, the command fails as it always did
    (one line, exit 2), with no report written and no run recorded, and at once: not after the TLS
    connection still waiting on the silent server times out (--timeout 600, the command gets 60 s)."""
    from tests.testbed.cli import pledgescan

    (tmp_path / "file").write_text("")
    url, expected = {
        "bad-url": ("nosuch://x", "cannot open the history store nosuch://x: Can't load plugin"),
        "unwritable": (f"sqlite:///{tmp_path / 'file' / 'h.sqlite3'}", "cannot open the history store: "),
        "newer": (newer_store(tmp_path / "future.sqlite3"),
                  "the history store has schema revision 0999, newer than this pledgescan knows"),
    }[case]
    out = tmp_path / "r.json"
    r = pledgescan("scan", f"https://silent.test:{silent_server}/", "--resolve",
                   f"silent.test:{silent_server}:127.8.0.2", "--only", "T1", "--timeout", "600",
                   "--format", "json", "-o", str(out), "-q", "--store", url, timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines() == [r.stderr.strip()]
    assert r.stderr.startswith(f"pledgescan: error: {expected}")
    assert not out.exists()
    if case == "newer":
        engine = sa.create_engine(url)
        with engine.connect() as c:
            assert c.execute(sa.text("SELECT count(*) FROM runs")).scalar_one() == 0
        engine.dispose()
