"""The one home of every sslyze and nassl import in pledgescan (``tests/test_architecture.py`` enforces it).

The rest of the TLS collector (and the benchmarks) use sslyze and nassl only through the names and small
functions here, so an sslyze upgrade that moves a private module is a change to this file alone. Several of
the names are sslyze's private primitives (the connection class, the suite repository, the TLS 1.2 client
table) that the elimination prober reuses so that it asks exactly what sslyze would ask.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
import threading
import types
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from ipaddress import ip_address
from operator import attrgetter
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.x509 import DNSName, IPAddress, load_pem_x509_certificate
from pydantic import BaseModel


@contextlib.contextmanager
def _models_built_on_first_use() -> Iterator[None]:
    """While sslyze is imported, pydantic models are built on their first use (pydantic's ``defer_build``),
    not when their class is defined: sslyze defines the models of its JSON output (``sslyze.json``, each
    plugin's ``*AsJson``) at import, ~60 pydantic schemas that only its own command line validates, and
    pledgescan never does (~80 ms of CPU at every start, a sixth of sslyze's import). A model's config
    inherits its bases', so setting it on ``BaseModel`` for the import only reaches the classes defined
    meanwhile: sslyze's (nassl, tls_parser and the standard library modules it imports define none); one
    of them used after all is built then, as pydantic builds any deferred model. ``tests/test_tls_probe.py``
    checks both."""
    config = BaseModel.model_config
    if "defer_build" in config:  # someone else's setting: leave it alone
        yield
        return
    config["defer_build"] = True
    try:
        yield
    finally:
        del config["defer_build"]


with _models_built_on_first_use():
    from nassl import _nassl
    from nassl._nassl import WantReadError, WantX509LookupError
    from nassl.ephemeral_key_info import (
        _OPENSSL_NID_TO_SECG_ANSI_X9_62,
        DhEphemeralKeyInfo,
        EcDhEphemeralKeyInfo,
        OpenSslEcNidEnum,
    )
    from nassl.legacy_ssl_client import LegacySslClient
    from nassl.ssl_client import ClientCertificateRequested, OpenSslVerifyEnum, OpenSslVersionEnum, SslClient
    from sslyze import (
        CertificateInfoExtraArgument,
        ClientAuthRequirementEnum,
        ScanCommand,
        ScanCommandAttemptStatusEnum,
        ScanCommandsExtraArguments,
        Scanner,
        ServerNetworkConfiguration,
        ServerNetworkLocation,
        ServerScanRequest,
        ServerTlsProbingResult,
    )
    from sslyze.connection_helpers import tls_connection
    from sslyze.connection_helpers.tls_connection import NoCiphersAvailableBugInSSlyze, SslConnection
    from sslyze.errors import (
        ConnectionToServerTimedOut,
        ServerRejectedConnection,
        ServerRejectedTlsHandshake,
        ServerTlsConfigurationNotSupported,
        TlsHandshakeTimedOut,
    )
    from sslyze.plugins.certificate_info._cert_chain_analyzer import CertificateDeploymentAnalyzer
    from sslyze.plugins.certificate_info.trust_stores.trust_store import TrustStore
    from sslyze.plugins.certificate_info.trust_stores.trust_store_repository import TrustStoresRepository
    from sslyze.plugins.openssl_cipher_suites._test_cipher_suite import CipherSuiteAcceptedByServer
    from sslyze.plugins.openssl_cipher_suites._tls12_workaround import WorkaroundForTls12ForCipherSuites
    from sslyze.plugins.openssl_cipher_suites.cipher_suites import CipherSuite, CipherSuitesRepository
    from sslyze.plugins.robot import _robot_tester as robot
    from sslyze.plugins.robot.implementation import RobotImplementation, RobotScanResult
    from sslyze.scanner._jobs_worker_thread import CompletedScanJob
    from sslyze.scanner._mass_scanner import (
        _generate_result_for_completed_server_scan,
        _generate_scan_jobs_for_server_scan,
        _OngoingServerScan,
    )
    from sslyze.scanner.models import get_scan_command_attempt_cls
    from sslyze.server_connectivity import ServerConnectivityInfo, TlsVersionEnum, enable_ecdh_cipher_suites

__all__ = [
    "CipherSuite",
    "CipherSuiteAcceptedByServer",
    "ClientCertificateRequested",
    "ConnectionToServerTimedOut",
    "DhEphemeralKeyInfo",
    "EcDhEphemeralKeyInfo",
    "NoCiphersAvailableBugInSSlyze",
    "OpenSSLError",
    "OpenSslEcNidEnum",
    "ROBOT_GCM",
    "ScanCommand",
    "ServerConnectivityInfo",
    "ServerRejectedConnection",
    "ServerRejectedTlsHandshake",
    "ServerTlsConfigurationNotSupported",
    "SslConnection",
    "TlsHandshakeTimedOut",
    "TlsVersionEnum",
    "analyse_chain",
    "connect_until_decided",
    "curve_name",
    "default_per_server_connections",
    "enable_ecdh_cipher_suites",
    "install_socket_hook",
    "mozilla_profile",
    "network",
    "openssl_class",
    "openssl_selects",
    "run_commands",
    "run_scan",
    "sslyze_version",
    "suites_for",
    "legacy_tls12_suites",
    "sslyze_requires_legacy",
    "suites_tested",
    "trust_stores",
]

OpenSSLError = _nassl.OpenSSLError

PROTOCOL_VERSIONS: dict[str, str] = {
    "SSLv2": "SSL_2_0",
    "SSLv3": "SSL_3_0",
    "TLSv1.0": "TLS_1_0",
    "TLSv1.1": "TLS_1_1",
    "TLSv1.2": "TLS_1_2",
    "TLSv1.3": "TLS_1_3",
}


@cache
def sslyze_version() -> str:
    """"sslyze X.Y.Z" (the prober named in the evidence), read once per process (the package metadata is
    parsed on every ``version`` call: milliseconds of the event loop per target)."""
    try:
        return f"sslyze {version('sslyze')}"
    except PackageNotFoundError:
        return "sslyze"


def tls_version(protocol: str) -> Any:
    """sslyze's ``TlsVersionEnum`` member for one of our protocol names ("TLSv1.2")."""
    return TlsVersionEnum[PROTOCOL_VERSIONS[protocol]]


def protocol_name(v: Any) -> str | None:
    """Our protocol name for an sslyze ``TlsVersionEnum`` member (None stays None)."""
    if v is None:
        return None
    names = {code: name for name, code in PROTOCOL_VERSIONS.items()}
    return names.get(getattr(v, "name", ""), str(v))


@cache
def suites_for(protocol: str, legacy: bool) -> tuple[Any, ...]:
    """sslyze's suites for ``protocol`` that sslyze tests with the legacy (or the modern) client, sorted by
    name. Cached, as is the legacy client's list it is decided by."""
    every = CipherSuitesRepository.get_all_cipher_suites(tls_version(protocol))
    suites = sorted(every, key=attrgetter("name"))
    if protocol == "TLSv1.2":
        in_legacy = legacy_tls12_suites()
        return tuple(s for s in suites if (s.openssl_name in in_legacy) == legacy)
    return tuple(suites)


@cache
def legacy_tls12_suites() -> frozenset[str]:
    """The OpenSSL names sslyze's ``WorkaroundForTls12ForCipherSuites.requires_legacy_openssl`` says need
    the legacy client for TLS 1.2: those the legacy client supports (its ``ALL:COMPLEMENTOFALL``). sslyze
    builds that client and its list again for every suite it is asked about (~0.3 ms each: ~50 ms for
    TLS 1.2's table at the first target); once here. tests/test_tls_suite_data.py checks the two agree."""
    client = LegacySslClient(ssl_version=OpenSslVersionEnum.TLSV1_2, ssl_verify=OpenSslVerifyEnum.NONE)
    client.set_cipher_list("ALL:COMPLEMENTOFALL")
    return frozenset(client.get_cipher_list())


def sslyze_requires_legacy(openssl_name: str) -> bool:
    """sslyze's own answer (per suite, slow) to what ``legacy_tls12_suites`` tells at once: for the test."""
    return bool(WorkaroundForTls12ForCipherSuites.requires_legacy_openssl(openssl_name))


@cache
def openssl_class(legacy: bool, keywords: tuple[str, ...]) -> frozenset[str]:
    """The OpenSSL names of the suites that OpenSSL's own cipher-string keywords (``RC4``, ``kRSA``,
    ``AESGCM`` ...) select in the legacy (or the modern) client: OpenSSL classifies, not a list of ours.
    A keyword the client does not know selects nothing."""
    names: set[str] = set()
    for keyword in keywords:
        client: Any = (LegacySslClient if legacy else SslClient)(ssl_version=OpenSslVersionEnum.TLSV1_2)
        try:
            client.set_cipher_list(keyword if legacy else f"{keyword}:@SECLEVEL=0")
            names.update(client.get_cipher_list())
        except OpenSSLError:
            continue
    return frozenset(names)


def network(
    host: str, port: int, addr: str, timeout: float, user_agent: str | None = None
) -> tuple[Any, Any]:
    """sslyze's (ServerNetworkLocation, ServerNetworkConfiguration) for one endpoint: the address the
    engine resolved, SNI = host, ``timeout`` as sslyze's network timeout, one retry."""
    location = ServerNetworkLocation(hostname=host, port=port, ip_address=addr)
    kwargs: dict[str, Any] = {"http_user_agent": user_agent} if user_agent else {}
    config = ServerNetworkConfiguration(
        tls_server_name_indication=host, network_timeout=max(1, round(timeout)), network_max_retries=1,
        **kwargs,
    )
    return location, config


def curve_name(nid: Any) -> str:
    """The name sslyze gives an OpenSSL curve NID."""
    return _OPENSSL_NID_TO_SECG_ANSI_X9_62.get(nid, f"unknown-curve-with-openssl-id-{nid.value}")


def run_scan(
    host: str,
    port: int,
    addr: str,
    timeout: float,
    user_agent: str | None,
    commands: set[Any],
    max_connections: int,
    ca_bundle: Path | None = None,
) -> Any:
    """Blocking: one sslyze ``Scanner`` run of ``commands`` against one endpoint; sslyze's
    ServerScanResult, or an error string (sslyze bugs and bad input are data, not crashes)."""
    extra = ScanCommandsExtraArguments()
    if ca_bundle is not None and ScanCommand.CERTIFICATE_INFO in commands:
        try:
            extra = ScanCommandsExtraArguments(
                certificate_info=CertificateInfoExtraArgument(custom_ca_file=Path(ca_bundle))
            )
        except ValueError as exc:
            return f"--ca-bundle unusable: {exc}"
    try:
        location, config = network(host, port, addr, timeout, user_agent)
        request = ServerScanRequest(
            server_location=location,
            network_configuration=config,
            scan_commands=commands,
            scan_commands_extra_arguments=extra,
        )
        scanner = Scanner(
            per_server_concurrent_connections_limit=max(1, max_connections), concurrent_server_scans_limit=1
        )
        scanner.queue_scans([request])
        # Drained to the end: sslyze's producer thread waits until every result is taken, and one left
        # behind kept that thread (and the scan it holds) alive for good, one per target (issue 9).
        for result in list(scanner.get_results()):
            return result
    except Exception as exc:  # sslyze bug or bad input: data, not a crash
        return f"sslyze failed: {type(exc).__name__}: {exc}"
    return "sslyze returned no result"


_trust_lock = threading.Lock()


@cache
def _mozilla_store() -> Any:
    return TrustStoresRepository.get_default().get_main_store()


@cache
def _supplied_store(path: Path) -> Any:
    return TrustStore(path, "Supplied CA file", "N/A")


def trust_stores(ca_bundle: Path | None) -> list[Any] | str:
    """Mozilla's store (as sslyze ships it) plus ``ca_bundle``, each parsed once per process; an error
    string when the bundle is unusable (as sslyze's certificate command says it)."""
    with _trust_lock:
        stores = [_mozilla_store()]
        if ca_bundle is None:
            return stores
        try:
            CertificateInfoExtraArgument(custom_ca_file=Path(ca_bundle))
            stores.append(_supplied_store(Path(ca_bundle).resolve()))
        except (ValueError, OSError) as exc:
            return f"--ca-bundle unusable: {exc}"
    return stores


def analyse_chain(host: str, addr: str, chain_pem: list[str], stores: list[Any]) -> Any:
    """sslyze's analysis of one served chain (as its certificate command does it): the validation against
    each store, with the host name (an IP address when the host is the address itself)."""
    subject: Any = IPAddress(ip_address(addr)) if host == addr else DNSName(host)
    return CertificateDeploymentAnalyzer(
        server_subject=subject, server_certificate_chain_as_pem=list(chain_pem), server_ocsp_response=None,
        trust_stores_for_validation=stores,
    ).perform()


# Longest first: ROBOT's jobs are chains of handshakes; they start before the one-handshake commands.
_ORDER = ("robot", "session_renegotiation")


def run_commands(
    host: str,
    port: int,
    addr: str,
    timeout: float,
    user_agent: str | None,
    commands: set[Any],
    pool: Executor,
    probing: tuple[str, str, bool],
) -> tuple[Any, str | None]:
    """Blocking: sslyze's ``commands`` against one endpoint without sslyze's connectivity test: its
    ServerConnectivityInfo is built from what our prober learnt (``probing``: the highest protocol
    accepted, an OpenSSL suite name accepted with it, ECDH key exchange seen), and the commands' jobs run
    on ``pool`` (whose size is the connection cap). (sslyze's ServerScanResult or an error string, how
    ROBOT was run when it differs from sslyze's own way: see ``_robot_attempts``)."""
    run = CommandRun(host, port, addr, timeout, user_agent, pool)
    run.start(commands, probing)
    return run.finish(probing)


class CommandRun:
    """sslyze's scan commands against one endpoint, started in groups as the facts each needs become
    known (``start``; the collector starts some while the prober is still at work), their jobs on ``pool``
    (as many threads as the connections allowed), then judged together by sslyze's plugins (``finish``).
    ROBOT's attempts are driven from a thread of their own (it waits on the pool's jobs, so it must not
    hold one of the pool's threads)."""

    def __init__(self, host: str, port: int, addr: str, timeout: float, user_agent: str | None,
                 pool: Executor, urgent: Executor | None = None) -> None:
        self.location, self.config = network(host, port, addr, timeout, user_agent)
        self.pool = pool
        self.urgent = urgent or pool  # ROBOT's jobs (the longest chain) go there
        self.commands: set[Any] = set()
        self.errors: dict[Any, Any] = {}
        self.futures: list[tuple[Any, Any]] = []
        self.done: list[Any] = []  # CompletedScanJob given from outside (``complete``)
        self.robot: threading.Thread | None = None
        self.robot_out: tuple[list[Attempt], str | None] = ([], None)
        self.failed: str | None = None
        self.robot_key_seen = False  # ROBOT's RSA key came from the prober's handshake

    def info(self, probing: tuple[str, str, bool]) -> tuple[Any, Any]:
        """(sslyze's ServerTlsProbingResult, ServerConnectivityInfo) for what ``probing`` says."""
        protocol, suite, ecdh = probing
        tls_probing = ServerTlsProbingResult(
            highest_tls_version_supported=tls_version(protocol), cipher_suite_supported=suite,
            client_auth_requirement=ClientAuthRequirementEnum.DISABLED, supports_ecdh_key_exchange=ecdh,
        )
        return tls_probing, ServerConnectivityInfo(server_location=self.location,
                                                   network_configuration=self.config,
                                                   tls_probing_result=tls_probing)

    def start(self, commands: set[Any], probing: tuple[str, str, bool],
              robot_chain: tuple[str, ...] | None = None) -> None:
        """Queue the jobs of ``commands`` (none started before) on the pool; ROBOT's on its own thread.
        ``robot_chain``: the chain a handshake of the legacy client over TLS 1.2 received with one of
        ROBOT's own suites (``AES128-GCM-SHA256``, ``AES256-GCM-SHA384``): the RSA key ROBOT would ask
        for in a handshake of its own (``_robot_rsa``), which is then not opened."""
        commands = set(commands) - self.commands
        if not commands:
            return
        self.commands |= commands
        try:
            tls_probing, info = self.info(probing)
            request = ServerScanRequest(server_location=self.location, network_configuration=self.config,
                                        scan_commands=commands)
            jobs, errors = _generate_scan_jobs_for_server_scan(request, tls_probing)
            self.errors.update(errors)
            if jobs.pop(ScanCommand.ROBOT, None) is not None:
                rsa = _robot_rsa_seen(info, robot_chain)
                if rsa is None:
                    rsa = self.urgent.submit(_robot_rsa, info)
                else:
                    self.robot_key_seen = True
                self.robot = threading.Thread(target=self._robot, args=(info, rsa), name="tls-robot",
                                              daemon=True)
                self.robot.start()
            order = sorted(jobs, key=lambda c: _ORDER.index(c.value) if c.value in _ORDER else len(_ORDER))
            self.futures += [(cmd, self.pool.submit(job.function_to_call, *job.function_arguments))
                             for cmd in order for job in jobs[cmd]]
        except Exception as exc:  # sslyze bug or bad input: data, not a crash
            self.failed = f"sslyze failed: {type(exc).__name__}: {exc}"

    def submit(self, command: Any, fn: Callable[..., Any], *args: Any) -> None:
        """One job of ``command`` run here rather than as sslyze plans it (the collector's choice)."""
        self.commands.add(command)
        self.futures.append((command, self.pool.submit(fn, *args)))

    def complete(self, command: Any, value: Any) -> None:
        """A job of ``command`` answered without a connection (judged by sslyze's plugin with the rest)."""
        self.commands.add(command)
        self.done.append((command, value))

    def _robot(self, info: Any, rsa: Any) -> None:
        try:
            attempts, note = _robot_attempts(info, rsa, self.urgent)
            if note is not None and self.robot_key_seen:
                note += f"; the RSA key from the prober's TLS 1.2 handshake accepting one of {ROBOT_GCM}"
            self.robot_out = attempts, note
        except Exception as exc:  # a bug must not pass for a verdict: the command errs
            self.robot_out = ([(None, exc)] * RobotImplementation._TEST_ATTEMPTS_NB, None)

    def wait(self) -> None:
        """Blocking: every job started has ended (their results unused when the collector gives up)."""
        for _, future in self.futures:
            future.exception()
        if self.robot is not None:
            self.robot.join()

    def finish(self, probing: tuple[str, str, bool]) -> tuple[Any, str | None]:
        """Blocking: wait for every job, then sslyze's plugins judge them (its ServerScanResult or an error
        string, and how ROBOT ran when it differs from sslyze's own way)."""
        self.wait()
        if self.failed is not None:
            return self.failed, None
        try:
            tls_probing, _ = self.info(probing)
            commands = set(self.commands)
            request = ServerScanRequest(server_location=self.location, network_configuration=self.config,
                                        scan_commands=commands)
            uuid, robot_cmd = request.uuid, ScanCommand.ROBOT
            attempts, note = self.robot_out
            done = [CompletedScanJob(parent_server_scan_request_uuid=uuid, for_scan_command=robot_cmd,
                                     return_value=value, exception=exc)
                    for value, exc in attempts if len(attempts) == RobotImplementation._TEST_ATTEMPTS_NB]
            done += [CompletedScanJob(parent_server_scan_request_uuid=uuid, for_scan_command=cmd,
                                      return_value=value, exception=None) for cmd, value in self.done]
            for cmd, future in self.futures:
                exc = future.exception()
                done.append(CompletedScanJob(parent_server_scan_request_uuid=uuid, for_scan_command=cmd,
                                             return_value=None if exc else future.result(),
                                             exception=exc))  # type: ignore[arg-type]
            decided_early = self.robot is not None and not any(d.for_scan_command == robot_cmd for d in done)
            if decided_early:  # sslyze's ROBOT plugin judges its 3 attempts only: the one is judged below
                request = dataclasses.replace(request, scan_commands=commands - {robot_cmd})
            ongoing = _OngoingServerScan(
                server_scan_request=request, server_connectivity_result=tls_probing, assigned_queue=None,
                scan_command_errors_during_queuing=self.errors, queued_scan_jobs_count=len(done),
                completed_scan_jobs=done,
            )
            result = _generate_result_for_completed_server_scan(ongoing)
            if decided_early:
                result = _with_robot(result, robot.RobotServerResponsesAnalyzer(
                    {p: [r] for p, r in attempts[0][0].items()}, 1).compute_result_enum())  # type: ignore[union-attr]
            return result, note
        except Exception as exc:  # sslyze bug or bad input: data, not a crash
            return f"sslyze failed: {type(exc).__name__}: {exc}", None


def secure_renegotiation_job(info: Any) -> Any:
    """sslyze's secure-renegotiation job alone (its command also runs a client-initiated renegotiation
    test, 10 renegotiations on one connection, whose answer no control judges)."""
    from sslyze.plugins.session_renegotiation_plugin import _test_secure_renegotiation

    return _test_secure_renegotiation(info)


def client_renegotiation_not_run() -> Any:
    """The client-renegotiation job's place in sslyze's judgement when it is not run (never read: the
    collector records that test as not run)."""
    from sslyze.plugins.session_renegotiation_plugin import _ScanJobResultEnum

    return _ScanJobResultEnum.CLIENT_RENEG_RESULT, (False, 0)


def secure_renegotiation_answer(supported: bool) -> Any:
    """The secure-renegotiation job's return value for an answer read elsewhere (a ServerHello)."""
    from sslyze.plugins.session_renegotiation_plugin import _ScanJobResultEnum

    return _ScanJobResultEnum.SUPPORTS_SECURE_RENEG, supported


def _with_robot(result: Any, verdict: Any) -> Any:
    """``result`` with its ROBOT command completed with ``verdict`` (sslyze's result enum)."""
    attempt = get_scan_command_attempt_cls(ScanCommand.ROBOT)(
        status=ScanCommandAttemptStatusEnum.COMPLETED, error_reason=None, error_trace=None,
        result=RobotScanResult(robot_result=verdict))
    return dataclasses.replace(result, scan_result=dataclasses.replace(result.scan_result, robot=attempt))


ROBOT_GCM = "AES128-GCM-SHA256:AES256-GCM-SHA384"  # what sslyze's ROBOT test offers first on TLS 1.2


def _robot_rsa_seen(info: Any, chain: tuple[str, ...] | None) -> Future[Any] | None:
    """``_robot_rsa``'s answer, done, from ``chain`` (served over TLS 1.2 to the legacy client with one of
    ``ROBOT_GCM``'s suites): the handshake sslyze's test opens first would offer the same suites with the
    same client and protocol and read the leaf's RSA key. None (ask as sslyze does) without such a chain,
    when ROBOT would use another protocol (highest below TLS 1.2), or when the leaf's key is not RSA."""
    highest = info.tls_probing_result.highest_tls_version_supported
    if not chain or highest.value < TlsVersionEnum.TLS_1_2.value:
        return None
    try:
        key = load_pem_x509_certificate(chain[0].encode("ascii")).public_key()
    except Exception:  # unreadable: ask as sslyze does
        return None
    if not isinstance(key, RSAPublicKey):
        return None
    done: Future[Any] = Future()
    done.set_result((TlsVersionEnum.TLS_1_2, ROBOT_GCM, key.public_numbers()))
    return done


def _robot_rsa(info: Any) -> tuple[Any, str, Any]:
    """Blocking: what each of sslyze's ROBOT attempts first asks (``_robot_tester.test_robot``): the TLS
    version, the RSA suites, the server's RSA key (None: no RSA key exchange), asked once."""
    highest = info.tls_probing_result.highest_tls_version_supported
    version = TlsVersionEnum.TLS_1_2 if highest.value >= TlsVersionEnum.TLS_1_3.value else highest
    params = None
    if version == TlsVersionEnum.TLS_1_2:
        cipher = ROBOT_GCM
        params = _rsa_parameters(info, version, cipher)
    if params is None:
        cipher = "RSA"
        params = _rsa_parameters(info, version, cipher)
    return version, cipher, params


def _rsa_parameters(info: Any, version: Any, cipher: str) -> Any:
    """Blocking: sslyze's ``_robot_tester._get_rsa_parameters`` (the server's RSA public numbers, None
    when it refuses ``cipher`` or its key is not RSA), the handshake stopped once the certificate is in."""
    conn = info.get_preconfigured_tls_connection(override_tls_version=version, should_use_legacy_openssl=True)
    conn.ssl_client.set_cipher_list(cipher)
    cert = None
    try:
        connect_until_decided(conn, version)
        cert = load_pem_x509_certificate(conn.ssl_client.get_received_chain()[0].encode("ascii"))
    except ServerRejectedTlsHandshake:  # no RSA suite (sslyze: "Server does not support RSA cipher suites?")
        pass
    finally:
        conn.close()
    key = cert.public_key() if cert is not None else None
    return key.public_numbers() if isinstance(key, RSAPublicKey) else None


Attempt = tuple[Any, Exception | None]  # (payload -> the server's answer, as sslyze words it) or an error


def _robot_attempts(info: Any, rsa: Any, pool: Executor) -> tuple[list[Attempt], str | None]:
    """Blocking: sslyze's ROBOT attempts (each sends every payload once, on ``pool``, side by side), with
    the RSA key asked once instead of once per attempt, and decision-minimal (issue 9): one attempt first.
    When it fails, sslyze's verdict is that error whatever the other attempts say (its plugin raises the
    first failure), so the list repeats it. When the server answered all five payloads alike there is no
    oracle: that is the verdict (sslyze's analyser on that one attempt; its other two attempts only tell
    a consistent oracle from an inconsistent one), and one attempt is returned. Otherwise sslyze's other
    attempts run and its plugin judges all three. Also: how the test ran, for the evidence (None when
    there was no RSA key to test)."""
    count = RobotImplementation._TEST_ATTEMPTS_NB
    exc = rsa.exception()
    if exc is None and rsa.result()[2] is None:
        exc = robot.ServerDoesNotSupportRsa()
    if exc is not None:
        return [(None, exc)] * count, None
    version, cipher, params = rsa.result()

    def send(times: int) -> list[Attempt]:
        payload = robot._send_robot_payload
        sent = [[(p, pool.submit(payload, info, version, cipher, p, True, params.n, params.e))
                 for p in robot.RobotPmsPaddingPayloadEnum] for _ in range(times)]
        out: list[Attempt] = []
        for one in sent:
            failed = next((f.exception() for _, f in one if f.exception() is not None), None)
            out.append((None, failed) if failed else ({p: f.result() for p, f in one}, None))
        return out

    payloads = len(robot.RobotPmsPaddingPayloadEnum)
    first = send(1)[0]
    if first[1] is not None:
        return [first] * count, (f"1 attempt of {payloads} payloads, which failed "
                                 f"({type(first[1]).__name__}): sslyze's verdict whatever the other attempts")
    answers = set(first[0].values())
    if len(answers) == 1:
        seen = _bound_text(next(iter(answers)), 80)
        return [first], (f"1 attempt of {payloads} payloads: identical answers ({seen}), no oracle "
                         f"(sslyze's other {count - 1} attempts run only when the answers differ)")
    rest = send(count - 1)
    return [first, *rest], (f"{count} attempts of {payloads} payloads: the first showed "
                            f"{len(answers)} different answers")


def _bound_text(text: Any, limit: int) -> str:
    """Printable text of at most ``limit`` characters (answers come from the remote server)."""
    clean = "".join(ch if ch.isprintable() else "?" for ch in str(text))
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


# -- handshakes stopped where an acceptance question is decided (issue 9) ---------------------------------


class _Decided(Exception):
    """Raised inside a handshake to stop it: the server's first flight has been read."""


_STOPS_EARLY = frozenset({TlsVersionEnum.SSL_3_0, TlsVersionEnum.TLS_1_0, TlsVersionEnum.TLS_1_1,
                          TlsVersionEnum.TLS_1_2})


def _handshake_until_decided(self: Any) -> None:
    """nassl's ``BaseSslClient.do_handshake`` (nassl/ssl_client.py), stopped when the client, having
    processed the server's whole first flight (ServerHello, Certificate, ServerKeyExchange,
    ServerHelloDone), has its key exchange ready to send: the suite, the ephemeral key and the chain are
    known then. Raises ``_Decided`` there; a refusal (an alert, a closed connection) raises as in nassl."""
    hello_sent = False
    self._pledgescan_received = seen = bytearray()  # the server's first bytes, for ``server_hello``
    while True:
        try:
            self._ssl.do_handshake()
            self._is_handshake_completed = True
            return
        except WantReadError:
            if hello_sent and self._network_bio.pending():
                raise _Decided() from None
            self._flush_ssl_engine()
            hello_sent = True
            data = self._sock.recv(self._DEFAULT_BUFFER_SIZE)
            if not data:
                raise OSError("Nassl SSL handshake failed: peer did not send data back.") from None
            if len(seen) < _KEEP_RECEIVED:
                seen += data[: _KEEP_RECEIVED - len(seen)]
            self._network_bio.write(data)
        except WantX509LookupError:
            raise ClientCertificateRequested(self.get_client_CA_list()) from None
        except OpenSSLError as exc:  # as nassl reads a client certificate demand
            if "alert bad certificate" in exc.args[0] or "sslv3 alert certificate unknown" in exc.args[0]:
                raise ClientCertificateRequested(self.get_client_CA_list()) from None
            raise


_KEEP_RECEIVED = 1 << 14  # the server's first bytes kept for ``server_hello`` (its ServerHello is first)


@dataclasses.dataclass(frozen=True)
class ServerHello:
    """What a ServerHello (SSL 3.0 to TLS 1.2) says beyond the suite: the compression method the server
    chose (0: none; nassl's legacy client offers DEFLATE, as sslyze's compression command relies on) and
    whether it sent the renegotiation_info extension (RFC 5746: secure renegotiation supported, which is
    what OpenSSL's ``SSL_get_secure_renegotiation_support`` reports to sslyze's command)."""

    compression_method: int
    renegotiation_info: bool


def server_hello(client: Any) -> ServerHello | None:
    """The ServerHello of a handshake run by ``connect_until_decided`` (SSL 3.0 to TLS 1.2), read from the
    bytes the server sent; None when they do not hold a whole, well-formed ServerHello."""
    raw = bytes(getattr(client, "_pledgescan_received", b"") or b"")
    body = bytearray()
    pos = 0
    # handshake records until the first message (its 4-byte header, then the length it gives) is in
    while pos + 5 <= len(raw) and (len(body) < 4 or len(body) < 4 + int.from_bytes(body[1:4], "big")):
        if raw[pos] != 22:
            return None
        length = int.from_bytes(raw[pos + 3:pos + 5], "big")
        body += raw[pos + 5:pos + 5 + length]
        pos += 5 + length
    if len(body) < 4 or body[0] != 2:
        return None
    need = int.from_bytes(body[1:4], "big")
    if len(body) < 4 + need:
        return None
    hello = bytes(body[4:4 + need])
    at = 2 + 32  # server_version, random
    if len(hello) < at + 1:
        return None
    at += 1 + hello[at]  # session_id
    if len(hello) < at + 3:
        return None
    compression = hello[at + 2]
    at += 3
    reneg = False
    if len(hello) >= at + 2:
        end = at + 2 + int.from_bytes(hello[at:at + 2], "big")
        if end > len(hello):
            return None
        at += 2
        while at + 4 <= end:
            ext, size = int.from_bytes(hello[at:at + 2], "big"), int.from_bytes(hello[at + 2:at + 4], "big")
            reneg = reneg or ext == 0xFF01
            at += 4 + size
        if at != end:
            return None
    return ServerHello(compression, reneg)


def connect_until_decided(conn: Any, tls_version: Any, should_retry_connection: bool = True) -> bool:
    """``conn.connect()`` (an sslyze ``SslConnection`` for ``tls_version``), stopped as soon as the server
    has answered the ClientHello in full, for SSL 3.0 to TLS 1.2: a question of acceptance (this protocol,
    these suites, these groups?) and of what the server sends (its chain, its ephemeral key) is decided by
    the ServerHello and its flight, or by the alert; the client's key exchange and the server's Finished
    would add a round trip and the key exchange's work on both sides for nothing. TLS 1.3 (whose
    certificate comes encrypted after the ServerHello; its handshake is one round trip anyway) and SSL 2.0
    complete as usual. True: stopped early (the connection is only good for closing)."""
    if tls_version not in _STOPS_EARLY:
        conn.connect(should_retry_connection=should_retry_connection)
        return False
    conn.ssl_client.do_handshake = types.MethodType(_handshake_until_decided, conn.ssl_client)
    try:
        conn.connect(should_retry_connection=should_retry_connection)
    except _Decided:
        return True
    return False


def connectivity_info(result: Any) -> Any:
    """sslyze's ServerConnectivityInfo rebuilt from a scan result (to open more connections the same way)."""
    return ServerConnectivityInfo(
        server_location=result.server_location,
        network_configuration=result.network_configuration,
        tls_probing_result=result.connectivity_result,
    )


def install_socket_hook(hook: Callable[[Any], Callable[[], None] | None]) -> None:
    """Call ``hook(server_location)`` before every socket sslyze (or nassl through sslyze) opens; when it
    returns a callable, that is called once the socket is closed (or could not be opened). Once per
    process; later calls are ignored."""
    original = tls_connection._open_socket
    if getattr(original, "_pledgescan_hook", False):
        return

    def open_socket(server_location: Any, network_timeout: int) -> Any:
        closed = hook(server_location)
        try:
            sock = original(server_location, network_timeout)
        except BaseException:
            if closed is not None:
                closed()
            raise
        return sock if closed is None else _ClosingSocket(sock, closed)

    open_socket._pledgescan_hook = True  # type: ignore[attr-defined]
    tls_connection._open_socket = open_socket


class _ClosingSocket:
    """sslyze's socket, telling once when it is closed (nassl closes it at the connection's shutdown);
    everything else goes to the socket itself (nassl and sslyze only send, receive and close)."""

    def __init__(self, sock: socket.socket, closed: Callable[[], None]) -> None:
        self._sock = sock
        # Closed, or dropped without close() (an error path of sslyze's): the socket is closed, then its
        # slot freed (freeing first would let another connection open beside this one), once either way.
        self._close = weakref.finalize(self, _close_then, sock, closed)

    def close(self) -> None:
        self._close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _close_then(sock: socket.socket, closed: Callable[[], None]) -> None:
    try:
        sock.close()
    finally:
        closed()


def default_per_server_connections() -> int:
    """sslyze's default per-server connection cap (``Scanner()`` without a limit)."""
    return int(getattr(Scanner(), "_per_server_concurrent_connections_count", 5))


# -- the suite registry behind checks/lib/tls_suites.json (python -m scanner.collectors.tls.suite_data) --


def mozilla_profile() -> dict[str, Any]:
    """Mozilla's server-side TLS guidelines as sslyze ships them (the JSON its own checker reads)."""
    from sslyze.mozilla_tls_profile.tls_config_checker import MozillaTlsConfiguration

    return dict(json.loads(MozillaTlsConfiguration._JSON_PROFILE_PATH.read_text()))


_NASSL_VERSIONS = {"SSLv2": "SSLV2", "SSLv3": "SSLV3", "TLSv1.0": "TLSV1", "TLSv1.1": "TLSV1_1",
                   "TLSv1.2": "TLSV1_2", "TLSv1.3": "TLSV1_3"}


def suites_tested() -> dict[str, tuple[tuple[str, str, bool], ...]]:
    """Every suite sslyze tests, by protocol: (IANA name, OpenSSL name, tested with the legacy client?),
    the names a scan can report. sslyze tests SSL 2.0 to TLS 1.1 with the legacy OpenSSL, TLS 1.3 with
    the modern one, and TLS 1.2 with either (its own table says which)."""
    out: dict[str, tuple[tuple[str, str, bool], ...]] = {}
    for protocol in PROTOCOL_VERSIONS:
        clients = (False,) if protocol == "TLSv1.3" else (True, False) if protocol == "TLSv1.2" else (True,)
        out[protocol] = tuple((s.name, s.openssl_name, legacy)
                              for legacy in clients for s in suites_for(protocol, legacy))
    return out


@cache
def openssl_selects(protocol: str, legacy: bool, keyword: str) -> frozenset[str]:
    """The OpenSSL names OpenSSL's cipher-string ``keyword`` (``kRSA``, ``aNULL``, ``AESGCM`` ...) selects
    in the legacy (or the modern) client speaking ``protocol`` (TLS 1.2 and older); a keyword the client
    does not know selects nothing."""
    client: Any = (LegacySslClient if legacy else SslClient)(
        ssl_version=OpenSslVersionEnum[_NASSL_VERSIONS[protocol]])
    try:
        client.set_cipher_list(keyword if legacy else f"{keyword}:@SECLEVEL=0")
        return frozenset(client.get_cipher_list())
    except OpenSSLError:
        return frozenset()
