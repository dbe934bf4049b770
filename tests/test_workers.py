"""Scanning with Dramatiq workers on a real Redis, results in a real PostgreSQL store, targets on real
local HTTPS servers: the same controls as the in-process scan, every target once when a worker is
killed with SIGKILL mid-run, the per-address connection cap held by two workers together, bounded
retries ending in `error`, and one-line errors for a broker that is wrong or away."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.test_store import pg_store_url
from tests.testbed.cli import PLEDGESCAN
from tests.testbed.cli import pledgescan as run
from tests.testbed.portfolio import ServerConfig, TLSServer, write_members
from tests.testbed.workers import ADDR, ServerConnections, Workers, redis_url

PORT = 18643
HSTS = {"Strict-Transport-Security": "max-age=63072000; includeSubDomains"}
# TLS and HTTP evidence, no exposure probes
CHEAP = ["--only", "T1,T2,H1,H2,H3,H5,C1", "--timeout", "5", "--rate-limit", "0"]


def pledgescan(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """The command line without a broker from the environment, terminal tables 200 columns wide."""
    return run(*args, timeout=timeout, env={"PLEDGESCAN_BROKER": None, "COLUMNS": "200"})


@pytest.fixture(scope="module")
def sites(tmp_path_factory) -> Any:
    """Two addresses, three named sites on each (one with HSTS, one with headers missing, one slow)."""
    ca = trustme.CA()
    d = tmp_path_factory.mktemp("workers-ca")
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    names = {1: ["good.wk.test", "plain.wk.test", "slow.wk.test"],
             2: ["other.wk.test", "more.wk.test", "last.wk.test"]}
    servers = [TLSServer(ca, ADDR.format(i), PORT, names[i], ServerConfig(HSTS if i == 1 else {}, delay=0.05))
               .start() for i in names]
    resolve = [f"{n}:{PORT}:{ADDR.format(i)}" for i, ns in names.items() for n in ns]
    yield {"ca": d / "ca.pem", "names": names, "resolve": resolve, "servers": servers}
    for s in servers:
        s.stop()


def members_file(path: Path, sites: Any, domain: bool = False) -> Path:
    n1, n2 = sites["names"][1], sites["names"][2]
    return write_members(path, [
        {"name": "Alpha", "id": "alpha", "endpoints": [f"https://{n}:{PORT}/" for n in n1],
         **({"domains": ["wk.test"]} if domain else {})},
        {"name": "Beta", "id": "beta", "endpoints": [f"https://{n}:{PORT}/" for n in n2]},
    ])


def common(sites: Any) -> list[str]:
    out = ["--ca-bundle", str(sites["ca"])]
    for r in sites["resolve"]:
        out += ["--resolve", r]
    return out


def controls(scan_json: Path) -> dict[str, dict[str, str]]:
    data = json.loads(scan_json.read_text())
    return {t["target"]: {c["id"]: c["status"] for c in t["controls"]} for t in data["targets"]}


def stored_rows(store: str, run_id: int) -> tuple[list[str], list[tuple[str, str, str, int]]]:
    from sqlalchemy import select

    from scanner.distributed.records import work_items
    from scanner.history.store import ResultRow, Store

    st = Store(store)
    try:
        with st.engine.connect() as c:
            results = list(c.execute(select(ResultRow.target_key)
                                     .where(ResultRow.run_id == run_id)).scalars())
            items = [tuple(r) for r in c.execute(select(work_items.c.target_key, work_items.c.family,
                                                        work_items.c.status, work_items.c.attempts)
                                                 .where(work_items.c.run_id == run_id))]
    finally:
        st.close()
    return results, items


@pytest.fixture
def broker() -> str:
    return redis_url()


@pytest.fixture
def workers(broker, tmp_path) -> Any:
    store = pg_store_url()
    w = Workers(broker, store, tmp_path)
    yield w
    w.stop()


def test_two_workers_give_the_same_controls_as_the_in_process_scan(sites, workers, tmp_path) -> None:
    # Given a members file of six endpoints on two addresses and a domain (none of whose controls is
    # selected: assessed without evidence), and two worker processes
    members = members_file(tmp_path / "members.yaml", sites, domain=True)
    workers.start()
    workers.start()
    # When it is scanned in-process, then through the broker
    local = pledgescan("scan", "--members", str(members), "--store", f"sqlite:///{tmp_path / 'h.sqlite3'}",
                       *CHEAP, *common(sites), "-o", str(tmp_path / "local"), "-q")
    assert local.returncode == 0, local.stderr
    dist = pledgescan("scan", "--members", str(members), "--store", workers.store, "--broker", workers.broker,
                      *CHEAP, *common(sites), "-o", str(tmp_path / "dist"))
    assert dist.returncode == 0, dist.stderr + workers.logs()
    # Then every control of every target has the same status, and the portfolio is written
    assert controls(tmp_path / "dist" / "scan.json") == controls(tmp_path / "local" / "scan.json")
    assert len(controls(tmp_path / "dist" / "scan.json")) == 7
    assert (tmp_path / "dist" / "index.html").exists()
    assert "run 1 complete: 7/7 targets (workers" in dist.stderr
    # and each target was recorded once, each (target, family) once, TLS and HTTP apart
    results, items = stored_rows(workers.store, 1)
    assert sorted(results) == sorted(set(results)) and len(results) == 7
    assert {(f, s) for _t, f, s, _a in items} == {("tls", "done"), ("http", "done"), ("-", "done")}
    assert len(items) == 13


def test_detach_returns_the_run_id_and_report_renders_it_later(sites, workers, tmp_path) -> None:
    workers.start()
    target = f"https://{sites['names'][1][0]}:{PORT}/"
    # When a scan is detached
    out = pledgescan("scan", target, "--store", workers.store, "--broker", workers.broker, "--detach",
                     *CHEAP, *common(sites))
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.strip()
    assert run_id.isdigit()
    # Then the workers finish it without the scan command, and `report RUN` renders it
    for _ in range(240):
        hist = pledgescan("history", "--store", workers.store, "--format", "json")
        if json.loads(hist.stdout)[0]["status"] == "complete":
            break
        time.sleep(0.5)
    else:
        pytest.fail("the detached run did not complete: " + workers.logs())
    rep = pledgescan("report", run_id, "--store", workers.store, "--format", "json", "-o",
                     str(tmp_path / "r.json"))
    assert rep.returncode == 0, rep.stderr
    assert list(controls(tmp_path / "r.json")) == [target]


def test_a_worker_killed_mid_run_loses_no_target_and_records_none_twice(sites, workers, tmp_path) -> None:
    # Given a worker, and a scan of six endpoints (slow enough to be caught mid-run)
    members = members_file(tmp_path / "members.yaml", sites)
    victim = workers.start(threads=3)
    scan = subprocess.Popen(
        [*PLEDGESCAN, "scan", "--members", str(members), "--store", workers.store,
         "--broker", workers.broker, *CHEAP, *common(sites), "-o", str(tmp_path / "out"), "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if k != "PLEDGESCAN_BROKER"})
    try:
        # When the worker is killed with SIGKILL while it has work in flight, and another one starts
        for _ in range(600):
            _results, items = stored_rows(workers.store, 1) if _run_exists(workers.store) else ([], [])
            if any(status == "queued" and attempts >= 1 for _t, _f, status, attempts in items):
                break
            time.sleep(0.05)
        else:
            pytest.fail("no work in flight: " + workers.logs())
        Workers.kill(victim)
        workers.start(threads=2)  # the survivor: every message the victim held must reach it
        _out, err = scan.communicate(timeout=240)
    finally:
        if scan.poll() is None:
            scan.kill()
            scan.wait()
    # Then the run completes, every target once
    assert scan.returncode == 0, err + workers.logs()
    results, items = stored_rows(workers.store, 1)
    assert len(results) == 6 and len(set(results)) == 6
    assert all(status == "done" for _t, _f, status, _a in items)
    assert any(attempts > 1 for *_x, attempts in items)  # the killed worker's work was done again
    assert len(controls(tmp_path / "out" / "scan.json")) == 6


def _run_exists(store: str) -> bool:
    from scanner.history.store import Store, StoreError

    try:
        st = Store(store)
    except StoreError:
        return False
    try:
        return bool(st.runs(limit=1))
    finally:
        st.close()


def test_two_workers_never_exceed_the_connection_cap_of_one_address(sites, workers, tmp_path,
                                                                    monkeypatch) -> None:
    # Given six endpoints on one address, a cap of 2 connections per address, two workers of 3 threads
    # (each response delayed 10 ms, not the module's 50: enough to hold connections open at once, and
    # the ~800 exposure probes of the six do not take half a minute)
    monkeypatch.setattr(sites["servers"][0].cfg, "delay", 0.01)
    names = sites["names"][1]
    targets = [f"https://{n}:{PORT}/{p}" for n in names for p in ("", "b")]
    workers.start(threads=3)
    workers.start(threads=3)
    # When they scan (TLS handshakes, HTTP and exposure probes), counting on the server side
    with ServerConnections(ADDR.format(1), PORT) as conns:
        out = pledgescan("scan", *targets, "--store", workers.store, "--broker", workers.broker,
                         "--per-host-connections", "2", "--timeout", "5", "--rate-limit", "0",
                         "--only", "T1,T2,H1,H2,E1,E2",
                         *common(sites), "--format", "json", "-o", str(tmp_path / "r.json"), "-q")
    assert out.returncode == 0, out.stderr + workers.logs()
    # Then the address never had more than 2 connections open at once, though it was kept busy
    assert conns.busy > 10
    assert 1 <= conns.peak <= 2, f"{conns.peak} connections open at once with a cap of 2"
    assert len(controls(tmp_path / "r.json")) == 6


def test_a_claim_tells_whether_it_enqueued_the_work_on_both_stores(store) -> None:
    """The first claim of a (run, target, family) wins, on SQLite and on PostgreSQL alike: a worker that
    records a target's HTTP evidence enqueues its exposure work only when its claim wins. (On PostgreSQL
    the row count of the INSERT read -1, every claim looked lost, and exposure was never enqueued: the
    two-workers connection-cap scan, the only one with exposure probes, never finished.)"""
    from scanner.distributed.records import claim

    assert claim(store, 1, "endpoint:https://a.test/", "exposure") is True
    assert claim(store, 1, "endpoint:https://a.test/", "exposure") is False
    assert claim(store, 1, "endpoint:https://a.test/", "http") is True
    assert claim(store, 2, "endpoint:https://a.test/", "exposure") is True


def test_work_that_keeps_failing_ends_as_error_after_bounded_attempts(sites, broker, monkeypatch) -> None:
    """A collector that crashes its message every time: Dramatiq retries it, then the family is
    recorded as an error (the target gets its result, its other controls decided)."""
    import importlib

    import dramatiq

    from scanner.distributed import records, work
    from scanner.distributed.broker import ENV_NAMESPACE, namespace
    from scanner.distributed.dispatch import Dispatcher, wait_for_run
    from scanner.history.portfolio import StoredScan
    from scanner.history.store import Store
    from scanner.settings import settings_from_json
    from scanner.targets import endpoint

    store_url = pg_store_url()
    store = Store(store_url)
    monkeypatch.setenv("PLEDGESCAN_BROKER", broker)
    monkeypatch.setenv("PLEDGESCAN_STORE", store_url)
    monkeypatch.setenv(ENV_NAMESPACE, namespace(records.store_id(store)))
    work.store.cache_clear()
    work.run_scanner.cache_clear()
    from scanner.distributed import actors

    actors = importlib.reload(actors)
    # the attempts are what is tested, not the backoff between them (1 s, 2 s, 4 s... in production)
    for actor in (actors.collect, actors.collect_tls):
        monkeypatch.setitem(actor.options, "min_backoff", 50)
        monkeypatch.setitem(actor.options, "max_backoff", 200)
    real = work.collect_family

    def crashing(scanner: Any, target: Any, family: str, prior: Any = None, run_id: int = 0) -> Any:
        if family == "http":
            raise RuntimeError("collector crashed the message")
        return real(scanner, target, family, prior, run_id)

    monkeypatch.setattr(work, "collect_family", crashing)
    name = sites["names"][1][0]
    target = endpoint(f"https://{name}:{PORT}/")
    settings = settings_from_json({"timeout": 5, "ca_bundle": str(sites["ca"]), "only": ["T1", "H2"],
                                   "resolve": [[name, PORT, ADDR.format(1)]]})
    stored = StoredScan.start(store, [target], settings)
    dispatcher = Dispatcher(broker, store)
    records.hand_over_lock(store, stored.recorder.lock, stored.run_id)
    dispatcher.enqueue_run(store, stored.run_id, [target])
    worker = dramatiq.Worker(actors.broker, worker_threads=2)
    worker.start()
    try:
        run = wait_for_run(store, stored.run_id, dispatcher, [target], on_progress=lambda d, t: None,
                           broker_wait=60)
    finally:
        worker.stop()
        work.store.cache_clear()
        work.run_scanner.cache_clear()
    (result,) = list(store.results(run.id))
    status = {c.id: c.status.value for c in result.controls}
    assert run.status == "complete"
    assert status["H2"] == "error" and status["T1"] == "pass"
    assert any("gave up after 3 attempts" in e for e in result.errors)
    store.close()


@pytest.mark.parametrize(("args", "message"), [
    (["https://x.test/", "--broker", "amqp://127.0.0.1/"], "expected redis://"),
    (["https://x.test/", "--broker", "redis://127.0.0.1:1/0"], "does not answer"),
    (["https://x.test/", "--detach"], "--detach needs --broker"),
    (["https://x.test/", "--broker", "redis://127.0.0.1:1/0", "--no-store"], "--no-store cannot go"),
])
def test_scan_with_a_wrong_or_absent_broker_is_one_line_and_exit_2(args, message) -> None:
    out = pledgescan("scan", *args, timeout=60)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr


def test_worker_with_an_unreachable_broker_exits_3_in_one_line(tmp_path) -> None:
    out = pledgescan("worker", "--broker", "redis://127.0.0.1:1/0", "--store", f"sqlite:///{tmp_path}/h.db",
                     timeout=60)
    assert out.returncode == 3, out.stderr
    assert "does not answer" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_a_run_resumes_when_redis_comes_back_after_a_restart(sites, tmp_path) -> None:
    from tests.testbed.workers import OwnRedis

    # Given workers on a Redis of the test's own, and a scan of six endpoints under way
    redis_srv = OwnRedis(ADDR.format(9), 16390, tmp_path).start()
    store = pg_store_url()
    workers = Workers(redis_srv.url, store, tmp_path)
    members = members_file(tmp_path / "members.yaml", sites)
    scan = None
    try:
        workers.start(threads=2)
        scan = subprocess.Popen(
            [*PLEDGESCAN, "scan", "--members", str(members), "--store", store,
             "--broker", redis_srv.url, *CHEAP, "--target-deadline", "20", *common(sites),
             "-o", str(tmp_path / "out")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={k: v for k, v in os.environ.items() if k != "PLEDGESCAN_BROKER"})
        for _ in range(600):
            if _run_exists(store) and stored_rows(store, 1)[1]:
                break
            time.sleep(0.05)
        # When Redis is stopped mid-run and started again a few seconds later
        redis_srv.stop()
        time.sleep(3)
        redis_srv.start()
        _out, err = scan.communicate(timeout=300)
    finally:
        if scan is not None and scan.poll() is None:
            scan.kill()
            scan.wait()
        workers.stop()
        redis_srv.stop()
    # Then the run completes, every target once
    assert scan.returncode == 0, err + workers.logs()
    results, _items = stored_rows(store, 1)
    assert len(results) == 6 and len(set(results)) == 6
    assert "run 1 complete: 6/6" in err


def test_a_run_whose_broker_stays_away_fails_naming_what_is_unfinished_and_resume_completes_it(
        sites, tmp_path) -> None:
    import shutil

    from tests.testbed.workers import OwnRedis

    # Given a scan enqueued on a Redis that then goes away (no worker ever ran)
    redis_srv = OwnRedis(ADDR.format(9), 16391, tmp_path).start()
    store = pg_store_url()
    target = f"https://{sites['names'][2][0]}:{PORT}/"
    scan = subprocess.Popen(
        [*PLEDGESCAN, "scan", target, "--store", store, "--broker", redis_srv.url,
         "--broker-wait", "2", *CHEAP, *common(sites)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if k != "PLEDGESCAN_BROKER"})
    workers = Workers(redis_srv.url, store, tmp_path)
    try:
        for _ in range(600):
            if _run_exists(store) and stored_rows(store, 1)[1]:
                break
            time.sleep(0.05)
        redis_srv.stop()
        _out, err = scan.communicate(timeout=120)
        # Then it exits 5 with one line naming the run, what is left and how to complete it
        assert scan.returncode == 5, err
        (line,) = [ln for ln in err.splitlines() if "error" in ln]
        assert "run 1 unfinished: 0/1 targets done" in line and target in line and "--resume" in line
        # When Redis comes back without its data (the queued work is lost), a worker starts, and the
        # command the line names is run at once (the run's lock is still the workers')
        for f in tmp_path.iterdir():
            if f.name.startswith("appendonly"):
                shutil.rmtree(f) if f.is_dir() else f.unlink()
        redis_srv.start()
        workers.start()
        resume = pledgescan("scan", "--resume", "--broker", redis_srv.url, "--store", store, *CHEAP,
                            *common(sites), "--format", "json", "-o", str(tmp_path / "r.json"))
    finally:
        if scan.poll() is None:
            scan.kill()
            scan.wait()
        workers.stop()
        redis_srv.stop()
    # Then the resumed run completes with its target
    assert resume.returncode == 0, resume.stderr + workers.logs()
    assert "run 1 complete: 1/1" in resume.stderr
    assert list(controls(tmp_path / "r.json")) == [target]


def test_the_workers_docs_are_literally_usable() -> None:
    """docs/workers.md's command lines and the systemd unit use options that exist; every exit code of
    `scan --broker` is explained."""
    import re
    import shlex

    import click

    from scanner.cli.main import cli

    docs = Path(__file__).resolve().parents[1] / "docs"
    text = (docs / "workers.md").read_text()
    lines = [ln.strip() for b in re.findall(r"```sh\n(.*?)```", text, re.S) for ln in b.splitlines()]
    commands = [ln for ln in lines if ln.startswith("pledgescan ")]
    assert {c.split()[1] for c in commands} >= {"worker", "scan", "report"}
    unit = (docs / "pledgescan-worker@.service").read_text()
    exec_start = re.search(r"^ExecStart=/usr/local/bin/(pledgescan worker .*)$", unit, re.M)
    assert exec_start
    for line in [*commands, exec_start.group(1)]:
        name, *args = shlex.split(line)[1:]
        command = cli.get_command(click.Context(cli), name)
        assert command is not None, line
        known = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
        assert all(a.split("=")[0] in known for a in args if a.startswith("-")), line
    assert "EnvironmentFile=/etc/pledgescan/worker.env" in unit
    scan_codes = text.split("`pledgescan scan --broker`:")[1].split("`pledgescan worker`")[0]
    table = dict(re.findall(r"^\| (\d+) \| (.*) \|$", scan_codes, re.M))
    assert set(table) >= {"0", "1", "2", "3", "4", "5", "130"} and "--resume" in table["5"]
