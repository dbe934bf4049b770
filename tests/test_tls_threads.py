"""A TLS scan leaves no thread of sslyze's behind (issue 9: one producer thread, and the scan it held,
stayed blocked per target when its results were not drained, so a portfolio's memory grew with it)."""

from __future__ import annotations

import threading

from scanner.collectors import tls
from tests.testbed.tls import TLSBed


def _sslyze_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if type(t).__module__.startswith("sslyze")]


def test_a_tls_scan_leaves_no_sslyze_thread_behind(tls_bed: TLSBed) -> None:
    # Given a site of the testbed / When it is scanned three times, as three targets of a scan would be
    s = tls_bed.sites["good"]
    settings = tls_bed.settings()
    for _ in range(3):
        evidence = tls.scan_blocking(s.name, s.port, s.address, settings)
        assert evidence.error is None
    # Then every thread sslyze started has ended (its results were taken to the end)
    assert _sslyze_threads() == []
