"""The notify plan at portfolio scale: what ``pledgescan notify`` computes for every member (new, due,
waiting and fixed problems, each open since the start of its unbroken streak of failures) over a
store holding weeks of runs. Timed, with CPU: the plan reads each member's history from the store.

    python bench/bench_notify.py                        # 300 members (3 endpoints each), 20 weekly runs
    python bench/bench_notify.py --members 1000 --runs 52

The store is a new SQLite file in a temporary folder, filled through the store's own recorder with
results built as a scan gives them (``tests/notify_helpers.py``: failing and passing controls).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import update  # noqa: E402

import tests.notify_helpers as nh  # noqa: E402
from scanner.history.members import parse_members  # noqa: E402
from scanner.history.store import RunRow, Store  # noqa: E402
from scanner.models import Target  # noqa: E402
from scanner.notify.plan import plan_all  # noqa: E402
from scanner.notify.sent import SentLog  # noqa: E402


def fill(store: Store, n: int, runs: int) -> list[dict]:
    """``runs`` weekly runs of ``n`` members; half the endpoints fail T4 and H2, the others C1."""
    yaml = "members:\n" + "".join(
        f"  - name: Member {i}\n    id: m{i}\n    contact: it@m{i}.example\n"
        f"    endpoints: [https://a.m{i}.example/, https://b.m{i}.example/, https://c.m{i}.example/]\n"
        for i in range(n))
    members = [m.model_dump(mode="json") for m in parse_members(yaml, "members.yaml").members]
    targets = [Target(kind="endpoint", target=f"https://{h}.m{i}.example/", host=f"{h}.m{i}.example",
                      port=443, member=f"m{i}") for i in range(n) for h in "abc"]
    results = [nh.result(t.member or "", t.target, {"H2": "fail", "T4": "fail"} if k % 2 else {"C1": "fail"})
               for k, t in enumerate(targets)]
    for week in range(runs):
        rec = store.start_run(targets, baseline_id="pledge4", baseline_version="1", tool_version="0",
                              members=members)
        with rec:
            for res in results:
                rec.on_result(res)
        with store.engine.begin() as c:
            c.execute(update(RunRow).where(RunRow.id == rec.run_id).values(started_at=nh.day(7 * week)))
    return members


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--members", type=int, default=300)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'history.db'}")
        t0 = time.monotonic()
        members = fill(store, args.members, args.runs)
        built = time.monotonic() - t0
        run = store.run("latest")
        t0, cpu0 = time.monotonic(), time.process_time()
        plans = plan_all(store, SentLog(store), run, members, nh.day(7 * args.runs))
        wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    print(f"notify plan: {args.members} members x {args.runs} weekly runs (SQLite, store built in "
          f"{built:.1f} s): {wall:.2f} s, CPU {cpu:.2f} s, {1000 * wall / args.members:.1f} ms per member; "
          f"{sum(len(p.new) for p in plans)} new problems")
    return 0


if __name__ == "__main__":
    sys.exit(main())
