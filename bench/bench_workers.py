"""Workers benchmark: one portfolio scanned in-process, by one worker process and by two worker
processes (Dramatiq on a Redis of the benchmark's own, results in PostgreSQL), side by side.

Every mode runs the real command lines (``pledgescan scan --members ... [--broker ...]``), with the same
store kind, checks and settings; the wall time is that of the scan command (workers already up), and
includes enqueueing, waiting and rendering the portfolio. The CPU time is that of the scan command and
the worker processes (user + system, their start-up included), not that of the servers, Redis or
PostgreSQL. The local HTTPS servers run in two processes
of their own. On a 2-core machine the servers, Redis, PostgreSQL and the scanners share the two cores,
which bounds what a second worker process can gain here.

    python bench/bench_workers.py                        # 48 endpoints, TLS and HTTP controls
    python bench/bench_workers.py --endpoints 96 --only T1,T2,T3,T4,H1,H2,H3
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ADDRS = [f"127.0.140.{100 + i}" for i in range(8)]  # the servers' addresses (endpoints spread over them)
REDIS_ADDR, REDIS_PORT = "127.0.140.10", 16392
PORT = 18743
PG = os.environ.get("PLEDGESCAN_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MEMBER_SIZE = 3

SERVE = """
import sys, time, trustme
sys.path.insert(0, {root!r})
from tests.testbed.portfolio import ServerConfig, TLSServer
ca = trustme.CA(); ca.cert_pem.write_to_path({ca!r})
names = {names!r}
hsts = ServerConfig({{"Strict-Transport-Security": "max-age=63072000"}})
servers = [TLSServer(ca, addr, {port}, ns, hsts).start() for addr, ns in names.items()]
print("ready", flush=True)
sys.stdin.read()
"""


def pg_store() -> str:
    """A fresh schema in the local PostgreSQL (the store of the distributed mode)."""
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG.replace("+psycopg", ""), connect_timeout=3, autocommit=True) as c:
        c.execute(f'CREATE SCHEMA "{schema}"')
    return f"{PG}?options=-csearch_path%3D{schema}"


def children_cpu() -> float:
    """CPU seconds (user + system) of the child processes waited for so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.monotonic() - t0
    if out.returncode != 0:
        sys.exit(f"benchmark command failed ({out.returncode}): {' '.join(cmd)}\n{out.stderr[-2000:]}")
    return wall


def main() -> None:
    from tests.testbed.workers import OwnRedis

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoints", type=int, default=48)
    ap.add_argument("--only", default="T1,T2,T3,H1,H2,H3,H5,C1", help="check or control IDs")
    ap.add_argument("--threads", type=int, default=8, help="threads per worker process")
    ap.add_argument("--concurrency", type=int, default=8, help="targets in flight, in-process")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    names = {a: [] for a in ADDRS}
    for i in range(args.endpoints):
        names[ADDRS[i % len(ADDRS)]].append(f"h{i}.m{i // MEMBER_SIZE}.workers.test")
    members: dict[str, list[str]] = {}
    for ns in names.values():
        for n in ns:
            members.setdefault(n.split(".")[1], []).append(f"https://{n}:{PORT}/")
    import yaml

    (tmp / "members.yaml").write_text(yaml.safe_dump({"members": [
        {"name": f"Member {m}", "id": m, "endpoints": eps} for m, eps in members.items()]}))

    servers = []
    for half in (ADDRS[::2], ADDRS[1::2]):  # two server processes: the servers are not the bottleneck
        part = {a: names[a] for a in half}
        ca_file = tmp / f"ca{len(servers)}.pem"
        proc = subprocess.Popen([sys.executable, "-c", SERVE.format(root=str(ROOT), ca=str(ca_file),
                                                                    names=part, port=PORT)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        servers.append(proc)
    (tmp / "ca.pem").write_text((tmp / "ca0.pem").read_text() + (tmp / "ca1.pem").read_text())
    redis_srv = OwnRedis(REDIS_ADDR, REDIS_PORT, tmp).start()
    env = {k: v for k, v in os.environ.items() if k not in ("PLEDGESCAN_BROKER", "PLEDGESCAN_STORE")}
    scan = [sys.executable, "-m", "scanner", "scan", "--members", str(tmp / "members.yaml"), "-q",
            "--only", args.only, "--rate-limit", "0", "--timeout", "10", "--ca-bundle", str(tmp / "ca.pem")]
    for addr, ns in names.items():
        for n in ns:
            scan += ["--resolve", f"{n}:{PORT}:{addr}"]
    results: list[tuple[str, float, float]] = []
    try:
        store = pg_store()
        cpu = children_cpu()
        wall = run([*scan, "--store", store, "--concurrency", str(args.concurrency), "-o", str(tmp / "in")],
                   env)
        results.append((f"in-process (--concurrency {args.concurrency})", wall, children_cpu() - cpu))
        for procs in (1, 2):
            store = pg_store()
            cpu = children_cpu()
            worker = subprocess.Popen(
                [sys.executable, "-m", "scanner", "worker", "--broker", redis_srv.url, "--store", store,
                 "--processes", str(procs), "--threads", str(args.threads)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
            time.sleep(3)  # workers up (imports) before the clock starts
            try:
                wall = run([*scan, "--store", store, "--broker", redis_srv.url, "-o", str(tmp / f"w{procs}")],
                           env)
            finally:
                from tests.testbed.proc import stop_process

                stop_process(worker, timeout=60)
            label = "1 worker process" if procs == 1 else f"{procs} worker processes"
            results.append((f"{label} (--threads {args.threads})", wall, children_cpu() - cpu))
    finally:
        redis_srv.stop()
        for proc in servers:
            if proc.stdin:
                proc.stdin.close()
            proc.wait(timeout=30)
    base = results[0][1]
    print(f"workers benchmark: {args.endpoints} endpoints on {len(ADDRS)} local HTTPS servers, checks "
          f"{args.only}, --rate-limit 0, store PostgreSQL, {os.cpu_count()} cores")
    print(f"{'mode':<36} {'wall s':>8} {'ms/endpoint':>12} {'vs in-process':>14} {'CPU s':>7} "
          f"{'CPU ms/endpoint':>16}")
    for label, wall, cpu in results:
        print(f"{label:<36} {wall:>8.1f} {1000 * wall / args.endpoints:>12.0f} {base / wall:>13.2f}x "
              f"{cpu:>7.1f} {1000 * cpu / args.endpoints:>16.0f}")


if __name__ == "__main__":
    main()
