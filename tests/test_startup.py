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
from tests.testbed.tls import TLSBed

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("sslyze", "nassl", "jinja2", "sqlalchemy", "alembic", "openpyxl", "rich", "httpx", "dns", "yaml",
         "babel", "dramatiq", "redis", "cryptography")


def loaded_after(code: str, tmp_path: Path, whole: bool = False) -> set[str]:
    """The top-level packages a fresh interpreter has imported once ``code`` ran (it may exit); with
    ``whole``, the modules' whole names."""
    out = tmp_path / "modules.json"
    prelude = ("import atexit, json, sys\n"
               f"atexit.register(lambda: open({str(out)!r}, 'w').write(json.dumps(sorted(sys.modules))))\n")
    r = subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True,
                       env=child_env(), cwd=tmp_path, timeout=120)
    assert out.exists(), r.stderr
    return {m if whole else m.split(".")[0] for m in json.loads(out.read_text())}


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


HTTP_STACK = {"httpx", "httpcore", "h2", "h11", "anyio", "trio", "rich"}


def test_a_scan_of_tls_controls_alone_loads_no_http_stack(tls_bed: TLSBed, tmp_path: Path):
    """``--only T1,...,T6`` of a server that speaks TLS, with a new store and a JSON report, decides every
    T control without importing the HTTP stack (httpx and what it brings: about a quarter of a second of
    the command's CPU), nor rich (no progress display with -q). dnspython would import httpx for DNS over
    HTTPS, which pledgescan never uses (``scanner.net`` turns that off). With every name given by
    ``--resolve``, dnspython's resolver and query modules are not loaded at all (the resolver makes its
    dnspython resolver at the first query)."""
    report, store = tmp_path / "r.json", tmp_path / "h.sqlite3"
    site = tls_bed.sites["good"]
    args = [site.url, *tls_bed.resolve_args("good"), "--ca-bundle", str(tls_bed.ca_bundle),
            "--only", "T1,T2,T3,T4,T5,T6", "--format", "json", "-o", str(report), "-q",
            "--store", f"sqlite:///{store}", "--processes", "1"]  # the scan in this process: its imports
    code = (f"import sys\nsys.argv = ['pledgescan', 'scan', *{args!r}]\n"
            "from scanner.cli.main import main\nmain()")
    modules = loaded_after(code, tmp_path, whole=True)
    loaded = {m.split(".")[0] for m in modules}
    controls = {c["id"]: c["status"] for c in json.loads(report.read_text())["targets"][0]["controls"]}
    assert set(controls) == {"T1", "T2", "T3", "T4", "T5", "T6"}
    assert controls["T1"] == "pass" and "error" not in controls.values()
    assert {"sslyze", "sqlalchemy"} <= loaded
    assert not loaded & HTTP_STACK, sorted(loaded & HTTP_STACK)
    assert not modules & {"dns.resolver", "dns.asyncresolver", "dns.query", "dns.asyncquery"}


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


def test_a_scan_with_only_imports_the_check_families_it_needs(tmp_path: Path):
    """``--only T1`` imports the tls checks alone (the others' metadata is read as data)."""
    report = tmp_path / "r.json"
    code = ("import sys\nsys.argv = ['pledgescan', 'scan', 'https://refused.test:9/', '--resolve', "
            "'refused.test:9:127.8.0.1', '--only', 'T1', '--format', 'json', '-o', " + repr(str(report))
            + ", '-q', '--no-store']\nfrom scanner.cli.main import main\nmain()")
    loaded = loaded_after(code, tmp_path, whole=True)
    assert json.loads(report.read_text())["targets"][0]["controls"][0]["id"] == "T1"
    assert "checks.tls" in loaded
    assert not loaded & {"checks.http", "checks.cookies", "checks.exposure", "checks.dns"}


SELECTIONS = [({"T1"}, set()), ({"T1", "T2", "T3", "T4", "T5", "T6"}, set()), ({"H1", "C1"}, {"H2"}),
              ({"tls-protocols"}, set()), ({"T3"}, {"tls-protocols"}), ({"E1", "D1"}, set()),
              ({"T1"}, {"http-hsts"}), ({"H2"}, {"http-hsts"}), ({"H2", "http-csp"}, {"C1"})]


@pytest.mark.parametrize(("only", "skip"), SELECTIONS, ids=lambda x: ",".join(sorted(x)) or "-")
def test_the_checks_loaded_for_a_selection_select_what_all_checks_do(only: set[str], skip: set[str]):
    from scanner.baseline import load_baseline
    from scanner.engine import Selection
    from scanner.plugins import load_checks

    baseline = load_baseline()
    controls = [c.id for c in baseline.controls]
    known = load_checks(controls).by_id()
    only = {x for x in only if x in known or x in controls}  # IDs of this baseline's version
    skip = {x for x in skip if x in known or x in controls}
    assert only
    part = Selection(load_checks(controls, only, skip), baseline, only, skip)
    whole = Selection(load_checks(controls), baseline, only, skip)
    assert [c.id for c in part.checks] == [c.id for c in whole.checks]
    assert part.controls == whole.controls
    assert part.assessed & part.controls == whole.assessed & whole.controls
    for kind in ("endpoint", "domain"):
        assert part.families(kind) == whole.families(kind)
