"""The command line as a user meets it: one-line errors, exit codes, listings, unreachable targets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.testbed.cli import pledgescan as run


@pytest.mark.parametrize("args, message", [
    ((), "nothing to scan"),
    (("http://exa mple.org/",), "not a valid host name"),
    (("ftp://example.org/",), "only http and https"),
    (("https://example.org:99999/",), "malformed URL"),
    (("example.org", "--resolve", "nonsense"), "--resolve"),
    (("example.org", "--resolve", "example.org:443:not-an-ip"), "not an IP address"),
    (("example.org", "--nameserver", "dns.example"), "--nameserver"),
    (("example.org", "--only", "Z99"), "unknown check or control ID"),
    (("example.org", "--format", "pdf"), "pdf"),
    (("example.org", "--ca-bundle", "/nonexistent.pem"), "does not exist"),
])
def test_bad_input_is_one_line_exit_2(args, message):
    r = run("scan", *args)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("pledgescan: error:")
    assert message in lines[0]
    assert "Traceback" not in r.stderr


def test_checks_lists_every_check_with_its_controls():
    r = run("checks")
    assert r.returncode == 0
    for cid in ("tls-handshake", "http-hsts", "cookie-secure", "exposure-source-secrets", "dns-spf"):
        assert cid in r.stdout


def test_baseline_lists_all_controls():
    r = run("baseline")
    assert r.returncode == 0
    for cid in ("T1", "T6", "H11", "C4", "E4", "D6"):
        assert f" {cid} " in r.stdout


def test_unresolvable_target_gives_error_statuses_not_fail(tmp_path: Path):
    out = tmp_path / "r.json"
    r = run("scan", "https://nowhere.pledgescan.test/", "--nameserver", "127.0.60.250:53",
            "--timeout", "1", "--format", "json", "-o", str(out), "--fail-on", "low", "-q")
    # exit 4: the scan ran but nothing could be assessed (never the "all clear" of exit 0)
    assert r.returncode == 4, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("pledgescan: the target could not be assessed") and "nowhere" in line
    data = json.loads(out.read_text())
    (t,) = data["targets"]
    assert t["kind"] == "endpoint" and t["grade"] == "?"
    statuses = {c["status"] for c in t["controls"]}
    assert statuses == {"error"}
    assert t["errors"] and "nowhere.pledgescan.test" in t["errors"][0]


def test_bare_host_means_endpoint_and_domain(tmp_path: Path):
    out = tmp_path / "r.json"
    r = run("scan", "nowhere.pledgescan.test", "--nameserver", "127.0.60.250:53", "--timeout", "1",
            "--format", "json", "-o", str(out), "-q")
    assert r.returncode == 4, r.stderr  # nothing could be assessed
    kinds = sorted((t["kind"], t["target"]) for t in json.loads(out.read_text())["targets"])
    assert kinds == [("domain", "nowhere.pledgescan.test"), ("endpoint", "https://nowhere.pledgescan.test/")]


def test_several_formats_go_to_a_directory(tmp_path: Path):
    out = tmp_path / "reports"
    r = run("scan", "https://nowhere.pledgescan.test/", "--nameserver", "127.0.60.250:53", "--timeout", "1",
            "--format", "json", "--format", "csv", "--format", "sarif", "--format", "html",
            "-o", str(out), "-q")
    assert r.returncode == 4, r.stderr  # nothing could be assessed, but every report is written
    names = sorted(p.name for p in out.iterdir())
    assert names == ["report.csv", "report.html", "report.json", "report.sarif"]


def test_impossible_output_is_refused_before_scanning(tmp_path: Path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    r = run("scan", "https://nowhere.pledgescan.test/", "--format", "json", "--format", "csv",
            "-o", str(blocker))
    assert r.returncode == 2 and "must be a directory" in r.stderr
    r = run("scan", "https://nowhere.pledgescan.test/", "--format", "json", "-o", str(blocker / "r.json"))
    assert r.returncode == 2 and "not a directory" in r.stderr


def test_no_store_scan_keeps_no_history(tmp_path: Path):
    store = tmp_path / "h.sqlite3"
    r = run("scan", "https://nowhere.pledgescan.test/", "--nameserver", "127.0.60.250:53", "--timeout", "1",
            "--format", "json", "-o", str(tmp_path / "r.json"), "-q", "--no-store",
            env={"PLEDGESCAN_STORE": f"sqlite:///{store}"})
    assert r.returncode == 4, r.stderr  # unreachable: nothing assessed
    assert not store.exists()
    r = run("scan", "--members", str(tmp_path / "m.yaml"), "--no-store")
    assert r.returncode == 2


def test_unusable_default_store_degrades_to_a_warning(tmp_path: Path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    env = {"PLEDGESCAN_STORE": None, "XDG_DATA_HOME": str(blocker)}
    out = tmp_path / "r.json"
    r = run("scan", "https://nowhere.pledgescan.test/", "--nameserver", "127.0.60.250:53", "--timeout", "1",
            "--format", "json", "-o", str(out), "-q", env=env)
    assert r.returncode == 4 and out.exists()  # 4: nothing assessed (unreachable)
    assert "warning: history not kept" in r.stderr and "Traceback" not in r.stderr
    r = run("history", env=env, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("pledgescan: error: cannot open the history store")


def test_members_scan_refuses_a_file_as_portfolio_directory(tmp_path: Path):
    members = tmp_path / "m.yaml"
    members.write_text("members:\n  - name: Test School\n    endpoints: [https://nowhere.pledgescan.test/]\n")
    blocker = tmp_path / "r.json"
    blocker.write_text("{}")
    r = run("scan", "--members", str(members), "-o", str(blocker))
    assert r.returncode == 2 and "writes the portfolio into a directory" in r.stderr


def test_postgres_store_without_its_driver_names_the_extra(tmp_path: Path):
    # The driver is an optional extra: a user without it gets the command that installs it, in one line.
    # ``sys.modules[name] = None`` makes Python's import system refuse the module as if it were absent.
    code = ("import sys; sys.modules['psycopg'] = None; sys.argv = ['pledgescan', 'history', '--store', "
            "'postgresql+psycopg://127.0.0.1/test']; from scanner.cli.main import main; main()")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        "pledgescan: error: cannot open the history store postgresql+psycopg://127.0.0.1/test: no module "
        "'psycopg' (install it with: pip install 'pledgescan[postgres]')"]
