"""The engine's selection, isolation of broken checks, mapping and deadline."""

from __future__ import annotations

import asyncio

import pytest

from scanner.engine import Scanner, SelectionError
from scanner.evidence import HTTPEvidence, Snapshot
from scanner.models import Status
from scanner.plugins import Check, CheckMeta, Needs, Registry
from scanner.settings import Settings
from scanner.targets import domain, endpoint
from scanner.testbed.tls_servers import start_stalling_server


def meta(cid: str, controls: tuple[str, ...]) -> CheckMeta:
    return CheckMeta(id=cid, title="test check", severity="high", controls=controls, target_kind="endpoint",
                     description="a check used by the engine tests", risk="none, it is a test",
                     remediation="nothing to remediate")


def test_only_and_skip_select_checks_and_controls():
    s = Scanner(Settings(only=frozenset({"T2", "http-hsts"})))
    assert {c.id for c in s.selection.checks} == {"tls-protocols", "http-hsts"}
    assert s.selection.controls == {"T2", "H2"}
    s = Scanner(Settings(skip=frozenset({"tls-protocols", "H3"})))
    assert "tls-protocols" not in {c.id for c in s.selection.checks}
    assert "T2" not in s.selection.controls and "H3" not in s.selection.controls
    assert "T1" in s.selection.controls


def test_unknown_selection_id_is_an_input_error():
    with pytest.raises(SelectionError):
        Scanner(Settings(only=frozenset({"tls"})))


def test_a_crashing_check_becomes_error_for_its_controls_and_others_still_run():
    def boom(ev, m):
        raise RuntimeError("bug")

    def fine(ev, m):
        return [m.finding("pass", "ok")]

    http = Needs("http")
    reg = Registry(checks=[Check(meta("test-boom", ("H4",)), boom, http),
                           Check(meta("test-fine", ("H5",)), fine, http)])
    s = Scanner(Settings(), registry=reg)
    t = endpoint("https://x.example/")
    snap = Snapshot(target=t, http=HTTPEvidence())
    findings = s.analyse(snap)
    result = s.assess(t, snap, findings)
    by_id = {c.id: c for c in result.controls}
    assert by_id["H4"].status == Status.ERROR and "bug" in by_id["H4"].findings[0].detail
    assert by_id["H5"].status == Status.PASS
    # The registry's preamble: evidence a check needs but that was not collected is an error, not a fail.
    (missing,) = reg.checks[1].run(Snapshot(target=t))
    assert missing.status == Status.ERROR and missing.detail == "HTTP evidence was not collected"
    # Controls with no installed check are reported as not assessed, not silently dropped.
    assert by_id["T1"].status == Status.ERROR
    assert result.grade == "A+" and result.decided == 1


def test_domain_targets_get_only_domain_controls():
    s = Scanner(Settings())
    t = domain("example.org")
    result = s.assess(t, Snapshot(target=t), [])
    assert {c.id[0] for c in result.controls} == {"D"}


def test_target_deadline_turns_a_stalled_server_into_errors():
    srv = start_stalling_server("127.0.60.2", 18446)
    try:
        settings = Settings(resolve={("stall.engine.test", 18446): "127.0.60.2"}, timeout=30,
                            target_deadline=2, only=frozenset({"T1", "T2", "H5"}))
        report = asyncio.run(Scanner(settings).run([endpoint("https://stall.engine.test:18446/")]))
    finally:
        srv.stop()
    (t,) = report.targets
    assert {c.status for c in t.controls} == {Status.ERROR}
    assert t.duration_s is not None and t.duration_s < 25


def test_without_keep_results_the_engine_hands_results_on_and_keeps_none():
    """Given three targets (nothing listens on their address: each is decided as errors quickly)
    When the scan runs with keep_results=False, as a stored scan does
    Then every result reaches on_result, the report holds none, and its statistics still count them."""
    names = [f"k{i}.engine.test" for i in range(3)]
    settings = Settings(resolve={(n, 18447): "127.0.190.9" for n in names}, timeout=2,
                        only=frozenset({"H5"}))
    seen = []
    report = asyncio.run(Scanner(settings).run([endpoint(f"https://{n}:18447/") for n in names],
                                               on_result=lambda r, s: seen.append(r.target),
                                               keep_results=False))
    assert report.targets == ()
    assert sorted(seen) == sorted(f"https://{n}:18447/" for n in names)
    assert report.stats["targets"] == 3

