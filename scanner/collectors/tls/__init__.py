"""The tls collector: one quick handshake probe of our own, then a fast prober and sslyze (in a worker
thread). One job per module: ``handshake`` (our own handshakes: the first probe, OpenSSL's validation),
``prober`` (protocols, suites and curves by elimination), ``sslyze_adapter`` (every sslyze/nassl import),
``conversion`` (sslyze's results -> raw evidence), ``gate`` (politeness per handshake); this module runs
them in order.

1. A first TLS handshake (asyncio + ``ssl``, timed per phase) classifies the endpoint: completed, refused,
   reset, timeout (TCP or a stalled handshake), not TLS (garbage). When it cannot reach TLS at all, a HEAD
   to http://HOST/ through the shared fetcher tells T1 whether the host is reachable otherwise, and
   nothing else is started. The prober's first handshakes (cap - 1: TLS 1.3, TLS 1.2 with both clients)
   run beside it; every other connection waits until it is decided, or one of those reached TLS (so a
   hostile server costs at most the cap's connections, side by side, and ``settings.timeout``).
2. The prober (``prober``, on sslyze's own nassl connections) settles each protocol in one handshake
   per client, then, decision-minimal (issue 9), asks the suite classes T3 judges (weak classes, no
   forward secrecy, RSA key exchange, DHE, CBC; OpenSSL's own cipher-string keywords select the members)
   that no suite found has settled, together (group testing: one handshake offers every undecided class,
   a refusal settles them all, the suite an acceptance picks settles its classes and the rest are asked
   again; offers list first the suites settling the most): the suite list is cut short, and the
   evidence says so (``ProtocolResult.suites_complete``). One more handshake asks whether an EC group
   below 256 bits is accepted. What it cannot settle (errors, timeouts, odd answers) is left to sslyze's
   one-connection-per-suite enumeration, never guessed.
3. When the prober settled every protocol (the usual case), sslyze runs neither its connectivity test nor its
   certificate command (issue 9): its ServerConnectivityInfo is built in the adapter from what the prober
   learnt (highest protocol, a suite accepted with it, ECDH seen), and the certificate evidence is sslyze's
   own analysis (``CertificateDeploymentAnalyzer``) of the chains the prober's handshakes received (one per
   leaf, plus one handshake asking for the other key type, ``aRSA`` or ``ALL:-aRSA``, as sslyze's command
   does), validated against Mozilla's store as sslyze ships it plus ``--ca-bundle``, each parsed once per
   process. Only the vulnerability commands that can apply to what the prober found run: ROBOT with an RSA key
   exchange suite (the RSA key asked once, or read from the prober's TLS 1.2 legacy-client handshake that
   accepted one of ROBOT's own suites, then one attempt of sslyze's 5 payloads side by side; identical answers
   mean no oracle, 6 connections, 5 with the key read; only when they differ sslyze's other 2 attempts run, 16
   connections instead of sslyze's 18; the evidence says which, ``VulnTest.note``), Heartbleed and CCS with a
   protocol below TLS 1.3, TLS_FALLBACK_SCSV with one older than TLS 1.2 (a test not run is recorded as such,
   with why). Secure renegotiation and compression take no connection: they are read from the ServerHello of
   the prober's legacy-client handshake over the protocol sslyze's commands would use (renegotiation_info, the
   compression method chosen; DEFLATE offered), sslyze's jobs running only when that handshake was refused;
   sslyze's client-initiated renegotiation test, which no control judges, is not run. No barrier
   (``_Pipeline``): the prober's handshakes, these commands, the small-curve probe and the other key type's
   handshake share one pool of as many threads as the connections granted (ROBOT's chain first, then the
   prober, then the rest), and each starts as soon as the prober's answers so far decide what it needs (the
   highest protocol and a protocol below TLS 1.3 accepted: after the first handshakes, newest protocols first;
   ROBOT once an RSA key exchange suite is found), not after the prober's last handshake. When the prober left
   something open (errors, a client certificate request), sslyze's own ``Scanner`` runs as before, with its
   connectivity test and certificate command. sslyze runs against the address the engine resolved (honouring
   ``--resolve``), ``settings.timeout`` as its network timeout, one retry, and the granted connections as its
   per-server cap. Its results are converted into our own raw evidence model by ``conversion``: nothing of
   sslyze leaves the package, and no verdict is made here (``checks/lib/tls.py`` judges). The blocking part
   runs on this module's own thread pool, one thread per collection in flight (asyncio's default pool has cpu
   + 4 threads: it ran them in waves).

TLS connections are counted per host into ``ctx.stats.tls_connections``, exactly: every connection the
prober and sslyze open passes the address's politeness gate (``gate``: a connection slot and one request
of the address's rate each, until it closes), which counts it; the estimate from the work done (one
connection per suite and curve tested, fixed numbers for the other commands) remains only for sslyze
runs outside a scan (``scan_blocking`` alone). The TLS probers run in as many threads as the address's
connection cap, each connection taking a slot as it opens (``gate``): the HTTP probes of the address go
on beside them with their pool's share (``politeness.http_share``), and the TLS probers use every slot
the HTTP pool does not hold at the moment. ``LISTING`` (tests and bench only) lists every
accepted suite instead, by elimination ("all") or by sslyze ("sslyze").
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from scanner.collectors.tls import gate, prober
from scanner.collectors.tls import sslyze_adapter as sa
from scanner.collectors.tls.conversion import (
    CONN_CONNECTIVITY,
    PROTOCOL_COMMANDS,
    convert,
    groups_of,
    trace_text,
)
from scanner.collectors.tls.handshake import openssl_validation, probe_handshake, with_http_probe
from scanner.collectors.tls.pool import DaemonThreadPool, PriorityPool
from scanner.collectors.tls.prober import ProtocolProbe
from scanner.errors import ErrorKind
from scanner.evidence.tls import MAX_LIST, Groups, Handshake, TLSEvidence, VulnTest, bound
from scanner.models import Target
from scanner.net.context import ScanContext
from scanner.settings import Settings

__all__ = ["LISTING", "collect", "scan_blocking"]

Listing = Literal["classes", "all", "sslyze"]


async def collect(
    target: Target, ctx: ScanContext, addresses: tuple[str, ...], prior: dict[str, Any]
) -> TLSEvidence:
    """Collect TLS evidence for one endpoint. Never raises for network trouble."""
    host = target.host
    port = target.port or 443
    now = datetime.now(UTC)
    base: dict[str, Any] = {"hostname": host, "port": port, "scanned_at": now, "prober": sa.sslyze_version()}
    if not addresses:
        return TLSEvidence(**base, error="no address to connect to")
    addr = addresses[0]
    base["address"] = addr
    if not ctx.address_allowed(addr):
        return TLSEvidence(**base, error=f"refused to connect to internal address {addr} (not a target)",
                           error_kind=ErrorKind.BLOCKED)

    # The prober and sslyze open connections of their own, in as many threads as the address's cap: each
    # connection passes the gate, which takes a slot of the address for it until it closes, so they use
    # what the HTTP probes of the address leave free at the moment (elastic), never more than the cap;
    # the same in-process and with workers sharing the budget through Redis. They start beside the first
    # handshake (its slot taken first): the prober's first handshakes (cap - 1 of them) go on meanwhile,
    # every other connection waits for its outcome, and none opens when it did not reach TLS.
    polite = ctx.politeness
    cap = polite.budget.per_address_connections
    settings = ctx.settings.model_copy(update={"per_host_connections": cap})
    first: Future[Handshake] = Future()

    def known(hs: Handshake) -> None:  # the first handshake's outcome: the prober goes on, or stops
        if not first.done():
            opened.decide(hs.outcome in ("completed", "failed"))
            first.set_result(hs)

    async with gate.gated(addr, port, host, polite, asyncio.get_running_loop()) as opened:
        opened.ahead = max(0, cap - 1)
        try:
            async with polite.connection(addr):  # counted until the connection is closed
                ctx.stats.tls_connections[host] += 1
                opened.work = _start_thread(scan_blocking, host, port, addr, settings, base, first, None,
                                            None, opened)
                handshake = await probe_handshake(addr, port, host, ctx.settings.timeout, known)
        except BaseException:
            known(Handshake(outcome="reset", reason="cancelled"))  # never read: the collection is over
            raise
        known(handshake)
        evidence = await asyncio.wrap_future(opened.work)
    connections = 1
    if opened.stopped:
        ctx.stats.tls_connections[host] += opened.connections
        handshake = await with_http_probe(handshake, target, ctx)
        return TLSEvidence(
            **base,
            handshake=handshake,
            connections=connections + opened.connections,
            error=f"no TLS handshake: {handshake.reason}",
            error_kind=handshake.error_kind,
        )
    if opened.connections:  # exact, where sslyze's part would otherwise be estimated
        evidence = evidence.model_copy(update={"connections": opened.connections})
    ctx.stats.tls_connections[host] += evidence.connections
    evidence = evidence.model_copy(update={"connections": evidence.connections + connections})
    if _rejected(evidence):
        async with polite.connection(addr):
            second = await openssl_validation(addr, port, host, ctx)
        ctx.stats.tls_connections[host] += 1
        evidence = evidence.model_copy(update={"openssl_validation": second,
                                               "connections": evidence.connections + 1})
    if evidence.handshake and evidence.handshake.outcome != "completed":
        hs = await with_http_probe(evidence.handshake, target, ctx)
        evidence = evidence.model_copy(update={"handshake": hs})
    return evidence


# One thread per TLS collection in flight, not asyncio's default executor: that one has cpu + 4 threads
# (6 here), so 16 targets in flight ran their TLS work in three waves, and the DNS collector's
# ``to_thread`` calls queued behind them (issue 9). Threads start on demand (at most the targets in flight,
# whose setting is capped at 1024) and are reused; daemon threads (``pool.DaemonThreadPool``), so that a
# command ending on an error does not wait for a connection still blocked in one.
_TLS_THREADS = DaemonThreadPool(1024, "tls-scan")


def _start_thread(fn: Any, /, *args: Any) -> Future[Any]:
    """Run ``fn(*args)`` on the TLS collector's own pool, in a copy of this context (as ``to_thread``)."""
    return _TLS_THREADS.submit(functools.partial(contextvars.copy_context().run, fn, *args))


def _rejected(ev: TLSEvidence) -> bool:
    """Did the strict validator (cryptography's, RFC 5280 to the letter) reject the served chain against
    every store? Then OpenSSL's verdict, as browsers see it, is recorded too (one handshake): the checks
    tell a merely non-conforming certificate from one clients reject."""
    validations = [v for d in ev.certificates for v in d.validations]
    return bool(validations) and not any(v.validated for v in validations)


# -- sslyze -------------------------------------------------------------------------------------------


# How accepted suites are listed: "classes" (one handshake per suite class T3 judges, the listing cut
# short), "all" (every accepted suite, by elimination), "sslyze" (sslyze's one connection per suite).
# Tests and the bench change it; scans use "classes".
LISTING: Listing = "classes"
_LEGACY = frozenset({"SSLv3", "TLSv1.0", "TLSv1.1"})


def scan_blocking(
    host: str,
    port: int,
    addr: str,
    settings: Settings,
    base: dict[str, Any] | None = None,
    first: Handshake | Future[Handshake] | None = None,
    fast: bool | None = None,
    listing: Listing | None = None,
    waiting: gate.Gate | None = None,
) -> TLSEvidence:
    """Blocking (run it in a worker thread): the prober (protocols, then suites as ``listing`` says), then
    the sslyze commands the answers leave to decide, converted into our evidence. ``fast`` True/False
    (older callers) means ``listing`` "all"/"sslyze". ``first``: our first handshake, or its future when
    it runs meanwhile (``collect``): then ``waiting`` (the gate) tells when it is decided, or a handshake
    of the prober reached TLS (``decided``), and whether it did not reach TLS (``stopped``): the prober
    asks nothing more and nothing else runs (the evidence is the collector's)."""
    if listing is None:
        listing = LISTING if fast is None else "all" if fast else "sslyze"
    if base is None:
        base = {"hostname": host, "port": port, "address": addr, "prober": sa.sslyze_version()}
    first = first or Handshake(outcome="completed")
    halt = _Halt(waiting)
    pipeline: _Pipeline | None = None
    if listing != "sslyze":
        base = {**base, "prober": f"{base.get('prober') or sa.sslyze_version()} + fast prober"}
        pipeline = _Pipeline(host, port, addr, settings, classes=listing == "classes", halt=halt)
    try:
        return _scan(host, port, addr, settings, base, first, listing, pipeline, halt)
    finally:
        if pipeline is not None:
            pipeline.abandon()  # its threads end (after whatever they still run), whatever happened


class _Halt:
    """Whether the collection stops because its first handshake (run meanwhile, ``waiting``: its gate)
    did not reach TLS."""

    def __init__(self, waiting: gate.Gate | None) -> None:
        self.waiting = waiting

    def now(self) -> bool:
        """Known to stop (never waits)."""
        w = self.waiting
        return w is not None and w.decided.is_set() and w.stopped

    def wait(self) -> None:
        """Blocking: until the first handshake is decided, or a handshake of the prober reached TLS."""
        if self.waiting is not None:
            self.waiting.decided.wait()

    def reached(self) -> None:
        if self.waiting is not None:
            self.waiting.reached()

    def after_first(self, first: Handshake | Future[Handshake]) -> bool:
        """Blocking: once the first handshake is known, does the collection stop?"""
        if isinstance(first, Future):
            first.result()
        self.wait()
        return self.now()


def _scan(host: str, port: int, addr: str, settings: Settings, base: dict[str, Any],
          first: Handshake | Future[Handshake], listing: Listing, pipeline: _Pipeline | None,
          halt: _Halt) -> TLSEvidence:
    probes: dict[str, ProtocolProbe] = {}
    notes: list[str] = []
    if pipeline is not None:
        try:
            probes = prober.probe(host, port, addr, settings.timeout, settings.per_host_connections,
                                  classes=listing == "classes", pool=pipeline.prober_pool,
                                  listener=pipeline.update, halted=halt.now,
                                  ready=halt.wait if halt.waiting is not None else None, reached=halt.reached)
        except Exception as exc:  # a prober bug must not cost the scan: sslyze enumerates everything
            probes = {}
            notes.append(f"fast prober failed ({type(exc).__name__}: {exc}); sslyze enumerated every suite")
    if halt.after_first(first):
        return TLSEvidence(**base, error="the first handshake did not reach TLS")
    if isinstance(first, Future):
        first = first.result()
    settled = prober.settled(probes)
    for proto, p in probes.items():
        if proto not in settled:
            notes.append(f"{proto}: fast prober inconclusive ({p.reason or p.outcome}); sslyze enumerated it")
    cut = [proto for proto, p in probes.items() if p.outcome == "accepted" and not p.complete]
    if cut:
        notes.append(f"accepted suites listed one per suite class, not all ({', '.join(cut)})")
    if notes:
        base = {**base, "notes": tuple(base.get("notes", ())) + tuple(notes)}
    skipped = _not_applicable(probes, settled) if listing == "classes" else {}
    own = _own_probing(probes, settled) if listing != "sslyze" else None
    if pipeline is not None:
        if own is not None:
            return pipeline.finish(base, first, probes, skipped, own)
        pipeline.abandon()  # what started early is not used: sslyze's own scan decides
    small: tuple[Groups, int] | None = None
    if listing == "classes" and any(p.outcome == "accepted" for p in probes.values()):
        small = _small_groups(host, port, addr, settings.timeout, _curve_protocol(probes))
    result = _run_sslyze(host, port, addr, settings, settled, curves=listing == "sslyze",
                         skip_commands=frozenset(skipped))
    groups = None
    if not isinstance(result, str) and result.scan_result is not None:
        if small is not None:
            groups = small
        elif listing != "sslyze":
            groups = _fast_groups(result, host, port, addr, settings)
    return convert(result, base, first, probes, groups, skipped)


_NEWEST_FIRST = ("TLSv1.3", "TLSv1.2", "TLSv1.1", "TLSv1.0", "SSLv3")


def _own_probing(probes: dict[str, ProtocolProbe], settled: frozenset[str]) -> tuple[str, str, bool] | None:
    """What sslyze's connectivity test would learn, from the prober's answers: (highest protocol
    accepted, an OpenSSL suite name accepted with it, ECDH key exchange seen). None when the prober left
    anything open (errors, a client certificate request, SSL 2.0 alone): sslyze's own test runs then."""
    if not probes or settled != frozenset(probes):
        return None
    for proto in _NEWEST_FIRST:
        p = probes.get(proto)
        if p is None or p.outcome != "accepted" or not p.accepted:
            continue
        names = [a.cipher_suite.openssl_name for a in p.accepted]
        suite = next((n for n in names if "ECDH" in n), names[0])
        ecdh = any("ECDH" in a.cipher_suite.openssl_name
                   or isinstance(a.ephemeral_key, sa.EcDhEphemeralKeyInfo)
                   for q in probes.values() for a in q.accepted)
        return proto, suite, ecdh
    return None


class _Pipeline:
    """Blocking parts of one endpoint's TLS collection on one pool of as many threads as the connections
    allowed (``settings.per_host_connections``): the prober's handshakes, and sslyze's commands, the
    small-curve probe and the other key type's handshake, each started as soon as the facts it needs are
    known (``update``, called by the prober after each handshake) instead of after the prober's last
    handshake, the rest once the prober is done (``finish``).

    Known early, from the prober's first handshakes (newest protocols first): the highest protocol (TLS 1.3
    answered, and TLS 1.3 or TLS 1.2 accepted) and that a protocol below TLS 1.3 is accepted (TLS 1.2
    with the modern client). Then Heartbleed and CCS start (sslyze's jobs, with that protocol and the suite
    picked), the small-curve probe and the other key type's handshake (over TLS 1.2); ROBOT as soon as an
    RSA key exchange suite is found (the suite classes ask for it first). Secure renegotiation and
    compression are read from the ServerHello of the legacy client's TLS 1.2 protocol handshake (the
    client and protocol sslyze's commands use; it offers DEFLATE): the renegotiation_info extension and the
    compression method chosen, no connection of their own; when that handshake was refused or its
    ServerHello unreadable, sslyze's jobs run (its secure-renegotiation job only: the client-initiated
    renegotiation test, 10 renegotiations on one connection, answers what no control judges, and is
    recorded as not run). Work started early whose premise the prober's end denies (a protocol left in
    error) is waited for and dropped: sslyze's own scan runs then, as before."""

    def __init__(self, host: str, port: int, addr: str, settings: Settings, classes: bool,
                 halt: _Halt) -> None:
        self.host, self.port, self.addr, self.settings, self.classes = host, port, addr, settings, classes
        self.halt = halt
        # ROBOT's chain first, then the prober's handshakes, then the one-handshake commands.
        self.pool = PriorityPool(max(1, settings.per_host_connections), "tls-conn", default=2)
        self.prober_pool = self.pool.at(1)
        self.run = sa.CommandRun(host, port, addr, settings.timeout, settings.effective_user_agent, self.pool,
                                 urgent=self.pool.at(0))
        self.lock = threading.Lock()
        self.small: Future[Any] | None = None
        self.other: Future[Any] | None = None
        self.hello_done = False  # renegotiation and compression answered or started
        self.hello_note: str | None = None
        self.robot_chain: tuple[str, ...] | None = None  # ROBOT's RSA key, seen by the prober (see update)

    # -- early, in the pool's threads: never blocks ------------------------------------------------------

    def update(self, progress: prober.Progress) -> None:
        with self.lock:
            self.robot_chain = self.robot_chain or progress.robot_chain
            early = self._early(progress)
            if early is None or self.halt.now():
                return
            C = sa.ScanCommand
            self.run.start({C.HEARTBLEED, C.OPENSSL_CCS_INJECTION}, early)
            if self.classes and self.small is None:
                self.small = self.pool.submit(_small_groups, self.host, self.port, self.addr,
                                              self.settings.timeout, "TLSv1.2")
            if self.other is None:
                self.other = self.pool.submit(_other_key_type, self.host, self.port, self.addr,
                                              self.settings.timeout, "TLSv1.2", progress.chains)
            legacy12 = progress.outcome("TLSv1.2", legacy=True)
            if legacy12 is not None and not self.hello_done:
                self._renegotiation_compression(progress.hellos.get("TLSv1.2"), "TLSv1.2", early)
            if progress.rsa_found:
                self.run.start({C.ROBOT}, early, progress.robot_chain)

    def _early(self, progress: prober.Progress) -> tuple[str, str, bool] | None:
        """What sslyze's connectivity test would say, once the prober's answers so far decide it and a
        protocol below TLS 1.3 is known to be accepted (TLS 1.2, modern client); else None."""
        tls13, tls12 = progress.outcome("TLSv1.3"), progress.outcome("TLSv1.2", legacy=False)
        if tls13 not in ("accepted", "rejected") or tls12 != "accepted":
            return None
        highest = "TLSv1.3" if tls13 == "accepted" else "TLSv1.2"
        suite = progress.outcomes[(highest, False)][1]
        if suite is None:
            return None
        ecdh = any(picked and "ECDH" in picked for _, picked in progress.outcomes.values())
        return highest, suite, ecdh

    def _renegotiation_compression(self, hello: sa.ServerHello | None, protocol: str,
                                   probing: tuple[str, str, bool]) -> None:
        """Secure renegotiation and compression from ``hello`` (the legacy client's ServerHello over
        ``protocol``, the one sslyze's commands would use), else sslyze's jobs."""
        self.hello_done = True
        C = sa.ScanCommand
        self.run.complete(C.SESSION_RENEGOTIATION, sa.client_renegotiation_not_run())
        if hello is not None:
            secure = sa.secure_renegotiation_answer(hello.renegotiation_info)
            self.run.complete(C.SESSION_RENEGOTIATION, secure)
            self.run.complete(C.TLS_COMPRESSION, hello.compression_method != 0)
            self.hello_note = (f"read from the ServerHello of the prober's {protocol} handshake (legacy "
                               f"client, DEFLATE offered): renegotiation_info "
                               f"{'sent' if hello.renegotiation_info else 'absent'}, compression method "
                               f"{hello.compression_method}")
            return
        _, info = self.run.info(probing)
        self.run.submit(C.SESSION_RENEGOTIATION, sa.secure_renegotiation_job, info)
        self.run.start({C.TLS_COMPRESSION}, probing)

    # -- after the prober, in the collector's thread -----------------------------------------------------

    def abandon(self) -> None:
        """Wait for what started early (its connections close), and free the threads."""
        self.run.wait()
        for f in (self.small, self.other):
            if f is not None:
                f.exception()
        self.pool.shutdown(wait=True)

    def finish(self, base: dict[str, Any], first: Handshake, probes: dict[str, ProtocolProbe],
               skipped: dict[str, str], own: tuple[str, str, bool]) -> TLSEvidence:
        """Blocking: start what the prober's end decides, wait for everything, convert. The chains our
        handshakes received are validated here (Mozilla's store plus ``--ca-bundle``, loaded once per
        process): sslyze's certificate command does not run. (``scan_blocking`` abandons the pipeline
        afterwards, whatever happened.)"""
        host, port, addr, settings = self.host, self.port, self.addr, self.settings
        C = sa.ScanCommand
        if C.ROBOT in self.run.commands:  # started on an RSA suite found: its answer stands
            skipped = {k: v for k, v in skipped.items() if k != "robot"}
        ca = Path(settings.ca_bundle) if settings.ca_bundle else None
        stores = sa.trust_stores(ca)
        if isinstance(stores, str):
            return convert(stores, base, first, probes)
        commands = _commands(frozenset(probes), curves=False, others=True, skip_commands=frozenset(skipped),
                             certificate=False)
        by_hello = {C.SESSION_RENEGOTIATION, C.TLS_COMPRESSION}
        with self.lock:
            self.run.start(commands - by_hello, own, self.robot_chain)
            if commands & by_hello and not self.hello_done:
                protocol = "TLSv1.2" if own[0] == "TLSv1.3" else own[0]
                p = probes.get(protocol)
                self._renegotiation_compression(p.hello if p is not None else None, protocol, own)
            if self.classes and self.small is None:
                self.small = self.pool.submit(_small_groups, host, port, addr, settings.timeout,
                                              _curve_protocol(probes))
            if self.other is None:
                self.other = self.pool.submit(_other_key_type, host, port, addr, settings.timeout,
                                              _newest_below_13(probes), _all_chains(probes))
        # The chains are analysed while sslyze's commands (ROBOT's payloads the longest) still run: this
        # thread would only wait for them, and the analysis is CPU the end of the collection need not wait
        # for.
        chains = _served_chains(probes, self.other.result() if self.other is not None else None)
        deployments = _analyses(host, addr, chains, stores)
        result, robot_note = self.run.finish(own)
        groups = self.small.result() if self.small is not None else None
        if groups is None and not isinstance(result, str) and result.scan_result is not None:
            groups = _fast_groups(result, host, port, addr, settings)
        evidence = convert(result, base, first, probes, groups, skipped, deployments)
        v = evidence.vulnerabilities
        update: dict[str, Any] = {}
        if robot_note is not None:
            update["robot"] = v.robot.model_copy(update={"note": robot_note})
        if C.SESSION_RENEGOTIATION in self.run.commands:
            update["client_renegotiation_dos"] = VulnTest(
                detail="not run: no control judges client-initiated renegotiation")
            if self.hello_note is not None:
                update["insecure_renegotiation"] = v.insecure_renegotiation.model_copy(
                    update={"note": self.hello_note})
                update["compression"] = v.compression.model_copy(update={"note": self.hello_note})
        if not update:
            return evidence
        return evidence.model_copy(update={"vulnerabilities": v.model_copy(update=update)})


def _newest_below_13(probes: dict[str, ProtocolProbe]) -> str | None:
    return next((p for p in _NEWEST_FIRST[1:] if probes.get(p) and probes[p].outcome == "accepted"), None)


def _all_chains(probes: dict[str, ProtocolProbe]) -> tuple[tuple[str, ...], ...]:
    return tuple(c for p in probes.values() for c in p.chains)


def _served_chains(probes: dict[str, ProtocolProbe],
                   other: tuple[str, ...] | None) -> list[tuple[str, ...]]:
    """The distinct chains served (one per leaf): the newest protocol's first, then the other key type."""
    served: dict[str, tuple[str, ...]] = {}
    for proto in _NEWEST_FIRST:
        p = probes.get(proto)
        for c in p.chains if p is not None else ():
            served.setdefault(c[0], c)
    if other:
        served.setdefault(other[0], other)
    return list(served.values())


def _is_rsa(chain: tuple[str, ...]) -> bool | None:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509 import load_pem_x509_certificate

    try:
        return isinstance(load_pem_x509_certificate(chain[0].encode("ascii")).public_key(), rsa.RSAPublicKey)
    except Exception:
        return None


def _other_key_type(host: str, port: int, addr: str, timeout: float, proto: str | None,
                    seen: tuple[tuple[str, ...], ...]) -> tuple[str, ...] | None:
    """Blocking: as sslyze's certificate command asks (``aRSA`` and ``ALL:-aRSA``), the certificate of
    the key type no handshake has shown yet (``seen``: the chains received so far), over ``proto``, the
    newest protocol below TLS 1.3 accepted (one handshake; none when both kinds were seen, or none is
    accepted)."""
    if proto is None:
        return None
    kinds = {_is_rsa(c) for c in seen}
    if True in kinds and False in kinds:
        return None
    return prober.served_chain(host, port, addr, timeout, proto, "ALL:-aRSA" if True in kinds else "aRSA")


def _analyses(host: str, addr: str, chains: list[tuple[str, ...]], stores: list[Any]) -> list[Any] | str:
    """sslyze's analysis of each chain, or why there is none (as its certificate command would say)."""
    if not chains:
        return "the server sent no certificate"
    try:
        return [sa.analyse_chain(host, addr, list(c), stores) for c in chains]
    except Exception as exc:  # a certificate sslyze cannot parse: its command would have failed too
        return bound(f"BUG_IN_SSLYZE: {type(exc).__name__}: {exc}", 300)


def _not_applicable(probes: dict[str, ProtocolProbe], settled: frozenset[str]) -> dict[str, str]:
    """The vulnerability tests (``Vulnerabilities`` fields) the protocols and suites found make moot."""
    maybe = {p for p, r in probes.items() if r.outcome == "accepted"} | (set(probes) - settled)
    if not probes:
        return {}
    skip: dict[str, str] = {}
    if not maybe - {"TLSv1.3"}:
        why = "no protocol below TLS 1.3 is accepted"
        skip |= dict.fromkeys(("heartbleed", "ccs_injection", "insecure_renegotiation",
                               "client_renegotiation_dos", "compression"), why)
    if not maybe & _LEGACY:
        skip["fallback_scsv"] = "no protocol older than TLS 1.2 is accepted"
    unsure = bool((set(probes) - settled) - {"TLSv1.3"})
    rsa = any(_rsa_kx(a.cipher_suite.name) for p in probes.values() for a in p.accepted)
    if not rsa and not unsure:
        skip["robot"] = "no RSA key exchange suite is accepted"
    return skip


def _rsa_kx(name: str) -> bool:
    return name.upper().startswith(("TLS_RSA_", "SSL_RSA_"))


def _curve_protocol(probes: dict[str, ProtocolProbe]) -> str | None:
    """The protocol to ask about small EC groups with: the newest one accepted below TLS 1.3 (TLS 1.3
    has no group below 256 bits); None when there is none."""
    for proto in ("TLSv1.2", "TLSv1.1", "TLSv1.0"):
        p = probes.get(proto)
        if p is not None and p.outcome == "accepted":
            return proto
    return None


def _small_groups(host: str, port: int, addr: str, timeout: float,
                  protocol: str | None) -> tuple[Groups, int] | None:
    """Blocking: the small-curve probe's answer as evidence (None: inconclusive, ask sslyze)."""
    if protocol is None:  # TLS 1.3 only: it has no group below 256 bits
        return Groups(ecdh_supported=None, complete=False), 0
    try:
        found = prober.probe_small_curves(host, port, addr, timeout, protocol)
    except Exception:  # a prober bug must not cost the scan: the full curve test runs instead
        return None
    if not found.decided:
        return None
    groups = Groups(ecdh_supported=found.ecdh_supported, curves=found.curves[:MAX_LIST], complete=False)
    return groups, found.connections


def _fast_groups(result: Any, host: str, port: int, addr: str, settings: Settings) -> tuple[Groups, int]:
    """Blocking: the EC groups by elimination (``prober.probe_curves``, fed sslyze's own connectivity
    result); when that is inconclusive, sslyze's one-connection-per-curve test."""
    info = sa.connectivity_info(result)
    try:
        found = prober.probe_curves(info)
    except Exception as exc:  # a prober bug must not cost the scan
        found = prober.CurveProbe(True, complete=False, reason=f"{type(exc).__name__}: {exc}", decided=False)
    if found.decided:
        return Groups(ecdh_supported=found.ecdh_supported, curves=found.curves[:MAX_LIST]), found.connections
    again = _run_sslyze(host, port, addr, settings, frozenset(PROTOCOL_COMMANDS), curves=True, others=False)
    n = found.connections + CONN_CONNECTIVITY
    if isinstance(again, str):
        return Groups(error=again), n
    if again.scan_result is None:
        return Groups(error=f"TLS connection failed: {trace_text(again.connectivity_error_trace)}"), n
    groups, m = groups_of(again.scan_result.elliptic_curves)
    return groups, n + m


def _commands(skip: frozenset[str], *, curves: bool, others: bool, skip_commands: frozenset[str],
              certificate: bool = True) -> set[Any]:
    """sslyze's scan commands: see ``_run_sslyze``; ``certificate`` False leaves the certificate out."""
    C = sa.ScanCommand
    commands = {getattr(C, c) for p, c in PROTOCOL_COMMANDS.items() if p not in skip}
    commands |= {C.ELLIPTIC_CURVES} if curves else set()
    if others:
        by_field = {"heartbleed": C.HEARTBLEED, "ccs_injection": C.OPENSSL_CCS_INJECTION, "robot": C.ROBOT,
                    "insecure_renegotiation": C.SESSION_RENEGOTIATION, "compression": C.TLS_COMPRESSION,
                    "fallback_scsv": C.TLS_FALLBACK_SCSV}
        commands |= {c for f, c in by_field.items() if f not in skip_commands}
        commands |= {C.CERTIFICATE_INFO} if certificate else set()
    return commands


def _run_sslyze(
    host: str,
    port: int,
    addr: str,
    settings: Settings,
    skip: frozenset[str] = frozenset(),
    *,
    curves: bool = True,
    others: bool = True,
    skip_commands: frozenset[str] = frozenset(),
) -> Any:
    """Blocking: run the scan commands T1-T6 need (no suite enumeration for the protocols in ``skip``,
    no curve test unless ``curves``, nothing else unless ``others``, none for the ``Vulnerabilities``
    fields in ``skip_commands``); returns sslyze's ServerScanResult (or an error string)."""
    commands = _commands(skip, curves=curves, others=others, skip_commands=skip_commands)
    ca = Path(settings.ca_bundle) if settings.ca_bundle else None
    return sa.run_scan(host, port, addr, settings.timeout, settings.effective_user_agent, commands,
                       settings.per_host_connections, ca)
