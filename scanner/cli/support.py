"""Plumbing shared by the command-line modules: exit codes, one-line input errors, option parsing,
settings, the scan-and-render pipeline and opening the history store."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from scanner.models import Report, Severity, Status, Target, TargetResult
from scanner.settings import Settings

if TYPE_CHECKING:
    from scanner.reporters.stream import ReportStream

EXIT_OK, EXIT_THRESHOLD, EXIT_USAGE = 0, 1, 2
EXIT_UNASSESSED = 4  # the scan ran, but no target could be assessed (all unreachable, say)
FAIL_ON = ("critical", "high", "medium", "low", "never")


_OWN_PROCESS = False  # set by ``own_process``: the command line runs in a process of its own


def own_process() -> None:
    """The command runs in a process of its own (``main()`` of the console script): the objects alive
    now (modules, classes, the schemas of the records) live until it ends, so the cyclic collector
    need not walk them again at every full collection (``gc.freeze``); ``settle_heap`` does the same
    once the scan's own imports are done."""
    global _OWN_PROCESS
    _OWN_PROCESS = True
    gc.freeze()


def settle_heap() -> None:
    """After start-up, in a process of its own: what is alive now stays until the end (see ``own_process``).
    In a process that runs other things (tests calling ``main([...])``) nothing changes."""
    if _OWN_PROCESS:
        gc.freeze()


class ReportFormat(click.ParamType):
    """``--format``: any format published under ``pledgescan.reporters``, a plugin's included."""

    name = "format"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        from scanner.reporters import format_names

        return "[" + "|".join(format_names()) + "]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from scanner.reporters import format_names

        fmt, names = str(value).strip().lower(), format_names()
        if fmt not in names:
            self.fail(f"{value!r} is not a report format; choose from {', '.join(names)}", param, ctx)
        return fmt


FORMATS = ReportFormat()


class InputProblem(click.ClickException):
    """A user-input error: printed as one line, exit code 2."""

    exit_code = EXIT_USAGE


def setting_option(name: str, *decls: str, **kw: Any) -> Any:
    """A ``scan`` option for the ``Settings`` field ``name``: its default, range and help come from the
    field (the one place they are written)."""
    from annotated_types import Ge, Le

    field = Settings.model_fields[name]
    low = next((m.ge for m in field.metadata if isinstance(m, Ge)), None)
    high = next((m.le for m in field.metadata if isinstance(m, Le)), None)
    kind = click.IntRange if field.annotation is int else click.FloatRange
    return click.option(*decls, type=kind(low, high), default=field.default, show_default=True,
                        help=field.description, **kw)


class ScanInterrupted(Exception):  # noqa: N818 (it is the user's Ctrl-C, not an error)
    """Ctrl-C during a stored run: the message says how to finish it (exit 130). Not a KeyboardInterrupt,
    which click would turn into a bare "Aborted"."""

    def __init__(self, run_id: int, store_url: str | None) -> None:
        store = f" --store {store_url}" if store_url else ""
        super().__init__(f"run {run_id} keeps the targets it finished; "
                         f"`pledgescan scan --resume{store}` completes it")


# Options whose value, when given on the command line, overrides the environment and the settings file.
SETTING_OPTIONS = {"timeout": "timeout", "target_deadline": "target_deadline", "concurrency": "concurrency",
                   "processes": "processes",
                   "per_host_connections": "per_host_connections", "rate_limit": "rate_limit",
                   "coalesce": "coalesce",
                   "contact": "contact_url", "ca_bundle": "ca_bundle", "resolve": "resolve",
                   "nameservers": "nameservers", "trust_anchors": "trust_anchors", "only": "only",
                   "skip": "skip"}


def check_selection(only: frozenset[str], skip: frozenset[str]) -> None:
    """Refuse an unknown ``--only``/``--skip`` ID before scanning, with the nearest known IDs."""
    import difflib

    from scanner.baseline import load_baseline
    from scanner.plugins import load_checks

    asked = [("--only", x) for x in sorted(only)] + [("--skip", x) for x in sorted(skip)]
    if not asked:
        return
    baseline = load_baseline()
    controls = [c.id for c in baseline.controls]
    # The families the selection needs know every ID it names (see ``load_checks``); every check is
    # loaded only to suggest the nearest IDs to an unknown one.
    known = set(controls) | set(load_checks(controls, only, skip).by_id())
    for opt, name in asked:
        if name not in known and only:
            known |= set(load_checks(controls).by_id())
        if name not in known:
            near = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
            near += [k for k in sorted(known) if k.lower() == name.lower() and k not in near]
            hint = f" (did you mean {' or '.join(near)}?)" if near else " (`pledgescan checks` lists them)"
            raise InputProblem(f"{opt} {name}: unknown check or control ID{hint}")


def _targets(report: Report | ReportStream) -> Iterator[TargetResult]:
    from scanner.reporters.stream import as_stream

    return as_stream(report).targets()


def not_assessed(report: Report | ReportStream) -> bool:
    """True when targets were scanned but none of them had a single control decided."""
    seen = False
    for t in _targets(report):
        if t.decided:
            return False
        seen = True
    return seen


def unassessed_message(report: Report | ReportStream) -> str:
    n, first = 0, ""
    for t in _targets(report):
        n += 1
        first = first or next(iter(t.errors), "")
    why = f" (first error: {first[:200]})" if first else ""
    return (f"no target could be assessed: all {n} target(s) unreachable or undecided{why}; "
            "exit code 4" if n > 1 else f"the target could not be assessed{why}; exit code 4")


def exceeds_threshold(report: Report | ReportStream, fail_on: str) -> bool:
    """Did any control fail at or above the ``--fail-on`` severity?"""
    if fail_on == "never":
        return False
    floor = Severity(fail_on).rank
    return any(c.status == Status.FAIL and c.severity.rank >= floor
               for t in _targets(report) for c in t.controls)


def stored_outcome(summaries: Iterable[Any], fail_on: str) -> tuple[bool, bool]:
    """(``exceeds_threshold``, ``not_assessed``) of a stored run from its result summaries (control
    statuses and severities without findings: cheap, whatever the size of the run)."""
    floor = None if fail_on == "never" else Severity(fail_on).rank
    exceeds, seen, decided = False, False, False
    for s in summaries:
        seen, decided = True, decided or s.decided != 0
        if floor is not None and not exceeds:
            exceeds = any(status == Status.FAIL.value and Severity(sev).rank >= floor
                          for status, sev in s.controls.values())
    return exceeds, seen and not decided


def scan_options(func: Any) -> Any:
    """Options shared by ``scan`` and ``demo`` (network, trust and politeness)."""
    opts = [
        click.option("--format", "formats", multiple=True, type=FORMATS,
                     help="Report format (repeatable). Default: html, plus a terminal summary."),
        click.option("-o", "--output", type=click.Path(path_type=Path),
                     help="Output file (one format) or directory (several). "
                          "Default: ./pledgescan-report.<ext> or ./pledgescan-report/."),
        click.option("--ca-bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="PEM file of extra trust anchors, added to Mozilla's store (private CAs)."),
        click.option("--resolve", "resolve", multiple=True, metavar="HOST:PORT:ADDR",
                     help="Use ADDR for HOST:PORT for every probe, like curl (repeatable)."),
        click.option("--nameserver", "nameservers", multiple=True, metavar="ADDR[:PORT]",
                     help="Resolve every name through this DNS server (repeatable)."),
        click.option("--trust-anchor", "trust_anchors", multiple=True,
                     type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="DNSSEC trust anchors (DS/DNSKEY in zone-file format) replacing the root KSK."),
        setting_option("timeout", "--timeout"),
        setting_option("target_deadline", "--target-deadline"),
        setting_option("concurrency", "--concurrency"),
        setting_option("processes", "--processes"),
        setting_option("per_host_connections", "--per-host-connections"),
        setting_option("rate_limit", "--rate-limit"),
        click.option("--coalesce/--no-coalesce", default=None,
                     help=f"{Settings.model_fields['coalesce'].description} Default: on."),
        click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="Settings file (TOML). Default: ./pledgescan.toml, else the user config "
                          "directory's. Command-line options win, then PLEDGESCAN_* variables."),
        click.option("--only", multiple=True, metavar="IDS",
                     help="Run only these check or control IDs (comma-separated, repeatable)."),
        click.option("--skip", multiple=True, metavar="IDS",
                     help="Skip these check or control IDs (comma-separated, repeatable)."),
        click.option("--fail-on", type=click.Choice(FAIL_ON), default="never", show_default=True,
                     help="Exit 1 when a control fails at or above this severity."),
        click.option("--contact", metavar="URL",
                     help="Contact URL added to the User-Agent, so site owners can reach you."),
        click.option("-q", "--quiet", is_flag=True, help="No progress display or summary; errors only."),
        verbose_option,
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def configure_logging(verbose: int) -> None:
    """-v: info, -vv: debug; without -v, library deprecation chatter is hidden."""
    import logging
    import warnings

    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    if not verbose:
        from scanner.errors import hide_library_warnings

        hide_library_warnings()
    else:
        warnings.resetwarnings()
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)


def _verbose_after_command(ctx: click.Context, _param: click.Parameter, value: int) -> int:
    """``pledgescan scan -v``: the same as ``pledgescan -v scan`` (the counts add up)."""
    if value:
        root = ctx.find_root()
        total = value + int((root.obj or {}).get("verbose", 0))
        root.obj = {**(root.obj or {}), "verbose": total}
        configure_logging(total)
    return value


verbose_option = click.option("-v", "--verbose", count=True, expose_value=False, is_eager=True,
                              callback=_verbose_after_command,
                              help="More log output (-vv for debug); also accepted before the command.")


def quiet_requested(kw: dict[str, Any]) -> bool:
    """``-q`` after the command, or before it (``pledgescan -q scan``)."""
    ctx = click.get_current_context(silent=True)
    root_obj = (ctx.find_root().obj if ctx else None) or {}
    return bool(kw.get("quiet")) or bool(root_obj.get("quiet"))


def build_settings(kw: dict[str, Any]) -> Settings:
    """The scan's settings: options given on the command line, then ``PLEDGESCAN_*``, then the settings
    file (``--config``, ./pledgescan.toml or the user config directory's), then the defaults."""
    from click.core import ParameterSource
    from pydantic import ValidationError

    from scanner.settings import load_settings

    ctx = click.get_current_context(silent=True)
    given = {field: kw[opt] for opt, field in SETTING_OPTIONS.items()
             if kw.get(opt) not in (None, ())
             and (ctx is None or ctx.get_parameter_source(opt) != ParameterSource.DEFAULT)}
    try:
        settings = load_settings(given, kw.get("config"))
    except ValidationError as exc:
        err = exc.errors()[0]
        ctx_error = (err.get("ctx") or {}).get("error")
        where = ".".join(str(x) for x in err["loc"][:1])
        raise InputProblem(str(ctx_error) if ctx_error else f"setting {where}: {err['msg']}") from None
    except (OSError, ValueError) as exc:
        raise InputProblem(f"settings: {exc}") from None
    check_selection(settings.only, settings.skip)
    return settings


def default_output(formats: tuple[str, ...], output: Path | None, default_name: str) -> Path:
    """``-o`` as given, else ``<default_name>.<format>`` (one format) or the directory ``<default_name>``."""
    if output is not None:
        return output
    return Path(f"{default_name}.{formats[0]}") if len(set(formats)) == 1 else Path(default_name)


def check_output(formats: tuple[str, ...], output: Path, *, portfolio: bool = False) -> None:
    """Refuse an impossible output before scanning, not after a long scan: a device, FIFO, socket or
    outside symlink as the file, a directory that cannot be written, ``-o -`` with several formats."""
    from scanner.reporters import REPORT_STEM, available_reporters
    from scanner.reporters.output import OutputRefused, check_directory, check_file, is_stdout

    wanted = list(dict.fromkeys(formats))
    reporters = available_reporters()
    exts = [reporters[f].extension if f in reporters else f for f in wanted]
    try:
        if is_stdout(output):
            if portfolio:
                raise OutputRefused("-o -: a members scan writes a directory (index.html, a page per "
                                    "member, scan.json, scan.csv, scan.xlsx); give -o DIR")
            if len(wanted) > 1:
                raise OutputRefused("-o - writes one format to standard output: ask for one --format")
            return
        if portfolio or len(wanted) > 1:
            if output.exists() and not output.is_dir():
                need = ("a members scan writes the portfolio into a directory (index.html, <member>.html, "
                        "scan.json, scan.csv)" if portfolio else
                        "with several formats -o must be a directory")
                raise OutputRefused(f"-o {output}: is a file; {need}")
            check_directory(output)
            names = ["index.html", "scan.json", "scan.csv", "scan.xlsx"] if portfolio else \
                [f"{REPORT_STEM}.{e}" for e in exts]
            for name in names:
                check_file(output / name)
        elif output.is_dir():
            check_file(output / f"{REPORT_STEM}.{exts[0]}")
        else:
            check_file(output)
    except OutputRefused as exc:
        raise InputProblem(str(exc)) from None


def execute_scan(targets: list[Target], settings: Settings, *, formats: tuple[str, ...],
                 output: Path | None, quiet: bool, fail_on: str, on_result: Any = None,
                 default_name: str = "pledgescan-report", render: bool = True,
                 keep_results: bool = True,
                 alongside: Callable[[asyncio.Future[Any]], Awaitable[None]] | None = None
                 ) -> tuple[Report, list[Path]]:
    """Run the scan with a progress display, write the reports, print the summary.

    ``keep_results=False`` (a stored scan: ``on_result`` stores each target): the engine keeps no
    result, and the caller renders and summarises from the store. ``alongside(scan)``: work that runs
    beside the scan (opening the history store) and must end well for the scan to count: the scan ends
    only once it has, and its exception cancels the scan and is raised."""
    from scanner.engine import Scanner, SelectionError, run_main

    try:
        scanner = Scanner(settings)
    except SelectionError as exc:
        raise InputProblem(str(exc)) from None
    from scanner.progress import ScanProgress
    from scanner.reporters import render_all

    formats = formats or ("html",)
    out = default_output(formats, output, default_name)
    if render:
        check_output(formats, out)
    progress = ScanProgress(len(targets), enabled=not quiet)

    async def result_cb(result: Any, snap: Any) -> None:
        progress.done(result)
        if on_result is not None:
            maybe = on_result(result, snap)
            if asyncio.iscoroutine(maybe):
                await maybe

    async def scan() -> Report:
        run = scanner.run(targets, on_result=result_cb, on_start=progress.start, keep_results=keep_results)
        if alongside is None:
            return await run
        main = asyncio.ensure_future(run)
        side = asyncio.ensure_future(alongside(main))
        try:
            await asyncio.wait((main, side), return_when=asyncio.FIRST_EXCEPTION)
            await side  # raises its exception (the finally cancels the scan), or waits for the store
            return await main
        finally:  # both ended, or either raised: the other is cancelled and awaited
            for task in (main, side):
                task.cancel()
            await asyncio.gather(main, side, return_exceptions=True)

    settle_heap()
    if alongside is not None:
        scanner.scan_beside(targets)  # before the progress display's thread: a fork copies one thread
    with progress:
        report = run_main(scan())
    if not keep_results:
        return report, []
    try:
        paths = render_all(report, formats, out) if render else []
    except (OSError, ValueError) as exc:
        raise InputProblem(f"cannot write the report to {out}: {getattr(exc, 'strerror', None) or exc}"
                           ) from None
    if not quiet:
        from scanner.reporters.output import is_stdout
        from scanner.reporters.terminal import plain_console, print_summary  # rich: not with -q

        # with -o - the report owns standard output: the summary goes to stderr
        print_summary(report, plain_console(stderr=True) if is_stdout(out) and render else None)
        for p in paths:
            click.echo(f"report written: {p}", err=True)
    return report, paths


async def while_waiting(scan: asyncio.Future[Any], most: float = 1.0, window: float = 0.02) -> None:
    """Return once this process mostly waits (under half a core of CPU over ``window`` seconds: the
    scan waits on the network), ``scan`` is done, or after ``most`` seconds: when work of its own can
    run beside the scan without taking the interpreter from the scan's start-up (imports are CPU, and
    one thread at a time runs Python)."""
    import time

    end = time.monotonic() + most
    cpu, wall = time.process_time(), time.monotonic()
    while not scan.done() and wall < end:
        await asyncio.wait((scan,), timeout=window)
        now_cpu, now = time.process_time(), time.monotonic()
        if now_cpu - cpu < 0.5 * (now - wall):
            return
        cpu, wall = now_cpu, now


# -- history store (scanner.history.store / scanner.history.portfolio) -----------------------------
EXIT_BUSY = 3  # another run holds the history store's lock


class StoreBusyProblem(click.ClickException):
    """The history store is locked by another run: one line, exit code 3."""

    exit_code = EXIT_BUSY


def store_option(func: Any) -> Any:
    return click.option("--store", "store_url", envvar="PLEDGESCAN_STORE", metavar="URL",
                        help="History store: an SQLAlchemy URL (sqlite:///path, postgresql+psycopg://...). "
                             "Default: $PLEDGESCAN_STORE, else SQLite in the user data directory.")(func)


def lock_wait_option(func: Any) -> Any:
    """``--lock-wait SECONDS`` of the commands that record a run."""
    return click.option("--lock-wait", type=click.FloatRange(0, 86400), default=30.0, show_default=True,
                        help="Seconds to wait when another run holds the history store, then refuse "
                             "(exit 3).")(func)


def open_store(url: str | None) -> Any:
    from scanner.history.store import Store, StoreError

    try:
        return Store(url)
    except StoreError as exc:
        raise InputProblem(str(exc)) from None
    except OSError as exc:
        raise InputProblem(f"cannot open the history store: {exc}") from None


def listing_console() -> Any:
    """A console for listings: wide enough for whole IDs even when piped."""
    from scanner.reporters.terminal import plain_console

    return plain_console()
