"""Suite-wide test configuration. Family fixtures live in tests/testbed/<family>.py."""

from __future__ import annotations

import os

import pytest

# Session-wide testbeds shared by several test modules: defined once here so they start once.
from tests.testbed.tls import tls_bed  # noqa: F401


@pytest.fixture(autouse=True, scope="session")
def _hermetic_history_store(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Never write to the user's real history store from tests, nor send scans to a developer's broker."""
    os.environ.pop("PLEDGESCAN_BROKER", None)
    if "PLEDGESCAN_STORE" not in os.environ:
        path = tmp_path_factory.mktemp("store") / "history.sqlite3"
        os.environ["PLEDGESCAN_STORE"] = f"sqlite:///{path}"
