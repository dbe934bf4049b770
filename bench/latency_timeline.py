"""Timeline of bench_scale's latency case (one HTTPS host 50 ms away, whole baseline): when each unit of the
address's rate budget (an HTTP request or a TLS connection) starts and ends, when the windows open, and
the CPU of each thread by phase. A diagnostic, not a benchmark figure (the hooks cost a little CPU).

    flock /tmp/pledgescan-testbed.lock python bench/latency_timeline.py [--runs N] [--delay S] [--units]
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import os
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_scale as bs  # noqa: E402

from scanner.engine import Scanner  # noqa: E402
from scanner.net import fetcher as fetcher_mod  # noqa: E402
from scanner.net import politeness as pol  # noqa: E402
from scanner.settings import Settings  # noqa: E402
from scanner.testbed.tcp_proxy import TcpProxy  # noqa: E402

URL: contextvars.ContextVar[str | None] = contextvars.ContextVar("url", default=None)
T0 = 0.0
units: list[dict] = []
marks: list[tuple[float, str, float]] = []


def mark(what: str) -> None:
    marks.append((time.monotonic() - T0, what, time.process_time()))


def install() -> None:
    orig_start = pol.LocalAddressBudget._start
    orig_end = pol._LocalLease.end
    orig_fetch = fetcher_mod.Fetcher.fetch
    orig_connect = fetcher_mod._PoliteBackend.connect_tcp

    async def _start(self, address, open_s, bulk=False):  # type: ignore[no-untyped-def]
        asked = time.monotonic() - T0
        lease = await orig_start(self, address, open_s, bulk)
        u = {"asked": asked, "start": time.monotonic() - T0, "bulk": bulk, "url": URL.get(),
             "kind": "tls" if URL.get() is None else "http", "end": None}
        units.append(u)
        if isinstance(lease, pol._LocalLease):
            lease._u = u  # type: ignore[attr-defined]
        else:
            u["end"] = u["start"]
        return lease

    async def end(self):  # type: ignore[no-untyped-def]
        u = getattr(self, "_u", None)
        if u is not None and u["end"] is None:
            u["end"] = time.monotonic() - T0
        return await orig_end(self)

    async def fetch(self, url, **kw):  # type: ignore[no-untyped-def]
        URL.set(f"{kw.get('method', 'GET')} {url}")
        return await orig_fetch(self, url, **kw)

    async def connect_tcp(self, host, port, *a, **kw):  # type: ignore[no-untyped-def]
        mark(f"http connect_tcp {port} asked")
        s = await orig_connect(self, host, port, *a, **kw)
        mark(f"http connect_tcp {port} done")
        return s

    pol.LocalAddressBudget._start = _start  # type: ignore[method-assign]
    pol._LocalLease.end = end  # type: ignore[method-assign]
    fetcher_mod.Fetcher.fetch = fetch  # type: ignore[method-assign]
    fetcher_mod._PoliteBackend.connect_tcp = connect_tcp  # type: ignore[method-assign]


def thread_cpu() -> dict[str, float]:
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        f = stat.rsplit(")", 1)[1].split()
        key = "main" if int(task.name) == os.getpid() else name
        out[key] = out.get(key, 0.0) + (int(f[11]) + int(f[12])) / tick
    return out


def one(bed: bs.Bed, delay: float, show_units: bool) -> None:
    global T0
    units.clear()
    marks.clear()
    front, name = "127.3.255.1", f"one.{bs.DOMAIN}"
    with bs.backend(bed, "latency"), TcpProxy(bs.routes(front), delay=delay) as proxy:
        settings = Settings(ca_bundle=bed.ca, resolve={(name, p): front for p in (bs.TLS_PORT, bs.HTTP_PORT)})
        cpu0, th0 = time.process_time(), thread_cpu()
        T0 = time.monotonic()
        scanner = Scanner(settings)
        mark("scanner built")
        report = asyncio.run(scanner.run(bed.targets([name])))
        wall = time.monotonic() - T0
        cpu = time.process_time() - cpu0
        th1 = thread_cpu()
    accepted = sorted(t - T0 for t, _ in proxy.accepted)
    (t,) = report.targets
    print(f"\n== {wall:.3f} s wall, {cpu:.3f} s CPU, {len(accepted)} TCP, grade {t.grade}, "
          f"decided {t.decided}, "
          f"{report.stats['http_requests']} HTTP requests, {report.stats['tls_connections']} TLS")
    print("thread CPU:", {k: round(v - th0.get(k, 0.0), 2) for k, v in th1.items()
                          if v - th0.get(k, 0.0) > 0})
    print("TCP accepted at:", [round(a, 3) for a in accepted])
    for at, what, c in marks[:6]:
        print(f"  mark {at:.3f} {what} (process CPU {c - cpu0:.3f})")
    us = sorted(units, key=lambda u: u["start"])
    http = [u for u in us if u["kind"] == "http"]
    bulk = [u for u in http if u["bulk"]]
    tls = [u for u in us if u["kind"] == "tls"]
    print(f"units: {len(us)} ({len(bulk)} bulk, {len(http) - len(bulk)} other HTTP, {len(tls)} TLS)")
    # windows: units that started before the first unit could reuse a slot
    first_end = min(u["end"] for u in us if u["end"] is not None)
    w1 = [u for u in us if u["start"] < first_end + 1.0]
    w2 = [u for u in us if u["start"] >= first_end + 1.0]
    for label, w in (("window 1", w1), ("window 2", w2)):
        if not w:
            continue
        b = [u for u in w if u["bulk"]]
        ends = sorted(u["end"] for u in w if u["end"] is not None)
        print(f"  {label}: {len(w)} units ({len(b)} bulk, {sum(u['kind'] == 'tls' for u in w)} TLS), starts "
              f"{w[0]['start']:.3f}-{w[-1]['start']:.3f}, ends {ends[0]:.3f}-{ends[-1]:.3f}")
        if b:
            be = sorted(u["end"] for u in b)
            print(f"    bulk starts {b[0]['start']:.3f}-{b[-1]['start']:.3f}, ends {be[0]:.3f}-{be[-1]:.3f}; "
                  f"deciles of bulk ends: {[round(be[int(i * (len(be) - 1) / 10)], 3) for i in range(11)]}")
    last = max((u["end"] or 0) for u in us)
    print(f"  last unit ends {last:.3f}; scan returns {wall:.3f} (tail {wall - last:.3f})")
    nb = [u for u in us if not u["bulk"]]
    print("  non-bulk units (start-end):", [(u["kind"][0] + (u["url"] or "").split(" ")[0][:1],
                                             round(u["start"], 3), round(u["end"] or -1, 3)) for u in nb])
    if show_units:
        for u in us:
            print(f"    {u['asked']:.3f} {u['start']:.3f} {u['end'] or -1:.3f} {'B' if u['bulk'] else ' '} "
                  f"{u['kind']} {u['url']}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--delay", type=float, default=bs.DELAY, help="seconds each way")
    ap.add_argument("--units", action="store_true")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    install()
    with tempfile.TemporaryDirectory(prefix="bench-timeline-") as tmp:
        bed = bs.Bed(Path(tmp))
        for _ in range(args.runs):
            one(bed, args.delay, args.units)
    _ = threading
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
