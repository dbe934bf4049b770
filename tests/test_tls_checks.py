"""Unit tests of the TLS checks (T1-T6) over constructed evidence: Given evidence, When checked, Then."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from checks import tls as T
from checks.lib.tls import (
    aead,
    classify_validation_error,
    forward_secrecy,
    key_exchange,
    mozilla_profiles,
    suite_weaknesses,
    weaknesses,
)
from scanner.collectors.tls.conversion import suite_info
from scanner.evidence import Snapshot
from scanner.evidence.tls import (
    Certificate,
    CertificateDeployment,
    CipherSuite,
    Groups,
    Handshake,
    KeyExchange,
    ProtocolResult,
    TLSEvidence,
    TrustValidation,
    Vulnerabilities,
    VulnTest,
)
from scanner.models import Severity, Status
from scanner.plugins import checks_in
from scanner.targets import endpoint

NOW = datetime(2026, 1, 15, tzinfo=UTC)
TARGET = endpoint("https://school.example/")
GOOD_SUITES = (suite_info("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLSv1.2"),)
TLS13 = (suite_info("TLS_AES_128_GCM_SHA256", "TLSv1.3"),)


def cert(**kw: object) -> Certificate:
    base: dict[str, object] = {
        "subject": "CN=school.example",
        "issuer": "CN=Intermediate",
        "sans": ("school.example",),
        "key_type": "RSA",
        "key_bits": 2048,
        "signature_algorithm": "sha256WithRSAEncryption",
        "signature_hash": "sha256",
        "not_before": NOW - timedelta(days=10),
        "not_after": NOW + timedelta(days=80),
        "sha256": "ab" * 32,
    }
    base.update(kw)
    return Certificate(**base)  # type: ignore[arg-type]


INTERMEDIATE = cert(
    subject="CN=Intermediate",
    issuer="CN=Root",
    sans=(),
    is_ca=True,
    sha256="cd" * 32,
    not_after=NOW + timedelta(days=1000),
    not_before=NOW - timedelta(days=100),
)


def protocols(**status: str) -> tuple[ProtocolResult, ...]:
    """Every protocol rejected except those given (accepted ones get a good suite)."""
    out = []
    for name in ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"):
        st = status.get(name.replace(".", "_"), "rejected")
        suites = (TLS13 if name == "TLSv1.3" else GOOD_SUITES) if st == "accepted" else ()
        out.append(
            ProtocolResult(
                protocol=name,
                status=st,
                suites=suites,  # type: ignore[arg-type]
                error="boom" if st == "error" else None,
            )
        )
    return tuple(out)


def good_evidence(**kw: object) -> TLSEvidence:
    base: dict[str, object] = {
        "hostname": "school.example",
        "address": "192.0.2.1",
        "port": 443,
        "scanned_at": NOW,
        "handshake": Handshake(outcome="completed", protocol="TLSv1.3", cipher="TLS_AES_128_GCM_SHA256"),
        "protocols": protocols(TLSv1_2="accepted", TLSv1_3="accepted"),
        "groups": Groups(ecdh_supported=True, curves=("X25519", "secp256r1")),
        "certificates": (
            CertificateDeployment(
                chain=(cert(), INTERMEDIATE),
                validations=(
                    TrustValidation(store="Mozilla", validated=True, verified_chain=("CN=school.example",)),
                ),
            ),
        ),
        "vulnerabilities": Vulnerabilities(
            heartbleed=VulnTest(value=False),
            ccs_injection=VulnTest(value=False),
            robot=VulnTest(value=False, detail="NOT_VULNERABLE_NO_ORACLE"),
            insecure_renegotiation=VulnTest(value=False),
            client_renegotiation_dos=VulnTest(value=False),
            compression=VulnTest(value=False),
            fallback_scsv=VulnTest(value=True),
        ),
    }
    base.update(kw)
    return TLSEvidence(**base)  # type: ignore[arg-type]


def snap(ev: TLSEvidence | None) -> Snapshot:
    return Snapshot(target=TARGET, addresses=("192.0.2.1",), tls=ev)


def statuses(findings: list) -> set[Status]:
    return {f.status for f in findings}


def only(findings: list, status: Status) -> list:
    return [f for f in findings if f.status == status]


# -- every check on good and on missing/errored evidence ----------------------------------------------


@pytest.mark.parametrize("chk", checks_in(T), ids=lambda c: c.id)
def test_good_configuration_passes_every_check(chk) -> None:
    # Given a modern, trusted configuration / When checked / Then pass
    findings = chk.run(snap(good_evidence()))
    assert statuses(findings) == {Status.PASS}, findings
    assert all(f.control == chk.meta.controls[0] for f in findings)


@pytest.mark.parametrize("chk", checks_in(T), ids=lambda c: c.id)
def test_missing_or_errored_evidence_is_error_never_fail(chk) -> None:
    for ev in (
        None,
        TLSEvidence(error="target deadline of 5s exceeded"),
        TLSEvidence(error="no TLS handshake", handshake=Handshake(outcome="timeout", reason="stalled")),
    ):
        findings = chk.run(snap(ev))
        assert statuses(findings) == {Status.ERROR}, (ev, findings)


# -- T1 -------------------------------------------------------------------------------------------------


def test_t1_fails_when_host_answers_http_but_not_tls() -> None:
    ev = TLSEvidence(
        hostname="school.example",
        port=443,
        error="no TLS handshake",
        handshake=Handshake(
            outcome="refused",
            reason="connection refused",
            http_port_answers=True,
            http_probe="http://school.example/ answered HTTP 200",
        ),
    )
    findings = T.handshake.run(snap(ev))
    assert statuses(findings) == {Status.FAIL}
    assert findings[0].remediation and "HTTP 200" in findings[0].detail


def test_t1_is_error_when_host_unreachable() -> None:
    ev = TLSEvidence(
        error="x", handshake=Handshake(outcome="timeout", reason="timed out", http_port_answers=False)
    )
    assert statuses(T.handshake.run(snap(ev))) == {Status.ERROR}


def test_t1_is_error_when_name_does_not_resolve() -> None:
    s = Snapshot(target=TARGET, resolution_error="NXDOMAIN", tls=TLSEvidence(error="host not resolved"))
    assert statuses(T.handshake.run(s)) == {Status.ERROR}


# -- T2 -------------------------------------------------------------------------------------------------


def test_t2_sslv3_is_critical_and_tls10_high() -> None:
    ev = good_evidence(
        protocols=protocols(SSLv3="accepted", TLSv1_0="accepted", TLSv1_2="accepted", TLSv1_3="accepted")
    )
    fails = only(T.protocols.run(snap(ev)), Status.FAIL)
    sev = {f.evidence["protocol"]: f.severity for f in fails}
    assert sev == {"SSLv3": Severity.CRITICAL, "TLSv1.0": Severity.HIGH}


def test_t2_no_tls13_is_a_warning() -> None:
    ev = good_evidence(protocols=protocols(TLSv1_2="accepted"))
    findings = T.protocols.run(snap(ev))
    assert statuses(findings) == {Status.WARN}
    assert "TLS 1.3" in findings[0].title


def test_t2_neither_12_nor_13_fails() -> None:
    ev = good_evidence(protocols=protocols(TLSv1_0="accepted"))
    titles = [f.title for f in only(T.protocols.run(snap(ev)), Status.FAIL)]
    assert any("Neither TLS 1.2 nor TLS 1.3" in t for t in titles)


def test_t2_untestable_legacy_protocol_is_error() -> None:
    ev = good_evidence(protocols=protocols(SSLv2="error", TLSv1_2="accepted", TLSv1_3="accepted"))
    assert statuses(T.protocols.run(snap(ev))) == {Status.ERROR}


# -- T3 -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,reason",
    [
        ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", "3DES"),
        ("TLS_ECDHE_RSA_WITH_RC4_128_SHA", "RC4"),
        ("TLS_RSA_WITH_NULL_SHA256", "NULL"),
        ("TLS_DH_anon_WITH_AES_128_CBC_SHA", "anonymous"),
        ("TLS_RSA_EXPORT_WITH_RC4_40_MD5", "EXPORT"),
        ("TLS_RSA_WITH_DES_CBC_SHA", "DES"),
        ("SSL_CK_RC4_128_WITH_MD5", "MD5"),
    ],
)
def test_suite_classification_names_weakness(name: str, reason: str) -> None:
    assert reason in weaknesses(name)


def test_suite_classification_modern() -> None:
    """The suite's parts come from the suite data (OpenSSL's classification), not from the collector."""
    s = suite_info("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "TLSv1.2")
    assert (forward_secrecy(s), aead(s), suite_weaknesses(s), key_exchange(s)) == (True, True, (),
                                                                                  ("ECDHE", "ECDSA"))
    assert mozilla_profiles(s) == ("intermediate", "old")
    rsa = suite_info("TLS_RSA_WITH_AES_128_GCM_SHA256", "TLSv1.2")
    assert (forward_secrecy(rsa), aead(rsa), mozilla_profiles(rsa)) == (False, True, ("old",))
    ccm = suite_info("TLS_DHE_RSA_WITH_AES_256_CCM", "TLSv1.2")
    assert (forward_secrecy(ccm), aead(ccm), mozilla_profiles(ccm)) == (True, True, ())


def test_a_stored_suite_the_data_does_not_know_is_judged_by_what_was_stored() -> None:
    old = CipherSuite(name="TLS_FUTURE_WITH_SOMETHING", forward_secrecy=True, aead=True, weak=("RC4",))
    assert (forward_secrecy(old), aead(old), suite_weaknesses(old)) == (True, True, ("RC4",))
    assert weaknesses("TLS_FUTURE_WITH_SOMETHING") == ()


def _with_tls12_suites(*names: str, ephemeral: KeyExchange | None = None) -> TLSEvidence:
    suites = tuple(suite_info(n, "TLSv1.2").model_copy(update={"ephemeral": ephemeral}) for n in names)
    prots = tuple(
        p.model_copy(update={"suites": suites}) if p.protocol == "TLSv1.2" else p
        for p in protocols(TLSv1_2="accepted", TLSv1_3="accepted")
    )
    return good_evidence(protocols=prots)


def test_t3_weak_suite_is_high_fail_with_reason() -> None:
    findings = T.ciphers.run(snap(_with_tls12_suites("TLS_RSA_WITH_3DES_EDE_CBC_SHA")))
    weak = [f for f in findings if f.evidence.get("reason") == "3DES"]
    assert weak and weak[0].severity == Severity.HIGH and weak[0].status == Status.FAIL
    assert weak[0].evidence["suites"][0]["weak_because"] == ["3DES"]


def test_t3_no_forward_secrecy_and_cbc_are_medium() -> None:
    findings = T.ciphers.run(snap(_with_tls12_suites("TLS_RSA_WITH_AES_128_CBC_SHA")))
    fails = only(findings, Status.FAIL)
    assert len(fails) == 2 and {f.severity for f in fails} == {Severity.MEDIUM}


def test_t3_small_dh_group_fails() -> None:
    ev = _with_tls12_suites(
        "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", ephemeral=KeyExchange(kind="DH", bits=1024)
    )
    fails = only(T.ciphers.run(snap(ev)), Status.FAIL)
    assert [f.evidence["dh_bits"] for f in fails if "dh_bits" in f.evidence] == [[1024]]


def test_t3_small_curve_fails_but_x25519_does_not() -> None:
    ev = good_evidence(groups=Groups(ecdh_supported=True, curves=("X25519", "secp224r1")))
    fails = only(T.ciphers.run(snap(ev)), Status.FAIL)
    assert len(fails) == 1 and fails[0].evidence["curves"] == ["secp224r1"]


# -- T4 -------------------------------------------------------------------------------------------------


def _untrusted(problem: str, error: str = "validation failed", chain: tuple[Certificate, ...] | None = None):
    dep = CertificateDeployment(
        chain=chain or (cert(), INTERMEDIATE),
        validations=(
            TrustValidation(
                store="Mozilla", validated=False, problem="untrusted", error="candidates exhausted"
            ),
            TrustValidation(store="--ca-bundle", validated=False, problem=problem, error=error),
        ),
    )  # type: ignore[arg-type]
    return good_evidence(certificates=(dep,))


@pytest.mark.parametrize("problem", ["expired", "self_signed", "hostname_mismatch", "missing_intermediate"])
def test_t4_problem_is_critical_fail_naming_the_store(problem: str) -> None:
    findings = T.cert_trust.run(snap(_untrusted(problem)))
    assert statuses(findings) == {Status.FAIL}
    assert [f.evidence["problem"] for f in findings] == [problem]  # generic "untrusted" hidden
    assert findings[0].severity == Severity.CRITICAL and "--ca-bundle" in findings[0].detail


def test_t4_untrusted_everywhere() -> None:
    dep = CertificateDeployment(
        chain=(cert(), INTERMEDIATE),
        validations=(
            TrustValidation(
                store="Mozilla", validated=False, problem="untrusted", error="candidates exhausted"
            ),
        ),
    )
    findings = T.cert_trust.run(snap(good_evidence(certificates=(dep,))))
    assert [f.evidence["problem"] for f in findings] == ["untrusted"]


def test_t4_trusted_by_custom_bundle_passes() -> None:
    dep = CertificateDeployment(
        chain=(cert(), INTERMEDIATE),
        validations=(
            TrustValidation(store="Mozilla", validated=False, problem="untrusted"),
            TrustValidation(store="--ca-bundle", validated=True),
        ),
    )
    findings = T.cert_trust.run(snap(good_evidence(certificates=(dep,))))
    assert statuses(findings) == {Status.PASS} and findings[0].evidence["validated_by"] == ["--ca-bundle"]


def test_validation_error_classification() -> None:
    leaf_only = (cert(),)
    self_signed = (cert(issuer="CN=school.example", self_issued=True),)
    exhausted = "validation failed: candidates exhausted: all candidates exhausted with no interior errors"
    assert classify_validation_error(exhausted, leaf_only) == "missing_intermediate"
    assert classify_validation_error(exhausted, self_signed) == "self_signed"
    assert classify_validation_error(exhausted, (cert(), INTERMEDIATE)) == "untrusted"
    assert (
        classify_validation_error("leaf certificate has no matching subjectAltName", leaf_only)
        == "hostname_mismatch"
    )
    assert classify_validation_error("cert is not valid at validation time", leaf_only) == "expired"
    profile = "validation failed: EE subjectAltName MUST NOT be critical when subject is nonempty"
    assert classify_validation_error(profile, leaf_only) == "profile"


PROFILE_ERROR = "validation failed: EE subjectAltName MUST NOT be critical when subject is nonempty"


def _profile_evidence(openssl: TrustValidation | None) -> TLSEvidence:
    dep = CertificateDeployment(
        chain=(cert(), INTERMEDIATE),
        validations=(
            TrustValidation(store="Mozilla", validated=False, problem="profile", error=PROFILE_ERROR),
        ),
    )
    return good_evidence(certificates=(dep,)).model_copy(update={"openssl_validation": openssl})


def test_t4_profile_rule_accepted_by_openssl_is_a_warning() -> None:
    ok = TrustValidation(store="OpenSSL (Mozilla)", validated=True)
    (f,) = T.cert_trust.run(snap(_profile_evidence(ok)))
    assert f.status == Status.WARN and f.evidence["problem"] == "profile"
    assert "MUST NOT be critical" in f.detail and "OpenSSL" in f.detail


CRITICALITY = ("validation failed: candidates exhausted: invalid extension: 2.5.29.19: Certificate extension "
               "has incorrect criticality")


def test_ca_without_critical_basic_constraints_is_a_profile_problem_not_untrusted() -> None:
    # issue 11: cryptography words it "candidates exhausted", which used to read as "untrusted"
    assert classify_validation_error(CRITICALITY, (cert(), INTERMEDIATE)) == "profile"
    assert classify_validation_error("validation failed: missing required extension: 2.5.29.35",
                                     (cert(), INTERMEDIATE)) == "profile"


def test_t4_private_ca_given_with_ca_bundle_and_accepted_by_openssl_passes() -> None:
    dep = CertificateDeployment(
        chain=(cert(), INTERMEDIATE),
        validations=(
            TrustValidation(store="Mozilla", validated=False, problem="untrusted", error="no issuer"),
            TrustValidation(store="--ca-bundle", validated=False, problem="profile", error=CRITICALITY),
        ),
    )
    ok = TrustValidation(store="OpenSSL (Mozilla + --ca-bundle)", validated=True)
    ev = good_evidence(certificates=(dep,)).model_copy(update={"openssl_validation": ok})
    (f,) = T.cert_trust.run(snap(ev))
    assert f.status == Status.PASS and "incorrect criticality" in f.evidence["profile_note"]
    # Without OpenSSL's word it stays a profile failure, never "untrusted".
    (f,) = T.cert_trust.run(snap(good_evidence(certificates=(dep,))))
    assert f.status == Status.FAIL and f.evidence["problem"] == "profile"


def test_t4_profile_rule_without_a_second_opinion_fails() -> None:
    for second in (None, TrustValidation(store="OpenSSL (Mozilla)", validated=False, error="unable to get")):
        (f,) = T.cert_trust.run(snap(_profile_evidence(second)))
        assert f.status == Status.FAIL and f.evidence["problem"] == "profile"


# -- T5 -------------------------------------------------------------------------------------------------


def _leaf(**kw: object) -> TLSEvidence:
    dep = CertificateDeployment(
        chain=(cert(**kw), INTERMEDIATE), validations=(TrustValidation(store="Mozilla", validated=True),)
    )
    return good_evidence(certificates=(dep,))


@pytest.mark.parametrize(
    "kw,status,severity",
    [
        ({"key_bits": 1024}, Status.FAIL, Severity.HIGH),
        ({"key_type": "EC", "key_bits": 224}, Status.FAIL, Severity.HIGH),
        (
            {"signature_hash": "sha1", "signature_algorithm": "sha1WithRSAEncryption"},
            Status.FAIL,
            Severity.HIGH,
        ),
        ({"not_after": NOW + timedelta(days=5)}, Status.FAIL, Severity.HIGH),
        ({"not_after": NOW + timedelta(days=20)}, Status.WARN, Severity.HIGH),
        (
            {"not_before": NOW - timedelta(days=500), "not_after": NOW + timedelta(days=60)},
            Status.FAIL,
            Severity.LOW,
        ),
    ],
)
def test_t5_hygiene_problems(kw: dict, status: Status, severity: Severity) -> None:
    findings = T.cert_hygiene.run(snap(_leaf(**kw)))
    assert statuses(findings) == {status}, findings
    assert findings[0].severity == severity and findings[0].remediation


def test_t5_root_sha1_self_signature_is_ignored() -> None:
    root = cert(subject="CN=Root", issuer="CN=Root", self_issued=True, is_ca=True, signature_hash="sha1")
    dep = CertificateDeployment(chain=(cert(), INTERMEDIATE, root))
    assert statuses(T.cert_hygiene.run(snap(good_evidence(certificates=(dep,))))) == {Status.PASS}


# -- T6 -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field", ["heartbleed", "ccs_injection", "robot", "insecure_renegotiation", "compression"]
)
def test_t6_each_flaw_fails(field: str) -> None:
    ev = good_evidence()
    vulns = ev.vulnerabilities.model_copy(
        update={field: VulnTest(value=True, detail="VULNERABLE_STRONG_ORACLE")}
    )
    findings = T.vulnerabilities.run(snap(ev.model_copy(update={"vulnerabilities": vulns})))
    assert statuses(findings) == {Status.FAIL} and findings[0].evidence["test"] == field


def test_t6_missing_fallback_scsv_with_tls10_warns() -> None:
    ev = good_evidence(protocols=protocols(TLSv1_0="accepted", TLSv1_2="accepted", TLSv1_3="accepted"))
    vulns = ev.vulnerabilities.model_copy(update={"fallback_scsv": VulnTest(value=False)})
    findings = T.vulnerabilities.run(snap(ev.model_copy(update={"vulnerabilities": vulns})))
    assert statuses(findings) == {Status.WARN}


def test_t6_missing_fallback_scsv_without_legacy_protocols_passes() -> None:
    ev = good_evidence()
    vulns = ev.vulnerabilities.model_copy(update={"fallback_scsv": VulnTest(value=False)})
    assert statuses(T.vulnerabilities.run(snap(ev.model_copy(update={"vulnerabilities": vulns})))) == {
        Status.PASS
    }


def test_t6_decided_from_the_tests_that_completed() -> None:
    # issue 11: sslyze's Heartbleed, CCS and ROBOT commands crash on a host with a 36 KB certificate
    ev = good_evidence(protocols=protocols(TLSv1_2="accepted", TLSv1_3="accepted"))
    crash = VulnTest(error="BUG_IN_SSLYZE: IndexError")
    vulns = ev.vulnerabilities.model_copy(
        update={"heartbleed": crash, "ccs_injection": crash, "robot": crash})
    (f,) = T.vulnerabilities.run(snap(ev.model_copy(update={"vulnerabilities": vulns})))
    assert f.status == Status.WARN and "heartbleed, ccs_injection, robot" in f.title
    assert f.evidence["completed"] == ["insecure_renegotiation", "compression"]
    # A flaw found by a completed test still fails.
    bad = vulns.model_copy(update={"compression": VulnTest(value=True)})
    findings = T.vulnerabilities.run(snap(ev.model_copy(update={"vulnerabilities": bad})))
    assert statuses(findings) == {Status.FAIL, Status.WARN}


def test_t6_no_test_completed_is_error() -> None:
    ev = good_evidence()
    err = VulnTest(error="CONNECTIVITY_ISSUE")
    vulns = ev.vulnerabilities.model_copy(update=dict.fromkeys(
        ("heartbleed", "ccs_injection", "robot", "insecure_renegotiation", "compression"), err))
    assert statuses(T.vulnerabilities.run(snap(ev.model_copy(update={"vulnerabilities": vulns})))) == {
        Status.ERROR
    }


# -- evidence model -----------------------------------------------------------------------------------


def test_evidence_is_bounded_and_round_trips_json() -> None:
    ev = good_evidence(error=None, notes=tuple("n" * 2000 for _ in range(200)))
    assert len(ev.notes) <= 64 and all(len(n) <= 512 for n in ev.notes)
    long_cert = cert(subject="CN=" + "x" * 5000, sans=tuple(f"h{i}.example" for i in range(500)))
    assert len(long_cert.subject) <= 512 and len(long_cert.sans) <= 64
    assert TLSEvidence.model_validate_json(ev.model_dump_json()) == ev


def test_t4_detail_is_plain_words_and_groups_stores() -> None:
    """Given both stores failing with cryptography's message naming the certificate's Python repr,
    the detail names the reason once for both stores, without the repr (the evidence keeps it)."""
    error = ("validation failed: cert is not valid at validation time (encountered processing "
             "<Certificate(subject=<Name(CN=a.example)>, ...)>)")
    dep = CertificateDeployment(
        chain=(cert(), INTERMEDIATE),
        validations=tuple(TrustValidation(store=s, validated=False, problem="expired", error=error)
                          for s in ("Mozilla", "--ca-bundle")),
    )
    (f,) = T.cert_trust.run(snap(good_evidence(certificates=(dep,))))
    assert "Mozilla, --ca-bundle: cert is not valid at validation time." in f.detail
    assert "<Certificate" not in f.detail and "<Certificate" in f.evidence["stores"][0]["error"]


def test_t3_says_when_the_suite_list_was_cut_short() -> None:
    """Issue 9: the decision-minimal prober lists one suite per class; T3's findings say so."""
    ev = _with_tls12_suites("TLS_RSA_WITH_AES_128_CBC_SHA")
    protos = tuple(p.model_copy(update={"suites_complete": False}) if p.protocol == "TLSv1.2" else p
                   for p in ev.protocols)
    cut = ev.model_copy(update={"protocols": protos})
    assert statuses(T.ciphers.run(snap(cut))) == statuses(T.ciphers.run(snap(ev)))
    assert all(f.evidence["list_cut_short"] == ["TLSv1.2"] for f in T.ciphers.run(snap(cut)))
    assert not any("list_cut_short" in f.evidence for f in T.ciphers.run(snap(ev)))
