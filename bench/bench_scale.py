"""Scale benchmark (issue 9): latency, TLS against sslyze, portfolios of one address per endpoint, and many
endpoints sharing one address. Everything local: one Debian nginx per case, certificates minted here, and
the testbed's TCP proxy (``scanner/testbed/tcp_proxy.py``) that adds latency and counts what an address
feels (TCP connections, connections open at once).

    python bench/bench_scale.py                           # every case, default sizes
    python bench/bench_scale.py --cases latency,tls       # some of them
    python bench/bench_scale.py --sizes 100 300 1000 --shared 100

Cases:
* ``latency``: one HTTPS host 50 ms away (round trip; ``--delay MS`` sets it, here and in ``tls``), the
  whole baseline with default settings: wall time and TCP connections seen by the proxy (HTTP and TLS
  together), in this process (the HTTP stack loaded beforehand), then through ``pledgescan scan`` as a
  user runs it (a new process with its start-up and imports, a new history store, the JSON report; its
  plain HTTP on port 80 of the proxy's address, so it needs root and that port free).
* ``tls``: ``--hosts`` hosts (default 16), each on its own address 50 ms away, T1-T6 only: ``pledgescan
  scan`` against ``python -m sslyze`` (every scan command) over the same proxies, in the same run: wall
  times and TCP connections (both counted by the proxy, so exact for both) and the ratios.
* ``tls-cpu`` (not in the default set): up to 8 of ``--hosts`` hosts, no latency, T1-T6 in this process:
  CPU seconds per endpoint of the TLS collection (the counting proxy's threads included).
* ``portfolio``: N endpoints, each on its own loopback address (127.3.0.0/16; one nginx listening on every
  address with a wildcard certificate and name-based hosts), 3 per member, the whole baseline with
  default settings, scanned into a SQLite history store and written as the portfolio (what
  ``pledgescan scan --members FILE -o DIR`` does), each size in a fresh process: wall time, time per
  endpoint, peak memory (max RSS), HTTP requests per endpoint.
* ``memory``: ``--memory`` endpoints (default 90) with results kept by nobody, once with the HTTP, cookie
  and exposure controls and once with the TLS ones: peak memory after a third and after all of them,
  which tells whose memory grows with the inventory (not in the default cases).
* ``shared``: N endpoints on one address behind the counting proxy, default settings: wall time, the most
  connections open at once and the most HTTP requests in any sliding second (nginx's log: by each
  request's end and by its start) and new connections (the proxy), against the per-address budget.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import ctypes
import gc
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The in-process cases time a scan with the scanner's code loaded, as they did when scanner.engine imported
# the HTTP stack itself; since session 8 it is loaded at a scan's first HTTP work (a TLS-only scan never
# loads it), which would otherwise put its import (about 0.2 s) inside the latency case's timing.
import scanner.net.fetcher  # noqa: E402, F401
from scanner import native_memory  # noqa: E402
from scanner.engine import Scanner  # noqa: E402
from scanner.settings import Settings  # noqa: E402
from scanner.targets import endpoint  # noqa: E402
from scanner.testbed.certs import TestPKI  # noqa: E402
from scanner.testbed.tcp_proxy import TcpProxy  # noqa: E402
from tests.testbed.nginx import NginxServer  # noqa: E402
from tests.testbed.rates import most_in_window  # noqa: E402

TLS_PORT, HTTP_PORT = 18443, 18080
# The portfolio's nginx listens on every address: ports no test uses, so it never collides with one.
WILD_TLS_PORT, WILD_HTTP_PORT = 29443, 29080
BACKEND = "127.3.255.2"  # nginx behind the latency and counting proxies (127.3.0.0/16: the benchmark's)
DELAY = 0.025  # each way: 50 ms round trip (``--delay`` changes it)
DOMAIN = "bench.test"


def site_conf(listen: list[str], chain: Path, key: Path, log: str = "off") -> str:
    listens = "\n".join(f"        listen {a}{' http2' if a.endswith(' ssl') else ''};" for a in listen)
    return f"""
    log_format stamp '$msec $request_time';
    server {{
{listens}
        server_name .{DOMAIN};
        ssl_certificate {chain};
        ssl_certificate_key {key};
        access_log {log};
        keepalive_requests 10000;
        default_type text/html;
        add_header Strict-Transport-Security "max-age=63072000" always;
        add_header X-Content-Type-Options "nosniff" always;
        add_header Content-Security-Policy "default-src 'self'" always;
        location = / {{ return 200 "<!doctype html><title>bench</title><p>hello</p>"; }}
        location / {{ return 404 "<!doctype html><title>404</title>"; }}
    }}
"""


class Bed:
    """A private CA, a wildcard certificate for *.bench.test and the files nginx needs."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        pki = TestPKI.create("bench scale")
        self.ca = pki.write_ca_bundle(tmp / "ca.pem")
        self.chain, self.key = pki.leaf([f"*.{DOMAIN}", DOMAIN]).write(tmp, "wildcard")

    def nginx(self, name: str, listen: list[str], wait: list[tuple[str, int]],
              log: str = "off") -> NginxServer:
        return NginxServer(site_conf(listen, self.chain, self.key, log), name=f"bench-{name}",
                           listen=wait, workdir=self.tmp / name)

    def targets(self, names: list[str], tls: int = TLS_PORT, http: int = HTTP_PORT) -> list:
        return [endpoint(f"https://{n}:{tls}/").model_copy(update={"http_port": http}) for n in names]


def backend(bed: Bed, name: str, log: str = "off") -> NginxServer:
    return bed.nginx(name, [f"{BACKEND}:{TLS_PORT} ssl", f"{BACKEND}:{HTTP_PORT}"],
                     [(BACKEND, TLS_PORT), (BACKEND, HTTP_PORT)], log)


def routes(front: str, ports: tuple[int, ...] = (TLS_PORT, HTTP_PORT)) -> list:
    return [((front, p), (BACKEND, p)) for p in ports]


def case_latency(bed: Bed) -> None:
    front, name = "127.3.255.1", f"one.{DOMAIN}"
    with backend(bed, "latency"), TcpProxy(routes(front), delay=DELAY) as proxy:
        settings = Settings(ca_bundle=bed.ca, resolve={(name, p): front for p in (TLS_PORT, HTTP_PORT)})
        t0 = time.monotonic()
        report = asyncio.run(Scanner(settings).run(bed.targets([name])))
        wall = time.monotonic() - t0
    (t,) = report.targets
    print(f"latency: one host {2000 * DELAY:g} ms away, whole baseline, defaults: {wall:.2f} s, "
          f"{len(proxy.accepted)} TCP connections ({report.stats['http_requests']} HTTP requests, "
          f"{report.stats['tls_connections']} TLS prober connections), grade {t.grade}, decided {t.decided}")
    latency_command(bed, front, name)


def latency_command(bed: Bed, front: str, name: str) -> None:
    """The same host through ``pledgescan scan`` as a user runs it (a new process: interpreter start-up,
    imports, a new history store, the JSON report), its plain HTTP on port 80 of the proxy's address."""
    out, store = bed.tmp / "latency-command.json", bed.tmp / "latency-history.db"
    cmd = [sys.executable, "-m", "scanner", "scan", f"https://{name}:{TLS_PORT}/",
           "--resolve", f"{name}:{TLS_PORT}:{front}", "--resolve", f"{name}:80:{front}",
           "--ca-bundle", str(bed.ca), "--format", "json", "-o", str(out), "-q", "--store", f"sqlite:///{store}"]
    proxy = TcpProxy([((front, TLS_PORT), (BACKEND, TLS_PORT)), ((front, 80), (BACKEND, HTTP_PORT))],
                     delay=DELAY)
    try:
        proxy.start()
    except OSError as exc:  # port 80 of the address taken, or not root
        print(f"latency (pledgescan scan command): not measured: {front}:80: {exc}")
        return
    try:
        with backend(bed, "latency-command"):
            t0 = time.monotonic()
            done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600)
            wall = time.monotonic() - t0
    finally:
        proxy.stop()
    try:
        (t,) = json.loads(out.read_text())["targets"]
    except (OSError, ValueError, KeyError):
        print(f"latency (pledgescan scan command): no report (exit {done.returncode}): {done.stderr[-300:]}")
        return
    print(f"latency (pledgescan scan command, new process and history store, JSON report): {wall:.2f} s, "
          f"{len(proxy.accepted)} TCP connections, exit {done.returncode}, grade {t['grade']}, "
          f"decided {t['decided']}")


def case_tls(bed: Bed, hosts: int) -> None:
    fronts = [f"127.3.254.{1 + i}" for i in range(hosts)]
    names = [f"t{i}.{DOMAIN}" for i in range(hosts)]
    all_routes = [r for f in fronts for r in routes(f, (TLS_PORT,))]
    resolve_args = [a for n, f in zip(names, fronts, strict=True)
                    for a in ("--resolve", f"{n}:{TLS_PORT}:{f}")]
    with backend(bed, "tls"):
        with TcpProxy(all_routes, delay=DELAY) as proxy:
            out = bed.tmp / "pledgescan-tls.json"
            cmd = [sys.executable, "-m", "scanner", "scan", *[f"https://{n}:{TLS_PORT}/" for n in names],
                   *resolve_args, "--ca-bundle", str(bed.ca), "--only", "T1,T2,T3,T4,T5,T6",
                   "--format", "json", "-o", str(out), "-q",
                   "--store", f"sqlite:///{bed.tmp / 'tls-history.db'}"]
            t0 = time.monotonic()
            subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=1800)
            p_wall = time.monotonic() - t0
            p_conn = len(proxy.accepted)
        verdicts = {}
        try:
            for t in json.loads(out.read_text())["targets"]:
                verdicts[t["target"]] = {c["id"]: c["status"] for c in t["controls"]}
        except (OSError, ValueError, KeyError):
            pass
        with TcpProxy(all_routes, delay=DELAY) as proxy:
            servers = [f"{n}:{TLS_PORT}{{{f}}}" for n, f in zip(names, fronts, strict=True)]
            cmd = [sys.executable, "-m", "sslyze", f"--json_out={bed.tmp / 'sslyze.json'}",
                   f"--certinfo_ca_file={bed.ca}", "--quiet", *servers]
            t0 = time.monotonic()
            subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=1800)
            s_wall = time.monotonic() - t0
            s_conn = len(proxy.accepted)
    same = len({json.dumps(v, sort_keys=True) for v in verdicts.values()}) == 1 if verdicts else False
    print(f"tls: {hosts} hosts {2000 * DELAY:g} ms away, T1-T6: pledgescan scan {p_wall:.2f} s, {p_conn} TCP "
          "connections; "
          f"python -m sslyze (all commands) {s_wall:.2f} s, {s_conn} TCP connections; ratios: wall "
          f"{p_wall / s_wall:.3f}, connections {p_conn / max(1, s_conn):.3f}; "
          f"T verdicts identical on every host: {same} {next(iter(verdicts.values()), {})}")


def one_portfolio(size: int, tmp: Path, concurrency: int | None = None,
                  processes: int | None = None) -> dict[str, Any]:
    """In a fresh process: ``size`` endpoints (3 per member), each on its own address, whole baseline,
    default settings, the path of ``pledgescan scan --members FILE -o DIR``: results stream to a SQLite
    history store as targets finish, then the portfolio (pages, scan.json/.csv/.xlsx) is written from it."""
    from scanner.history.members import load_members
    from scanner.history.portfolio import StoredScan, write_portfolio
    from scanner.history.store import Store
    from tests.testbed.portfolio import write_members

    bed = Bed(tmp)
    names = [f"e{i}.{DOMAIN}" for i in range(size)]
    addrs = [f"127.3.{i // 250}.{i % 250 + 1}" for i in range(size)]  # up to 127.3.199.250
    ports = (WILD_TLS_PORT, WILD_HTTP_PORT)
    resolve = {(n, p): a for n, a in zip(names, addrs, strict=True) for p in ports}
    members = [{"name": f"Member {m}", "id": f"m{m}",
                "endpoints": [f"https://{n}:{WILD_TLS_PORT}/" for n in names[m * 3:m * 3 + 3]]}
               for m in range((size + 2) // 3)]
    inv = load_members(write_members(tmp / "members.yaml", members))
    targets = [t.model_copy(update={"http_port": WILD_HTTP_PORT}) for t in inv.targets]
    with bed.nginx("portfolio", [f"{WILD_TLS_PORT} ssl", f"{WILD_HTTP_PORT}"], [(addrs[0], WILD_TLS_PORT)]):
        settings = Settings(ca_bundle=bed.ca, resolve=resolve,
                            **({"concurrency": concurrency} if concurrency else {}),
                            **({"processes": processes} if processes is not None else {}))
        cpu0, own0 = _tree_cpu(), _cpu()
        t0 = time.monotonic()
        with TreeMemory() as memory:
            store = Store(f"sqlite:///{tmp / 'history.sqlite3'}")
            stored = StoredScan.start(store, targets, settings, inv)
            report = asyncio.run(Scanner(settings).run(stored.targets, on_result=stored.on_result,
                                                       keep_results=False))
            run = stored.finish(report.stats)
            t_scan = time.monotonic() - t0
            memory.sample()
            at_scan_end = (memory.peak_mb, memory.peak_parent_mb)
            with TreeMemory() as writing:  # the writing alone: its own peaks (the page helper included)
                cpu_w = _cpu()
                write_portfolio(store, run.id, tmp / "out")
                cpu_w = _cpu() - cpu_w
            wall = time.monotonic() - t0
        cpu = _tree_cpu() - cpu0  # the workers have been waited for; nginx (still running) is not in it
        own = _cpu() - own0
    grades: dict[str, int] = {}
    errors = 0
    for s in store.summaries(run.id):
        grades[s.grade] = grades.get(s.grade, 0) + 1
    for t in store.results(run.id):
        errors += bool(t.errors)
    store.close()
    return {"endpoints": size, "concurrency": settings.concurrency, "wall_s": round(wall, 1),
            "processes": report.stats.get("processes", 1),
            "scan_s": round(t_scan, 1), "cpu_s": round(cpu, 1), "cpu_parent_s": round(own, 1),
            "per_endpoint_ms": round(1000 * wall / size),
            "peak_rss_mb": memory.peak_mb, "peak_parent_mb": memory.peak_parent_mb,
            "peak_scan_mb": at_scan_end,  # (tree, parent) before the portfolio was written
            "write_s": round(wall - t_scan, 1), "write_cpu_parent_s": round(cpu_w, 1),
            "peak_write_mb": (writing.peak_mb, writing.peak_parent_mb),  # (tree, parent) while writing
            "samples": memory.samples,
            "grades": grades, "errors": errors,
            "http_requests_per_endpoint": round(report.stats["http_requests"] / size, 1)}


class TreeMemory:
    """Peak memory of this process and its descendants together (the scan's worker processes; nginx is
    left out): the sum of their resident sizes from /proc, sampled every ``every`` seconds by a thread."""

    def __init__(self, every: float = 0.2) -> None:
        self.every = every
        self.peak_mb = self.peak_parent_mb = self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-memory", daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def sample(self) -> None:
        me = os.getpid()
        rss = _tree_rss(me)
        self.samples += 1
        self.peak_mb = max(self.peak_mb, round(sum(rss.values()) / 2**20))
        self.peak_parent_mb = max(self.peak_parent_mb, round(rss.get(me, 0) / 2**20))


def _tree_rss(root: int) -> dict[int, int]:
    """Resident bytes of ``root`` and its descendants (nginx excluded), from /proc/PID/stat and statm."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            names[int(entry.name)] = stat[stat.index("(") + 1:stat.rindex(")")]
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, grew = {root}, True
    while grew:
        more = {p for p, pp in parents.items() if pp in tree and p not in tree and names[p] != "nginx"}
        tree |= more
        grew = bool(more)
    out = {}
    for pid in tree:
        try:
            out[pid] = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * resource.getpagesize()
        except (OSError, ValueError, IndexError):
            continue
    return out


def _tree_cpu() -> float:
    """CPU seconds (user + system) of this process and of its children that have been waited for."""
    r, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


NATIVE = {"product": (native_memory.ARENAS, native_memory.TRIM_EVERY), "off": (0, 0),
          "arenas": (native_memory.ARENAS, 0), "trim": (0, native_memory.TRIM_EVERY)}


def _native(mode: str) -> None:
    """How glibc's malloc is tuned in this process (``product``: as the engine does by default)."""
    native_memory.ARENAS, native_memory.TRIM_EVERY = NATIVE[mode]


def _cpu() -> float:
    """CPU seconds (user + system) of this process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _rss_mb() -> int:
    """Resident memory now (not the peak), in MB, from /proc (0 where there is none)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return round(pages * resource.getpagesize() / 2**20)


def case_portfolio(sizes: list[int], concurrencies: list[int | None], native: str,
                   processes: list[int | None] | None = None) -> None:
    print("portfolio: each endpoint on its own address, whole baseline, default settings (unless "
          "--concurrency/--processes), members file scanned into a SQLite store and written as the "
          "portfolio; CPU and peak memory of the whole process tree (the scan's worker processes "
          "included, nginx not): CPU from getrusage (self + waited-for children), memory the largest sum "
          "of resident sizes over the tree, sampled from /proc every 0.2 s (the parent's own CPU and peak "
          "in brackets)")
    print(f"{'endpoints':>10} {'procs':>5} {'in flight':>9} {'wall s':>8} {'scan s':>8} {'CPU s':>14} "
          f"{'ms/endpoint':>12} {'peak MB':>13} {'HTTP req/endpoint':>18}  grades / errors")
    for size, conc, procs in ((s, c, p) for s in sizes for c in concurrencies for p in (processes or [None])):
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            extra = ["--concurrency", str(conc)] if conc else []
            extra += ["--processes", str(procs)] if procs is not None else []
            extra += ["--native", native]
            out = subprocess.run([sys.executable, __file__, "--one", str(size), "--tmp", tmp, *extra],
                                 capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr[-2000:], file=sys.stderr)
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        peak, cpu = f"{r['peak_rss_mb']} ({r['peak_parent_mb']})", f"{r['cpu_s']} ({r['cpu_parent_s']})"
        scan_peak = "peak while scanning {} ({}) MB; ".format(*r["peak_scan_mb"])
        scan_peak += "writing {} s (parent CPU {} s), peak while writing {} ({}) MB; ".format(
            r["write_s"], r["write_cpu_parent_s"], *r["peak_write_mb"])
        print(f"{r['endpoints']:>10} {r['processes']:>5} {r['concurrency']:>9} {r['wall_s']:>8} "
              f"{r['scan_s']:>8} {cpu:>14} {r['per_endpoint_ms']:>12} {peak:>13} "
              f"{r['http_requests_per_endpoint']:>18}  {scan_peak}{r['grades']} / {r['errors']}", flush=True)


def one_memory(size: int, only: str, tmp: Path) -> dict[str, Any]:
    """In a fresh process: ``size`` endpoints (each its own address), the controls ``only``, results kept
    by nobody (``keep_results=False``): peak memory after a third of them and after all, to tell which
    collector's memory grows with the inventory."""
    bed = Bed(tmp)
    names = [f"m{i}.{DOMAIN}" for i in range(size)]
    addrs = [f"127.3.{200 + i // 250}.{i % 250 + 1}" for i in range(size)]
    ports = (WILD_TLS_PORT, WILD_HTTP_PORT)
    resolve = {(n, p): a for n, a in zip(names, addrs, strict=True) for p in ports}
    marks: dict[int, int] = {}

    now: dict[int, int] = {}
    detail: dict[int, dict[str, Any]] = {}

    def seen(_result: Any, _snap: Any) -> None:
        marks[len(marks) + 1] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        now[len(marks)] = _rss_mb()
        if len(marks) in (size // 3, size):
            names = collections.Counter(re.sub(r"[0-9_-]+", "#", f"{type(t).__name__}:{t.name}")
                                        for t in threading.enumerate())
            detail[len(marks)] = {"threads": dict(names), "gc_objects": len(gc.get_objects()),
                                  "glibc": _malloc_mb(), "pymalloc_arenas": _pymalloc_arenas()}

    with bed.nginx("memory", [f"{WILD_TLS_PORT} ssl", f"{WILD_HTTP_PORT}"], [(addrs[0], WILD_TLS_PORT)]):
        settings = Settings(ca_bundle=bed.ca, resolve=resolve, only=frozenset(only.split(",")))
        asyncio.run(Scanner(settings).run(bed.targets(names, *ports), on_result=seen, keep_results=False))
    return {"endpoints": size, "only": only, "third_mb": marks[size // 3], "all_mb": marks[size],
            "third_now_mb": now[size // 3], "all_now_mb": now[size], "malloc_mb": _malloc_mb(),
            "detail": detail}


def _pymalloc_arenas() -> int:
    """Python's small-object arenas in use now (sys._debugmallocstats, written to the C stderr)."""
    with tempfile.TemporaryFile() as f:
        saved = os.dup(2)
        os.dup2(f.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        for line in f.read().decode(errors="replace").splitlines():
            if line.startswith("# arenas allocated current"):
                return int(line.split("=")[1].replace(",", ""))
    return -1


def _malloc_mb() -> dict[str, int]:
    """glibc's view (mallinfo2): bytes in use by malloc and bytes free but kept, in MB ({} without glibc)."""
    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                   "fsmblks", "uordblks", "fordblks", "keepcost")]
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
        mi = libc.mallinfo2()
    except (OSError, AttributeError):
        return {}
    return {"in_use": round((mi.uordblks + mi.hblkhd) / 2**20), "free_kept": round(mi.fordblks / 2**20)}


MEMORY_SELECTIONS = {"HTTP, cookies, exposure": "H1,H2,H3,H4,H5,H6,H7,H8,H9,H10,H11,C1,C2,C3,C4,E1,E2,E3,E4",
                     "TLS": "T1,T2,T3,T4,T5,T6"}


def case_memory(size: int, labels: list[str], natives: list[str]) -> None:
    print(f"memory: {size} endpoints, each on its own address, results streamed (kept by nobody), "
          "peak memory (and resident now) after a third of them and after all, per family of controls")
    runs = [(label, only, native) for label, only in MEMORY_SELECTIONS.items() for native in natives
            if not labels or label.split(",")[0].lower() in labels]
    for label, only, native in runs:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            out = subprocess.run([sys.executable, __file__, "--memory-one", str(size), "--only", only,
                                  "--tmp", tmp, "--native", native], capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr[-2000:], file=sys.stderr)
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  {label} ({only}), malloc {native}: {r['third_mb']} MB after {size // 3}, {r['all_mb']} MB "
              f"after {size} (resident now: {r['third_now_mb']} / {r['all_now_mb']} MB; at the end, glibc "
              f"{r['malloc_mb']}); {r['detail']}", flush=True)


def case_shared(bed: Bed, size: int) -> None:
    front = "127.3.255.3"
    names = [f"s{i}.{DOMAIN}" for i in range(size)]
    log = bed.tmp / "shared-requests.log"
    with backend(bed, "shared", f"{log} stamp"), TcpProxy(routes(front)) as proxy:
        resolve = {(n, p): front for n in names for p in (TLS_PORT, HTTP_PORT)}
        settings = Settings(ca_bundle=bed.ca, resolve=resolve)
        t0 = time.monotonic()
        report = asyncio.run(Scanner(settings).run(bed.targets(names)))
        wall = time.monotonic() - t0
    logged = [x.split() for x in log.read_text().splitlines() if x.strip()]
    ended = sorted(float(f[0]) for f in logged)  # nginx writes its log line when a request ends
    began = sorted(float(f[0]) - float(f[1]) for f in logged)  # ... and knows when it read its first byte
    per_second: dict[int, int] = {}
    for s in ended:
        per_second[int(s)] = per_second.get(int(s), 0) + 1
    conns: dict[int, int] = {}
    for t, _ in proxy.accepted:
        conns[int(t)] = conns.get(int(t), 0) + 1
    accepted = sorted(t for t, _ in proxy.accepted)
    print(f"shared: {size} endpoints on one address, defaults ({settings.per_host_connections} connections, "
          f"{settings.rate_limit:g} requests/s per address): {wall:.1f} s; at most "
          f"{proxy.peak_by_address.get(front, 0)} connections open at once; HTTP requests in any sliding "
          f"second: at most {most_in_window(ended, 1.0)} by their end, {most_in_window(began, 1.0)} by their "
          f"start ({max(per_second.values(), default=0)} in one calendar second by their end); new "
          f"connections: at most {most_in_window(accepted, 1.0)} in any sliding second "
          f"({max(conns.values(), default=0)} in one calendar second); {len(ended)} HTTP requests in all "
          f"({len(ended) / wall:.1f} per second); {len(accepted)} TCP connections in all "
          f"({report.stats.get('http_connections')} HTTP, {report.stats.get('tls_connections')} TLS); "
          f"{sum(1 for t in report.targets if t.errors)} targets with errors")


def case_tls_cpu(bed: Bed, hosts: int) -> None:
    """CPU of the TLS collection alone: ``hosts`` hosts, each on its own address, no latency, T1-T6, in
    this process (the counting proxy's threads included), after a warm-up scan that pays the imports."""
    fronts = [f"127.2.252.{1 + i}" for i in range(hosts)]
    names = [f"c{i}.{DOMAIN}" for i in range(hosts)]
    settings = Settings(ca_bundle=bed.ca, only="T1,T2,T3,T4,T5,T6",
                        resolve={(n, TLS_PORT): f for n, f in zip(names, fronts, strict=True)})
    with backend(bed, "tls-cpu"), TcpProxy([r for f in fronts for r in routes(f, (TLS_PORT,))]) as proxy:
        asyncio.run(Scanner(settings).run(bed.targets(names[:1])))
        before, t0, seen = resource.getrusage(resource.RUSAGE_SELF), time.monotonic(), len(proxy.accepted)
        asyncio.run(Scanner(settings).run(bed.targets(names)))
        after, wall = resource.getrusage(resource.RUSAGE_SELF), time.monotonic() - t0
        conns = len(proxy.accepted) - seen
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    print(f"tls-cpu: {hosts} hosts, no latency, T1-T6: {wall:.2f} s, CPU {cpu:.2f} s "
          f"({cpu / hosts:.3f} s per endpoint), {conns / hosts:.0f} TCP connections per endpoint")


def main() -> int:
    global DELAY
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="latency,tls,shared,portfolio")
    ap.add_argument("--hosts", type=int, default=16)
    ap.add_argument("--delay", type=float, default=2000 * DELAY,
                    help="round trip in ms that the latency and tls cases' proxy adds (default 50)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000])
    ap.add_argument("--shared", type=int, default=50)
    ap.add_argument("--memory", type=int, default=90, help="endpoints of the memory case")
    ap.add_argument("--memory-families", nargs="*", default=[], choices=["http", "tls"],
                    help="families of the memory case (default: both)")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[None],
                    help="targets in flight of the portfolio case (default: the settings' default)")
    ap.add_argument("--processes", type=int, nargs="+", default=[None],
                    help="scanning processes of the portfolio case (default: the settings' automatic)")
    ap.add_argument("--native", nargs="+", default=["product"], choices=list(NATIVE),
                    help="glibc malloc tuning (portfolio: the first; memory: each in turn); default: the "
                         "engine's own (product), 'off' neither caps arenas nor trims")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--memory-one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--only", help=argparse.SUPPRESS)
    ap.add_argument("--tmp", help=argparse.SUPPRESS)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    DELAY = args.delay / 2000
    _native(args.native[0])
    if args.one:
        print(json.dumps(one_portfolio(args.one, Path(args.tmp), args.concurrency[0], args.processes[0])))
        return 0
    if args.memory_one:
        print(json.dumps(one_memory(args.memory_one, args.only, Path(args.tmp))))
        return 0
    cases = set(args.cases.split(","))
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        bed = Bed(Path(tmp))
        if "latency" in cases:
            case_latency(bed)
        if "tls" in cases:
            case_tls(bed, args.hosts)
        if "tls-cpu" in cases:
            case_tls_cpu(bed, min(args.hosts, 8))
        if "shared" in cases:
            case_shared(bed, args.shared)
    if "portfolio" in cases:
        case_portfolio(args.sizes, args.concurrency, args.native[0], args.processes)
    if "memory" in cases:
        case_memory(args.memory, args.memory_families, args.native)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
