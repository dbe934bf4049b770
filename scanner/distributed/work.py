"""What one message does on a worker: collect one evidence family of one target, record it, enqueue the
families that were waiting for it (exposure reads the HTTP evidence), and assess the target (checks,
baseline) once all of its evidence is recorded; the worker that records a run's last result marks the
run complete.

Collection is the engine's: the same collectors, the same settings (read from the run), the same
error handling; only the politeness budget lives in Redis so that all workers share it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scanner.collectors import COLLECTORS, CollectorSpec
from scanner.distributed import records
from scanner.errors import ErrorKind
from scanner.evidence import Snapshot, error_evidence
from scanner.models import Target
from scanner.settings import Settings

log = logging.getLogger(__name__)

Enqueue = Callable[[int, dict[str, Any], str], None]


class BrokerOutage(Exception):
    """Redis went away while collecting: politeness could not be vouched for, so the work is retried."""


# -- per worker process ------------------------------------------------------------------------------------
@functools.cache
def store() -> Any:
    """The worker process's history store (``PLEDGESCAN_STORE``), opened once."""
    from scanner.history.store import Store, default_url

    st = Store(default_url())
    records.ensure_schema(st)
    return st


@functools.lru_cache(maxsize=16)
def run_scanner(run_id: int) -> Any:
    """The engine configured as the run was started (settings, check selection), once per run."""
    from scanner.engine import Scanner
    from scanner.settings import settings_from_json

    return Scanner(settings_from_json(store().run(run_id).options))


def needed(scanner: Any, kind: str) -> dict[str, tuple[str, ...]]:
    """The families a target of this kind needs, each with the needed families it reads first."""
    families = scanner.selection.families(kind)
    specs = [s for s in COLLECTORS if s.kind == kind and s.family in families]
    return {s.family: tuple(f for f in _after(s) if f in families) for s in specs}


def _after(spec: CollectorSpec) -> tuple[str, ...]:
    """The families a collector reads (``after``), or, for collectors declared by stage, every family
    of an earlier stage."""
    after = getattr(spec, "after", None)
    if after is not None:
        return tuple(after)
    stage = getattr(spec, "stage", 0)
    return tuple(s.family for s in COLLECTORS if s.kind == spec.kind and getattr(s, "stage", 0) < stage)


def first_families(scanner: Any, target: Target) -> list[str]:
    """The families to enqueue when the run starts (``ASSESS`` alone when the target needs none)."""
    need = needed(scanner, target.kind)
    return [f for f, deps in need.items() if not deps] or [records.ASSESS]


class LockKeeper:
    """Keeps the heartbeat of the store lock of every run this process is working on (one thread)."""

    INTERVAL_S = 10.0

    def __init__(self) -> None:
        self._runs: Counter[int] = Counter()
        self._mutex = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def working(self, run_id: int) -> Iterator[None]:
        with self._mutex:
            self._runs[run_id] += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._beat, daemon=True, name="pledgescan-run-lock")
                self._thread.start()
        try:
            yield
        finally:
            with self._mutex:
                self._runs[run_id] -= 1
                if self._runs[run_id] <= 0:
                    del self._runs[run_id]

    def _beat(self) -> None:
        while True:
            time.sleep(self.INTERVAL_S)
            with self._mutex:
                runs = list(self._runs)
            for run_id in runs:
                try:
                    records.touch_lock(store(), run_id)
                except Exception as exc:  # the store may be briefly away; the next beat retries
                    log.warning("run %s: lock heartbeat failed: %s", run_id, exc)


LOCKS = LockKeeper()


# -- one message ---------------------------------------------------------------------------------------------
def process(run_id: int, target_data: dict[str, Any], family: str, enqueue: Enqueue) -> None:
    """Handle one (run, target, family) message; safe to run twice."""
    st = store()
    target = Target.model_validate(target_data)
    scanner = run_scanner(run_id)
    with LOCKS.working(run_id):
        status, attempts = records.begin_attempt(st, run_id, target.key, family)
        if status != "done" and family != records.ASSESS:
            if attempts > records.MAX_ATTEMPTS:
                log.error("run %s: %s %s given up after %d attempts", run_id, target.target, family,
                          records.MAX_ATTEMPTS)
                evidence = error_evidence(family, f"gave up after {records.MAX_ATTEMPTS} attempts: the "
                                          f"{family} work failed or killed its worker each time",
                                          ErrorKind.UNKNOWN)
                records.write_evidence(st, run_id, target.key, family, evidence, (), None, None)
            else:
                prior = prior_evidence(st, run_id, target, family, scanner)
                evidence, addresses, res_err, stats = collect_family(scanner, target, family, prior, run_id)
                records.write_evidence(st, run_id, target.key, family, evidence, addresses, res_err, stats)
        elif family == records.ASSESS:
            records.write_evidence(st, run_id, target.key, family, {}, (), None, None)
        advance(run_id, target, scanner, enqueue, again=attempts > 1)
        records.touch_lock(st, run_id)


def advance(run_id: int, target: Target, scanner: Any, enqueue: Enqueue, again: bool = False) -> None:
    """Enqueue the target's families whose inputs are recorded; assess it once all are recorded.

    ``again``: this message ran before (redelivered or retried); its follow-ups may not have been
    enqueued then, so they are enqueued again (a duplicate finds its work done and only advances)."""
    st = store()
    done = records.done_families(st, run_id, target.key)
    need = needed(scanner, target.kind)
    missing = [f for f in need if f not in done]
    if not missing:
        assess(run_id, target, scanner, done)
        return
    for fam in missing:
        if all(d in done for d in need[fam]) and (records.claim(st, run_id, target.key, fam) or again):
            enqueue(run_id, target.model_dump(mode="json"), fam)


def assess(run_id: int, target: Target, scanner: Any, done: dict[str, Any]) -> None:
    """Checks and baseline over the recorded evidence; the result is stored once."""
    st = store()
    if records.has_result(st, run_id, target.key):
        records.finish_if_complete(st, run_id)
        return
    fams = {f: row.evidence for f, row in done.items() if f != records.ASSESS}
    first = next((row for f, row in done.items() if f != records.ASSESS and row.addresses), None)
    res_err = next((row.resolution_error for row in done.values() if row.resolution_error), None)
    snapshot = Snapshot.model_validate({
        "target": target.model_dump(mode="json"), "addresses": list(first.addresses) if first else [],
        "resolution_error": res_err, **fams})
    started = min((row.updated_at for row in done.values()), default=None)
    findings = scanner.analyse(snapshot)
    result = scanner.assess(target, snapshot, findings, _utc(started), None)
    records.add_result_once(st, run_id, result, snapshot)
    records.finish_if_complete(st, run_id)


def _utc(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


# -- collection ----------------------------------------------------------------------------------------------
class _ThreadScope(threading.local):
    """Per worker thread: one event loop for all its messages, and the scan context of the run it
    worked on last (its resolver cache, TLS trust stores and HTTP clients are made once, not once per
    message; about 0.1 s of CPU each)."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.run_id: int | None = None
        self.ctx: Any = None
        self.budget: Any = None


_THREAD = _ThreadScope()


def collect_family(scanner: Any, target: Target, family: str, prior: dict[str, Any] | None = None,
                   run_id: int = 0) -> tuple[Any, tuple[str, ...], str | None, dict[str, Any]]:
    """Run one collector on one target with the run's settings: (evidence, addresses, resolution error,
    request counters). Raises ``BrokerOutage`` when the shared politeness budget lost Redis meanwhile."""
    th = _THREAD
    if th.loop is None:
        th.loop = asyncio.new_event_loop()
    return th.loop.run_until_complete(_collect(th, run_id, scanner, target, family, dict(prior or {})))


def make_budget(settings: Settings) -> Any:
    """The per-address politeness budget shared through Redis (``PLEDGESCAN_BROKER``)."""
    from scanner.distributed.broker import ENV_VAR
    from scanner.distributed.redis_budget import RedisAddressBudget

    url = os.environ.get(ENV_VAR)
    if not url:
        return None
    return RedisAddressBudget(url, settings.per_host_connections, settings.rate_limit)


async def _scope_context(th: _ThreadScope, run_id: int, settings: Settings) -> Any:
    from scanner.net.context import ScanContext

    if th.ctx is not None and th.run_id == run_id:
        return th.ctx
    if th.ctx is not None:
        await th.ctx.aclose()
    if th.budget is not None:
        await th.budget.aclose()
    th.budget = make_budget(settings)
    th.ctx = _context(ScanContext, settings, th.budget)
    th.run_id = run_id
    return th.ctx


async def _collect(th: _ThreadScope, run_id: int, scanner: Any, target: Target, family: str,
                   prior: dict[str, Any]) -> tuple[Any, tuple[str, ...], str | None, dict[str, Any]]:
    from scanner.net.resolver import ResolutionError

    settings: Settings = scanner.settings
    spec = next(s for s in COLLECTORS if s.family == family and s.kind == target.kind)
    missing = missing_files(settings, family)
    if missing:  # before the context, which reads them
        why = f"{missing}: no such file on worker {socket.gethostname()} (the run's file paths must exist " \
              "on every worker machine)"
        return error_evidence(family, why, ErrorKind.UNKNOWN), (), None, \
            {"http_requests_per_host": {}, "tls_connections": 0}
    ctx = await _scope_context(th, run_id, settings)
    if th.budget is not None:
        th.budget.outage = False
    http_before = Counter(ctx.stats.http_requests)
    tls_before = sum(ctx.stats.tls_connections.values())
    deadline = time.monotonic() + settings.target_deadline
    addresses: tuple[str, ...] = ()
    res_err: str | None = None
    res_kind = ErrorKind.DNS
    if target.kind == "endpoint":
        forced = ctx.resolver.override(target.host, target.port)
        if forced:
            ctx.target_addresses.add(forced)
        try:
            addresses = tuple(await asyncio.wait_for(ctx.resolver.resolve(target.host, target.port),
                                                     timeout=settings.target_deadline))
            ctx.target_addresses.update(addresses)
        except ResolutionError as exc:
            res_err, res_kind = exc.reason, exc.kind
        except TimeoutError:
            res_err, res_kind = "name resolution exceeded the target deadline", ErrorKind.TIMEOUT
    if res_err:
        evidence = error_evidence(family, f"host not resolved: {res_err}", res_kind)
    else:
        try:
            evidence = await asyncio.wait_for(spec.load()(target, ctx, addresses, prior),
                                              timeout=max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            evidence = error_evidence(family, f"target deadline of {settings.target_deadline:g}s exceeded",
                                      ErrorKind.TIMEOUT)
        except Exception as exc:  # as in-process: a collector bug is an error result, not a crash
            log.exception("collector %s crashed on %s", family, target.target)
            evidence = error_evidence(family, f"internal error in the {family} collector: {exc}",
                                      ErrorKind.UNKNOWN)
        finally:
            # The message is over: its kept-alive connections give their slots back now. Left in the pool,
            # they would keep them while this thread's loop sleeps between messages, where no lease is
            # renewed: other workers would wait for the lease to run out, and then the address would
            # have one more connection open than its cap.
            await ctx.close_http()
    stats = {"http_requests_per_host": dict(Counter(ctx.stats.http_requests) - http_before),
             "tls_connections": sum(ctx.stats.tls_connections.values()) - tls_before}
    if th.budget is not None and th.budget.outage:
        raise BrokerOutage(f"Redis was unreachable while collecting {family} of {target.target}")
    return evidence, addresses, res_err, stats


def missing_files(settings: Settings, family: str) -> str | None:
    """The run's files (stored as paths, read on the worker) this family needs and this machine lacks, as
    their options, or None: a worker started elsewhere says so instead of failing inside a collector."""
    wanted = [("--ca-bundle", settings.ca_bundle)] if settings.ca_bundle else []  # every fetcher reads it
    if family == "dns":
        wanted += [("--trust-anchor", p) for p in settings.trust_anchors]
    gone = [f"{opt} {path}" for opt, path in wanted if not Path(path).is_file()]
    return ", ".join(gone) or None


def _context(cls: Any, settings: Settings, budget: Any) -> Any:
    """A scan context whose per-address politeness is the shared budget (when the engine takes one)."""
    import inspect

    if budget is not None and "budget" in inspect.signature(cls.create).parameters:
        return cls.create(settings, budget=budget)
    return cls.create(settings)


def prior_evidence(st: Any, run_id: int, target: Target, family: str, scanner: Any) -> dict[str, Any]:
    """Evidence of the families a collector reads, as the engine hands it over (``prior``)."""
    earlier = set(needed(scanner, target.kind).get(family, ()))
    done = records.done_families(st, run_id, target.key)
    fams = {f: row.evidence for f, row in done.items() if f in earlier}
    if not fams:
        return {}
    snap = Snapshot.model_validate({"target": target.model_dump(mode="json"), **fams})
    return {f: getattr(snap, f) for f in fams}


__all__ = ["process", "advance", "assess", "collect_family", "first_families", "needed", "BrokerOutage"]
