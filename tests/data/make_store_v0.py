"""How ``store-v0.sqlite3`` was made: run once, with the code of commit 4db0ace (the store schema before
Alembic: tables from ``create_all``, one store-wide lock). Kept for the record, not run by the tests:
later code may not be able to run it, which is the point of the fixture.

    python tests/data/make_store_v0.py tests/data/store-v0.sqlite3
"""

from __future__ import annotations

import sqlite3
import sys

from scanner.history.store import Store
from tests.testbed.portfolio import make_result, make_target

MEMBERS = [{"id": "alpha", "name": "Alpha Schools", "contact": "sec@alpha.example"},
           {"id": "beta", "name": "Beta Learning", "contact": None}]
A1 = make_target("https://alpha.example/", "alpha")
A2 = make_target("alpha.example", "alpha")
B1 = make_target("https://beta.example/", "beta")


def main(path: str) -> None:
    store = Store(f"sqlite:///{path}")
    runs = [  # run 1: alpha lacks HSTS; run 2: fixed, but beta's certificate fails; run 3 interrupted
        [make_result(A1, {"H2": "fail"}), make_result(A2), make_result(B1)],
        [make_result(A1), make_result(A2), make_result(B1, {"T4": "fail"})],
    ]
    for results in runs:
        with store.start_run([A1, A2, B1], baseline_id="pledge4", baseline_version="1",
                             tool_version="0.1.0", members=MEMBERS) as rec:
            for r in results:
                rec.on_result(r, None)
    rec = store.start_run([A1, A2, B1], baseline_id="pledge4", baseline_version="1", tool_version="0.1.0",
                          members=MEMBERS)
    rec.on_result(make_result(A1, default="error"), None)
    store.finish_run(rec.run_id, complete=False)
    rec.lock.release()
    store.close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
    db.close()


if __name__ == "__main__":
    main(sys.argv[1])
