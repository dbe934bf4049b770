"""A scan in several processes (scanner/parallel.py), against a real nginx behind a counting TCP proxy on
127.7.0.0/16: the same verdicts as one process, an address's targets in one process (the server never
sees more open connections than the cap), a killed worker's target as an error result, Ctrl-C.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from scanner.engine import Scanner, processes_wanted
from scanner.models import Target
from scanner.parallel import group_by_address, merge_stats, worker_settings
from scanner.settings import Settings
from scanner.targets import domain, endpoint
from scanner.testbed.certs import TestPKI
from scanner.testbed.tcp_proxy import TcpProxy
from tests.testbed.nginx import NginxServer, require_nginx

BACK = "127.7.0.1"  # nginx; the scanner sees the proxy's addresses below
FRONTS = ["127.7.1.1", "127.7.1.2", "127.7.1.3"]
STALLS = ["127.7.2.1", "127.7.2.2"]  # accept TCP connections (the kernel's backlog), never answer
TLS_PORT, HTTP_PORT = 18443, 18080
DOMAIN = "proc.test"
CAP = 2
# three targets share the first address, two the second, one has the third
PLACES = {"a0": 0, "a1": 0, "a2": 0, "b0": 1, "b1": 1, "c0": 2}


def nginx_conf(chain: Path, key: Path) -> str:
    return f"""
    server {{
        listen {BACK}:{TLS_PORT} ssl http2;
        listen {BACK}:{HTTP_PORT};
        server_name .{DOMAIN};
        ssl_certificate {chain};
        ssl_certificate_key {key};
        access_log off;
        default_type text/html;
        add_header Strict-Transport-Security "max-age=31536000" always;
        location = / {{ return 200 "<!doctype html><title>proc</title><p>hello</p>"; }}
        location / {{ return 404 "<!doctype html><title>404</title>"; }}
    }}
"""


def targets(names: list[str]) -> list[Target]:
    return [endpoint(f"https://{n}.{DOMAIN}:{TLS_PORT}/").model_copy(update={"http_port": HTTP_PORT})
            for n in names]


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    require_nginx()
    tmp = tmp_path_factory.mktemp("processes")
    pki = TestPKI.create("processes")
    ca = pki.write_ca_bundle(tmp / "ca.pem")
    chain, key = pki.leaf([f"*.{DOMAIN}"]).write(tmp, "leaf")
    listen = [(BACK, TLS_PORT), (BACK, HTTP_PORT)]
    with NginxServer(nginx_conf(chain, key), name="pledgescan-processes", listen=listen,
                     workdir=tmp / "nginx"), \
            TcpProxy([((f, p), (BACK, p)) for f in FRONTS for _, p in listen]) as proxy:
        yield ca, proxy


def settings_for(ca: Path, processes: int, **kw) -> Settings:
    resolve = {(f"{n}.{DOMAIN}", p): FRONTS[i] for n, i in PLACES.items() for p in (TLS_PORT, HTTP_PORT)}
    resolve |= {(f"stall{i}.{DOMAIN}", p): STALLS[i % 2] for i in range(4) for p in (TLS_PORT, HTTP_PORT)}
    return Settings(**{"resolve": resolve, "ca_bundle": ca, "timeout": 5, "per_host_connections": CAP,
                       "processes": processes, **kw})


def verdicts(report) -> dict[str, dict[str, str]]:
    return {t.target: {c.id: c.status.value for c in t.controls} for t in report.targets}


def test_processes_give_the_verdicts_of_one_and_keep_an_address_in_one(bed):
    ca, proxy = bed
    names = list(PLACES)
    one = asyncio.run(Scanner(settings_for(ca, 1)).run(targets(names)))
    proxy.peak_by_address.clear()
    seen: list[str] = []
    stored: list[str] = []
    scanner = Scanner(settings_for(ca, 2))
    many = asyncio.run(scanner.run(targets(names), on_start=lambda t: seen.append(t.target),
                                   on_result=lambda r, s: stored.append(s.target.target)))
    assert "processes" not in one.stats and many.stats["processes"] == 2
    assert len(scanner.worker_pids) == 2 and os.getpid() not in scanner.worker_pids
    assert all(t.decided > 10 and not t.errors for t in many.targets)
    assert verdicts(many) == verdicts(one)
    assert [t.target for t in many.targets] == [t.target for t in one.targets]  # the inventory's order
    assert sorted(seen) == sorted(stored) == sorted(t.target for t in many.targets)
    # every target's requests counted, as in one process
    assert set(many.stats["http_requests_per_host"]) == set(one.stats["http_requests_per_host"])
    assert many.stats["targets"] == len(names)
    # the first address's three targets were in one process: the server saw at most the cap at once
    assert max(proxy.peak_by_address.values()) <= CAP
    assert proxy.peak_by_address[FRONTS[0]] == CAP


def test_one_address_for_all_scans_in_this_process(bed):
    ca, _ = bed
    scanner = Scanner(settings_for(ca, 2))
    report = asyncio.run(scanner.run(targets(["a0", "a1", "a2"])))
    assert "processes" not in report.stats and scanner.worker_pids == []
    assert all(t.decided > 10 and not t.errors for t in report.targets)


def scan_killing_the_first_worker(ca: Path, names: list[str]) -> Any:
    """Scan ``names`` in two processes (one target in flight each) while stall0's address accepts TCP
    connections and never answers; SIGKILL the first worker as it starts stall0. Groups go out in order,
    a window of two per worker: the first two targets are the first worker's."""
    stall = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stall.bind((STALLS[0], TLS_PORT))
    stall.listen(64)  # never accepted: handshakes stall, in the kernel's backlog
    killed: list[int] = []
    scanner = Scanner(settings_for(ca, 2, concurrency=2, timeout=30))

    def on_start(t: Target) -> None:
        if t.host == f"stall0.{DOMAIN}" and not killed:
            killed.append(scanner.worker_pids[0])
            os.kill(scanner.worker_pids[0], signal.SIGKILL)

    try:
        report = asyncio.run(scanner.run(targets(names), on_start=on_start))
    finally:
        stall.close()
    assert killed
    return report


def test_a_killed_worker_gives_error_results_and_the_scan_ends(bed):
    ca, _ = bed
    report = scan_killing_the_first_worker(ca, ["stall0", "a0", "b0", "c0"])
    by = {t.target: t for t in report.targets}
    assert len(by) == 4 and report.stats["targets"] == 4
    lost = by[f"https://stall0.{DOMAIN}:{TLS_PORT}/"]
    assert lost.errors and all("ended before finishing" in e and "SIGKILL" in e for e in lost.errors)
    assert lost.decided == 0 and {c.status.value for c in lost.controls} <= {"error", "not_applicable"}
    for name in ("a0", "b0", "c0"):  # the other worker's, and the one the dead worker had not begun
        assert by[f"https://{name}.{DOMAIN}:{TLS_PORT}/"].decided > 10


def test_a_killed_workers_finished_targets_stay_in_the_statistics(bed):
    """The first worker finishes c0, then is killed as it starts stall0: c0's requests and connections
    stay counted (before, a dead worker's statistics were lost with it)."""
    ca, _ = bed
    report = scan_killing_the_first_worker(ca, ["c0", "stall0", "b0"])
    by = {t.target: t for t in report.targets}
    assert by[f"https://c0.{DOMAIN}:{TLS_PORT}/"].decided > 10
    assert by[f"https://stall0.{DOMAIN}:{TLS_PORT}/"].errors
    per_host = report.stats["http_requests_per_host"]
    assert per_host.get(f"c0.{DOMAIN}", 0) > 10 and per_host.get(f"b0.{DOMAIN}", 0) > 10
    assert report.stats["http_requests"] == sum(per_host.values())
    assert report.stats["tls_connections"] > 0 and report.stats["http_connections"] > 0


@pytest.mark.parametrize("processes", [["--processes", "2"], []], ids=["spawned", "forked"])
def test_ctrl_c_stops_the_workers(bed, tmp_path, processes):
    ca, _ = bed
    stalls = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in STALLS]
    for s, addr in zip(stalls, STALLS, strict=True):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the other case's connections in TIME_WAIT
        s.bind((addr, TLS_PORT))
        s.listen(64)
    store = f"sqlite:///{tmp_path / 'h.sqlite3'}"
    names = [f"stall{i}.{DOMAIN}" for i in range(4)]
    resolve = [a for i, n in enumerate(names) for p in (TLS_PORT, HTTP_PORT)
               for a in ("--resolve", f"{n}:{p}:{STALLS[i % 2]}")]
    proc = subprocess.Popen([sys.executable, "-m", "scanner", "scan",
                             *[f"https://{n}:{TLS_PORT}/" for n in names], *resolve, *processes,
                             "--timeout", "60", "--ca-bundle", str(ca), "--store", store,
                             "-o", str(tmp_path / "r.html")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        for s in stalls:  # each worker's first handshake arrived: the scan is under way in both
            s.settimeout(60)
            s.accept()[0].close()
        workers = _children(proc.pid)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        for s in stalls:
            s.close()
        if proc.poll() is None:
            proc.kill()  # our own child, by its pid
            proc.wait()
    assert proc.returncode == 130, err
    assert f"pledgescan scan --resume --store {store}" in err and "Traceback" not in err
    assert len(workers) == (2 if processes else 1)  # without --processes: one, forked beside the store
    for pid in workers:
        assert not _running(pid), f"worker {pid} outlived the scan"


def _children(pid: int) -> list[int]:
    """The scanning processes of ``pid``: multiprocessing's spawned or forked children, not its resource
    tracker."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"resource_tracker" not in cmdline:
            found.append(int(entry.name))
    return found


# -- a stored scan: the scan in a worker forked beside the store --------------------------------------------
def _cli_scan(ca: Path, tmp: Path, names: list[str], *extra: str) -> tuple[dict[str, Any], str]:
    out = tmp / f"r{len(list(tmp.iterdir()))}.json"
    resolve = [a for n in names for p in (TLS_PORT, HTTP_PORT)
               for a in ("--resolve", f"{n}.{DOMAIN}:{p}:{FRONTS[PLACES[n]]}")]
    proc = subprocess.run([sys.executable, "-m", "scanner", "scan",
                           *[f"https://{n}.{DOMAIN}:{TLS_PORT}/" for n in names], *resolve, "--timeout", "5",
                           "--per-host-connections", str(CAP), "--ca-bundle", str(ca), "--format", "json",
                           "-o", str(out), "-q", "--store", f"sqlite:///{tmp / 'h.sqlite3'}", *extra],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode in (0, 1), proc.stderr  # 1: a control below the --fail-on threshold
    return json.loads(out.read_text()), proc.stderr


def test_a_stored_scan_runs_in_a_worker_forked_beside_the_store(bed, tmp_path):
    """The command's own process opens the store and writes the reports while one forked worker scans
    (``processes`` 1 in the statistics); ``--processes 1`` keeps the scan in the command's process, with
    the same verdicts."""
    ca, _ = bed
    names = ["a0", "b0", "c0"]
    forked, err = _cli_scan(ca, tmp_path, names)
    here, _ = _cli_scan(ca, tmp_path, names, "--processes", "1")
    assert forked["stats"]["processes"] == 1 and "processes" not in here["stats"]
    assert err == ""  # nothing from the worker either (library warnings hidden there too)
    as_json = {t["target"]: {c["id"]: c["status"] for c in t["controls"]} for t in forked["targets"]}
    assert as_json == {t["target"]: {c["id"]: c["status"] for c in t["controls"]} for t in here["targets"]}
    assert [t["target"] for t in forked["targets"]] == [f"https://{n}.{DOMAIN}:{TLS_PORT}/" for n in names]
    assert all(t["decided"] > 10 and not t["errors"] for t in forked["targets"])
    assert forked["stats"]["tls_connections"] > 0 and forked["stats"]["http_requests"] > 0


def test_no_fork_while_another_thread_runs(bed):
    """A fork copies only the calling thread: with another thread alive the scan stays in this process."""
    import threading

    from scanner.parallel import fork_scanner

    ca, _ = bed
    release = threading.Event()
    other = threading.Thread(target=release.wait, daemon=True)
    other.start()
    try:
        assert fork_scanner(Scanner(settings_for(ca, 0))) is None
    finally:
        release.set()
        other.join()


def _running(pid: int) -> bool:
    for _ in range(50):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        if state == "Z":
            return False
        time.sleep(0.1)
    return True


# -- the plan, without the network -----------------------------------------------------------------------
def test_targets_sharing_an_address_form_one_group_transitively():
    ts = [endpoint(f"https://h{i}.example/") for i in range(5)] + [domain("example.org")]
    addrs = [{"192.0.2.1"}, {"192.0.2.2", "2001:db8::1"}, {"2001:db8::1", "192.0.2.1"}, {"192.0.2.9"}, set(),
             set()]
    groups = group_by_address(ts, addrs)
    assert [[t.host for t in g] for g in groups] == [["h0.example", "h1.example", "h2.example"],
                                                     ["h3.example"], ["h4.example"], ["example.org"]]


def test_processes_wanted_and_worker_shares():
    s = Settings(concurrency=16)
    assert processes_wanted(s, 10) == 1  # few targets: this process, no start-up cost
    cores = len(os.sched_getaffinity(0))
    assert processes_wanted(s, 1000) == (cores if cores > 1 else 1)
    assert processes_wanted(Settings(processes=3), 2) == 2
    assert processes_wanted(Settings(processes=1), 999) == 1
    w = worker_settings(Settings(concurrency=5, max_sockets=512), 2)
    assert (w.processes, w.concurrency, w.max_sockets) == (1, 3, 256)


def test_statistics_are_summed():
    parts = [{"http_requests": 3, "http_requests_per_host": {"a": 2, "b": 1}, "tls_connections": 4,
              "http_connections": 1, "peak_sockets": 2, "blocked_requests": ["x"]},
             {"http_requests": 2, "http_requests_per_host": {"b": 2}, "tls_connections": 1,
              "http_connections": 1, "peak_sockets": 3, "blocked_requests": []}]
    s = merge_stats(parts, 1.5, 7, 2, [])
    assert s["http_requests"] == 5 and s["http_requests_per_host"] == {"a": 2, "b": 3}
    assert (s["tls_connections"], s["http_connections"], s["peak_sockets"]) == (5, 2, 5)
    assert s["targets"] == 7 and s["processes"] == 2 and s["blocked_requests"] == ["x"]


def test_processes_from_the_command_line_environment_and_file(tmp_path, monkeypatch):
    from scanner.settings import load_settings

    monkeypatch.chdir(tmp_path)
    assert load_settings().processes == 0  # automatic
    (tmp_path / "pledgescan.toml").write_text("processes = 3\n")
    assert load_settings().processes == 3
    monkeypatch.setenv("PLEDGESCAN_PROCESSES", "1")
    assert load_settings().processes == 1
    assert load_settings({"processes": 2}).processes == 2
