"""History commands of the command line: scans recorded in the store, ``history``, ``diff``, ``report``
and ``members check`` (the secretariat's daily tools)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from scanner.cli.lang import lang_option, use_language
from scanner.cli.support import (
    EXIT_OK,
    EXIT_THRESHOLD,
    EXIT_UNASSESSED,
    EXIT_USAGE,
    FORMATS,
    InputProblem,
    ScanInterrupted,
    StoreBusyProblem,
    check_output,
    default_output,
    execute_scan,
    listing_console,
    open_store,
    store_option,
    stored_outcome,
    unassessed_message,
    while_waiting,
)
from scanner.models import Target
from scanner.settings import Settings

PORTFOLIO_DIR = "pledgescan-portfolio"  # where a members scan writes without -o


def run_stored_scan(targets: list[Target], inventory: Any, settings: Settings, kw: dict[str, Any]) -> int:
    """``scan`` with history: record the run as targets finish, write reports from the store.

    A new run scans while the store opens (``_scan_while_the_store_opens``); ``--resume``, whose
    targets and settings come from the store, and the cases that one falls back on, open it first."""
    quiet = kw["quiet"]
    if inventory is not None and not quiet:
        for w in inventory.warnings:
            click.echo(f"pledgescan: {w}", err=True)
    early = None if kw["resume"] else _scan_while_the_store_opens(targets, inventory, settings, kw)
    if early is None:
        store, stored, scanned = _scan_once_the_store_is_open(targets, inventory, settings, kw)
    else:
        store, stored, scanned = early
    return _finish_stored_scan(store, stored, scanned, kw)


class NoHistory(Exception):  # noqa: N818 (a state, not an error: the scan goes on without history)
    """The default store (no ``--store``, which is optional) cannot be opened: the scan keeps no history
    and says why, in a warning."""


def _open(kw: dict[str, Any]) -> Any:
    """The history store; ``NoHistory`` instead of an error when it is the optional default one."""
    if kw.get("store_optional"):
        from scanner.history.store import Store, StoreError

        try:
            return Store(None)
        except (StoreError, OSError) as exc:
            raise NoHistory(str(exc)) from None
    return open_store(kw["store_url"])


def _start_stored(store: Any, targets: list[Target], inventory: Any, settings: Settings, kw: dict[str, Any],
                  wait: float) -> Any:
    """The run's lock and record (``StoredScan``); the store's errors as the command's."""
    from scanner.history.members import combine
    from scanner.history.portfolio import StoredScan
    from scanner.history.store import StoreBusy, StoreError

    try:
        if kw["resume"] and inventory is None:
            return StoredScan.resume(store, wait)
        from scanner.history.store import members_inventory

        return StoredScan.start(
            store, combine(inventory, targets), settings, inventory, wait,
            inventory_id=members_inventory(kw["members_file"]) if inventory is not None else None,
            resume_unfinished=kw["resume"])
    except StoreBusy as exc:
        raise StoreBusyProblem(str(exc)) from None
    except StoreError as exc:
        raise InputProblem(str(exc)) from None


def _output(portfolio: bool, kw: dict[str, Any]) -> tuple[tuple[str, ...], Path]:
    formats = kw["formats"] or ("html",)
    return formats, ((kw["output"] or Path(PORTFOLIO_DIR)) if portfolio else
                     default_output(formats, kw["output"], "pledgescan-report"))


def _scan_once_the_store_is_open(targets: list[Target], inventory: Any, settings: Settings,
                                 kw: dict[str, Any], store: Any = None) -> tuple[Any, Any, Any]:
    """Open the store, take the run's lock (waiting up to ``--lock-wait``), then scan."""
    store = store or _open(kw)
    stored = _start_stored(store, targets, inventory, settings, kw, kw["lock_wait"])
    run = store.run(stored.run_id)
    resumed = stored.recorder.resumed
    if resumed and not kw["quiet"]:
        click.echo(f"pledgescan: resuming run {run.id} ({run.targets_done}/{run.targets_total} targets done)",
                   err=True)
    formats, out = _output(bool(run.members), kw)
    try:
        check_output(formats, out, portfolio=bool(run.members))
    except InputProblem:
        stored.abort()
        raise
    try:
        scanned, _ = execute_scan(stored.targets, stored.settings, formats=kw["formats"],
                                  output=kw["output"], quiet=kw["quiet"] or resumed, fail_on=kw["fail_on"],
                                  on_result=stored.on_result, render=False, keep_results=False)
    except KeyboardInterrupt:
        stored.abort()
        raise ScanInterrupted(stored.run_id, kw["store_url"]) from None
    except BaseException:
        stored.abort()
        raise
    return store, stored, scanned


def _scan_while_the_store_opens(targets: list[Target], inventory: Any, settings: Settings,
                                kw: dict[str, Any]) -> tuple[Any, Any, Any] | None:
    """A new run: the scan starts at once while a thread opens the store (importing SQLAlchemy, building
    a new store) and records the run; results wait in memory until it has. ``None`` when the store is
    not ready for that (the output is refused, or another run holds the inventory's lock): the scan
    this began is cancelled (it ran as long as opening the store took) and the caller takes the ordinary
    way, with its errors and ``--lock-wait``. The store opens once the scan waits on the network
    (``while_waiting``): its imports would otherwise take the interpreter from the scan's own start-up.

    When the store cannot be opened, the scan is cancelled and the command fails as it does without the
    head start (the same one-line error and exit code); no run is recorded. The optional default store
    raises ``NoHistory``: the caller warns and scans again without history (that rare case, a broken
    default store, repeats the first second of the scan; the common one never waits for the store)."""
    import threading
    from concurrent.futures import Future

    from scanner.history.members import combine

    members = inventory.members if inventory is not None else []
    formats, out = _output(bool(members), kw)
    try:
        check_output(formats, out, portfolio=bool(members))
    except InputProblem:
        return None  # the ordinary way says so, after the store's own errors as before
    opened: Future[tuple[Any, Any]] = Future()
    # Running from the start, as an executor's would be: the scan's Ctrl-C cancels the task awaiting it
    # (asyncio.wrap_future) but not the store's opening, whose run it then marks interrupted.
    opened.set_running_or_notify_cancel()

    def open_and_start() -> None:
        store = None
        try:
            store = _open(kw)
            try:
                stored = _start_stored(store, targets, inventory, settings, kw, 0.0)
            except StoreBusyProblem:
                stored = None  # busy: wait for the lock the ordinary way, without scanning meanwhile
            opened.set_result((store, stored))
        except BaseException as exc:  # noqa: BLE001 (handed to the scan's thread, which raises it)
            if store is not None:
                store.close()
            opened.set_exception(exc)

    thread = threading.Thread(target=open_and_start, name="pledgescan-store", daemon=True)
    waiting: list[tuple[Any, Any]] = []
    recorder: list[Any] = []  # the StoredScan once the run is recorded

    def on_result(result: Any, snap: Any) -> None:
        if recorder:
            recorder[0].on_result(result, snap)
        else:
            waiting.append((result, snap))

    async def store_ready(scan: Any) -> None:
        import asyncio

        await while_waiting(scan)
        thread.start()
        _store, stored = await asyncio.wrap_future(opened)
        if stored is None:
            raise _LockBusy
        for result, snap in waiting:
            stored.on_result(result, snap)
        waiting.clear()
        recorder.append(stored)

    try:
        scanned, _ = execute_scan(combine(inventory, targets), settings, formats=kw["formats"],
                                  output=kw["output"], quiet=kw["quiet"], fail_on=kw["fail_on"],
                                  on_result=on_result, render=False, keep_results=False,
                                  alongside=store_ready)
    except _LockBusy:
        store, _ = opened.result()
        return _scan_once_the_store_is_open(targets, inventory, settings, kw, store)
    except BaseException as exc:
        if not thread.is_alive() and not opened.done():
            if not isinstance(exc, KeyboardInterrupt):
                raise  # the scan failed before the store began to open: nothing to undo
            open_and_start()  # Ctrl-C: the run is recorded all the same, for --resume to finish
        try:
            store, stored = opened.result()
        except BaseException as failed:  # noqa: BLE001 (the store's error, which came first before)
            raise failed from None
        if stored is not None:
            stored.abort()
            if isinstance(exc, KeyboardInterrupt):
                raise ScanInterrupted(stored.run_id, kw["store_url"]) from None
        store.close()
        raise
    store, stored = opened.result()
    return store, stored, scanned


class _LockBusy(Exception):
    """Another run holds the inventory's lock: the scan that began is cancelled (see above)."""


def _finish_stored_scan(store: Any, stored: Any, scanned: Any, kw: dict[str, Any]) -> int:
    """After a stored scan: mark the run, write the reports from the store, the exit code."""
    from scanner.history.portfolio import run_stream, write_portfolio
    from scanner.reporters import render_all

    quiet, resumed = kw["quiet"], stored.recorder.resumed
    run = stored.finish(scanned.stats)
    portfolio = bool(run.members)
    formats, out = _output(portfolio, kw)
    # Results went to the store as targets finished; the reports read them back a batch at a time, so
    # memory does not grow with the inventory. A one-off scan's reports keep the engine's header.
    report = run_stream(store, run, None if portfolio or resumed else scanned)
    try:
        paths = write_portfolio(store, run.id, out) if portfolio else render_all(report, formats, out)
    except (OSError, ValueError) as exc:
        raise InputProblem(f"cannot write the reports to {out}: {getattr(exc, 'strerror', None) or exc}; "
                           f"the run is stored: `pledgescan report {run.id} -o DIR` writes them"
                           ) from None
    if not (quiet or resumed):
        from scanner.reporters.output import is_stdout
        from scanner.reporters.terminal import plain_console, print_summary

        # with -o - the report owns standard output: the summary goes to stderr
        print_summary(report, plain_console(stderr=True) if is_stdout(out) and not portfolio else None)
    if not quiet:
        for p in paths:
            click.echo(f"report written: {p}", err=True)
        click.echo(f"run {run.id} {run.status}: {run.targets_done}/{run.targets_total} targets "
                   f"(store {store.url.split('://')[0]})", err=True)
    code = EXIT_OK
    exceeds, none_assessed = stored_outcome(store.summaries(run.id), kw["fail_on"])
    if exceeds:
        code = EXIT_THRESHOLD
    unassessed = unassessed_message(report) if none_assessed else None
    if kw["fail_on_regression"] or kw["fail_on_unreachable"]:
        code = max(code, _history_gate(stored.regression(), run.id, kw["fail_on_regression"],
                                       kw["fail_on_unreachable"], quiet))
    store.close()
    if unassessed:
        click.echo(f"pledgescan: {unassessed}", err=True)
        return EXIT_UNASSESSED
    return code


def _history_gate(diff: Any, run_id: int, regression: bool, unreachable: bool, quiet: bool) -> int:
    """``--fail-on-regression`` / ``--fail-on-unreachable`` after a stored scan: the exit code."""
    from scanner.history.diff import print_diff, target_state

    if diff is None:
        return EXIT_OK
    since = f"since run {diff.run_a.id}" if diff.run_a else ""
    code = EXIT_OK
    if regression and diff.regressed:
        if not quiet:
            from scanner.reporters.terminal import plain_console

            print_diff(diff, plain_console(stderr=True))
        click.echo(f"pledgescan: run {run_id} regressed {since}", err=True)
        code = EXIT_THRESHOLD
    if unreachable and diff.unreachable:
        for t in diff.unreachable:
            click.echo(f"pledgescan: {t.target}: {target_state(t, 'en')}", err=True)
        click.echo(f"pledgescan: run {run_id}: {len(diff.unreachable)} target(s) that answered before "
                   "no longer do", err=True)
        code = EXIT_THRESHOLD
    return code


@click.command()
@store_option
@click.option("--member", metavar="ID", help="Only runs that scanned this member, with its grade.")
@click.option("--limit", type=click.IntRange(1, 10000), default=30, show_default=True)
@click.option("--format", "fmt", type=click.Choice(("table", "json")), default="table", show_default=True)
def history(store_url: str | None, member: str | None, limit: int, fmt: str) -> None:
    """Past runs: date, status, baseline version, mean score, chain-linked trend, grades."""
    import json

    from rich.table import Table

    from scanner.history.portfolio import iter_history

    rows = list(iter_history(open_store(store_url), member=member, limit=limit))
    if member is not None and not rows:
        raise InputProblem(f"--member {member}: no run in the store scanned this member "
                           "(the ID is the members file's id, e.g. 'good-school')")
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"{len(rows)} run(s)" + (f" of member {member}" if member else ""))
    cols = ("Run", "Started (UTC)", "Status", "Baseline", "Targets", "Score", "Trend", "Grades")
    for col in cols if member is None else tuple(c for c in cols if c != "Trend"):
        table.add_column(col)
    for r in rows:
        grades = r["grades"]
        if member is None:
            dist: dict[str, int] = {}
            for g in grades.values():
                dist[g] = dist.get(g, 0) + 1
            shown = " ".join(f"{g}:{n}" for g, n in sorted(dist.items()))
        else:
            shown = grades.get(member, "?")
        cells = [str(r["run"]), r["started_at"].replace("+00:00", ""), r["status"], r["baseline"],
                 r["targets"], "" if r["score"] is None else str(r["score"])]
        if member is None:
            cells.append("" if r["trend"] is None else str(r["trend"]))
        table.add_row(*cells, shown)
    listing_console().print(table)


@click.command()
@store_option
@click.argument("runs", nargs=-1, metavar="[RUN_A [RUN_B]]")
@click.option("--format", "fmt", type=click.Choice(("table", "json", "html")), default="table",
              show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the JSON or HTML here instead of standard output.")
@click.option("--fail-on-regression", is_flag=True, help="Exit 1 when anything got worse.")
@click.option("--fail-on-unreachable", is_flag=True,
              help="Exit 1 when a target that answered before no longer does.")
@lang_option
def diff(store_url: str | None, runs: tuple[str, ...], fmt: str, output: Path | None,
         fail_on_regression: bool, fail_on_unreachable: bool, lang: str) -> None:
    """What changed up to RUN_B (default: the latest run) since RUN_A (default: the previous run of the
    same inventory): each target against its own last assessed result up to RUN_A; per member, target
    and control, what newly fails, what was fixed, grade changes, unreachable, new and removed targets."""
    import json

    from scanner.history.diff import default_pair, diff_runs, print_diff
    from scanner.history.portfolio import render_diff
    from scanner.history.store import StoreError
    from scanner.reporters import write_atomic

    if len(runs) > 2:
        raise InputProblem("diff takes at most two run IDs")
    use_language(lang)  # the HTML page; the terminal table stays English
    store = open_store(store_url)
    if len(runs) < 2 and first_run_only(store, runs[0] if runs else "latest"):
        click.echo("pledgescan: nothing to compare yet: there is no earlier run; "
                   "`pledgescan diff` reports changes from the second run on", err=True)
        return
    try:
        a, b = default_pair(store, *(runs + (None, None))[:2])
    except StoreError as exc:
        raise InputProblem(str(exc)) from None
    d = diff_runs(store, a, b)
    if fmt == "table":
        from scanner.reporters.terminal import plain_console

        print_diff(d, plain_console())
    else:
        text = json.dumps(d.to_json(), indent=2) + "\n" if fmt == "json" else render_diff(d)
        if output and str(output) != "-":
            try:
                write_atomic(output, text)
            except (OSError, ValueError) as exc:
                why = getattr(exc, "strerror", None) or exc
                raise InputProblem(f"cannot write {output}: {why}") from None
        else:
            click.echo(text, nl=False)
    if (fail_on_regression and d.regressed) or (fail_on_unreachable and d.unreachable):
        sys.exit(EXIT_THRESHOLD)


def first_run_only(store: Any, ref: str) -> bool:
    """True when ``ref`` names a run the store has, and no run came before it (nothing to diff yet)."""
    from scanner.history.store import StoreError

    try:
        run = store.run(ref)
    except StoreError:
        return False
    return store.previous_run(run.id) is None and store.previous_run(run.id, same_inventory=False) is None


@click.command()
@store_option
@click.argument("run", default="latest")
@click.option("--format", "formats", multiple=True, type=FORMATS,
              help="Formats for a run without members (default html). A members run gets the portfolio.")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Directory (portfolio, several formats) or file (one format).")
@lang_option
def report(store_url: str | None, run: str, formats: tuple[str, ...], output: Path | None, lang: str) -> None:
    """Re-render the reports of a stored RUN (an ID or 'latest') without scanning."""
    from scanner.history.portfolio import run_stream, write_portfolio

    use_language(lang)
    from scanner.history.store import StoreError
    from scanner.reporters import render_all

    store = open_store(store_url)
    try:
        info = store.run(run)
    except StoreError as exc:
        raise InputProblem(str(exc)) from None
    out = output
    if info.members and output is not None and str(output) == "-":
        raise InputProblem(f"-o -: run {info.id} is a members run, whose portfolio is a directory: "
                           "give -o DIR")
    try:
        if info.members:
            out = output or Path(f"pledgescan-portfolio-{info.id}")
            paths = write_portfolio(store, info.id, out)
        else:
            formats = formats or ("html",)
            default = f"pledgescan-report-{info.id}" + (f".{formats[0]}" if len(formats) == 1 else "")
            out = output or Path(default)
            paths = render_all(run_stream(store, info), formats, out)
    except (OSError, ValueError) as exc:
        raise InputProblem(f"cannot write the reports to {out}: {getattr(exc, 'strerror', None) or exc}"
                           ) from None
    for p in paths:
        click.echo(f"report written: {p}", err=True)


@click.group()
def members() -> None:
    """Members files (the secretariat's inventory)."""


@members.command(name="check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def members_check(file: Path) -> None:
    """Validate a members FILE (YAML or CSV) without scanning: one line per problem."""
    from scanner.history.members import MembersError, load_members

    try:
        inv = load_members(file)
    except MembersError as exc:
        for issue in exc.issues:
            click.echo(f"pledgescan: error: {issue}", err=True)
        sys.exit(EXIT_USAGE)
    for w in inv.warnings:
        click.echo(f"pledgescan: {w}", err=True)
    eps = sum(1 for t in inv.targets if t.kind == "endpoint")
    click.echo(f"{file}: OK, {len(inv.members)} members, {eps} endpoints, "
               f"{len(inv.targets) - eps} domains, {len(inv.warnings)} warning(s)")


@click.group(name="store")
def store_group() -> None:
    """The history store itself (schema migrations)."""


@store_group.command(name="upgrade")
@store_option
def store_upgrade(store_url: str | None) -> None:
    """Upgrade the store's schema to this version's (done anyway whenever pledgescan opens a store)."""
    from scanner.history.store import Store, StoreError, redact
    from scanner.migrations.runner import head

    try:
        store = Store(store_url, upgrade=False)
        applied = store.upgrade()
    except StoreError as exc:
        raise InputProblem(str(exc)) from None
    except Exception as exc:  # a database that is not a pledgescan store, a refused connection
        raise InputProblem(f"cannot upgrade the history store: {type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    where = redact(store.url)
    if applied:
        click.echo(f"{where}: upgraded to revision {head()} (applied {', '.join(applied)})")
    else:
        click.echo(f"{where}: already at revision {head()}")
    store.close()


HISTORY_COMMANDS = (history, diff, report, members, store_group)
