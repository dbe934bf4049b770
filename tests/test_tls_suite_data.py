"""The suite data the checks judge by (checks/lib/tls_suites.json) is what the installed sslyze, nassl and
Mozilla profile say: upgrading sslyze means `make tls-data`, and this test says so until it is done."""

from __future__ import annotations

import json

from checks.lib.tls import aead, forward_secrecy, suite_weaknesses
from checks.lib.tls_suites import DATA, registry
from scanner.collectors.tls import sslyze_adapter as sa
from scanner.collectors.tls.suite_data import build, render
from scanner.evidence.tls import CipherSuite


def test_the_committed_suite_data_matches_the_installed_sslyze():
    assert DATA.read_text() == render(build()), "regenerate it: make tls-data"


def test_every_suite_sslyze_can_report_is_known():
    names = {name for rows in sa.suites_tested().values() for name, _o, _l in rows}
    assert names == set(registry())


def test_mozilla_intermediate_tls12_suites_pass_t3():
    """The baseline's T3 asks for forward secrecy and AEAD "as in Mozilla intermediate": every TLS 1.2
    suite that profile lists has both and no weakness (the profile is narrower, not looser)."""
    profile = sa.mozilla_profile()["configurations"]["intermediate"]
    for name in profile["ciphers"]["iana"]:
        s = CipherSuite(name=name)
        assert forward_secrecy(s) and aead(s) and not suite_weaknesses(s), name
        assert "intermediate" in registry()[name].mozilla


def test_openssl_classes_the_well_known_suites():
    r = registry()
    des3, cbc = r["TLS_RSA_WITH_3DES_EDE_CBC_SHA"], r["TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"]
    assert (des3.cipher, des3.mozilla) == ("3DES", ("old",))
    assert cbc.mode == "CBC" and not cbc.aead and cbc.forward_secrecy
    assert r["TLS_DH_anon_WITH_AES_128_GCM_SHA256"].authentication == "anon"
    assert r["TLS_RSA_EXPORT_WITH_RC4_40_MD5"].export and r["TLS_RSA_EXPORT_WITH_RC4_40_MD5"].mac == "MD5"
    assert r["TLS_AES_128_CCM_8_SHA256"].aead and r["TLS_AES_128_CCM_8_SHA256"].forward_secrecy
    assert json.loads(DATA.read_text())["mozilla_profile"]["version"] == sa.mozilla_profile()["version"]


def test_the_legacy_client_split_of_tls12_is_sslyzes():
    """``suites_for`` splits TLS 1.2's suites between nassl's clients by one list built once; sslyze's own
    ``requires_legacy_openssl`` (which builds it per suite) answers the same for every suite."""
    legacy = {s.openssl_name for s in sa.suites_for("TLSv1.2", True)}
    modern = {s.openssl_name for s in sa.suites_for("TLSv1.2", False)}
    assert legacy and modern and not legacy & modern
    for name in legacy | modern:
        assert sa.sslyze_requires_legacy(name) == (name in legacy), name
