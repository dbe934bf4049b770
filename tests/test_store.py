"""History store: runs, results as targets finish, resume, lock (SQLite and the local PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid

import pytest

from scanner.history.store import (
    RunLock,
    Store,
    StoreBusy,
    StoreError,
    inventory_key,
)
from scanner.settings import Settings, settings_from_json, settings_to_json
from tests.testbed.portfolio import make_result, make_target

PG_URL = os.environ.get("PLEDGESCAN_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def pg_store_url() -> str:
    """A fresh schema on the local PostgreSQL server (skip locally when absent, fail in CI)."""
    try:
        import psycopg

        with psycopg.connect(PG_URL.replace("+psycopg", ""), connect_timeout=3, autocommit=True) as c:
            schema = f"t_{uuid.uuid4().hex[:10]}"
            c.execute(f'CREATE SCHEMA "{schema}"')
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL not reachable at {PG_URL} but CI must have it: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {exc}")
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


TARGETS = [make_target("https://a.example/", "alpha"), make_target("a.example", "alpha"),
           make_target("https://b.example/", "beta")]


SETTINGS = Settings(resolve={("a.example", 443): "127.0.50.1"})


def start(store: Store, targets=TARGETS, **kw):
    return store.start_run(targets, baseline_id="pledge4", baseline_version="1", tool_version="0",
                           settings=SETTINGS, **kw)


def test_run_lifecycle_stores_results_as_they_finish(store: Store) -> None:
    # Given a run over three targets
    with start(store) as rec:
        assert [t.key for t in rec.pending] == [t.key for t in TARGETS]
        # When two targets finish
        rec.on_result(make_result(TARGETS[0], {"T4": "fail"}), None)
        rec.on_result(make_result(TARGETS[1]), None)
        # Then they are readable while the run is still going
        run = store.run(rec.run_id)
        assert run.status == "running" and run.targets_done == 2
        rec.on_result(make_result(TARGETS[2], {"H2": "warn"}), None)
    run = store.run(rec.run_id)
    assert run.status == "complete" and run.targets_done == 3 and run.finished_at is not None
    results = list(store.results(run.id))
    assert [r.target for r in results] == [t.target for t in TARGETS]
    assert results[0].grade == "F"
    sums = store.summaries(run.id, member="alpha")
    assert len(sums) == 2 and sums[0].controls["T4"][0] == "fail"
    grades = store.member_scores([run.id])[run.id]
    assert grades["alpha"][0] == "F" and grades["beta"][0] == "A"
    assert store.run("latest").id == run.id


def test_interrupted_run_is_incomplete_and_resumes_the_rest(store: Store) -> None:
    # Given a run interrupted after one target
    with pytest.raises(KeyboardInterrupt), start(store) as rec:
        rec.on_result(make_result(TARGETS[0]), None)
        raise KeyboardInterrupt
    assert store.run(rec.run_id).status == "incomplete"
    # When it is resumed
    with store.resume_run() as again:
        assert again.run_id == rec.run_id
        assert [t.key for t in again.pending] == [t.key for t in TARGETS[1:]]
        for t in again.pending:
            again.on_result(make_result(t), None)
    # Then the run is complete with every target once
    run = store.run(rec.run_id)
    assert run.status == "complete" and run.targets_done == 3
    with pytest.raises(StoreError, match="nothing to resume"):
        store.resume_run()


def test_second_run_refused_while_the_lock_is_held(store: Store) -> None:
    rec = start(store)
    try:
        with pytest.raises(StoreBusy, match=f"of this inventory is in progress: run {rec.run_id} "):
            start(store, wait=0.3)
    finally:
        rec.finish()
    # once released, the next run starts
    start(store).finish()


def test_lock_of_a_dead_process_is_taken_over(store: Store) -> None:
    # Given a lock row left by a process that no longer exists
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead = RunLock(store, f"targets:{inventory_key(TARGETS, SETTINGS)}")
    dead.owner = f"{dead.host}:{proc.stdout.strip()}:deadbeef"
    dead.acquire()
    dead._stop.set()  # its heartbeat stops, as when killed
    # When a new run starts, Then it takes the lock over without waiting
    rec = start(store)
    rec.finish()


def test_previous_run_of_the_same_inventory(store: Store) -> None:
    ids = []
    for targets in (TARGETS, TARGETS[:1], TARGETS):
        with start(store, targets=targets) as rec:
            for t in targets:
                rec.on_result(make_result(t), None)
        ids.append(rec.run_id)
    assert store.previous_run(ids[2]).id == ids[0]
    assert store.previous_run(ids[2], same_inventory=False).id == ids[1]
    assert store.previous_run(ids[0]) is None
    assert [r.id for r in store.runs(member="beta")] == [ids[2], ids[0]]


def test_a_run_of_selected_checks_is_not_compared_with_a_full_run(store: Store) -> None:
    # Given a full run, then a run of the same targets with --only H2 (other controls not run)
    ids = []
    for only in (frozenset(), frozenset({"H2"}), frozenset()):
        with store.start_run(TARGETS, baseline_id="pledge4", baseline_version="1", tool_version="0",
                             settings=Settings(only=only)) as rec:
            for t in TARGETS:
                rec.on_result(make_result(t), None)
        ids.append(rec.run_id)
    # Then the partial run has no "previous run of the same inventory" (its grades are not comparable,
    # so --fail-on-regression would report grade drops that are only missing controls)
    assert store.previous_run(ids[1]) is None
    # and the next full run compares with the full one
    assert store.previous_run(ids[2]).id == ids[0]


def test_resume_on_an_empty_store_says_there_are_no_runs(store: Store) -> None:
    with pytest.raises(StoreError, match="nothing to resume: the store has no runs yet"):
        store.resume_run()


def test_snapshot_stored_as_json(store: Store) -> None:
    from scanner.evidence import Snapshot, TLSEvidence

    snap = Snapshot(target=TARGETS[0], addresses=("127.0.50.1",), tls=TLSEvidence(error="refused"))
    with start(store, targets=TARGETS[:1]) as rec:
        rec.on_result(make_result(TARGETS[0]), snap)
    stored = store.snapshot(rec.run_id, TARGETS[0].key)
    assert Snapshot.model_validate(stored) == snap


def test_unknown_run_is_a_clear_error(store: Store) -> None:
    with pytest.raises(StoreError, match="no run 42 in the store"):
        store.run(42)
    with pytest.raises(StoreError, match="not a run ID"):
        store.run("yesterday")


def test_settings_round_trip() -> None:
    s = Settings(timeout=3, resolve={("a.example", 8443): "127.0.50.2"}, only=frozenset({"T4"}),
                 nameservers=(("127.0.50.9", 5353),))
    assert settings_from_json(settings_to_json(s)) == s


def test_default_store_is_in_the_user_data_dir(monkeypatch, tmp_path) -> None:
    from scanner.history.store import default_url

    monkeypatch.delenv("PLEDGESCAN_STORE", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_url() == f"sqlite:///{tmp_path / 'pledgescan' / 'history.sqlite3'}"
    monkeypatch.setenv("PLEDGESCAN_STORE", "sqlite:////x.db")
    assert default_url() == "sqlite:////x.db"


WRITER = textwrap.dedent("""
    import sys
    from scanner.history.store import Store, StoreBusy
    from tests.testbed.portfolio import make_result, make_target
    store = Store(sys.argv[1])
    targets = [make_target(f"https://h{i}.{sys.argv[2]}.example/", sys.argv[2]) for i in range(40)]
    try:
        rec = store.start_run(targets, baseline_id="pledge4", baseline_version="1", tool_version="0",
                              wait=float(sys.argv[3]), inventory=sys.argv[4])
    except StoreBusy as exc:
        print("BUSY", exc); sys.exit(3)
    with rec:
        for t in targets:
            rec.on_result(make_result(t), None)
    print("DONE", rec.run_id)
""")


def test_two_processes_on_one_sqlite_store(tmp_path) -> None:
    # Given two real processes writing runs of one inventory to one SQLite store, waiting for each other
    url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    Store(url).close()
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, url, name, "60", "members:/m.yaml"],
                              stdout=subprocess.PIPE, text=True, env=env) for name in ("one", "two")]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    # Then both complete one after the other and the store holds two complete runs of 40 targets
    assert all(p.returncode == 0 for p in procs), outs
    store = Store(url)
    runs = store.runs()
    assert [r.status for r in runs] == ["complete", "complete"]
    assert [r.targets_done for r in runs] == [40, 40]
    # And a run of that inventory that does not wait is refused with a clear message while another
    # holds its lock, while a run of another inventory proceeds at once
    rec = start(store, inventory="members:/m.yaml")
    p = subprocess.run([sys.executable, "-c", WRITER, url, "three", "0", "members:/m.yaml"],
                       capture_output=True, text=True, env=env, timeout=60)
    other = subprocess.run([sys.executable, "-c", WRITER, url, "four", "0", "targets:x"],
                           capture_output=True, text=True, env=env, timeout=60)
    rec.finish()
    assert p.returncode == 3 and "another run of this inventory is in progress: run 3 " in p.stdout
    assert "inventory members:/m.yaml" in p.stdout
    assert other.returncode == 0 and other.stdout.startswith("DONE")
