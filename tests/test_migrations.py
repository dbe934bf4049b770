"""The store's schema comes from Alembic revisions: a new store, a store written before migrations
(the committed ``tests/data/store-v0.sqlite3``, made by the code of that time), concurrent openers, and a
store from a newer version, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from scanner.history.database import create_in_wal_mode
from scanner.history.diff import diff_runs
from scanner.history.store import Store, StoreError
from scanner.migrations.runner import current, head
from tests.test_store import pg_store_url
from tests.testbed.cli import pledgescan
from tests.testbed.portfolio import make_result, make_target
from tests.testbed.stores import newer_store

OLD_STORE = Path(__file__).parent / "data" / "store-v0.sqlite3"


@pytest.fixture
def old_store(tmp_path) -> str:
    path = tmp_path / "old.sqlite3"
    shutil.copy(OLD_STORE, path)
    return f"sqlite:///{path}"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_new_store_is_built_by_the_migrations(backend: str, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'new.sqlite3'}" if backend == "sqlite" else pg_store_url()
    store = Store(url)
    try:
        assert current(store.engine) == head()
        tables = set(sa.inspect(store.engine).get_table_names())
        assert {"runs", "results", "locks", "notifications_sent", "work_items", "work_meta",
                "alembic_version"} <= tables
        assert store.upgrade() == []  # opening again changes nothing
    finally:
        store.close()


def test_the_old_store_is_upgraded_read_diffed_and_re_rendered(old_store: str, tmp_path) -> None:
    # Given a store written by the code before migrations (3 runs: two complete, one interrupted)
    store = Store(old_store)
    try:
        # Then it is upgraded in place and its runs read as before
        assert current(store.engine) == head()
        runs = store.runs()
        assert [(r.id, r.status, r.targets_done) for r in runs] == [(3, "incomplete", 1), (2, "complete", 3),
                                                                   (1, "complete", 3)]
        assert all(r.inventory.startswith("key:") and r.selection == "" for r in runs)
        results = list(store.results(2))
        assert [r.grade for r in results] == ["A+", "A+", "F"]
        # its runs diff: alpha fixed HSTS, beta's certificate broke
        d = diff_runs(store, store.run(1), store.run(2))
        changes = {(m.member, c.control, c.change) for m in d.members for c in m.controls}
        assert changes == {("alpha", "H2", "fixed"), ("beta", "T4", "newly_failing")}
        # the interrupted run's target that did not answer is unreachable, not a fix or a regression
        d3 = diff_runs(store, store.run(2), store.run(3))
        assert [t.state for t in d3.unreachable] == ["unreachable"] and not d3.regressed
        # and a new run on the upgraded store is compared with the old runs, target by target
        a1, b1 = make_target("https://alpha.example/", "alpha"), make_target("https://beta.example/", "beta")
        with store.start_run([a1, b1], baseline_id="pledge4", baseline_version="1", tool_version="0",
                             members=[{"id": "alpha", "name": "Alpha Schools"}],
                             inventory="members:/new/place/members.yaml") as rec:
            rec.on_result(make_result(a1, {"H2": "fail"}), None)
            rec.on_result(make_result(b1), None)
        d4 = diff_runs(store, store.run(3), store.run(rec.run_id))
        changes = {(m.member, c.control, c.change) for m in d4.members for c in m.controls}
        assert changes == {("alpha", "H2", "newly_failing"), ("beta", "T4", "fixed")}
    finally:
        store.close()
    # and the CLI re-renders the old runs without scanning
    out = tmp_path / "again"
    rep = pledgescan("report", "2", "--store", old_store, "-o", str(out))
    assert rep.returncode == 0, rep.stderr
    index = (out / "index.html").read_text()
    assert "Alpha Schools" in index and "1 newly failing" in index
    assert json.loads((out / "scan.json").read_text())["run_id"] == "2"
    diff = pledgescan("diff", "1", "2", "--store", old_store, "--format", "json")
    assert diff.returncode == 0 and json.loads(diff.stdout)["counts"]["newly_failing"] == 1


def test_store_upgrade_command(old_store: str) -> None:
    up = pledgescan("store", "upgrade", "--store", old_store)
    assert up.returncode == 0
    assert f"upgraded to revision {head()} (applied 0001, 0002, 0003, 0004" in up.stdout
    again = pledgescan("store", "upgrade", "--store", old_store)
    assert again.returncode == 0 and f"already at revision {head()}" in again.stdout


def test_a_stored_result_with_fields_a_later_version_dropped_still_reads(old_store: str) -> None:
    store = Store(old_store)
    try:
        with store.engine.begin() as c:
            row = c.execute(sa.text("SELECT id, result FROM results ORDER BY id LIMIT 1")).one()
            data = json.loads(row.result)
            data["retired_field"] = 1
            data["controls"][0]["legacy"] = "x"
            c.execute(sa.text("UPDATE results SET result = :r WHERE id = :i"),
                      {"r": json.dumps(data), "i": row.id})
        assert next(store.results(1)).target == "https://alpha.example/"
    finally:
        store.close()


def test_two_processes_opening_a_new_store_at_once(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    code = "import sys; from scanner.history.store import Store; Store(sys.argv[1]).close(); print('ok')"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    procs = [subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    store = Store(url)
    assert current(store.engine) == head()
    store.close()


def test_a_store_from_a_newer_version_is_refused_clearly(tmp_path) -> None:
    url = newer_store(tmp_path / "future.sqlite3")
    with pytest.raises(StoreError, match="revision 0999, newer than this pledgescan knows"):
        Store(url)


def test_a_new_sqlite_store_is_born_in_wal_mode(tmp_path) -> None:
    """Switching to WAL takes a lock SQLite does not wait for: a new file is made in WAL mode before any
    connection opens it, so processes opening a new store at once never switch it (the cause of "database
    is locked" in the test above)."""
    db = tmp_path / "born.sqlite3"
    create_in_wal_mode(db)
    assert db.read_bytes()[18:20] == b"\x02\x02"  # file format: WAL (read and write versions 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["born.sqlite3"]  # no temporary file left
    before = db.read_bytes()
    create_in_wal_mode(db)  # an existing file is left alone
    assert db.read_bytes() == before
