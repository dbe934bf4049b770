"""Suite-wide test configuration. Family fixtures live in tests/testbed/<family>.py."""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from scanner.history.store import Store

# Session-wide testbeds shared by several test modules: defined once here so they start once.
from tests.testbed.demo import demo_report  # noqa: F401
from tests.testbed.tls import tls_bed  # noqa: F401


@pytest.fixture(autouse=True, scope="session")
def _hermetic_history_store(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Never write to the user's real history store from tests, nor send scans to a developer's broker."""
    os.environ.pop("PLEDGESCAN_BROKER", None)
    if "PLEDGESCAN_STORE" not in os.environ:
        path = tmp_path_factory.mktemp("store") / "history.sqlite3"
        os.environ["PLEDGESCAN_STORE"] = f"sqlite:///{path}"


@pytest.fixture(autouse=True, scope="session")
def _hermetic_settings(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Scans run by tests read no settings file or PLEDGESCAN_* variable of the developer's."""
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("config"))
    for name in [n for n in os.environ if n.startswith("PLEDGESCAN_") and n != "PLEDGESCAN_STORE"]:
        del os.environ[name]


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    """A test CA (for ``tests.testbed.portfolio.TLSServer``) and its PEM file, for ``--ca-bundle``."""
    authority = trustme.CA()
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return authority, path


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh history store, once on SQLite and once on PostgreSQL (a schema of its own)."""
    from tests.test_store import pg_store_url

    return f"sqlite:///{tmp_path / 'h.sqlite3'}" if request.param == "sqlite" else pg_store_url()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A fresh history store at ``store_url`` (SQLite, then PostgreSQL)."""
    s = Store(store_url)
    yield s
    s.close()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Stop the testbed servers a killed earlier run left on their fixed addresses (by recorded pid)."""
    from tests.testbed.proc import reap_orphans

    for pid in reap_orphans():
        print(f"testbed: stopped server pid {pid} left behind by a test run that no longer exists")


# -- pytest-xdist: which tests may run beside which --------------------------------------------------
# A module's servers bind its own fixed 127.x addresses, so all of a module's tests run in one worker;
# the modules that share a session testbed (on fixed addresses too) run in the same one. The shared
# PostgreSQL gives each test a schema of its own, and each worker has its own Redis database
# (tests/testbed/workers.py). A new session-scoped testbed on fixed addresses belongs in this list.
SHARED_TESTBEDS = ("tls_bed", "exposure_nginx", "exposure_apache", "http_testbed", "knot", "mta_sts",
                   "demo_report")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In a pytest-xdist worker, every test's group (``--dist loadgroup``): its module, joined with the
    modules it shares a session testbed with."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    def rank(key: str) -> tuple[bool, str]:  # a group is named after its testbed, else its module
        return key not in SHARED_TESTBEDS, key

    for item in items:  # the same groups in every worker (they must collect the same node ids)
        for name in SHARED_TESTBEDS:
            if name in item.fixturenames:
                a, b = sorted((root(item.module.__name__), root(name)), key=rank)
                parent[b] = a
    for item in items:
        item.add_marker(pytest.mark.xdist_group(root(item.module.__name__)))


def pytest_xdist_node_collection_finished(node: object, ids: list[str]) -> None:
    """In the controller, as a worker reports what it collected: each test's node id carries its group
    (``@group``), or xdist's loadgroup does not work with this pytest, and two workers would start one
    testbed (its addresses "already in use")."""
    if ids and not any("@" in i for i in ids):
        pytest.exit(f"pytest-xdist {importlib.metadata.version('pytest-xdist')} cannot group tests under "
                    f"pytest {pytest.__version__} (setup.cfg's test extra pins pytest below 9.2); "
                    f"run with -n 0", returncode=4)
