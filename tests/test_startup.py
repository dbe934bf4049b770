"""What the command's start-up loads: the command line imports no heavy library before a command needs
it, a JSON report does not load the HTML or spreadsheet writers, a store already at the head revision
opens without Alembic, and the shortcuts taken for speed read the same data as the slow paths.
Behaviour only (which modules a fresh process imported); the times are measured by ``bench/``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scanner.plugins import safe_yaml
from tests.testbed.cli import child_env

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("sslyze", "nassl", "jinja2", "sqlalchemy", "alembic", "openpyxl", "rich", "httpx", "dns", "yaml",
         "babel", "dramatiq", "redis", "cryptography")


def loaded_after(code: str, tmp_path: Path) -> set[str]:
    """The top-level packages a fresh interpreter has imported once ``code`` ran (it may exit)."""
    out = tmp_path / "modules.json"
    prelude = ("import atexit, json, sys\n"
               f"atexit.register(lambda: open({str(out)!r}, 'w').write(json.dumps(sorted(sys.modules))))\n")
    r = subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True,
                       env=child_env(), cwd=tmp_path, timeout=120)
    assert out.exists(), r.stderr
    return {m.split(".")[0] for m in json.loads(out.read_text())}


def test_importing_the_command_line_loads_no_heavy_library(tmp_path: Path):
    loaded = loaded_after("import scanner.cli.main", tmp_path)
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_help_loads_no_heavy_library(tmp_path: Path):
    loaded = loaded_after("import sys\nsys.argv = ['pledgescan', 'scan', '--help']\n"
                          "from scanner.cli.main import main\nmain()", tmp_path)
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_a_json_scan_loads_neither_the_html_nor_the_spreadsheet_writer(tmp_path: Path):
    """A scan that writes JSON (of a host that refuses: 127.8.0.1, port 9, nothing listens) imports the
    JSON reporter only: no Jinja2, no openpyxl; it still writes its report and stores its run."""
    report, store = tmp_path / "r.json", tmp_path / "h.sqlite3"
    code = ("import sys\nsys.argv = ['pledgescan', 'scan', 'https://refused.test:9/', '--resolve', "
            "'refused.test:9:127.8.0.1', '--only', 'T1', '--format', 'json', '-o', " + repr(str(report))
            + ", '-q', '--store', " + repr(f"sqlite:///{store}") + "]\n"
            "from scanner.cli.main import main\nmain()")
    loaded = loaded_after(code, tmp_path)
    assert json.loads(report.read_text())["targets"][0]["target"] == "https://refused.test:9/"
    assert store.exists()
    assert "scanner" in loaded and "sqlalchemy" in loaded
    assert not loaded & {"jinja2", "openpyxl"}


def test_a_new_store_and_a_store_at_the_head_revision_open_without_alembic(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'h.sqlite3'}"
    code = "from scanner.history.store import Store\nStore({url!r}).close()"
    assert "alembic" not in loaded_after(code.format(url=url), tmp_path)  # new: built at the head
    assert "alembic" not in loaded_after(code.format(url=url), tmp_path)  # then: one read, no Alembic
    old = tmp_path / "old.sqlite3"  # a store written before migrations: the revisions upgrade it
    old.write_bytes((ROOT / "tests" / "data" / "store-v0.sqlite3").read_bytes())
    assert "alembic" in loaded_after(code.format(url=f"sqlite:///{old}"), tmp_path)
    assert "alembic" not in loaded_after(code.format(url=f"sqlite:///{old}"), tmp_path)


def test_the_head_read_from_the_revision_files_is_alembics():
    from alembic.script import ScriptDirectory

    from scanner.migrations import HERE
    from scanner.migrations.runner import head

    assert head() == ScriptDirectory(str(HERE)).get_current_head()


@pytest.mark.parametrize("path", sorted((ROOT / "checks" / "metadata").glob("*.yaml")), ids=lambda p: p.name)
def test_check_metadata_reads_the_same_through_libyaml(path: Path):
    text = path.read_text("utf-8")
    assert safe_yaml(text) == yaml.safe_load(text)


def test_libyaml_is_there():
    """The fast loader is the one in use here (PyYAML falls back to the pure-Python one without it)."""
    assert getattr(yaml, "__with_libyaml__", False)
