"""Suite-wide test configuration. Family fixtures live in tests/testbed/<family>.py."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _hermetic_history_store(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Never write to the user's real history store from tests."""
    if "PLEDGESCAN_STORE" not in os.environ:
        path = tmp_path_factory.mktemp("store") / "history.sqlite3"
        os.environ["PLEDGESCAN_STORE"] = f"sqlite:///{path}"
