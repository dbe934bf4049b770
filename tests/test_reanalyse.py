"""`pledgescan reanalyse`: a stored run judged again from its snapshots, offline, as a new run; the same
checks and baseline give the same controls, and a changed baseline file changes the verdicts."""

from __future__ import annotations

import json
import subprocess
from importlib import resources
from pathlib import Path

import pytest

from scanner.testbed.certs import TestPKI
from scanner.testbed.tls_servers import HttpResponseSpec, start_https_server
from tests.testbed.cli import pledgescan as run

NAME, ADDR, PORT = "reanalyse.example.test", "127.0.130.2", 18131
NO_DNS = "127.0.130.250:53"  # nothing listens there: the domain's lookups fail fast (error evidence)
PAGE = HttpResponseSpec(headers=[("Content-Type", "text/html; charset=utf-8"),
                                 ("Set-Cookie", "sessionid=abc; Path=/"), ("Server", "nginx/1.22.1")])


def pledgescan(*args: str, store: Path) -> subprocess.CompletedProcess[str]:
    """The command line on the SQLite history store ``store``."""
    return run(*args, timeout=300, env={"PLEDGESCAN_STORE": f"sqlite:///{store}"})


def controls(report: Path) -> dict[str, list[dict]]:
    return {t["target"]: t["controls"] for t in json.loads(report.read_text())["targets"]}


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A real scan (endpoint and domain) kept in a fresh store; its JSON report."""
    tmp = tmp_path_factory.mktemp("reanalyse")
    pki = TestPKI.create("reanalyse")
    ca = pki.write_ca_bundle(tmp / "ca.pem")
    leaf = pki.leaf([NAME])
    srv = start_https_server(ADDR, PORT, leaf.chain_pem, leaf.key_pem, response=PAGE)
    store = tmp / "history.sqlite3"
    try:
        r = pledgescan("scan", f"https://{NAME}:{PORT}/", "--domain", "reanalyse.example.test",
                       "--resolve", f"{NAME}:{PORT}:{ADDR}", "--resolve", f"{NAME}:80:{ADDR}",
                       "--nameserver", NO_DNS, "--ca-bundle", str(ca), "--timeout", "3",
                       "--format", "json", "-o", str(tmp / "scan.json"), "-q", store=store)
    finally:
        srv.stop()
    assert r.returncode == 0, r.stderr
    return store, tmp / "scan.json"


def test_reanalysis_gives_the_same_controls_as_the_scan(stored_run, tmp_path: Path):
    store, scanned = stored_run
    r = pledgescan("reanalyse", "latest", store=store)
    assert r.returncode == 0, r.stderr
    assert "re-analysed" in r.stdout and "2 targets" in r.stdout
    out = tmp_path / "again.json"
    assert pledgescan("report", "latest", "--format", "json", "-o", str(out), store=store).returncode == 0
    before, after = controls(scanned), controls(out)
    assert set(before) == {f"https://{NAME}:{PORT}/", "reanalyse.example.test"}
    assert after == before
    statuses = {c["status"] for cs in after.values() for c in cs}
    assert {"pass", "fail", "error"} <= statuses  # real verdicts, not only errors


def test_a_newer_baseline_file_changes_the_verdicts(stored_run, tmp_path: Path):
    store, scanned = stored_run
    baseline = json.loads(resources.files("scanner").joinpath("baselines", "pledge4-v1.json").read_text())
    baseline["version"] = "2"
    for c in baseline["controls"]:
        if c["id"] == "H5":
            c["severity"] = "critical"  # a missing nosniff now caps the grade at F
    newer = tmp_path / "pledge4-v2.json"
    newer.write_text(json.dumps(baseline))
    r = pledgescan("reanalyse", "1", "--baseline", str(newer), store=store)
    assert r.returncode == 0, r.stderr
    assert "version 2" in r.stdout
    out = tmp_path / "v2.json"
    assert pledgescan("report", "latest", "--format", "json", "-o", str(out), store=store).returncode == 0
    doc = json.loads(out.read_text())
    assert doc["baseline"]["version"] == "2"
    endpoint = next(t for t in doc["targets"] if t["kind"] == "endpoint")
    h5 = next(c for c in endpoint["controls"] if c["id"] == "H5")
    assert h5["status"] == "fail" and h5["severity"] == "critical" and endpoint["grade"] == "F"


@pytest.mark.parametrize("args, message", [
    (("reanalyse", "99"), "no run 99"),
    (("reanalyse", "1", "--baseline", "{bad}"), "bad.json"),
])
def test_bad_input_is_one_line(stored_run, tmp_path: Path, args, message):
    store, _ = stored_run
    bad = tmp_path / "bad.json"
    bad.write_text('{"id": "x"}')
    r = pledgescan(*[a.format(bad=bad) for a in args], store=store)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    (line,) = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert message in line
