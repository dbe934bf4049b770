"""A scan in several processes, split by address (issue 9: one interpreter is one core).

The parent resolves the endpoints' addresses once, joins the targets whose address sets intersect
(union-find), and hands whole groups to worker processes (``spawn``: never a fork of a process with
threads) as they need work. An address lives in exactly one process, so its politeness budget
(connections, requests per second) stays exact with no shared state. Each worker runs the in-process
engine over the targets it gets, with its resolver seeded by the parent's answers and its share of the
machine's socket cap and of the targets in flight, and streams each finished target back. The parent
stays the single writer (``on_result``: the store, the report writers, the progress display) and sums
the statistics. A worker that dies turns the targets it had started into ``error`` results (the ones it
had not started go to another worker), and what it counted up to its last result stays in the scan's
statistics (each result carries its counters so far); Ctrl-C stops every worker.

A stored scan that would run in one process (``--processes`` automatic, few targets) runs instead in one
worker *forked* before the scan begins (``fork_scanner``), while the command's process opens the history
store, stores the results and writes the reports on the other core. A fork is taken only while the
calling thread is the process's only one, so no lock held by another thread is copied locked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing
import os
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from scanner import native_memory
from scanner.errors import ErrorKind, hide_library_warnings
from scanner.evidence import Snapshot, error_evidence
from scanner.models import Target, TargetResult
from scanner.net.resolver import ResolutionError, Resolver
from scanner.settings import Settings

if TYPE_CHECKING:
    from scanner.engine import ResultCallback, Scanner

log = logging.getLogger(__name__)

RESOLVE_AT_ONCE = 64  # the parent's name lookups in flight while it plans the split
_GONE = object()  # a pipe's other end closed


# -- the plan: addresses, groups ------------------------------------------------------------------------
async def resolve_all(settings: Settings, targets: list[Target]) -> tuple[list[set[str]], Resolver]:
    """Each target's addresses (an endpoint's host at its HTTPS and HTTP ports; none for a domain or a
    name that does not resolve), and the resolver that holds the answers."""
    resolver = Resolver(settings)
    sem = asyncio.Semaphore(RESOLVE_AT_ONCE)

    async def of(t: Target) -> set[str]:
        found: set[str] = set()
        if t.kind != "endpoint":
            return found
        for port in dict.fromkeys((t.port, t.http_port)):
            # a failure is reported by the worker's collectors, from the seeded answer
            async with sem:
                with contextlib.suppress(ResolutionError):
                    found.update(await resolver.resolve(t.host, port))
        return found

    return list(await asyncio.gather(*(of(t) for t in targets))), resolver


def group_by_address(targets: list[Target], addresses: list[set[str]]) -> list[list[Target]]:
    """Targets whose address sets intersect, joined (union-find), in the order of their first target."""
    parent = list(range(len(targets)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, addrs in enumerate(addresses):
        for a in addrs:
            if a in owner:
                ri, ro = find(i), find(owner[a])
                if ri != ro:
                    parent[max(ri, ro)] = min(ri, ro)
            else:
                owner[a] = i
    groups: dict[int, list[Target]] = {}
    for i, t in enumerate(targets):
        groups.setdefault(find(i), []).append(t)
    return list(groups.values())


def worker_settings(settings: Settings, processes: int) -> Settings:
    """A worker's settings: in-process, with its share of the targets in flight and of the sockets."""
    return settings.model_copy(update={
        "processes": 1,
        "concurrency": max(1, math.ceil(settings.concurrency / processes)),
        "max_sockets": max(1, settings.max_sockets // processes),
    })


# -- the worker process -----------------------------------------------------------------------------------
def worker_main(tasks: Connection, events: Connection, settings: Settings,
                answers: dict[str, Any], allowed: set[str], native: tuple[int, int], log_level: int,
                scanner: Scanner | None = None) -> None:
    """A worker process: scan the groups the parent sends until it sends ``None``, then the stats.
    A forked worker is handed its parent's ``scanner`` (already built, in memory it shares)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent stops us
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")
    if log_level > logging.INFO:
        hide_library_warnings()  # as the command does without -v
    native_memory.ARENAS, native_memory.TRIM_EVERY = native
    if scanner is None:
        from scanner.engine import Scanner

        scanner = Scanner(settings)
    report = asyncio.run(_work(scanner, tasks, events, answers, allowed))
    events.send(("stats", report.stats))
    events.close()


async def _work(scanner: Scanner, tasks: Connection, events: Connection, answers: dict[str, Any],
                allowed: set[str]) -> Any:
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[Any] = asyncio.Queue()

    def read() -> None:
        while True:
            try:
                msg = tasks.recv()
            except (EOFError, OSError):
                msg = _GONE
            loop.call_soon_threadsafe(inbox.put_nowait, msg)
            if msg is None or msg is _GONE:
                return

    threading.Thread(target=read, name="pledgescan-worker-inbox", daemon=True).start()

    async def source() -> AsyncIterator[Target]:
        while True:
            msg = await inbox.get()
            if msg is None:
                return
            if msg is _GONE:  # the parent is gone: nobody to report to
                os._exit(1)
            for t in msg:
                yield t

    contexts: list[Any] = []

    def prepare(ctx: Any) -> None:
        ctx.resolver.seed(answers)
        ctx.target_addresses.update(allowed)
        contexts.append(ctx)

    # Each result carries the counters so far: a worker that dies later keeps its finished targets'
    # requests and connections in the scan's statistics.
    return await scanner.run_stream(
        source(), None, on_result=lambda r, s: events.send(("result", r, s, contexts[0].network_stats())),
        on_start=lambda t: events.send(("start", t.key)), keep_results=False, prepare=prepare)


# -- the parent ---------------------------------------------------------------------------------------------
class _Worker:
    """One worker process seen from the parent: its pipes, the targets it holds, what it reported."""

    def __init__(self, index: int, mp: Any, args: tuple[Any, ...]) -> None:
        task_r, self.tasks = mp.Pipe(duplex=False)
        self.events, event_w = mp.Pipe(duplex=False)
        self.process = mp.Process(target=worker_main, args=(task_r, event_w, *args), daemon=True,
                                  name=f"pledgescan-scan-{index}")
        self.process.start()
        task_r.close()
        event_w.close()
        self.outstanding: dict[str, Target] = {}  # sent, no result yet
        self.started: set[str] = set()  # of those, the ones it began
        self.stats: dict[str, Any] | None = None  # its final statistics
        self.partial: dict[str, Any] = {}  # its counters at its last result, should it die before the end
        self.alive = True
        self.ended = False  # told that no more work comes
        self._reader = threading.Thread(target=self._read, name=f"pledgescan-scan-{index}-events",
                                        daemon=True)

    def attach(self, loop: asyncio.AbstractEventLoop, inbox: asyncio.Queue[Any]) -> None:
        """Hand what it reports to ``inbox`` on ``loop`` (the scan's, once it runs)."""
        self._loop, self._inbox = loop, inbox
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                msg: Any = self.events.recv()
            except (EOFError, OSError):
                msg = None
            except Exception as exc:  # a message that does not unpickle: the worker is of no more use
                log.error("worker %s sent an unreadable message: %s", self.process.pid, exc)
                msg = None
            try:
                self._loop.call_soon_threadsafe(self._inbox.put_nowait, (self, msg))
            except RuntimeError:  # the scan is over (its loop closed)
                return
            if msg is None:
                return

    def send(self, msg: Any) -> bool:
        try:
            self.tasks.send(msg)
            return True
        except (OSError, ValueError):  # it died; its reader reports that
            return False

    def end_reason(self) -> str:
        self.process.join(timeout=5)
        code = self.process.exitcode
        if code is not None and code < 0:
            try:
                how = f"killed by signal {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
        else:
            how = f"exit code {code}"
        return (f"the scanning process (pid {self.process.pid}) ended before finishing this target "
                f"({how})")

    def stop(self) -> None:
        """Stop it now (Ctrl-C, an error in the parent): SIGTERM, then SIGKILL."""
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=5)
            if self.process.is_alive():
                self.process.kill()
        self.process.join(timeout=5)
        self.tasks.close()
        self._reader.join(timeout=5)  # it reads until the dead process's end of the pipe closes
        if not self._reader.is_alive():
            self.events.close()


def _start_workers(n: int, args: tuple[Any, ...], how: str = "spawn") -> list[_Worker]:
    """Start ``n`` workers with SIGINT ignored from their first instruction (they inherit it through
    exec or fork), so a Ctrl-C during their start-up prints no traceback of theirs."""
    mp = multiprocessing.get_context(how)
    main = threading.current_thread() is threading.main_thread()
    saved = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        return [_Worker(i, mp, args) for i in range(n)]
    finally:
        if main:
            signal.signal(signal.SIGINT, saved)


def fork_scanner(scanner: Scanner) -> _Worker | None:
    """One worker forked from this process, for a scan that this process has work of its own beside
    (the history store's imports and writes, the reports): the scan gets a core of its own at no start-up
    cost, since the child shares the imports and the scanner already in memory, where a spawned worker
    imports everything again (about as long as a small scan). ``None`` (scan here) unless this is Linux
    and the calling thread is the only one: a fork copies no other thread, so a lock another thread held
    would stay locked in the child (and Python warns about such forks)."""
    import sys

    if not sys.platform.startswith("linux") or threading.active_count() != 1:
        return None
    for stream in (sys.stdout, sys.stderr):  # the child flushes what it inherits: nothing, then
        with contextlib.suppress(Exception):
            stream.flush()
    # the child scans with ``scanner`` itself (its settings, the resolver of its own): no answers to seed
    args = (scanner.settings, {}, set(), (native_memory.ARENAS, native_memory.TRIM_EVERY),
            logging.getLogger().getEffectiveLevel(), scanner)
    return _start_workers(1, args, "fork")[0]


def lost_result(scanner: Scanner, target: Target, reason: str) -> tuple[TargetResult, Snapshot]:
    """A target whose worker died: every evidence family it needed is an error saying so."""
    families = scanner.selection.families(target.kind)
    from scanner.collectors import COLLECTORS

    evidence = {s.family: error_evidence(s.family, reason, ErrorKind.UNKNOWN)
                for s in COLLECTORS if s.kind == target.kind and s.family in families}
    snap = Snapshot(target=target, **evidence)
    return scanner.assess(target, snap, scanner.analyse(snap)), snap


def merge_stats(parts: list[dict[str, Any]], duration: float, done: int, processes: int,
                refused: list[str]) -> dict[str, Any]:
    """The workers' statistics as one scan's: counts summed (a dead worker's up to its last result)."""
    per_host: Counter[str] = Counter()
    blocked: list[str] = []
    for p in parts:
        per_host.update(p.get("http_requests_per_host", {}))
        blocked.extend(p.get("blocked_requests", []))
    return {
        "duration_s": round(duration, 3),
        "targets": done,
        "http_requests": sum(p.get("http_requests", 0) for p in parts),
        "http_requests_per_host": dict(per_host),
        "http_connections": sum(p.get("http_connections", 0) for p in parts),
        "tls_connections": sum(p.get("tls_connections", 0) for p in parts),
        "peak_sockets": sum(p.get("peak_sockets", 0) for p in parts),  # an upper bound: peaks added
        "blocked_requests": blocked[:100],
        "refused_plugins": refused,
        "processes": processes,
    }


async def run_in_processes(scanner: Scanner, targets: list[Target], on_result: ResultCallback | None,
                           on_start: Callable[[Target], None] | None, keep_results: bool,
                           forked: _Worker | None = None) -> Any:
    """``Scanner.run`` over worker processes (see the module docstring); the same report. ``forked``
    (``fork_scanner``): that one worker scans every target, resolving names itself, as this process
    would."""
    from scanner.engine import _each, processes_wanted

    settings = scanner.settings
    started, t0 = datetime.now(UTC), time.monotonic()
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    scanner.worker_pids = []
    if forked is not None:
        n, groups, workers = 1, [[t] for t in targets], [forked]
    else:
        addresses, resolver = await resolve_all(settings, targets)
        groups = group_by_address(targets, addresses)
        n = min(processes_wanted(settings, len(targets)), len(groups))
        if n <= 1:  # one address for all (or one target): this process, with the answers already got
            answers = resolver.answers()
            return await scanner.run_stream(_each(targets), targets, on_result, on_start, keep_results,
                                            prepare=lambda ctx: ctx.resolver.seed(answers))
        # Targets' own addresses are in scope even when internal, whichever process scans them.
        allowed = {a for t in targets if t.kind == "endpoint"
                   for a in (resolver.override(t.host, t.port),) if a}
        args = (worker_settings(settings, n), resolver.answers(), allowed,
                (native_memory.ARENAS, native_memory.TRIM_EVERY), logging.getLogger().getEffectiveLevel())
        workers = _start_workers(n, args)
    for w in workers:
        w.attach(loop, inbox)
    window = 2 * max(1, math.ceil(settings.concurrency / n))  # targets a worker holds: in flight and next
    pending: deque[list[Target]] = deque(groups)
    results: dict[str, TargetResult] = {}
    done = 0
    scanner.worker_pids = [w.process.pid for w in workers if w.process.pid]

    async def deliver(result: TargetResult, snap: Snapshot) -> None:
        nonlocal done
        done += 1
        if keep_results:
            results[result.key] = result
        if on_result:
            maybe = on_result(result, snap)
            if asyncio.iscoroutine(maybe):
                await maybe

    def feed() -> None:
        """Keep every live worker holding up to ``window`` targets (a group always whole); when nothing
        is left anywhere, tell them to finish."""
        live = [w for w in workers if w.alive and not w.ended]
        for w in live:
            while pending and len(w.outstanding) < window:
                group = pending.popleft()
                w.outstanding.update((t.key, t) for t in group)
                w.send(group)
        if not pending and not any(w.outstanding for w in workers if w.alive):
            for w in live:
                w.ended = True
                w.send(None)

    async def buried(w: _Worker) -> None:
        """A worker's pipe closed: a clean end, or its targets are redone elsewhere or become errors."""
        w.alive = False
        if w.stats is not None and not w.outstanding:
            return
        reason = w.end_reason()
        log.warning("%s; %d targets affected", reason, len(w.outstanding))
        unstarted = [t for k, t in w.outstanding.items() if k not in w.started]
        for k, t in list(w.outstanding.items()):
            if k in w.started:
                await deliver(*lost_result(scanner, t, reason))
        w.outstanding.clear()
        if unstarted:
            pending.appendleft(unstarted)
        if not any(x.alive and not x.ended for x in workers):
            while pending:
                for t in pending.popleft():
                    await deliver(*lost_result(scanner, t, f"{reason}; no scanning process was left"))

    parts: list[dict[str, Any]] = []
    try:
        feed()
        while any(w.alive for w in workers):
            w, msg = await inbox.get()
            if msg is None:
                await buried(w)
                feed()
                continue
            kind = msg[0]
            if kind == "start":
                w.started.add(msg[1])
                target = w.outstanding.get(msg[1])
                if on_start and target is not None:
                    on_start(target)
            elif kind == "result":
                result, snap = msg[1], msg[2]
                w.partial = msg[3]
                key = result.key
                w.outstanding.pop(key, None)
                w.started.discard(key)
                await deliver(result, snap)
                del result, snap, msg
                feed()
            elif kind == "stats":
                w.stats = msg[1]
                parts.append(msg[1])
    finally:
        for w in workers:
            w.stop()
    parts.extend(w.partial for w in workers if w.stats is None and w.partial)  # died: up to its last result
    ordered = tuple(results[t.key] for t in targets if t.key in results)
    stats = merge_stats(parts, time.monotonic() - t0, done, n, list(scanner.registry.refused))
    return scanner.report(started, ordered, stats)


__all__ = ["fork_scanner", "group_by_address", "lost_result", "merge_stats", "resolve_all",
           "run_in_processes", "worker_main", "worker_settings"]
