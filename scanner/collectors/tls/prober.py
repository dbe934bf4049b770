"""Fast protocol and cipher-suite prober on sslyze's own nassl primitives, through ``sslyze_adapter``
(blocking: the collector runs it in a thread).

sslyze's cipher-suite plugins open one connection per suite and per protocol (about 530 per server), even
for protocols the server refuses outright. This prober asks the same questions with far fewer handshakes,
using the same clients sslyze would use for each suite (sslyze's ``SslConnection``; the legacy OpenSSL for
SSL 2.0 to TLS 1.1, the modern one for TLS 1.3, and for TLS 1.2 whichever sslyze's own workaround table
picks for the suite), the same suite lists (``CipherSuitesRepository``), SNI and timeout:

1. **Protocol probe**: one handshake per protocol (two for TLS 1.2: modern and legacy client) offering
   every suite sslyze would test with that client. A clean rejection (an alert or a closed connection, as
   sslyze classifies them) means the protocol is refused; any other trouble (timeout, unknown error) is
   ``error`` and the collector lets sslyze enumerate that protocol suite by suite.
2. **Suite elimination** for each accepted protocol: the server picked suite X, so X is accepted (with
   the ephemeral key of that handshake); offer the rest again, until the server refuses what is left.
   That is accepted-count + 1 handshakes instead of one per suite. It assumes (like the protocol probe)
   that a server refusing a set of suites accepts none of them alone; a server intolerant of long
   ClientHellos hangs (F5) and so yields ``error``, never a false rejection. Any unexpected outcome in a
   chain (an unknown error, a suite nobody offered, a DH key too small to let us read the suite, a
   client-certificate request) makes the whole protocol ``error``, so sslyze enumerates it instead.

   **By class** (``classes=True``, what the collector uses): instead of listing every accepted suite, the
   suite classes T3 judges (NULL/anonymous/EXPORT, RC4, DES/3DES, MD5, RSA key exchange, DHE for the DH
   size, and for TLS 1.2 no forward secrecy and CBC; each class's suites as OpenSSL's own cipher-string
   keywords select them) are asked together (group testing): one handshake offers every member of every
   class still undecided; a refusal settles them all, an accepted suite settles its classes and the rest
   are asked again; a class already shown by a suite found (by either client) is not asked. Offers list
   first the suites that settle the most (the legacy client's protocol handshake too), so that a server
   honouring the client's order settles several questions with one pick. The listing is then cut short
   (``ProtocolProbe.complete`` is False): one accepted suite per class is what the verdicts need.

3. **Curve elimination** (``probe_curves``, after sslyze's connectivity test): sslyze's ELLIPTIC_CURVES
   test, same client and inputs, by elimination over the curve list instead of one connection per curve.

Every handshake of SSL 3.0 to TLS 1.2 stops once the server's first flight is read
(``sslyze_adapter.connect_until_decided``): the suite picked, the ephemeral key and the chain are known
there, so the client's key exchange and the server's Finished (a round trip) are never sent.

Written here because sslyze exposes no "enumerate by elimination" command (testssl.sh does it in bash).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from operator import attrgetter
from typing import Any, Literal

from scanner.collectors.tls import sslyze_adapter as sa
from scanner.collectors.tls.sslyze_adapter import PROTOCOL_VERSIONS, suites_for

Outcome = Literal["accepted", "rejected", "error"]
Verdict = Literal["accepted", "accepted_unknown", "rejected", "error"]


@dataclass
class Chain:
    """One protocol with one client: the protocol probe, then (optionally) suite elimination, whose
    branches may run concurrently (see ``SPLIT_AFTER``)."""

    protocol: str
    legacy: bool
    outcome: Outcome = "error"  # the protocol question, answered by the first handshake
    accepted: list[Any] = field(default_factory=list)  # sslyze CipherSuiteAcceptedByServer
    failed: str | None = None  # why an elimination branch stopped before a clean refusal
    connections: int = 0
    reason: str | None = None  # the first handshake's refusal or error
    certs: list[tuple[str, ...]] = field(default_factory=list)  # chains served (PEM), one per leaf
    hello: Any = None  # sslyze_adapter.ServerHello of the first handshake, when accepted and readable
    asked: bool = False  # the first handshake has been answered (``outcome`` is final)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def complete(self) -> bool:
        """Every accepted suite is listed (the elimination ended in clean refusals only)."""
        return self.outcome != "error" and self.failed is None


# An elimination branch that has found SPLIT_AFTER suites and still has at least SPLIT_MIN to offer splits
# in two halves that run concurrently: one more handshake (each branch ends with a refusal), a much shorter
# critical path for servers that accept dozens of suites; servers accepting a few never pay for it.
SPLIT_AFTER = 3
SPLIT_MIN = 16


@dataclass(frozen=True)
class ProtocolProbe:
    """What the prober learnt about one protocol: ``accepted`` (with every accepted suite when
    ``enumerated`` and ``complete``, one per suite class when ``enumerated`` only), ``rejected``, or
    ``error`` (sslyze must enumerate it)."""

    protocol: str
    outcome: Outcome
    accepted: tuple[Any, ...] = ()  # sslyze CipherSuiteAcceptedByServer, sorted as sslyze sorts them
    enumerated: bool = False
    connections: int = 0
    reason: str | None = None
    complete: bool = True  # False: one suite per class (the listing was cut short)
    chains: tuple[tuple[str, ...], ...] = ()  # certificate chains served (PEM, leaf first), one per leaf
    # The ServerHello of the protocol handshake of the legacy client (the one sslyze's renegotiation and
    # compression commands use), when accepted: its compression method and renegotiation_info.
    hello: Any = None


# Suite classes asked by ``classes=True``: (name, OpenSSL cipher-string keywords, protocols) where
# protocols None means every protocol from SSL 3.0 to TLS 1.2. "no_fs" and "cbc" are complements (the
# suites the keywords do NOT select) minus the weak classes, as T3 judges them on TLS 1.2 only.
_WEAK = ("eNULL", "aNULL", "EXPORT", "RC4", "DES", "3DES", "MD5")
# Asked in this order: the unions first ("weak": every weak class; "no_fs" holds every non-weak RSA key
# exchange suite), so that on a well-configured server one refusal settles several classes at once.
# "no_fs" comes first: an RSA key exchange suite found there starts ROBOT (the longest test) early.
CLASSES: tuple[tuple[str, tuple[str, ...], frozenset[str] | None], ...] = (
    ("no_fs", ("kEDH", "kEECDH"), frozenset({"TLSv1.2"})),
    ("weak", _WEAK, None),
    ("rsa_kx", ("kRSA",), None),
    ("dhe", ("kEDH",), None),
    ("null_anon_export", ("eNULL", "aNULL", "EXPORT"), None),
    ("rc4", ("RC4",), None),
    ("des", ("DES", "3DES"), None),
    ("md5", ("MD5",), None),
    ("cbc", ("AESGCM", "CHACHA20", "AESCCM"), frozenset({"TLSv1.2"})),
)
_COMPLEMENTS = frozenset({"no_fs", "cbc"})
# The suites sslyze's ROBOT test asks for first on TLS 1.2 (legacy client): a handshake of the prober that
# picked one of them has received the RSA key that test would ask for.
ROBOT_SUITES = frozenset(sa.ROBOT_GCM.split(":"))
_CLASS_PROTOCOLS = frozenset({"SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2"})


@cache
def class_members(name: str, protocol: str, legacy: bool) -> frozenset[str]:
    """OpenSSL names of the suites of class ``name`` that the client offers for ``protocol``."""
    keywords, protos = next((k, p) for n, k, p in CLASSES if n == name)
    if protocol not in (protos or _CLASS_PROTOCOLS):
        return frozenset()
    every = {s.openssl_name for s in suites_for(protocol, legacy)}
    picked = sa.openssl_class(legacy, keywords)
    if name in _COMPLEMENTS:
        return frozenset(every - picked - sa.openssl_class(legacy, _WEAK))
    return frozenset(every & picked)


@cache
def _classes_of(protocol: str, legacy: bool) -> dict[str, frozenset[str]]:
    """OpenSSL suite name -> the names of the classes it belongs to, for the suites the client offers for
    ``protocol`` (computed once: offers are ordered by it on every class handshake)."""
    out: dict[str, set[str]] = {}
    for name, _, _ in CLASSES:
        for member in class_members(name, protocol, legacy):
            out.setdefault(member, set()).add(name)
    return {k: frozenset(v) for k, v in out.items()}


@cache
def _either_client(name: str, protocol: str) -> frozenset[str]:
    return class_members(name, protocol, False) | class_members(name, protocol, True)


def probe(
    host: str,
    port: int,
    addr: str,
    timeout: float,
    max_connections: int,
    enumerate_suites: bool = True,
    classes: bool = False,
    pool: Executor | None = None,
    listener: Callable[[Progress], None] | None = None,
    halted: Callable[[], bool] | None = None,
    ready: Callable[[], None] | None = None,
    reached: Callable[[], None] | None = None,
) -> dict[str, ProtocolProbe]:
    """Probe every protocol (concurrently, at most ``max_connections`` at a time); with
    ``enumerate_suites``, also list every accepted suite of each accepted protocol by elimination, or with
    ``classes``, one accepted suite per suite class (see the module docstring). ``pool``: run the
    handshakes there (shared with other work; left running) instead of a pool of ``max_connections``
    threads of the prober's own. ``listener`` is called (in the pool's threads; it must not block) after
    each handshake with what is known so far, so that work depending on it can start before the prober
    ends. ``ready`` (blocking): the collector's first handshake runs meanwhile; only the first
    ``max_connections - 1`` protocol handshakes start before it returns (``halted`` then says whether
    to ask anything more); ``reached`` is told when a protocol handshake is accepted."""
    location, network = sa.network(host, port, addr, timeout)
    chains = [Chain(p, legacy) for p, legacy in _plan()]
    _Elimination(location, network, enumerate_suites and not classes, max_connections, classes, pool,
                 listener, halted, reached).run(chains, max_connections - 1 if ready else len(chains), ready)
    out: dict[str, ProtocolProbe] = {}
    for proto in PROTOCOL_VERSIONS:
        mine = [c for c in chains if c.protocol == proto]
        out[proto] = _merge(proto, mine, enumerate_suites or classes, complete=not classes)
    return out


def settled(probes: dict[str, ProtocolProbe]) -> frozenset[str]:
    """Protocols the prober fully answered (refused, or accepted with every suite listed); sslyze
    enumerates the others suite by suite."""
    return frozenset(p for p, r in probes.items() if r.outcome == "rejected" or r.enumerated)


def _plan() -> list[tuple[str, bool]]:
    """(protocol, legacy client?) pairs, as sslyze assigns clients to suites; newest first, so that the
    highest protocol (what sslyze's commands need to know) is known after the first handshakes."""
    return [
        ("TLSv1.3", False),
        ("TLSv1.2", False),
        ("TLSv1.2", True),
        ("TLSv1.1", True),
        ("TLSv1.0", True),
        ("SSLv3", True),
        ("SSLv2", True),
    ]


@dataclass(frozen=True)
class Progress:
    """What the prober knows so far (given to ``probe``'s listener): for each (protocol, legacy client?)
    answered, its first handshake's outcome and the suite picked (OpenSSL name); the ServerHello of the
    legacy client's accepted protocol handshakes; the chains seen; whether an RSA key exchange suite was
    found; ``done`` when every handshake has ended."""

    outcomes: dict[tuple[str, bool], tuple[Outcome, str | None]]
    hellos: dict[str, Any]
    chains: tuple[tuple[str, ...], ...]
    rsa_found: bool
    done: bool = False
    # The chain served with one of ROBOT's own suites (``ROBOT_SUITES``, legacy client, TLS 1.2): the RSA
    # key sslyze's ROBOT test would ask for in a handshake of its own (None: not seen).
    robot_chain: tuple[str, ...] | None = None

    def outcome(self, protocol: str, legacy: bool | None = None) -> Outcome | None:
        """The protocol's answer (None: not yet): both clients' for TLS 1.2 unless ``legacy`` says."""
        keys = [(protocol, legacy)] if legacy is not None else [k for k in self.outcomes if k[0] == protocol]
        got = [self.outcomes[k][0] for k in keys if k in self.outcomes]
        wanted = 1 if legacy is not None or protocol != "TLSv1.2" else 2
        if len(got) < wanted:
            return None
        return "error" if "error" in got else "accepted" if "accepted" in got else "rejected"


class _Elimination:
    """Runs every chain's branches on a pool of ``max_connections`` threads; a branch that splits submits
    its halves to the same pool. ``run`` returns when no branch is left."""

    def __init__(self, location: Any, network: Any, enumerate_suites: bool, max_connections: int,
                 classes: bool = False, pool: Executor | None = None,
                 listener: Callable[[Progress], None] | None = None,
                 halted: Callable[[], bool] | None = None,
                 reached: Callable[[], None] | None = None) -> None:
        self.halted = halted or (lambda: False)  # True: ask nothing more (the collection stops)
        self.reached = reached or (lambda: None)  # told when a protocol handshake is accepted
        self.location, self.network, self.enumerate_suites = location, network, enumerate_suites
        self.classes = classes
        self.found: dict[str, set[str]] = {}  # protocol -> OpenSSL names of the suites found (all clients)
        self.found_lock = threading.Lock()
        self.rsa_found = False
        self.robot_chain: tuple[str, ...] | None = None
        self.own_pool = pool is None
        self.pool: Executor = pool or ThreadPoolExecutor(max_workers=max(1, max_connections),
                                               thread_name_prefix="tls-probe")
        self.listener = listener
        self.chains: list[Chain] = []
        self.pending = 0
        self.idle = threading.Condition()

    def run(self, chains: list[Chain], ahead: int | None = None,
            ready: Callable[[], None] | None = None) -> None:
        """Every chain's branches; only the first ``ahead`` chains start before ``ready`` returns."""
        self.chains = chains
        try:
            for i, chain in enumerate(chains):
                if ready is not None and i == ahead:
                    ready()
                self._submit(chain, list(suites_for(chain.protocol, chain.legacy)), True)
            with self.idle:
                self.idle.wait_for(lambda: self.pending == 0)
        finally:
            if self.own_pool:
                self.pool.shutdown(wait=True)

    def progress(self) -> Progress:
        """What is known now (see ``Progress``)."""
        outcomes: dict[tuple[str, bool], tuple[Outcome, str | None]] = {}
        hellos: dict[str, Any] = {}
        served: dict[str, tuple[str, ...]] = {}
        for c in self.chains:
            with c.lock:
                if c.asked:
                    picked = c.accepted[0].cipher_suite.openssl_name if c.accepted else None
                    outcomes[(c.protocol, c.legacy)] = (c.outcome, picked)
                    if c.legacy and c.hello is not None:
                        hellos[c.protocol] = c.hello
                for cert in c.certs:
                    served.setdefault(cert[0], cert)
        with self.found_lock:
            rsa, robot_chain = self.rsa_found, self.robot_chain
        return Progress(outcomes, hellos, tuple(served.values()), rsa, robot_chain=robot_chain)

    def _tell(self) -> None:
        if self.listener is None:
            return
        try:
            self.listener(self.progress())
        except Exception:  # the listener's own failure: what it would have started runs after the prober
            self.listener = None

    def _submit(self, chain: Chain, offer: list[Any], first: bool) -> None:
        with self.idle:
            self.pending += 1
        try:
            self.pool.submit(self._branch, chain, offer, first)
        except BaseException:
            with self.idle:
                self.pending -= 1
                self.idle.notify_all()
            raise

    def _branch(self, chain: Chain, remaining: list[Any], first: bool) -> None:
        """Blocking: handshakes offering what is left, until the server refuses (or something goes wrong)."""
        try:
            if self.halted():
                with chain.lock:
                    chain.failed = chain.reason = "not asked: the collection stopped"
                return
            self._eliminate(chain, remaining, first)
        except Exception as exc:  # a bug here must not pass for a refusal
            with chain.lock:
                chain.failed = f"{type(exc).__name__}: {exc}"
        finally:
            with chain.lock:
                chain.asked = True
            self._tell()
            with self.idle:
                self.pending -= 1
                self.idle.notify_all()

    def _eliminate(self, chain: Chain, remaining: list[Any], first: bool) -> None:
        if self.classes:
            self._by_class(chain, remaining)
            return
        if not remaining and first:  # the client has no suite for this protocol: sslyze finds none either
            chain.outcome = "rejected"
        found_here = 0
        while remaining:
            verdict, picked, key, reason, _ = _handshake(chain, self.location, self.network, remaining,
                                                      first=first)
            with chain.lock:
                if first:
                    if verdict in ("accepted", "accepted_unknown"):
                        self.reached()
                    chain.outcome = "accepted" if verdict in ("accepted", "accepted_unknown") else verdict
                    chain.reason = reason
                    chain.asked = first = False
                if verdict == "accepted_unknown" or (verdict == "error" and chain.outcome != "error"):
                    chain.failed = reason
                if verdict != "accepted":
                    return
                if not self.enumerate_suites:
                    return
                match = next((s for s in remaining if s.openssl_name == picked), None)
                if match is None:
                    chain.failed = f"the server chose {picked!r}, which was not offered"
                    return
                chain.accepted.append(sa.CipherSuiteAcceptedByServer(cipher_suite=match, ephemeral_key=key))
            remaining = [s for s in remaining if s is not match]
            found_here += 1
            if found_here >= SPLIT_AFTER and len(remaining) >= SPLIT_MIN:
                half = len(remaining) // 2
                self._submit(chain, remaining[half:], False)
                remaining, found_here = remaining[:half], 0


    def _record(self, chain: Chain, offer: list[Any], picked: str | None, key: Any,
                served: tuple[str, ...] | None = None) -> bool:
        """Note the suite the server picked from ``offer`` (``served``: the chain it sent with it); False
        (the chain failed) if it was not offered."""
        match = next((s for s in offer if s.openssl_name == picked), None)
        with chain.lock:
            if match is None:
                chain.failed = f"the server chose {picked!r}, which was not offered"
                return False
            chain.accepted.append(sa.CipherSuiteAcceptedByServer(cipher_suite=match, ephemeral_key=key))
        with self.found_lock:
            self.found.setdefault(chain.protocol, set()).add(match.openssl_name)
            if match.openssl_name in class_members("rsa_kx", chain.protocol, chain.legacy):
                self.rsa_found = True
            if (served and self.robot_chain is None and chain.legacy and chain.protocol == "TLSv1.2"
                    and match.openssl_name in ROBOT_SUITES):
                self.robot_chain = served
        return True

    def _undecided(self, proto: str, legacy: bool, refused: set[str]) -> list[tuple[str, frozenset[str]]]:
        """The suite classes of ``proto`` this client still has to ask: members it offers, none refused
        by it already, none found (by either client; an RSA key exchange suite on any protocol for
        ``rsa_kx``, which only decides whether ROBOT runs)."""
        out = []
        with self.found_lock:
            found, rsa = set(self.found.get(proto, ())), self.rsa_found
        for name, _, _ in CLASSES:
            members = class_members(name, proto, legacy)
            if not members or members <= refused or (name == "rsa_kx" and rsa):
                continue
            if found & _either_client(name, proto):
                continue
            out.append((name, members))
        return out

    def _ordered(self, offer: list[Any], classes: list[tuple[str, frozenset[str]]], proto: str) -> list[Any]:
        """``offer`` with the suites that settle the most questions first: the classes of ``classes`` they
        belong to, and on TLS 1.2 ROBOT's RSA key while no handshake has received it (one of
        ``ROBOT_SUITES``; first among equals). A server that honours the client's order then settles as
        many as it can with the suite it picks; the set offered is the same, only which member answers
        differs (a server choosing by its own preference is not affected)."""
        with self.found_lock:
            robot = proto == "TLSv1.2" and self.robot_chain is None
        asked = frozenset(name for name, _ in classes)
        of = {**_classes_of(proto, True), **_classes_of(proto, False)}
        none: frozenset[str] = frozenset()

        def weight(s: Any) -> int:
            bonus = 1 if robot and s.openssl_name in ROBOT_SUITES else 0
            return -(2 * (len(of.get(s.openssl_name, none) & asked) + bonus) + bonus)

        return sorted(offer, key=weight)

    def _by_class(self, chain: Chain, every: list[Any]) -> None:
        """Blocking: the protocol handshake, then the suite classes still undecided for this client asked
        together (group testing): one handshake offering every member of every undecided class; a
        refusal settles them all (every suite offered in a refused handshake is refused), an acceptance
        settles the classes of the suite picked, and the rest are asked again. The legacy client's
        protocol handshake offers the suites deciding the most classes first (see ``_ordered``)."""
        if not every:
            chain.outcome = "rejected"
            return
        proto = chain.protocol
        opening = self._ordered(every, self._undecided(proto, True, set()), proto) if chain.legacy else every
        verdict, picked, key, reason, served = _handshake(chain, self.location, self.network, opening,
                                                          first=True)
        with chain.lock:
            chain.outcome = "accepted" if verdict in ("accepted", "accepted_unknown") else verdict
            chain.reason = reason
            if verdict == "accepted_unknown":
                chain.failed = reason
        if verdict in ("accepted", "accepted_unknown"):
            self.reached()
        recorded = verdict == "accepted" and self._record(chain, opening, picked, key, served)
        with chain.lock:
            chain.asked = True
        self._tell()
        if not recorded:
            return
        refused: set[str] = set()
        for _ in range(len(CLASSES) + 1):  # each acceptance settles at least one class
            undecided = self._undecided(proto, chain.legacy, refused)
            if not undecided or self.halted():
                return
            union = frozenset().union(*(m for _, m in undecided))
            left = [s for s in every if s.openssl_name in union and s.openssl_name not in refused]
            offer = self._ordered(left, undecided, proto)
            verdict, picked, key, reason, served = _handshake(chain, self.location, self.network, offer)
            if verdict == "rejected":
                refused |= union
                continue
            if verdict != "accepted":
                with chain.lock:
                    chain.failed = reason or verdict
                return
            if not self._record(chain, offer, picked, key, served):
                return
            self._tell()
        with chain.lock:  # never reached (each acceptance settles a class): no class is left unasked
            chain.failed = "suite classes left undecided"


def _handshake(
    chain: Chain, location: Any, network: Any, offer: list[Any], first: bool = False
) -> tuple[Verdict, str | None, Any, str | None, tuple[str, ...] | None]:
    """One connection offering ``offer``: (verdict, suite picked, ephemeral key, reason, chain served).
    ``first``: the chain's protocol handshake, whose ServerHello is kept (``Chain.hello``) when the
    server accepts."""
    version = sa.tls_version(chain.protocol)
    conn = sa.SslConnection(
        server_location=location,
        network_configuration=network,
        tls_version=version,
        should_ignore_client_auth=False,  # a required client certificate must not look like a refusal
        should_use_legacy_openssl=chain.legacy,
    )
    names = ":".join(s.openssl_name for s in offer)
    try:
        if version == sa.TlsVersionEnum.TLS_1_3:
            conn.ssl_client.set_ciphersuites(names)  # type: ignore[attr-defined]
        else:
            conn.ssl_client.set_cipher_list(names)
    except sa.OpenSSLError:  # the client knows none of these suites: sslyze would swallow them all
        return "rejected", None, None, "the client offers none of these suites", None
    with chain.lock:
        chain.connections += 1
    try:
        sa.connect_until_decided(conn, version)
        client = conn.ssl_client
        served = _keep_chain(chain, client)
        if first and chain.legacy:
            chain.hello = sa.server_hello(client)
        return "accepted", client.get_current_cipher_name(), client.get_ephemeral_key(), None, served
    except sa.ServerRejectedTlsHandshake as exc:
        return "rejected", None, None, exc.error_message, None
    except sa.NoCiphersAvailableBugInSSlyze:  # none of them works with this version: sslyze skips them
        return "rejected", None, None, "the client offers none of these suites with this protocol", None
    except sa.ServerTlsConfigurationNotSupported as exc:  # DH too small: accepted, suite unknown
        return "accepted_unknown", None, None, f"accepted, suite unknown ({exc.error_message})", None
    except sa.ClientCertificateRequested:
        return "accepted_unknown", None, None, "the server requested a client certificate", None
    except Exception as exc:  # timeouts and unknown errors: let sslyze decide
        return "error", None, None, f"{type(exc).__name__}: {getattr(exc, 'error_message', exc)}", None
    finally:
        conn.close()


def _keep_chain(chain: Chain, client: Any) -> tuple[str, ...] | None:
    """Record the certificate chain the server sent in this handshake (one per leaf); return it."""
    try:
        served = tuple(client.get_received_chain())
    except Exception:  # no certificate (anonymous suites) or an unreadable one
        return None
    if not served:
        return None
    with chain.lock:
        if all(c[0] != served[0] for c in chain.certs):
            chain.certs.append(served)
    return served


def served_chain(host: str, port: int, addr: str, timeout: float, protocol: str,
                 cipher_string: str) -> tuple[str, ...] | None:
    """Blocking: one handshake (modern client, ``protocol``) offering ``cipher_string``; the chain the
    server sent (None: refused, or no certificate). Asks for the certificate of another key type."""
    location, network = sa.network(host, port, addr, timeout)
    conn = sa.SslConnection(server_location=location, network_configuration=network,
                            tls_version=sa.tls_version(protocol), should_ignore_client_auth=True,
                            should_use_legacy_openssl=False)
    try:
        conn.ssl_client.set_cipher_list(cipher_string)
        sa.connect_until_decided(conn, sa.tls_version(protocol))
        return tuple(conn.ssl_client.get_received_chain()) or None
    except sa.ClientCertificateRequested:
        return tuple(conn.ssl_client.get_received_chain()) or None
    except Exception:  # refused, or no certificate of that kind: nothing more to see
        return None
    finally:
        conn.close()


def _merge(proto: str, chains: list[Chain], enumerate_suites: bool, complete: bool = True) -> ProtocolProbe:
    conns = sum(c.connections for c in chains)
    served = {}
    for c in chains:
        for cert in c.certs:
            served.setdefault(cert[0], cert)
    if any(c.outcome == "error" for c in chains):
        reason = "; ".join(c.reason or "error" for c in chains if c.outcome == "error")
        return ProtocolProbe(proto, "error", connections=conns, reason=reason)
    if all(c.outcome == "rejected" for c in chains):
        return ProtocolProbe(proto, "rejected", connections=conns, reason=chains[0].reason)
    if not (enumerate_suites and all(c.complete for c in chains)):
        reason = "; ".join(c.failed for c in chains if c.failed) or "suites not enumerated"
        return ProtocolProbe(proto, "accepted", connections=conns, reason=reason)
    found = (a for c in chains for a in c.accepted)
    accepted = sorted(found, key=attrgetter("cipher_suite.name"), reverse=True)
    hello = next((c.hello for c in chains if c.legacy and c.hello is not None), None)
    return ProtocolProbe(proto, "accepted", tuple(accepted), enumerated=True, connections=conns,
                         complete=complete, chains=tuple(served.values()), hello=hello)


@dataclass(frozen=True)
class CurveProbe:
    """The EC groups the server accepts, found by elimination. ``decided`` False: the probe was
    inconclusive (ask sslyze instead); ``complete`` False: only the groups asked about are listed."""

    ecdh_supported: bool | None
    curves: tuple[str, ...] = ()  # names as sslyze gives them, in sslyze's order
    complete: bool = True
    connections: int = 0
    reason: str | None = None
    decided: bool = True


def probe_curves(server_info: Any) -> CurveProbe:
    """Blocking: sslyze's ELLIPTIC_CURVES test (same client, TLS version, suites and curve list, from
    sslyze's own connectivity result ``server_info``), by elimination: offer every curve left, the server
    picks one, drop it, again until the server refuses. One connection per accepted curve plus one,
    instead of one per curve the client knows (30)."""
    probing = server_info.tls_probing_result
    if not probing.supports_ecdh_key_exchange:
        return CurveProbe(ecdh_supported=False)
    version = probing.highest_tls_version_supported

    def connection() -> Any:
        return server_info.get_preconfigured_tls_connection(
            override_tls_version=version, should_use_legacy_openssl=False
        )

    return _eliminate_curves(connection, version, list(sa.OpenSslEcNidEnum.get_supported_by_ssl_client()))


def curve_bits(name: str) -> int | None:
    """Size of a named EC group as its name says it (X25519/X448 count as 256/448)."""
    low = name.lower()
    if low.startswith(("x25519", "x448")):
        return 256 if low.startswith("x25519") else 448
    digits = "".join(ch if ch.isdigit() else " " for ch in low).split()
    sizes = [int(d) for d in digits if len(d) >= 3]
    return sizes[0] if sizes else None


def probe_small_curves(host: str, port: int, addr: str, timeout: float, protocol: str) -> CurveProbe:
    """Blocking: are EC groups below 256 bits accepted (the question T3 asks)? One handshake offering
    only those (ECDHE suites, modern client, ``protocol``); when one is accepted, the others by
    elimination. The strong groups are not listed (``complete`` False): the suites' keys show them."""
    location, network = sa.network(host, port, addr, timeout)
    version = sa.tls_version(protocol)
    every = list(sa.OpenSslEcNidEnum.get_supported_by_ssl_client())
    small = [nid for nid in every if (curve_bits(sa.curve_name(nid)) or 256) < 256]
    if not small:
        return CurveProbe(ecdh_supported=None, complete=False)

    def connection() -> Any:
        return sa.SslConnection(server_location=location, network_configuration=network, tls_version=version,
                                should_ignore_client_auth=True, should_use_legacy_openssl=False)

    found = _eliminate_curves(connection, version, small)
    return CurveProbe(found.ecdh_supported if found.curves else None, found.curves, complete=False,
                      connections=found.connections, reason=found.reason, decided=found.complete)


def _eliminate_curves(connection: Any, version: Any, every: list[Any]) -> CurveProbe:
    """Offer the curves left, drop the one the server picks, until it refuses (``every`` in sslyze's
    order; names as sslyze gives them)."""
    remaining = list(every)
    found: set[Any] = set()
    conns = 0
    while remaining:
        conn = connection()
        sa.enable_ecdh_cipher_suites(version, conn.ssl_client)
        conn.ssl_client.set_groups(remaining)
        conns += 1
        try:
            sa.connect_until_decided(conn, version)
            key = conn.ssl_client.get_ephemeral_key()
        except sa.ClientCertificateRequested:
            key = conn.ssl_client.get_ephemeral_key()
        except sa.ServerRejectedTlsHandshake:
            break
        except Exception as exc:  # timeouts, "wrong curve" and other oddities: let sslyze decide
            reason = f"{type(exc).__name__}: {getattr(exc, 'error_message', exc)}"
            return CurveProbe(True, complete=False, connections=conns, reason=reason, decided=False)
        finally:
            conn.close()
        if not isinstance(key, sa.EcDhEphemeralKeyInfo) or key.curve not in remaining:
            reason = f"unexpected key exchange {type(key).__name__}"
            return CurveProbe(True, complete=False, connections=conns, reason=reason, decided=False)
        found.add(key.curve)
        remaining.remove(key.curve)
    names = tuple(sa.curve_name(nid) for nid in every if nid in found)
    return CurveProbe(True, curves=names, connections=conns)
