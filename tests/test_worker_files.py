"""A worker on a machine that lacks a file the run names (--ca-bundle, --trust-anchor) says so per target."""

from __future__ import annotations

from pathlib import Path

from scanner.distributed.work import collect_family, missing_files
from scanner.engine import Scanner
from scanner.errors import ErrorKind
from scanner.settings import Settings
from scanner.targets import endpoint


def test_missing_files_name_the_option_and_only_what_the_family_reads(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    anchors = tmp_path / "gone" / "anchors.txt"
    settings = Settings(ca_bundle=ca, trust_anchors=(anchors,))
    assert missing_files(settings, "tls") is None  # the CA bundle is here; anchors are DNS's
    assert missing_files(settings, "dns") == f"--trust-anchor {anchors}"
    ca.unlink()
    assert missing_files(settings, "http") == f"--ca-bundle {ca}"


def test_a_worker_without_the_runs_ca_bundle_records_a_clear_error(tmp_path: Path) -> None:
    # Given a run started elsewhere with a CA bundle this machine does not have
    ca = tmp_path / "elsewhere" / "private-ca.pem"
    scanner = Scanner(Settings(ca_bundle=ca, resolve={("intranet.test", 443): "127.7.9.1"}))
    target = endpoint("https://intranet.test/")
    # When a worker collects TLS evidence for it
    evidence, addresses, resolution_error, _ = collect_family(scanner, target, "tls")
    # Then the evidence is an error naming the option and the path, before any connection is tried
    assert resolution_error is None
    assert evidence.error.startswith(f"--ca-bundle {ca}: no such file on worker ")
    assert evidence.error_kind == ErrorKind.UNKNOWN
