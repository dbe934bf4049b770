"""Portfolio benchmark: a members file of a few hundred endpoints (virtual host names mapped with
``--resolve`` onto a handful of local HTTPS servers), scanned with history and rendered as the portfolio.

Prints, per inventory size: wall time (scan + store + portfolio), time per target and peak memory
(max RSS of a fresh process per size), so that growth with the size of the inventory is visible.

    python bench/bench_portfolio.py                  # sizes 50 150 300, checks H2 (HTTP only)
    python bench/bench_portfolio.py --sizes 100 400 --only H1,H2,T4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SERVERS = 4
MEMBER_SIZE = 3  # endpoints per member


def one(size: int, only: str, concurrency: int) -> dict[str, float]:
    """Scan ``size`` endpoints in this process; return the measurements."""
    import trustme

    from scanner.engine import Scanner
    from scanner.history.members import load_members
    from scanner.history.portfolio import StoredScan, write_portfolio
    from scanner.history.store import Store
    from scanner.settings import Settings
    from tests.testbed.portfolio import ServerConfig, TLSServer, free_port, write_members

    tmp = Path(tempfile.mkdtemp(prefix="bench-portfolio-"))
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    names = [f"h{i}.m{i // MEMBER_SIZE}.bench.test" for i in range(size)]
    servers, resolve = [], {}
    for s in range(SERVERS):
        addr = f"127.0.50.{100 + s}"
        port = free_port(addr)
        mine = names[s::SERVERS]
        servers.append(TLSServer(ca, addr, port, mine,
                                 ServerConfig({"Strict-Transport-Security": "max-age=63072000"})).start())
        resolve.update({(n, port): addr for n in mine})
    port_of = {n: p for (n, p) in resolve}
    members = {}
    for n in names:
        m = n.split(".")[1]
        members.setdefault(m, []).append(f"https://{n}:{port_of[n]}/")
    write_members(tmp / "members.yaml", [{"name": f"Member {m}", "id": m, "endpoints": eps}
                                         for m, eps in members.items()])
    try:
        t0 = time.monotonic()
        inv = load_members(tmp / "members.yaml")
        settings = Settings(ca_bundle=tmp / "ca.pem", resolve=resolve, only=frozenset(only.split(",")),
                            concurrency=concurrency, rate_limit=0, timeout=10)
        store = Store(f"sqlite:///{tmp / 'history.sqlite3'}")
        stored = StoredScan.start(store, inv.targets, settings, inv)
        report = asyncio.run(Scanner(settings).run(stored.targets, on_result=stored.on_result))
        run = stored.finish(report.stats)
        del report
        t_scan = time.monotonic() - t0
        write_portfolio(store, run.id, tmp / "out")
        wall = time.monotonic() - t0
    finally:
        for s in servers:
            s.stop()
    return {"targets": size, "members": len(members), "wall_s": round(wall, 2), "scan_s": round(t_scan, 2),
            "render_s": round(wall - t_scan, 2), "per_target_ms": round(1000 * wall / size, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[50, 150, 300])
    ap.add_argument("--only", default="H2", help="check or control IDs (comma-separated)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.only, args.concurrency)))
        return
    print(f"portfolio benchmark: checks {args.only}, {SERVERS} servers, concurrency {args.concurrency}")
    print(f"{'targets':>8} {'members':>8} {'wall s':>8} {'scan s':>8} {'render s':>9} {'ms/target':>10} "
          f"{'peak MB':>8}")
    for size in args.sizes:  # a fresh process per size: peak RSS is that size's alone
        out = subprocess.run([sys.executable, __file__, "--one", str(size), "--only", args.only,
                              "--concurrency", str(args.concurrency)], capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr[-2000:], file=sys.stderr)
            sys.exit(1)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{r['targets']:>8} {r['members']:>8} {r['wall_s']:>8} {r['scan_s']:>8} {r['render_s']:>9} "
              f"{r['per_target_ms']:>10} {r['peak_rss_mb']:>8}")


if __name__ == "__main__":
    main()
