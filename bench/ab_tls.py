"""Alternating A/B of the ``tls`` case's ``pledgescan scan`` alone (bench_scale.py's command, without
sslyze): the same nginx and 50 ms proxies, one run of each checkout in turn, ``--runs`` rounds, so that
every side sees the same minutes of this machine's drifting speed. Each checkout's code runs (the command
starts in its directory); its CPU, context switches and the proxy's timeline are per run.

    python bench/ab_tls.py /tmp/ab-base . --runs 6      # main's worktree against this one
    python bench/ab_tls.py . --runs 3 --sslyze          # and sslyze's time in the same minutes

Uses 127.16.0.0/16 (the proxies 127.16.254.N, nginx 127.16.255.2), not bench_scale's addresses.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_scale import DELAY, DOMAIN, TLS_PORT, Bed  # noqa: E402
from scanner.testbed.tcp_proxy import TcpProxy  # noqa: E402

BACKEND = "127.16.255.2"


def one(side: Path, bed: Bed, proxy: TcpProxy, names: list[str], resolve: list[str], k: int) -> dict:
    out = bed.tmp / f"r{k}.json"
    cmd = [sys.executable, "-m", "scanner", "scan", *[f"https://{n}:{TLS_PORT}/" for n in names], *resolve,
           "--ca-bundle", str(bed.ca), "--only", "T1,T2,T3,T4,T5,T6", "--format", "json", "-o", str(out),
           "-q", "--store", f"sqlite:///{bed.tmp / f'h{k}.db'}"]
    n0 = len(proxy.accepted)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    subprocess.run(cmd, cwd=side, capture_output=True, text=True, timeout=600, check=False)
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    verdicts = {t["target"]: {c["id"]: c["status"] for c in t["controls"]}
                for t in json.loads(out.read_text())["targets"]} if out.exists() else {}
    starts = [a for a, _ in proxy.accepted[n0:]]
    return {"wall": wall, "cpu": ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime,
            "switches": ru1.ru_nvcsw + ru1.ru_nivcsw - ru0.ru_nvcsw - ru0.ru_nivcsw,
            "connections": len(starts), "first": min(starts, default=t0) - t0,
            "verdicts": sorted({json.dumps(v, sort_keys=True) for v in verdicts.values()}),
            "targets": len(verdicts)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sides", nargs="+", type=Path, help="checkouts whose code runs, in turn")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--hosts", type=int, default=16)
    ap.add_argument("--sslyze", action="store_true", help="then python -m sslyze over the same hosts")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ab-tls-") as tmp:
        bed = Bed(Path(tmp))
        fronts = [f"127.16.254.{1 + i}" for i in range(args.hosts)]
        names = [f"t{i}.{DOMAIN}" for i in range(args.hosts)]
        resolve = [a for n, f in zip(names, fronts, strict=True)
                   for a in ("--resolve", f"{n}:{TLS_PORT}:{f}")]
        routes = [((f, TLS_PORT), (BACKEND, TLS_PORT)) for f in fronts]
        rows: dict[Path, list[dict]] = {s: [] for s in args.sides}
        with bed.nginx("ab-tls", [f"{BACKEND}:{TLS_PORT} ssl"], [(BACKEND, TLS_PORT)]), \
                TcpProxy(routes, delay=DELAY) as proxy:
            k = 0
            for _ in range(args.runs):
                for side in args.sides:
                    k += 1
                    r = one(side.resolve(), bed, proxy, names, resolve, k)
                    rows[side].append(r)
                    print(f"{side}: wall {r['wall']:.2f} s, CPU {r['cpu']:.2f} s, {r['switches']} switches, "
                          f"{r['connections']} connections, first at {r['first']:.2f} s, "
                          f"{r['targets']} targets, verdicts {r['verdicts']}", flush=True)
            if args.sslyze:
                servers = [f"{n}:{TLS_PORT}{{{f}}}" for n, f in zip(names, fronts, strict=True)]
                t0 = time.monotonic()
                subprocess.run([sys.executable, "-m", "sslyze", f"--json_out={bed.tmp / 'sslyze.json'}",
                                f"--certinfo_ca_file={bed.ca}", "--quiet", *servers],
                               capture_output=True, text=True, timeout=1800, check=False)
                print(f"python -m sslyze: {time.monotonic() - t0:.2f} s")
    for side, rs in rows.items():
        print(f"{side}: median wall {statistics.median(r['wall'] for r in rs):.3f} s, CPU "
              f"{statistics.median(r['cpu'] for r in rs):.3f} s over {len(rs)} runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
