"""One ``Settings``: the command line, PLEDGESCAN_* variables and pledgescan.toml, in that order, over
the defaults written once in scanner/settings.py; the CLI's option defaults come from there too."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from scanner.settings import Settings, load_settings, settings_from_json, settings_to_json
from tests.testbed.cli import pledgescan


def test_direct_construction_reads_no_environment(monkeypatch):
    monkeypatch.setenv("PLEDGESCAN_TIMEOUT", "3")
    assert Settings().timeout == 10.0 and Settings(timeout=4).timeout == 4.0


def test_command_line_then_environment_then_file_then_defaults(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pledgescan.toml").write_text(
        'timeout = 5\nconcurrency = 3\nrate_limit = 2\nresolve = ["a.example:443:127.0.0.1"]\n'
        'nameservers = ["127.0.0.53:5353"]\nonly = ["T1", "H2"]\n')
    monkeypatch.setenv("PLEDGESCAN_CONCURRENCY", "6")
    monkeypatch.setenv("PLEDGESCAN_SKIP", "H3,H4")
    s = load_settings({"rate_limit": 7.0})
    assert (s.rate_limit, s.concurrency, s.timeout, s.per_host_connections) == (7.0, 6, 5.0, 4)
    assert s.resolve == {("a.example", 443): "127.0.0.1"} and s.nameservers == (("127.0.0.53", 5353),)
    assert s.only == {"T1", "H2"} and s.skip == {"H3", "H4"}
    other = tmp_path / "other.toml"
    other.write_text("timeout = 2\n")
    assert load_settings(config=other).timeout == 2.0


def test_a_run_s_settings_round_trip_through_the_store():
    s = Settings(timeout=3, resolve={("a.example", 8443): "127.0.50.2"}, nameservers=(("127.0.0.1", 53),),
                 only=frozenset({"T4", "H1"}), ca_bundle=Path("/tmp/ca.pem"))
    stored = settings_to_json(s)
    assert stored["resolve"] == [["a.example", 8443, "127.0.50.2"]] and stored["only"] == ["H1", "T4"]
    assert settings_from_json(stored) == s


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``pledgescan scan ARGS...`` in ``cwd``."""
    return pledgescan("scan", *args, cwd=cwd, env=env)


@pytest.mark.parametrize("toml, message", [
    ("concurrency = 0\n", "concurrency"),
    ('resolve = ["nonsense"]\n', "expected HOST:PORT:ADDR"),
    ("timeout = \n", "settings"),
    ("colour = 1\n", "colour"),
])
def test_a_bad_settings_file_is_one_line_exit_2(tmp_path: Path, toml: str, message: str):
    (tmp_path / "pledgescan.toml").write_text(toml)
    r = run("example.org", "--no-store", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    (line,) = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert line.startswith("pledgescan: error:") and message in line


def test_the_scan_command_reads_the_file_and_the_environment(tmp_path: Path):
    """Selections are checked before any network use, so an unknown ID shows which source won."""
    (tmp_path / "pledgescan.toml").write_text('only = ["Z98"]\n')
    assert "Z98" in run("example.org", "--no-store", cwd=tmp_path).stderr
    assert "Y97" in run("example.org", "--no-store", cwd=tmp_path, env={"PLEDGESCAN_ONLY": "Y97"}).stderr
    (tmp_path / "x.toml").write_text('only = ["X96"]\n')
    r = run("example.org", "--no-store", "--config", str(tmp_path / "x.toml"), cwd=tmp_path)
    assert "X96" in r.stderr and r.returncode == 2


def test_coalescing_is_on_unless_the_command_line_environment_or_file_says_off(tmp_path: Path, monkeypatch):
    from scanner.cli.support import build_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PLEDGESCAN_COALESCE", raising=False)
    assert build_settings({"coalesce": None}).coalesce is True
    assert build_settings({"coalesce": False}).coalesce is False
    monkeypatch.setenv("PLEDGESCAN_COALESCE", "false")
    assert build_settings({"coalesce": None}).coalesce is False
    assert build_settings({"coalesce": True}).coalesce is True  # the command line wins
    monkeypatch.delenv("PLEDGESCAN_COALESCE")
    (tmp_path / "pledgescan.toml").write_text("coalesce = false\n")
    assert build_settings({"coalesce": None}).coalesce is False
    # the option parses (the unknown ID is refused after it, before any network use)
    r = run("example.org", "--no-store", "--no-coalesce", "--only", "Z98", cwd=tmp_path)
    assert r.returncode == 2 and "Z98" in r.stderr and "no such option" not in r.stderr.lower()
