"""The traps: hosts whose answer to unknown paths would fool a naive scanner must give zero E findings."""

from __future__ import annotations

import asyncio

import pytest

from scanner.engine import Scanner
from scanner.models import Status
from scanner.settings import Settings
from scanner.targets import endpoint
from tests.testbed.exposure import ExposureBed, exposure_nginx

__all__ = ["exposure_nginx"]


@pytest.fixture(scope="module")
def trap_reports(exposure_nginx: ExposureBed) -> dict:
    """One scan of the four trap hosts together (as a real multi-target scan would)."""
    hosts = ["catchall.test", "spa.test", "forbidden.test", "redirect.test"]
    settings = Settings(ca_bundle=exposure_nginx.ca_file, resolve=exposure_nginx.resolve, rate_limit=0,
                        timeout=5, only=frozenset({"E1", "E2", "E3", "E4"}))
    report = asyncio.run(Scanner(settings).run([endpoint(exposure_nginx.url(h)) for h in hosts]))
    return {t.target.split("//")[1].split(":")[0]: (t, report.stats) for t in report.targets}


@pytest.mark.parametrize("host,behaviour", [
    ("catchall.test", "catch-all"),  # 200 with an admin-looking page (phpMyAdmin, .git, DB_PASSWORD)
    ("spa.test", "catch-all"),  # try_files $uri /index.html
    ("forbidden.test", "403"),  # 403 to everything
    ("redirect.test", "302"),  # every unknown path redirects to /
])
def test_trap_gives_no_finding(trap_reports: dict, host: str, behaviour: str):
    target, stats = trap_reports[host]
    assert [(f.control, f.title) for f in target.findings if f.status != Status.PASS] == []
    assert {f.control for f in target.findings} == {"E1", "E2", "E3", "E4"}
    assert behaviour in target.findings[0].evidence["not_found_behaviour"]
    assert stats["http_requests_per_host"][host] <= 150


def test_catch_all_page_really_looks_like_an_admin_console(trap_reports: dict):
    """Guard the trap itself: without calibration its page would match phpMyAdmin's signals."""
    from checks.lib.exposure_match import match_entry
    from scanner.evidence.exposure import Probe
    from scanner.exposure_catalogue.model import load_catalogue
    from tests.testbed.exposure import ADMINISH_PAGE

    _, entry = load_catalogue().entry("phpmyadmin")  # type: ignore[misc]
    page = Probe.record(purpose="probe", path="/phpmyadmin/", url="https://catchall.test/phpmyadmin/",
                        method="GET", status=200, headers=(("content-type", "text/html"),),
                        body=ADMINISH_PAGE.encode())
    assert match_entry(entry, page) is not None
