"""Scanning with workers: the ``worker`` command and ``scan --broker`` (enqueue, wait, render).

Exit codes added here (see docs/workers.md): ``scan --broker`` exits 5 when the run cannot finish now
(the broker stopped answering; ``scan --resume --broker`` completes it). ``worker`` exits with
Dramatiq's codes: 0 stopped, 1 a worker process died (systemd restarts it), 2 bad arguments or import,
3 the broker could not be reached at start.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from scanner.cli.support import (
    EXIT_OK,
    EXIT_THRESHOLD,
    EXIT_UNASSESSED,
    InputProblem,
    StoreBusyProblem,
    exceeds_threshold,
    not_assessed,
    open_store,
    store_option,
    unassessed_message,
)
from scanner.models import Target
from scanner.settings import Settings

EXIT_UNFINISHED = 5  # the run could not finish now (the broker went away); --resume completes it
EXIT_BROKER = 3  # the broker does not answer at start (as Dramatiq's RET_CONNECT)


def broker_option(func: Any) -> Any:
    return click.option("--broker", "broker_url", envvar="PLEDGESCAN_BROKER", metavar="URL",
                        help="Dramatiq's Redis broker (redis://HOST:6379/0): run on `pledgescan worker` "
                             "processes instead of in-process. Default: $PLEDGESCAN_BROKER, else none.")(func)


def scan_broker_options(func: Any) -> Any:
    """``scan --broker URL --detach --broker-wait S``."""
    func = click.option("--broker-wait", type=click.FloatRange(1, 86400), default=300.0,
                        show_default=True,
                        help="With --broker: seconds to wait for an unreachable broker, then exit 5.")(func)
    func = click.option("--detach", is_flag=True,
                        help="With --broker: enqueue the run, print its ID and return at once "
                             "(`pledgescan report RUN` renders it later).")(func)
    return broker_option(func)


@click.command()
@broker_option
@store_option
@click.option("--processes", "-p", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Worker processes (each with its own event loops and connections).")
@click.option("--threads", "-t", type=click.IntRange(1, 256), default=8, show_default=True,
              help="Messages worked on at once by each process (targets' families in flight).")
@click.option("--queue", "queues", multiple=True, type=click.Choice(("collect", "tls")),
              help="Only these queues (repeatable): e.g. TLS workers sized apart. Default: both.")
@click.option("--redelivery-after", type=click.FloatRange(1, 3600), default=60.0, show_default=True,
              help="Seconds without a worker's heartbeat before its messages go to another worker.")
@click.option("--pid-file", type=click.Path(dir_okay=False, path_type=Path), help="Write the main PID here.")
def worker(broker_url: str | None, store_url: str | None, processes: int, threads: int,
           queues: tuple[str, ...], redelivery_after: float, pid_file: Path | None) -> None:
    """Run Dramatiq workers that scan the runs enqueued by `pledgescan scan --broker`.

    \b
    Example:
      pledgescan worker --broker redis://127.0.0.1:6379/0 --store postgresql+psycopg://scan@db/pledgescan
    """
    from scanner.distributed import broker as brk

    url = brk.broker_url(broker_url)
    if not url:
        raise InputProblem("no broker: give --broker redis://HOST:6379/DB or set PLEDGESCAN_BROKER")
    if not store_url:
        raise InputProblem("no store: give --store URL (or PLEDGESCAN_STORE), the database the scan "
                           "command records its runs in (PostgreSQL when workers run on several machines)")
    try:
        brk.check_url(url)
        brk.ping(url)
    except brk.BrokerError as exc:
        click.echo(f"pledgescan: error: {exc}", err=True)
        sys.exit(EXIT_BROKER)
    from scanner.distributed.records import store_id

    store = open_store(store_url)
    ns = brk.namespace(store_id(store))
    store.close()
    os.environ[brk.ENV_NAMESPACE] = ns
    os.environ[brk.ENV_VAR] = url
    os.environ["PLEDGESCAN_STORE"] = store_url
    os.environ[brk.ENV_REDELIVERY] = str(redelivery_after)
    from dramatiq.cli import main as dramatiq_main
    from dramatiq.cli import make_argument_parser

    names = {"collect": brk.QUEUE_COLLECT, "tls": brk.QUEUE_TLS}
    argv = ["scanner.distributed.actors", "--processes", str(processes), "--threads", str(threads),
            "--worker-shutdown-timeout", "60000"]
    if queues:
        argv += ["--queues", *(names[q] for q in queues)]
    if pid_file:
        argv += ["--pid-file", str(pid_file)]
    sys.exit(dramatiq_main(make_argument_parser().parse_args(argv)))


def run_distributed_scan(targets: list[Target], inventory: Any, settings: Settings,
                         kw: dict[str, Any]) -> int:
    """``scan --broker``: record the run, enqueue its work, wait (or detach), render from the store."""
    from scanner.distributed.broker import BrokerError, check_url, ping
    from scanner.distributed.dispatch import Dispatcher, RunUnfinished, unfinished_message, wait_for_run
    from scanner.distributed.records import forget_run, hand_over_lock, take_back_for_resume
    from scanner.history.members import combine
    from scanner.history.portfolio import StoredScan
    from scanner.history.store import StoreBusy, StoreError

    url, quiet = kw["broker_url"], kw["quiet"]
    if not kw["store_url"]:
        raise InputProblem("--broker needs --store URL (or PLEDGESCAN_STORE): the store the workers "
                           "write the results to, the same as their --store")
    try:
        check_url(url)
        ping(url)
    except BrokerError as exc:
        raise InputProblem(str(exc)) from None
    if inventory is not None and not quiet:
        for w in inventory.warnings:
            click.echo(f"pledgescan: {w}", err=True)
    store = open_store(kw["store_url"])
    try:
        if kw["resume"]:
            take_back_for_resume(store)  # the run's lock, from the workers it was left to
            stored = StoredScan.resume(store, kw["lock_wait"])
        else:
            stored = StoredScan.start(store, combine(inventory, targets), settings, inventory,
                                      kw["lock_wait"])
    except StoreBusy as exc:
        raise StoreBusyProblem(str(exc)) from None
    except StoreError as exc:
        raise InputProblem(str(exc)) from None
    run_id, pending = stored.run_id, stored.targets
    try:
        dispatcher = Dispatcher(url, store, kw["broker_wait"])
        hand_over_lock(store, stored.recorder.lock, run_id)
        if kw["resume"]:
            forget_run(store, run_id)  # its unfinished work starts afresh: attempts counted anew
    except BaseException:
        stored.abort()
        raise
    try:
        dispatcher.enqueue_run(store, run_id, pending)
    except BrokerError as exc:
        click.echo(f"pledgescan: error: {unfinished_message(store, run_id, pending, exc, kw['broker_wait'])}",
                   err=True)
        return EXIT_UNFINISHED
    if kw["detach"]:
        click.echo(str(run_id))
        if not quiet:
            click.echo(f"pledgescan: run {run_id} enqueued ({len(pending)} targets); "
                       f"`pledgescan report {run_id}` renders it when the workers are done", err=True)
        return EXIT_OK
    progress = _Progress(run_id, enabled=not quiet)
    try:
        with progress:
            run = wait_for_run(store, run_id, dispatcher, pending, on_progress=progress.update,
                               broker_wait=kw["broker_wait"])
    except RunUnfinished as exc:
        click.echo(f"pledgescan: error: {exc}", err=True)
        return EXIT_UNFINISHED
    except KeyboardInterrupt:
        click.echo(f"pledgescan: interrupted; run {run_id} goes on in the workers: "
                   f"`pledgescan report {run_id}` renders it later", err=True)
        return 130
    return _render(store, run, kw)


def _render(store: Any, run: Any, kw: dict[str, Any]) -> int:
    """Write the reports of the finished run from the store, as a scan with history does."""
    from scanner.history.portfolio import run_report, write_portfolio
    from scanner.reporters import render_all
    from scanner.reporters.terminal import print_summary

    report = run_report(store, run)
    out = kw["output"]
    try:
        if run.members:
            paths = write_portfolio(store, run.id, out or Path("pledgescan-portfolio"))
        else:
            formats = kw["formats"] or ("html",)
            paths = render_all(report, formats, out or Path(f"pledgescan-report.{formats[0]}"
                                                            if len(formats) == 1 else "pledgescan-report"))
    except (OSError, ValueError) as exc:
        raise InputProblem(f"cannot write the reports: {getattr(exc, 'strerror', None) or exc}") from None
    if not kw["quiet"]:
        if not run.members:
            print_summary(report)
        for p in paths:
            click.echo(f"report written: {p}", err=True)
        click.echo(f"run {run.id} {run.status}: {run.targets_done}/{run.targets_total} targets "
                   f"(workers, store {store.url.split('://')[0]})", err=True)
    code = EXIT_THRESHOLD if exceeds_threshold(report, kw["fail_on"]) else EXIT_OK
    if kw["fail_on_regression"]:
        prev = store.previous_run(run.id)
        if prev is not None:
            from scanner.history.diff import diff_runs

            diff = diff_runs(store, prev, run)
            if diff.regressed:
                click.echo(f"pledgescan: run {run.id} regressed since run {prev.id}", err=True)
                code = EXIT_THRESHOLD
    store.close()
    if not_assessed(report):
        click.echo(f"pledgescan: {unassessed_message(report)}", err=True)
        return EXIT_UNASSESSED
    return code


class _Progress:
    """Targets done, from the store: a bar on a terminal, else a line when it changes (at most every 10 s)."""

    def __init__(self, run_id: int, enabled: bool) -> None:
        from scanner.progress import ScanProgress

        self.run_id = run_id
        self.enabled = enabled
        self.bar: Any = None
        self._factory = ScanProgress
        self._shown = -1
        self._last = 0.0

    def __enter__(self) -> _Progress:
        return self

    def update(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            self.bar = self._factory(total, enabled=True)
            self.bar.__enter__()
            if self.bar.enabled and done:
                self.bar._progress.advance(self.bar._task, done)
                self._shown = done
        if self.bar.enabled:
            if self._shown >= 0:
                self.bar._progress.advance(self.bar._task, done - self._shown)
            self._shown = done
        elif done == total or time.monotonic() - self._last >= 10:
            click.echo(f"pledgescan: run {self.run_id}: {done}/{total} targets done", err=True)
            self._last = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


__all__ = ["worker", "scan_broker_options", "run_distributed_scan", "EXIT_UNFINISHED"]
