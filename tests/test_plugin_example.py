"""A third-party plugin, installed as a package, adds a check and a report format with no edit to
pledgescan: tests/plugin_example is pip-installed into a directory put on the scanner's PYTHONPATH, and
`pledgescan scan --only` runs its check against a real local HTTPS server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scanner.testbed.certs import TestPKI
from scanner.testbed.tls_servers import HttpResponseSpec, start_https_server
from tests.testbed.cli import pledgescan as run

HERE = Path(__file__).resolve().parent
NAME, ADDR, PORT = "plugin.example.test", "127.0.130.1", 18130
LEAKY = HttpResponseSpec(headers=[("Content-Type", "text/html; charset=utf-8"),
                                  ("X-Backend-Server", "app-07.internal")])


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin built and installed (its own setup.cfg and entry points) into a directory."""
    tmp = tmp_path_factory.mktemp("plugin")
    src = shutil.copytree(HERE / "plugin_example", tmp / "src")  # the build writes beside the sources
    target = tmp / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                        "--no-build-isolation", "--target", str(target), str(src)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return target


def pledgescan(plugin: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The command line with the plugin's install directory on the path."""
    return run(*args, env={"PYTHONPATH": os.pathsep.join([str(plugin), os.environ.get("PYTHONPATH", "")])})


def test_the_plugin_check_is_registered(plugin_path: Path):
    r = pledgescan(plugin_path, "checks")
    assert r.returncode == 0, r.stderr
    assert "example-backend-banner" in r.stdout and "refused" not in r.stderr
    assert "example-backend-banner" in pledgescan(plugin_path, "baseline").stdout  # listed under H10


def test_only_runs_the_plugin_check_and_its_report_format(plugin_path: Path, tmp_path: Path):
    pki = TestPKI.create("plugin example")
    ca = pki.write_ca_bundle(tmp_path / "ca.pem")
    leaf = pki.leaf([NAME])
    srv = start_https_server(ADDR, PORT, leaf.chain_pem, leaf.key_pem, response=LEAKY)
    try:
        r = pledgescan(plugin_path, "scan", f"https://{NAME}:{PORT}/", "--resolve", f"{NAME}:{PORT}:{ADDR}",
                       "--ca-bundle", str(ca), "--only", "example-backend-banner", "--no-store", "-q",
                       "--format", "json", "--format", "markdown", "-o", str(tmp_path / "out"))
    finally:
        srv.stop()
    assert r.returncode == 0, r.stderr
    (target,) = json.loads((tmp_path / "out" / "report.json").read_text())["targets"]
    (control,) = target["controls"]
    assert control["id"] == "H10" and control["status"] == "fail"
    assert [f["check"] for f in control["findings"]] == ["example-backend-banner"]
    assert "app-07.internal" in control["findings"][0]["detail"]
    assert "| H10 |" in (tmp_path / "out" / "report.md").read_text()
