"""SARIF rules come from one function over the check metadata and the baseline (not from findings)."""

from __future__ import annotations

from scanner.baseline import load_baseline
from scanner.models import ControlResult, Severity, Status
from scanner.plugins import check_metadata
from scanner.reporters.sarif import SarifReporter, rule
from tests.testbed.reports import make_report


def test_every_rule_is_its_check_metadata_and_the_requirements_of_its_controls():
    doc = SarifReporter().document(make_report())
    rules = doc["runs"][0]["tool"]["driver"]["rules"]
    assert rules
    baseline, metadata = load_baseline(), check_metadata()
    for r in rules:
        meta = metadata[r["id"]]
        assert r["shortDescription"]["text"] == meta.title and r["help"]["text"] == meta.remediation
        assert r["properties"]["controls"] == list(meta.controls)
        for cid in meta.controls:
            assert baseline.control(cid).requirement in r["fullDescription"]["text"]
    for res in doc["runs"][0]["results"]:
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"]


def test_a_check_without_metadata_is_described_by_its_control():
    seen = ControlResult(id="H2", title="HSTS", area="H", status=Status.FAIL, severity=Severity.HIGH)
    r = rule("gone-plugin-check", None, load_baseline(), seen)
    assert r["shortDescription"]["text"] == "H2: HSTS" and r["properties"]["controls"] == ["H2"]
    assert "help" not in r and r["properties"]["security-severity"] == "7.5"
