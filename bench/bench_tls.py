"""Benchmark: pledgescan's TLS family vs a full ``python -m sslyze`` scan of the same local test servers.

Starts the TLS testbed (Python servers on 127.0.10.0/24, certificates minted on the spot), then prints,
for the same hosts, the wall time and the number of TLS connections of

* pledgescan (engine, T1-T6 only): connections as counted by the collector (exact for the fast prober;
  sslyze does not expose a count, so its part is estimated from the suites, curves and probes run, see
  scanner/collectors/tls/conversion.py);
  once as the real command line in its own process (the headline, like sslyze) and once through the
  engine in-process;
* ``python -m sslyze`` with every scan command (subprocess), whose connection count is estimated the same
  way from its JSON output.

Both run with sslyze's default per-host connection cap. pledgescan's fast prober
(scanner/collectors/tls/prober.py) settles protocols and suites in a few handshakes; ``--full`` also times
pledgescan with it off. Usage: ``python bench/bench_tls.py [--sites good,legacy,...] [--full]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scanner.collectors import tls as tls_collector  # noqa: E402
from scanner.engine import Scanner  # noqa: E402
from tests.testbed.tls import TLSBed, start_tls_bed  # noqa: E402

DEFAULT_SITES = ["good", "legacy", "rsa_kx", "cbc_only", "expired", "self_signed", "missing_intermediate"]


def sslyze_per_server_limit() -> int:
    """sslyze's default per-server connection cap (``Scanner(per_server_concurrent_connections_limit=None)``),
    so pledgescan runs with the same cap and the comparison is fair."""
    from scanner.collectors.tls.sslyze_adapter import default_per_server_connections

    return default_per_server_connections()


def bench_pledgescan(
    bed: TLSBed, keys: list[str], per_host: int, listing: str = "classes"
) -> tuple[float, int]:
    targets = [bed.sites[k].target() for k in keys]
    tls_collector.LISTING = listing  # type: ignore[assignment]
    try:
        t0 = time.monotonic()
        report = asyncio.run(Scanner(bed.settings(per_host_connections=per_host)).run(targets))
        wall = time.monotonic() - t0
    finally:
        tls_collector.LISTING = "classes"
    return wall, int(report.stats.get("tls_connections", 0))


def bench_pledgescan_cli(bed: TLSBed, keys: list[str], per_host: int, workdir: Path) -> tuple[float, int]:
    """The real command line in its own process, as sslyze is run: interpreter start, imports and the
    history store (a throw-away SQLite file here) count."""
    out = workdir / "pledgescan.json"
    cmd = [
        sys.executable, "-m", "scanner", "scan", *[bed.sites[k].url for k in keys], *bed.resolve_args(*keys),
        "--ca-bundle", str(bed.ca_bundle), "--only", "T1,T2,T3,T4,T5,T6", "--timeout", "5",
        "--rate-limit", "0", "--per-host-connections", str(per_host),
        "--format", "json", "-o", str(out), "-q", "--store", f"sqlite:///{workdir / 'history.db'}",
    ]  # fmt: skip
    t0 = time.monotonic()
    subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - t0
    try:
        return wall, int(json.loads(out.read_text())["stats"]["tls_connections"])
    except (OSError, ValueError, KeyError, TypeError):
        return wall, -1


def _estimate_sslyze_connections(data: dict) -> int:
    """Same estimate as the collector, over sslyze's JSON: one per suite tested, fixed costs otherwise."""
    total = 0
    for server in data.get("server_scan_results", []):
        total += 4  # connectivity test
        result = server.get("scan_result") or {}
        for name, attempt in result.items():
            res = (attempt or {}).get("result") or {}
            if name.endswith("_cipher_suites"):
                total += len(res.get("accepted_cipher_suites", [])) + len(
                    res.get("rejected_cipher_suites", [])
                )
            elif name == "elliptic_curves":
                total += 1 + len(res.get("supported_curves") or []) + len(res.get("rejected_curves") or [])
            elif name == "robot":
                total += 12
            elif name == "session_renegotiation":
                total += 2 + int(res.get("client_renegotiations_success_count") or 0)
            elif name == "session_resumption":
                total += 12
            else:
                total += 4 if name == "certificate_info" else 1
    return total


def bench_sslyze(bed: TLSBed, keys: list[str], workdir: Path) -> tuple[float, int]:
    out = workdir / "sslyze.json"
    servers = [f"{bed.sites[k].name}:{bed.sites[k].port}{{{bed.sites[k].address}}}" for k in keys]
    cmd = [
        sys.executable,
        "-m",
        "sslyze",
        f"--json_out={out}",
        f"--certinfo_ca_file={bed.ca_bundle}",
        "--quiet",
        *servers,
    ]
    t0 = time.monotonic()
    subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - t0
    try:
        data = json.loads(out.read_text())
    except (OSError, ValueError):
        return wall, -1
    return wall, _estimate_sslyze_connections(data)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", default=",".join(DEFAULT_SITES), help="comma-separated testbed site keys")
    ap.add_argument("--full", action="store_true",
                    help="also time pledgescan listing every accepted suite (by elimination, and by sslyze)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")  # certifi's negative-serial warning from sslyze's trust store
    keys = [k.strip() for k in args.sites.split(",") if k.strip()]
    per_host = sslyze_per_server_limit()
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as tmp:
        bed = start_tls_bed(Path(tmp))
        try:
            c_wall, c_conn = bench_pledgescan_cli(bed, keys, per_host, Path(tmp))
            p_wall, p_conn = bench_pledgescan(bed, keys, per_host)
            a_wall, a_conn = bench_pledgescan(bed, keys, per_host, "all") if args.full else (0.0, 0)
            f_wall, f_conn = bench_pledgescan(bed, keys, per_host, "sslyze") if args.full else (0.0, 0)
            s_wall, s_conn = bench_sslyze(bed, keys, Path(tmp))
        finally:
            bed.stop()

    def row(label: str, wall: float, conns: int) -> None:
        print(f"{label:<48}{wall:>15.2f}{conns if conns >= 0 else 'n/a':>18}")

    print(f"TLS benchmark over {len(keys)} local hosts ({', '.join(keys)}), "
          f"{per_host} connections per host for both (sslyze's default)")
    print(f"{'tool':<48}{'wall time (s)':>15}{'TLS connections':>18}")
    row("pledgescan scan, process (T1-T6, fast prober)", c_wall, c_conn)
    row("pledgescan engine, in-process (fast prober)", p_wall, p_conn)
    if args.full:
        row("pledgescan engine, in-process (every suite listed)", a_wall, a_conn)
        row("pledgescan engine, in-process (sslyze suites)", f_wall, f_conn)
    row("python -m sslyze, process (all commands)", s_wall, s_conn)
    conn_ratio = f"{c_conn / s_conn:.2f}" if s_conn > 0 and c_conn >= 0 else "n/a"
    print(f"ratio pledgescan / sslyze (process vs process): wall time {c_wall / s_wall:.2f}, "
          f"connections {conn_ratio}")
    print("Connection counts: the fast prober's are exact; sslyze's are estimates (it exposes none), "
          "see scanner/collectors/tls/conversion.py.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
