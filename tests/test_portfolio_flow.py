"""The secretariat's flow through the real CLI and real local HTTPS servers (trustme certificates):
two runs with a server changed in between (diff, --fail-on-regression, trend), a run killed mid-way
and resumed, a second run refused while the store is locked, the same on PostgreSQL."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

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

ADDR = "127.0.50.{}"


def test_two_runs_diff_regression_and_trend(store_url: str, ca, tmp_path) -> None:
    authority, ca_path = ca
    store = store_url
    # Given three members on three local servers; gamma lacks HSTS at first
    port = free_port(ADDR.format(1))  # the same port on three addresses (free ones: parallel runs)
    alpha = TLSServer(authority, ADDR.format(1), port, ["alpha.test", "www.alpha.test"],
                      ServerConfig(HSTS)).start()
    beta = TLSServer(authority, ADDR.format(2), port, ["beta.test"], ServerConfig(HSTS)).start()
    gamma = TLSServer(authority, ADDR.format(3), port, ["gamma.test"], ServerConfig({})).start()
    try:
        members = write_members(tmp_path / "members.yaml", [
            {"name": "Alpha Schools", "contact": "sec@alpha.test", "domains": ["alpha.test"],
             "endpoints": [f"https://alpha.test:{port}/", f"https://www.alpha.test:{port}/"]},
            {"name": "Beta Learning", "id": "beta", "endpoints": [f"https://beta.test:{port}/"]},
            {"name": "Gamma", "endpoints": [f"https://gamma.test:{port}/"]},
        ])
        servers = {"alpha.test": (ADDR.format(1), port), "www.alpha.test": (ADDR.format(1), port),
                   "beta.test": (ADDR.format(2), port), "gamma.test": (ADDR.format(3), port)}
        assert pledgescan("members", "check", str(members)).returncode == 0
        first = pledgescan(*scan_args(store, servers, ca_path, "--members", str(members),
                                      "-o", str(tmp_path / "run1"), "-q",
                                      "--fail-on-regression"))
        assert first.returncode == 0, first.stderr
        # When beta drops HSTS and gamma adds it
        beta.restart(ServerConfig({}))
        gamma.restart(ServerConfig(HSTS))
        second = pledgescan(*scan_args(store, servers, ca_path, "--members", str(members),
                                       "-o", str(tmp_path / "run2"),
                                       "--fail-on-regression"))
        # Then the second scan exits 1 for the regression and says why
        assert second.returncode == 1, second.stderr
        assert "regressed since run" in second.stderr
        # and the diff shows beta's regression and gamma's fix
        d = pledgescan("diff", "--store", store, "--format", "json")
        assert d.returncode == 0, d.stderr
        doc = json.loads(d.stdout)
        changes = {(m["member"], c["control"], c["change"]) for m in doc["members"] for c in m["controls"]}
        assert changes == {("beta", "H2", "newly_failing"), ("gamma", "H2", "fixed")}
        assert doc["regressed"] is True
        assert pledgescan("diff", "--store", store, "--fail-on-regression").returncode == 1
        table = pledgescan("diff", "--store", store)
        assert "newly failing: pass -> fail" in table.stdout and "Beta Learning" in table.stdout
        # the portfolio shows the change and a trend over both runs
        out = tmp_path / "run2"
        assert {p.name for p in out.iterdir()} == {"index.html", "alpha-schools.html", "beta.html",
                                                    "gamma.html", "scan.json", "scan.csv", "scan.xlsx"}
        index = (out / "index.html").read_text()
        assert "1 newly failing" in index and "1 fixed" in index
        assert "run 1 " in index and "run 2 " in index  # the trend's two points
        assert "sec@alpha.test" in (out / "alpha-schools.html").read_text()
        scan_json = json.loads((out / "scan.json").read_text())
        assert {t["member"] for t in scan_json["targets"]} == {"alpha-schools", "beta", "gamma"}
        # history lists both runs; report re-renders the first without scanning
        hist = json.loads(pledgescan("history", "--store", store, "--format", "json").stdout)
        assert [h["run"] for h in hist] == [2, 1] and hist[0]["grades"]["beta"] == "F"
        beta_hist = json.loads(pledgescan("history", "--store", store, "--member", "beta",
                                          "--format", "json").stdout)
        assert [h["grades"]["beta"] for h in beta_hist] == ["F", "A+"]
        rep = pledgescan("report", "1", "--store", store, "-o", str(tmp_path / "again"))
        assert rep.returncode == 0, rep.stderr
        assert "first run" in (tmp_path / "again" / "index.html").read_text()
    finally:
        for s in (alpha, beta, gamma):
            s.stop()


def _done(store_url: str) -> tuple[int, int, str]:
    s = Store(store_url)
    try:
        runs = s.runs(limit=1)
        return (runs[0].targets_done, runs[0].targets_total, runs[0].status) if runs else (0, 0, "")
    finally:
        s.close()


def test_killed_run_resumes_and_concurrent_run_is_refused(ca, tmp_path) -> None:
    authority, ca_path = ca
    store = f"sqlite:///{tmp_path / 'h.sqlite3'}"
    port = free_port(ADDR.format(10))
    names = [f"site{i}.slow.test" for i in range(6)]
    # Given a slow server (each response delayed) behind six member endpoints
    slow = TLSServer(authority, ADDR.format(10), port, names, ServerConfig(HSTS, delay=0.7)).start()
    try:
        members = write_members(tmp_path / "members.yaml", [
            {"name": f"Member {i}", "endpoints": [f"https://{n}:{port}/"]} for i, n in enumerate(names)])
        servers = {n: (ADDR.format(10), port) for n in names}
        args = scan_args(store, servers, ca_path, "--members", str(members), "-o", str(tmp_path / "out"),
                         "-q", "--concurrency", "1")
        proc = subprocess.Popen([*PLEDGESCAN, *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            # When the first target is stored
            deadline = time.monotonic() + 90
            while _done(store)[0] < 1 and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.2)
            assert _done(store)[0] >= 1, proc.stderr.read() if proc.poll() is not None else "no result"
            # a second run on the same store is refused while the first holds the lock
            other = pledgescan(*scan_args(store, servers, ca_path, "--members", str(members),
                                          "-o", str(tmp_path / "o2"),
                                          "--lock-wait", "0"))
            assert other.returncode == 3
            assert "another run of this inventory is in progress: run 1 " in other.stderr
            # and the first is killed mid-run
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        done, total, status = _done(store)
        assert 1 <= done < total == 6 and status == "incomplete"
        slow.restart(ServerConfig(HSTS))  # the delay only served to catch the run mid-way
        # Then --resume finishes the remaining targets of the same run
        res = pledgescan("scan", "--resume", "--store", store, "-q", "-o", str(tmp_path / "out"))
        assert res.returncode == 0, res.stderr
        assert _done(store) == (6, 6, "complete")
        s = Store(store)
        assert [r.id for r in s.runs()] == [1] and [r.status for r in s.runs()] == ["complete"]
        s.close()
        assert len(list((tmp_path / "out").glob("member-*.html"))) == 6
        nothing = pledgescan("scan", "--resume", "--store", store)
        assert nothing.returncode == 2 and "nothing to resume" in nothing.stderr
    finally:
        slow.stop()


def test_bad_members_file_is_one_clear_error(tmp_path) -> None:
    bad = tmp_path / "m.yaml"
    bad.write_text("members:\n  - name: A\n    endpoints: ['ftp://a.test/']\n")
    r = pledgescan("scan", "--members", str(bad), "--store", f"sqlite:///{tmp_path / 'h.db'}")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"pledgescan: error: {bad}:3: members[0].endpoints[0]: malformed URL 'ftp://a.test/': "
        "only http and https URLs can be scanned"]
    c = pledgescan("members", "check", str(bad))
    assert c.returncode == 2 and "members[0].endpoints[0]" in c.stderr


DOCS = Path(__file__).resolve().parents[1] / "docs"


def _options(command: str) -> set[str]:
    return set(re.findall(r"(?:^|\s)(--?[a-z][a-z-]*)", command))


def test_cron_and_systemd_docs_are_literally_usable() -> None:
    scan_help = pledgescan("scan", "--help").stdout
    # Given the documented crontab entry
    text = (DOCS / "cron.md").read_text()
    block = re.search(r"```cron\n(.*?)```", text, re.S)
    assert block
    entries = [ln for ln in block.group(1).splitlines() if ln.strip() and not ln.lstrip().startswith("#")
               and not re.match(r"^[A-Z_]+=", ln)]  # environment lines of a crontab are fine
    # Then it is one line (cron has no line continuation), without '%' (a newline to cron)
    assert len(entries) == 1 and not entries[0].rstrip().endswith("\\"), entries
    entry = entries[0]
    assert "%" not in entry
    command = entry.split(None, 5)[5]
    # it names pledgescan by absolute path (cron's PATH is /usr/bin:/bin, pip installs to /usr/local/bin)
    scan = re.search(r"(?:^|\s)(/\S+/pledgescan) scan (.*?)(?:>>|$)", command)
    assert scan, command
    # and uses options that exist
    assert _options(scan.group(2)) and all(o in scan_help for o in _options(scan.group(2)))
    # The exit code table covers every code the command returns (3 is also an internal error)
    table = dict(re.findall(r"^\| (\d+) \| (.*) \|$", text, re.M))
    assert set(table) >= {"0", "1", "2", "3", "130"} and "internal error" in table["3"]
    # The systemd unit starts the same command with options that exist
    service = (DOCS / "pledgescan.service").read_text().replace("\\\n", " ")
    exec_start = re.search(r"^ExecStart=(/\S+/pledgescan) scan (.*)$", service, re.M)
    assert exec_start and exec_start.group(1) == scan.group(1)
    assert all(o in scan_help for o in _options(exec_start.group(2)))
    # and the docs say to create what ProtectSystem=strict + ReadWritePaths need (else 226/NAMESPACE)
    assert "useradd" in text and "install -d" in text and "/var/www/portfolio" in text
