"""ROBOT, decision-minimal (issue 9), against real local servers: one attempt of sslyze's five payloads
decides "no oracle" when the server answers them all alike (6 connections instead of sslyze's 18); a
server that answers some differently (an oracle, ``start_robot_oracle``) gets sslyze's three attempts and
sslyze's own verdict. Each verdict is compared with sslyze's own ROBOT command on the same server."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from scanner.collectors.tls import sslyze_adapter as sa
from scanner.engine import Scanner
from scanner.models import Status
from scanner.targets import endpoint
from scanner.testbed.tcp_proxy import TcpProxy
from scanner.testbed.tls_servers import start_https_server, start_robot_oracle
from tests.testbed.tls import DOMAIN, TLS_PORT, TLSBed

NET = "127.5.0"  # this module's servers and counting proxies
ORACLE, UPSTREAM = f"{NET}.1", f"{NET}.2"
COUNT_PLAIN, COUNT_ORACLE = f"{NET}.10", f"{NET}.11"
RSA_KX = "AES128-GCM-SHA256:AES256-GCM-SHA384"
PROBING = ("TLSv1.2", "AES128-GCM-SHA256", False)  # what the prober learns of an RSA key exchange server


@pytest.fixture(scope="module")
def oracle(tls_bed: TLSBed) -> Iterator[str]:
    """An RSA key exchange server behind the oracle proxy; its name (resolve it to ORACLE)."""
    name = f"oracle.{DOMAIN}"
    issued = tls_bed.pki.leaf([name])
    server = start_https_server(UPSTREAM, TLS_PORT, issued.chain_pem, issued.key_pem,
                                tls_max=ssl.TLSVersion.TLSv1_2, ciphers=RSA_KX)
    proxy = start_robot_oracle(ORACLE, TLS_PORT, (UPSTREAM, TLS_PORT), issued.key_pem)
    yield name
    proxy.stop()
    server.stop()


def _ours(name: str, addr: str, count_at: str) -> tuple[str, str | None, int]:
    """Our ROBOT command through a counting proxy: (verdict, how it ran, TCP connections)."""
    with TcpProxy([((count_at, TLS_PORT), (addr, TLS_PORT))]) as proxy, ThreadPoolExecutor(4) as pool:
        result, note = sa.run_commands(name, TLS_PORT, count_at, 5.0, None, {sa.ScanCommand.ROBOT}, pool,
                                       PROBING)
    return result.scan_result.robot.result.robot_result.value, note, len(proxy.accepted)


def _sslyze(name: str, addr: str) -> str:
    """sslyze's own ROBOT command (its connectivity test, then its three attempts)."""
    result = sa.run_scan(name, TLS_PORT, addr, 5.0, None, {sa.ScanCommand.ROBOT}, 4)
    return result.scan_result.robot.result.robot_result.value


def test_identical_answers_decide_no_oracle_after_one_attempt(tls_bed: TLSBed) -> None:
    # Given an RSA key exchange server (OpenSSL: every wrong padding gets the same alert)
    site = tls_bed.sites["rsa_kx"]
    # When ROBOT runs
    verdict, note, connections = _ours(site.name, site.address, COUNT_PLAIN)
    # Then one attempt decides it: the RSA key once, 5 payloads; sslyze's own command agrees
    assert verdict == "NOT_VULNERABLE_NO_ORACLE" == _sslyze(site.name, site.address)
    assert connections == 6
    assert note is not None and note.startswith("1 attempt of 5 payloads: identical answers (TLS Alert")


def test_an_oracle_gets_sslyze_three_attempts_and_verdict(tls_bed: TLSBed, oracle: str) -> None:
    # Given a server that closes silently on a padding not starting 00 02, and alerts on the others
    # When ROBOT runs
    verdict, note, connections = _ours(oracle, ORACLE, COUNT_ORACLE)
    # Then the first attempt's differing answers call for sslyze's other two, judged by sslyze's plugin
    assert verdict == "VULNERABLE_STRONG_ORACLE" == _sslyze(oracle, ORACLE)
    assert connections == 1 + 3 * 5
    assert note == "3 attempts of 5 payloads: the first showed 2 different answers"


def test_t6_through_the_engine(tls_bed: TLSBed, oracle: str) -> None:
    # Given the oracle and the plain RSA key exchange site / When scanned through the engine
    plain = tls_bed.sites["rsa_kx"]
    settings = tls_bed.settings(resolve={**tls_bed.resolve(), (oracle, TLS_PORT): ORACLE})
    report = asyncio.run(Scanner(settings).run([endpoint(f"https://{oracle}:{TLS_PORT}/"), plain.target()]))
    t6 = {t.target: next(c for c in t.controls if c.id == "T6") for t in report.targets}
    # Then the oracle fails T6 (critical: a strong oracle), the other passes, saying how ROBOT ran
    bad = t6[f"https://{oracle}:{TLS_PORT}/"]
    assert bad.status == Status.FAIL
    (finding,) = [f for f in bad.findings if f.status == Status.FAIL]
    assert finding.severity.value == "critical" and finding.evidence["test"] == "robot"
    assert finding.evidence["result"]["detail"] == "VULNERABLE_STRONG_ORACLE"
    good = t6[plain.url]
    assert good.status == Status.PASS
    robot = good.findings[0].evidence["results"]["robot"]
    assert robot["detail"] == "NOT_VULNERABLE_NO_ORACLE" and robot["note"].startswith("1 attempt")


def test_the_rsa_key_a_prober_handshake_received_is_not_asked_again(tls_bed: TLSBed) -> None:
    """ROBOT's first handshake (legacy client, TLS 1.2, AES128/256-GCM with RSA key exchange) only reads
    the server's RSA key: when a handshake of the prober accepted one of those suites with that client and
    protocol, its chain gives the key, and ROBOT sends its payloads at once, with the same verdict."""
    from scanner.collectors import tls

    # Given a server accepting only ROBOT's own suites
    site = tls_bed.sites["rsa_kx"]
    # When its TLS evidence is collected
    ev = tls.scan_blocking(site.name, TLS_PORT, site.address, tls_bed.settings(per_host_connections=4),
                           listing="classes")
    # Then the key came from the prober's handshake, and the verdict is sslyze's own
    robot = ev.vulnerabilities.robot
    assert robot.detail == "NOT_VULNERABLE_NO_ORACLE" == _sslyze(site.name, site.address)
    assert robot.note is not None and robot.note.startswith("1 attempt of 5 payloads: identical answers")
    assert robot.note.endswith("the RSA key from the prober's TLS 1.2 handshake accepting one of "
                               "AES128-GCM-SHA256:AES256-GCM-SHA384")
