"""The demo's scan (``scanner.demo``: its sites started and scanned in this process), once per test run:
``test_demo`` judges its verdicts and ``test_report_browser`` renders it (about 9 s a scan)."""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from pathlib import Path

import pytest

from scanner.demo import scan_demo, start_demo_sites
from scanner.models import Report


@pytest.fixture(scope="session")
def demo_report() -> Report:
    """The report of a scan of the demo's sites (stopped once scanned: the report is all tests read)."""
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        sites, ca = start_demo_sites(stack, Path(tmp))
        return scan_demo(sites, ca)
