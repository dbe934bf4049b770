"""History through the real CLI and real local HTTPS servers (127.0.110.0/24): a member's server goes
down for a run and comes back worse while the members file is edited; a one-URL scan runs while a
portfolio run holds its inventory's lock; ``scan --members F --resume`` after a kill."""

from __future__ import annotations

import json
import signal
import subprocess
import time

from scanner.history.store import Store
from tests.testbed.cli import PLEDGESCAN
from tests.testbed.portfolio import (
    HSTS,
    ServerConfig,
    TLSServer,
    free_port,
    pledgescan,
    scan_args,
    write_members,
)

ADDR = "127.0.110.{}"


def test_outage_then_back_worse_while_the_inventory_changes(store_url: str, ca, tmp_path) -> None:
    authority, ca_path = ca
    store = store_url
    port = free_port(ADDR.format(1))
    alpha = TLSServer(authority, ADDR.format(1), port, ["alpha.test"], ServerConfig(HSTS)).start()
    beta = TLSServer(authority, ADDR.format(2), port, ["beta.test", "www.beta.test"],
                     ServerConfig(HSTS)).start()
    gamma = TLSServer(authority, ADDR.format(3), port, ["gamma.test"], ServerConfig({})).start()
    servers = {h: (ADDR.format(n), port) for h, n in (("alpha.test", 1), ("beta.test", 2),
                                                     ("www.beta.test", 2), ("gamma.test", 3))}
    members = tmp_path / "members.yaml"
    try:
        write_members(members, [{"name": "Alpha", "endpoints": [f"https://alpha.test:{port}/"]},
                                {"name": "Beta", "endpoints": [f"https://beta.test:{port}/"]}])
        first = pledgescan(*scan_args(store, servers, ca_path, "--members", str(members), "-q",
                                      "-o", str(tmp_path / "run1"), timeout=3))
        assert first.returncode == 0, first.stderr
        # When alpha's only server stops answering
        alpha.stop()
        second = pledgescan(*scan_args(store, servers, ca_path, "--members", str(members), "-q",
                                       "-o", str(tmp_path / "run2"), "--fail-on-regression", timeout=3))
        # Then that is no regression, and no improvement either
        assert second.returncode == 0, second.stderr
        index = (tmp_path / "run2" / "index.html").read_text()
        assert 'class="unreachable">unreachable since' in index and "grade A+)" in index
        assert "A+ → ?" not in index and 'class="better"' not in index
        table = pledgescan("diff", "--store", store)
        assert "1 unreachable" in table.stdout and "members: 0 worse, 0 better" in table.stdout
        assert "pass -> error" not in table.stdout
        assert pledgescan("diff", "--store", store, "--fail-on-regression").returncode == 0
        # but --fail-on-unreachable says a target that answered no longer does
        gate = pledgescan("diff", "--store", store, "--fail-on-unreachable")
        assert gate.returncode == 1
        doc = json.loads(pledgescan("diff", "--store", store, "--format", "json").stdout)
        [alpha_doc] = doc["members"]
        assert alpha_doc["state"] == "unreachable" and doc["counts"]["unreachable"] == 1
        assert alpha_doc["targets"][0]["grade_before"] == "A+" and not doc["regressed"]
        # When alpha comes back without HSTS, beta gains an endpoint and gamma joins (the file is edited)
        alpha.cfg = ServerConfig({})
        alpha.start()
        write_members(members, [{"name": "Alpha", "endpoints": [f"https://alpha.test:{port}/"]},
                                {"name": "Beta", "endpoints": [f"https://beta.test:{port}/",
                                                               f"https://www.beta.test:{port}/"]},
                                {"name": "Gamma", "endpoints": [f"https://gamma.test:{port}/"]}])
        third = pledgescan(*scan_args(store, servers, ca_path, "--members", str(members), "-q",
                                      "-o", str(tmp_path / "run3"), "--fail-on-regression",
                                      "--fail-on-unreachable", timeout=3))
        # Then the regression is found against alpha's last decided result (run 1), despite the edit
        assert third.returncode == 1 and "run 3 regressed since run 2" in third.stderr, third.stderr
        assert "no longer do" not in third.stderr
        doc = json.loads(pledgescan("diff", "--store", store, "--format", "json").stdout)
        by = {m["member"]: m for m in doc["members"]}
        assert [(c["control"], c["change"]) for c in by["alpha"]["controls"]] == [("H2", "newly_failing")]
        assert by["alpha"]["targets"][0]["state"] == "back"
        assert by["alpha"]["targets"][0]["compared_run"] == 1
        # and the new member and the new endpoint are listed as new, not as changes
        assert by["gamma"]["state"] == "new" and by["gamma"]["regressed"] is False
        assert [t["state"] for t in by["beta"]["targets"]] == ["new"] and not by["beta"]["regressed"]
        assert doc["counts"]["members_added"] == 1 and doc["counts"]["targets_added"] == 2
        # the member page tells the control's history
        page = (tmp_path / "run3" / "alpha.html").read_text()
        assert "Control history" in page and "failing since" in page and "1 scan" in page
    finally:
        for s in (alpha, beta, gamma):
            s.stop()


def _runs(store_url: str) -> list[tuple[int, int, int, str]]:
    s = Store(store_url)
    try:
        return [(r.id, r.targets_done, r.targets_total, r.status) for r in reversed(s.runs())]
    finally:
        s.close()


def test_lock_per_inventory_and_members_resume_after_a_kill(ca, tmp_path) -> None:
    authority, ca_path = ca
    store = f"sqlite:///{tmp_path / 'h.sqlite3'}"
    port = free_port(ADDR.format(10))
    names = [f"site{i}.slow.test" for i in range(8)]
    slow = TLSServer(authority, ADDR.format(10), port, [*names, "self.test"],
                     ServerConfig(HSTS, delay=0.7)).start()
    servers = {n: (ADDR.format(10), port) for n in [*names, "self.test"]}
    members = write_members(tmp_path / "members.yaml", [
        {"name": f"Member {i}", "endpoints": [f"https://{n}:{port}/"]} for i, n in enumerate(names)])
    portfolio = scan_args(store, servers, ca_path, "--members", str(members), "-q", "--concurrency", "1",
                          "-o", str(tmp_path / "out"), timeout=3)
    try:
        proc = subprocess.Popen([*PLEDGESCAN, *portfolio], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 90
            while (not _runs(store) or _runs(store)[0][1] < 1) and time.monotonic() < deadline \
                    and proc.poll() is None:
                time.sleep(0.2)
            assert _runs(store)[0][1] >= 1, proc.stderr.read() if proc.poll() is not None else "no result"
            # Given the portfolio run in progress, a member's one-URL scan on the same store proceeds at once
            one = pledgescan(*scan_args(store, servers, ca_path, f"https://self.test:{port}/", "-q",
                                        "--lock-wait", "0", "--format", "json",
                                        "-o", str(tmp_path / "s.json"), timeout=3))
            assert one.returncode == 0, one.stderr
            # while a second run of the same members file is refused, naming the running one
            again = pledgescan(*scan_args(store, servers, ca_path, "--members", str(members),
                                          "--lock-wait", "0", "-o", str(tmp_path / "o2"), timeout=3))
            assert again.returncode == 3
            assert "another run of this inventory is in progress: run 1 " in again.stderr
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        [(rid, done, total, status), self_run] = _runs(store)
        assert rid == 1 and 1 <= done < total == 8 and status == "incomplete"  # killed while running
        assert self_run[1:] == (1, 1, "complete")
        # (the delay only served to catch the run mid-way: the runs below need none, and take its time)
        slow.restart(ServerConfig(HSTS))
        # When the cron line runs again with --resume, Then it finishes the interrupted run of that file
        res = pledgescan(*portfolio, "--resume")
        assert res.returncode == 0, res.stderr
        assert _runs(store)[0] == (1, 8, 8, "complete") and len(_runs(store)) == 2
        assert (tmp_path / "out" / "index.html").exists()
        # and the next --resume, with nothing interrupted, starts a new run
        nxt = pledgescan(*portfolio, "--resume")
        assert nxt.returncode == 0, nxt.stderr
        assert _runs(store)[2] == (3, 8, 8, "complete")
    finally:
        slow.stop()
