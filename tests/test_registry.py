"""Meta-tests over the check registry and the baseline: IDs, metadata, coverage, plugin refusal."""

from __future__ import annotations

import json
import sys
import textwrap
from importlib import resources
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from scanner.baseline import load_baseline
from scanner.plugins import CHECK_GROUP, CheckMeta, load_checks

BASELINE = load_baseline()
CONTROL_IDS = [c.id for c in BASELINE.controls]


@pytest.fixture(scope="module")
def registry():
    return load_checks(CONTROL_IDS)


def test_spec_control_ids_are_exactly_the_baselines():
    expected = (
        [f"T{i}" for i in range(1, 7)] + [f"H{i}" for i in range(1, 12)] + [f"C{i}" for i in range(1, 5)]
        + [f"E{i}" for i in range(1, 5)] + [f"D{i}" for i in range(1, 7)]
    )
    assert expected == CONTROL_IDS


def test_every_family_loads_without_refusals(registry):
    assert registry.refused == []
    families = {ep.name for ep in entry_points(group=CHECK_GROUP)}
    assert {"tls", "http", "cookies", "exposure", "dns"} <= families


def test_check_ids_and_aliases_are_unique(registry):
    names = [c.id for c in registry.checks] + [a for c in registry.checks for a in c.meta.aliases]
    assert len(names) == len(set(names))


def test_every_check_feeds_a_baseline_control(registry):
    for chk in registry.checks:
        assert chk.meta.controls, chk.id
        for cid in chk.meta.controls:
            assert BASELINE.control(cid)


def test_every_baseline_control_has_a_loaded_check(registry):
    feeding = registry.by_control()
    missing = [c.id for c in BASELINE.controls if not feeding.get(c.id)]
    assert missing == []


def test_the_check_to_control_mapping_is_kept_once():
    """The metadata's ``controls:`` is the mapping; the baseline file does not repeat it."""
    raw = json.loads(resources.files("scanner").joinpath("baselines", "pledge4-v1.json").read_text())
    assert all("checks" not in c for c in raw["controls"])


def test_check_kind_matches_control_scope(registry):
    for chk in registry.checks:
        for cid in chk.meta.controls:
            assert BASELINE.control(cid).scope == chk.meta.target_kind, chk.id


def test_metadata_is_complete(registry):
    for chk in registry.checks:
        m = chk.meta
        assert m.title and m.description and m.risk and m.remediation, m.id
        assert m.references, f"{m.id} has no references"


def test_invalid_metadata_is_rejected():
    with pytest.raises(ValueError):
        CheckMeta(id="Bad ID", title="x", severity="high", controls=("T1",), target_kind="endpoint",
                  description="d" * 20, risk="r" * 20, remediation="m" * 20)
    with pytest.raises(ValueError):
        CheckMeta(id="tls-x", title="xyz", severity="high", controls=("Z9",), target_kind="endpoint",
                  description="d" * 20, risk="r" * 20, remediation="m" * 20)


def test_a_broken_third_party_plugin_is_refused_and_the_rest_load(tmp_path: Path, monkeypatch):
    """Install a fake distribution on sys.path whose checks are broken; the registry refuses them."""
    pkg = tmp_path / "evilplug.py"
    pkg.write_text(textwrap.dedent('''
        from scanner.models import Severity
        from scanner.plugins import Check, CheckMeta, Needs
        META = CheckMeta.model_construct(id="NOT VALID", title="t", severity=Severity.HIGH, controls=("T1",),
                                         target_kind="endpoint", description="", risk="", remediation="")
        CHECKS = [Check(META, lambda ev, meta: [], Needs("tls"))]
        DUP = [Check(CheckMeta(id="tls-handshake", title="dup!", severity="low", controls=("T1",),
                               target_kind="endpoint", description="duplicate id plugin",
                               risk="none whatsoever", remediation="nothing to do here"),
                     lambda ev, meta: [], Needs("tls"))]
        ODD = [Check(CheckMeta(id="smtp-starttls", title="odd!", severity="low", controls=("T1",),
                               target_kind="endpoint", description="needs evidence nobody collects",
                               risk="none whatsoever", remediation="nothing to do here"),
                     lambda ev, meta: [], Needs("smtp"))]
        WRONG_KIND = [Check(CheckMeta(id="dns-tls-mixup", title="mixed!", severity="low", controls=("D1",),
                                      target_kind="domain", description="a domain check reading TLS evidence",
                                      risk="none whatsoever", remediation="nothing to do here"),
                            lambda ev, meta: [], Needs("tls"))]
        def _boom():
            raise RuntimeError("x")
    '''))
    dist = tmp_path / "evilplug-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: evilplug\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[pledgescan.checks]\nbad = evilplug:CHECKS\ndup = evilplug:DUP\nmissing = evilplug:NOPE\n"
        "odd = evilplug:ODD\nwrong = evilplug:WRONG_KIND\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("evilplug", None)
    reg = load_checks(CONTROL_IDS)
    refused = "\n".join(reg.refused)
    assert "'bad'" in refused and "invalid metadata" in refused
    assert "'dup'" in refused and "duplicate check ID" in refused
    assert "'missing'" in refused and "failed to load" in refused
    assert "'odd'" in refused and "needs evidence family 'smtp'" in refused
    assert "'wrong'" in refused and "domain targets but needs the 'tls' evidence of endpoint" in refused
    ids = [c.id for c in reg.checks]
    assert "NOT VALID" not in ids
    assert ids.count("tls-handshake") == 1
    assert [c for c in reg.checks if c.id == "tls-handshake"][0].meta.title != "dup!"


def test_a_check_without_metadata_is_refused_with_its_id(tmp_path: Path, monkeypatch):
    """@check("id", ...) finds its record in <package>/metadata/<module>.yaml; a missing one is named."""
    pkg = tmp_path / "ghostplug"
    (pkg / "metadata").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "metadata" / "checks.yaml").write_text(textwrap.dedent('''
        - id: ghost-other
          title: Another check
          severity: low
          controls: [H10]
          target_kind: endpoint
          description: a record for some other check
          risk: none whatsoever here
          remediation: nothing to do here
    '''))
    (pkg / "checks.py").write_text(textwrap.dedent('''
        from scanner.plugins import check

        @check("ghost-check", needs="http")
        def ghost(ev, meta):
            return []
    '''))
    dist = tmp_path / "ghostplug-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ghostplug\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[pledgescan.checks]\nghost = ghostplug.checks\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("ghostplug", "ghostplug.checks"):
        sys.modules.pop(name, None)
    reg = load_checks(CONTROL_IDS)
    assert any("'ghost'" in r and "'ghost-check' has no metadata" in r for r in reg.refused), reg.refused


def test_every_collector_is_for_the_kind_its_family_is_checked_on():
    from scanner.collectors import COLLECTORS
    from scanner.evidence import FAMILY_KINDS

    assert {spec.family: spec.kind for spec in COLLECTORS} == FAMILY_KINDS
