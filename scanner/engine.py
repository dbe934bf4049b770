"""Runs a scan: collect once per target (bounded by the deadline), analyse with every check, map and
score with the baseline. No rendering here, no storage: the CLI composes those.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from scanner import __version__, native_memory
from scanner.baseline import Baseline, load_baseline
from scanner.collectors import COLLECTORS
from scanner.errors import ErrorKind
from scanner.evidence import Snapshot, error_evidence
from scanner.models import (
    SCHEMA_VERSION,
    BaselineRef,
    Finding,
    Report,
    Status,
    Target,
    TargetResult,
    ToolInfo,
)
from scanner.net.context import ScanContext
from scanner.net.politeness import AddressBudget
from scanner.net.resolver import ResolutionError
from scanner.plugins import Check, Registry, load_checks
from scanner.settings import Settings, usable_cores

if TYPE_CHECKING:
    from scanner.parallel import _Worker

T = TypeVar("T")
log = logging.getLogger(__name__)


class _SendNoiseFilter(logging.Filter):
    """asyncio logs "socket.send() raised exception." when a misbehaving server drops a connection
    mid-write; the failure is already recorded as evidence, so the line is noise on stderr."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("socket.send() raised exception")


logging.getLogger("asyncio").addFilter(_SendNoiseFilter())

AUTO_MIN_FACTOR = 2  # automatic processes from this many times --concurrency targets (see README Scale)

ResultCallback = Callable[[TargetResult, Snapshot], Awaitable[None] | None]


class SelectionError(ValueError):
    """``--only`` / ``--skip`` named an ID that is neither a check nor a control."""


class Selection:
    """Which checks run and which controls are reported, from ``--only`` and ``--skip``."""

    def __init__(self, registry: Registry, baseline: Baseline, only: Iterable[str] = (),
                 skip: Iterable[str] = ()) -> None:
        self.baseline = baseline
        ids = registry.by_id()
        controls = {c.id for c in baseline.controls}
        only_s, skip_s = set(only), set(skip)
        for name in only_s | skip_s:
            if name not in ids and name not in controls:
                raise SelectionError(f"unknown check or control ID: {name}")

        def wanted(chk: Check) -> bool:
            if chk.id in skip_s or any(a in skip_s for a in chk.meta.aliases):
                return False
            if not only_s:
                return True
            return chk.id in only_s or any(c in only_s for c in chk.meta.controls)

        self.checks: list[Check] = [c for c in registry.checks if wanted(c)]
        if only_s:
            self.controls = {c for c in controls if c in only_s}
            self.controls |= {ctl for chk in self.checks if chk.id in only_s for ctl in chk.meta.controls}
        else:
            self.controls = set(controls)
        self.controls -= skip_s
        fed = {ctl for chk in self.checks for ctl in chk.meta.controls}
        feeding = registry.by_control()
        # A control whose every check was skipped by name is not reported.
        self.controls = {c for c in self.controls
                         if c in fed or not any(x in skip_s for x in feeding.get(c, ()))}
        self.assessed = set(feeding)  # controls some installed check feeds

    def families(self, kind: str) -> set[str]:
        """Evidence families the selected checks of this kind of target need."""
        return {chk.needs.family for chk in self.checks if chk.meta.target_kind == kind}


class Scanner:
    """One scan over many targets, with the settings' concurrency and per-target deadline."""

    def __init__(self, settings: Settings, baseline: Baseline | None = None,
                 registry: Registry | None = None, budget: AddressBudget | None = None) -> None:
        self.settings = settings
        self.budget = budget  # per-address politeness; None: in-process, from the settings
        self.baseline = baseline or load_baseline()
        self.registry = registry or load_checks((c.id for c in self.baseline.controls), settings.only,
                                                settings.skip)
        self.selection = Selection(self.registry, self.baseline, settings.only, settings.skip)
        # Worker processes rebuild the scanner from the settings alone: a scanner given its own baseline,
        # checks or a shared budget (the distributed workers' Redis one) scans in this process.
        self.in_process_only = baseline is not None or registry is not None or budget is not None
        self.worker_pids: list[int] = []  # the scanning processes of the current run, if any
        self._forked: _Worker | None = None  # the worker ``scan_beside`` forked for the next run

    def scan_beside(self, targets: list[Target]) -> None:
        """Call before ``run`` when this process has work of its own beside the scan (opening the history
        store, storing results, the reports): a scan that would run in this process runs in one worker
        forked now (``scanner.parallel.fork_scanner``), on a core of its own, when the machine has two
        and ``--processes`` is automatic (``--processes 1``: this process)."""
        if (self.in_process_only or self.settings.processes or usable_cores() < 2
                or processes_wanted(self.settings, len(targets)) > 1):
            return
        from scanner.parallel import fork_scanner

        self._forked = fork_scanner(self)

    async def run(self, targets: list[Target], on_result: ResultCallback | None = None,
                  on_start: Callable[[Target], None] | None = None, keep_results: bool = True) -> Report:
        """Scan every target; results are handed to ``on_result`` as each target finishes.

        With ``keep_results=False`` the report has no targets (only the statistics): results live only
        as long as ``on_result`` takes to store them, so memory does not grow with the inventory.
        Enough targets (or ``--processes N``) are scanned by worker processes (``scanner.parallel``),
        split by address; ``on_result`` and ``on_start`` are still called here, in this process. Those
        workers are spawned: a program that runs a scanner with ``processes`` above 1 guards its entry
        point with ``if __name__ == "__main__":``, as any program using multiprocessing's spawn must
        (each worker imports the program's main module).
        """
        forked, self._forked = self._forked, None
        if forked is not None or (self.in_process_only is False
                                  and processes_wanted(self.settings, len(targets)) > 1):
            from scanner.parallel import run_in_processes

            return await run_in_processes(self, targets, on_result, on_start, keep_results, forked)
        return await self.run_stream(_each(targets), targets, on_result, on_start, keep_results)

    async def run_stream(self, targets: AsyncIterator[Target], order: list[Target] | None = None,
                         on_result: ResultCallback | None = None,
                         on_start: Callable[[Target], None] | None = None, keep_results: bool = True,
                         prepare: Callable[[ScanContext], None] | None = None) -> Report:
        """``run`` in this process over targets as they come (a worker process gets them from its
        parent); ``order`` orders the kept results; ``prepare`` adjusts the context before any target."""
        started = datetime.now(UTC)
        # Before the TLS worker threads start: they share glibc's arenas instead of fragmenting their own,
        # and the free memory is handed back after targets, so memory does not grow with the inventory.
        native_memory.limit_arenas()
        trimmer = native_memory.Trimmer()
        ctx = ScanContext.create(self.settings, self.budget)
        ctx.tls_alone = not self.selection.families("endpoint") & {"http", "exposure"}
        if not ctx.tls_alone:
            from scanner.net.fetcher import load_backend  # the HTTP stack: only a scan with HTTP work

            load_backend()  # now, not at the first connection (a TLS-only scan seldom needs it)
        if prepare is not None:
            prepare(ctx)
        sem = asyncio.Semaphore(max(1, self.settings.concurrency))
        results: dict[str, TargetResult] = {}
        done = 0
        t0 = time.monotonic()

        async def one(target: Target) -> None:
            nonlocal done
            try:
                if on_start:
                    on_start(target)
                result, snap = await self.scan_target(target, ctx)
                done += 1
                if keep_results:
                    results[target.key] = result
                await ctx.target_done(snap.addresses)
                if on_result:
                    maybe = on_result(result, snap)
                    if asyncio.iscoroutine(maybe):
                        await maybe
                del result, snap
                trimmer.target_done()
            finally:
                sem.release()

        tasks: set[asyncio.Task[None]] = set()
        try:
            async for t in targets:
                # Targets' own addresses are in scope even when internal (a testbed, an intranet audit).
                if t.kind == "endpoint":
                    forced = ctx.resolver.override(t.host, t.port)
                    if forced:
                        ctx.target_addresses.add(forced)
                # A slot before the task: targets waiting for one cost no task, whatever their number.
                await sem.acquire()
                tasks.add(asyncio.create_task(one(t)))
                for finished in [x for x in tasks if x.done()]:
                    tasks.discard(finished)
                    finished.result()  # a failure stops the scan, as it always did
            if tasks:
                await asyncio.gather(*tasks)
                tasks.clear()
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            await ctx.aclose()
        ordered = tuple(results[t.key] for t in (order or ()) if t.key in results)
        stats = {
            "duration_s": round(time.monotonic() - t0, 3),
            "targets": done,
            **ctx.network_stats(),
            "refused_plugins": list(self.registry.refused),
        }
        return self.report(started, ordered, stats)

    def report(self, started: datetime, targets: tuple[TargetResult, ...], stats: dict[str, Any]) -> Report:
        return Report(
            schema_version=SCHEMA_VERSION,
            tool=ToolInfo(version=__version__),
            baseline=BaselineRef(id=self.baseline.id, version=self.baseline.version),
            generated_at=started,
            targets=targets,
            stats=stats,
        )

    async def scan_target(self, target: Target, ctx: ScanContext) -> tuple[TargetResult, Snapshot]:
        started = datetime.now(UTC)
        t0 = time.monotonic()
        with ctx.sharing(target.key):  # the collectors of this target share the answers they got
            snapshot = await self.collect(target, ctx)
        findings = self.analyse(snapshot)
        result = self.assess(target, snapshot, findings, started, time.monotonic() - t0)
        return result, snapshot

    async def collect(self, target: Target, ctx: ScanContext) -> Snapshot:
        """Collect every needed evidence family within the target deadline."""
        deadline = time.monotonic() + self.settings.target_deadline
        addresses: tuple[str, ...] = ()
        resolution_error, resolution_kind = None, ErrorKind.DNS
        families = self.selection.families(target.kind)
        evidence: dict[str, Any] = {}
        if target.kind == "endpoint":
            try:
                addrs = await asyncio.wait_for(ctx.resolver.resolve(target.host, target.port),
                                               timeout=max(0.1, deadline - time.monotonic()))
                addresses = tuple(addrs)
                ctx.target_addresses.update(addresses)
                ctx.in_flight.update(addresses)
            except ResolutionError as exc:
                resolution_error, resolution_kind = exc.reason, exc.kind
            except TimeoutError:
                resolution_error = "name resolution exceeded the target deadline"
                resolution_kind = ErrorKind.TIMEOUT
        specs = [s for s in COLLECTORS if s.kind == target.kind and s.family in families]
        if resolution_error:
            for s in specs:
                evidence[s.family] = error_evidence(s.family, f"host not resolved: {resolution_error}",
                                                    resolution_kind)
        else:
            tasks: dict[str, asyncio.Task[Any]] = {}

            http_work = any(s.family in ("http", "exposure") for s in specs)

            async def run(spec: Any) -> Any:
                if getattr(spec, "heavy_import", False) and http_work and not _loaded(spec.module):
                    await ctx.http_under_way()
                await _imported(spec.module)
                if getattr(spec, "early", False):  # starts at once, awaits what it reads where it needs it
                    prior: dict[str, Any] = {f: tasks[f] for f in spec.after if f in tasks}
                    return await self._run_collector(spec, target, ctx, addresses, prior)
                deps = [tasks[f] for f in spec.after if f in tasks]
                if deps:
                    await asyncio.wait(deps)
                prior = {f: tasks[f].result() for f in spec.after if f in tasks}
                return await self._run_collector(spec, target, ctx, addresses, prior)

            for s in specs:
                tasks[s.family] = asyncio.create_task(run(s))
            remaining = max(0.0, deadline - time.monotonic())
            pending: set[asyncio.Task[Any]] = set()
            if tasks:
                _, pending = await asyncio.wait(tasks.values(), timeout=remaining)
            for fam, task in tasks.items():
                if task in pending:
                    task.cancel()
                    evidence[fam] = error_evidence(
                        fam, f"target deadline of {self.settings.target_deadline:g}s exceeded",
                        ErrorKind.TIMEOUT)
                else:
                    evidence[fam] = task.result()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        return Snapshot(target=target, addresses=addresses, resolution_error=resolution_error, **evidence)

    async def _run_collector(self, spec: Any, target: Target, ctx: ScanContext,
                             addresses: tuple[str, ...], prior: dict[str, Any]) -> Any:
        try:
            return await spec.load()(target, ctx, addresses, dict(prior))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a collector bug must become an error result, not a crash
            log.exception("collector %s crashed on %s", spec.family, target.target)
            return error_evidence(spec.family, f"internal error in the {spec.family} collector: {exc}",
                                  ErrorKind.UNKNOWN)

    def analyse(self, snapshot: Snapshot) -> list[Finding]:
        """Run every selected check of the target's kind over the snapshot (pure, no I/O)."""
        findings: list[Finding] = []
        for chk in self.selection.checks:
            if chk.meta.target_kind != snapshot.target.kind:
                continue
            try:
                findings.extend(chk.run(snapshot))
            except Exception as exc:  # a check bug is an error result for its controls
                log.exception("check %s crashed on %s", chk.id, snapshot.target.target)
                findings.extend(chk.meta.errors(f"internal error in check {chk.id}: {exc}"))
        return findings

    def assess(self, target: Target, snapshot: Snapshot, findings: list[Finding],
               started: datetime | None = None, duration: float | None = None) -> TargetResult:
        """Map findings onto the baseline's controls and grade the target."""
        by_control: dict[str, list[Finding]] = {}
        for f in findings:
            by_control.setdefault(f.control, []).append(f)
        controls = []
        for control in self.baseline.controls_for(target.kind):
            if control.id not in self.selection.controls:
                continue
            unavailable = None
            if control.id not in self.selection.assessed:
                unavailable = "no installed check assesses this control yet"
            controls.append(self.baseline.control_result(control, by_control.get(control.id, []),
                                                         unavailable))
        grade, score, decided, applicable = self.baseline.grade(controls)
        errors = []
        if snapshot.resolution_error:
            errors.append(f"{target.host}: {snapshot.resolution_error}")
        for fam in ("tls", "http", "exposure", "dns"):
            ev = getattr(snapshot, fam)
            if ev is not None and ev.error:
                kind = f" ({ev.error_kind})" if ev.error_kind else ""
                errors.append(f"{fam}{kind}: {ev.error}")
        all_findings = tuple(f for c in controls for f in c.findings)
        return TargetResult(
            member=target.member,
            member_name=target.member_name,
            kind=target.kind,
            target=target.target,
            addresses=snapshot.addresses,
            grade=grade,
            score=score,
            decided=decided,
            applicable=applicable,
            controls=tuple(controls),
            findings=all_findings,
            errors=tuple(errors),
            started_at=started,
            duration_s=round(duration, 3) if duration is not None else None,
        )


def _loaded(module: str) -> bool:
    """Is ``module`` imported (not merely being imported)?"""
    loaded = sys.modules.get(module)
    return loaded is not None and not getattr(getattr(loaded, "__spec__", None), "_initializing", False)


async def _imported(module: str) -> None:
    """Import a collector's module on a thread the first time (sslyze's import takes ~0.4 s of the
    first target): the event loop goes on meanwhile, so the target's HTTP connections are opened and
    answered while the TLS collector's code loads, instead of after it."""
    if not _loaded(module):
        await asyncio.to_thread(importlib.import_module, module)


async def _each(targets: Iterable[Target]) -> AsyncIterator[Target]:
    for t in targets:
        yield t


def processes_wanted(settings: Settings, targets: int) -> int:
    """Processes for a scan of ``targets`` targets: ``--processes`` when given; automatically the
    machine's cores, but one (no start-up cost) when there are fewer than ``AUTO_MIN_FACTOR`` times
    the targets in flight."""
    if settings.processes:
        return max(1, min(settings.processes, targets))
    cores = usable_cores()
    if cores < 2 or targets < AUTO_MIN_FACTOR * settings.concurrency:
        return 1
    return min(cores, targets)


def run_main(main: Awaitable[T]) -> T:
    """``asyncio.run(main)``, its result handed back aside. Python 3.11's runner ends by asking
    ``signal.getsignal`` about the SIGINT handler it installed, a partial holding the main task; that
    builds (and throws away) the task's repr, the result's full repr included: a whole Report, which
    grows with the targets kept."""
    box: list[T] = []

    async def keep() -> None:
        box.append(await main)

    asyncio.run(keep())
    return box[0]


def run_scan(targets: list[Target], settings: Settings, **kwargs: Any) -> Report:
    """Synchronous convenience wrapper around ``Scanner.run``."""
    return run_main(Scanner(settings).run(targets, **kwargs))


__all__ = ["Scanner", "Selection", "SelectionError", "run_main", "run_scan", "SCHEMA_VERSION", "Status"]
