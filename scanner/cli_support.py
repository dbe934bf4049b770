"""Plumbing shared by the command-line modules: exit codes, one-line input errors, option parsing,
settings, the scan-and-render pipeline and opening the history store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click

from scanner.models import Report, Severity, Status, Target
from scanner.settings import Settings

EXIT_OK, EXIT_THRESHOLD, EXIT_USAGE = 0, 1, 2
FAIL_ON = ("critical", "high", "medium", "low", "never")


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


# Options whose value, when given on the command line, overrides the environment and the settings file.
SETTING_OPTIONS = {"timeout": "timeout", "target_deadline": "target_deadline", "concurrency": "concurrency",
                   "per_host_connections": "per_host_connections", "rate_limit": "rate_limit",
                   "contact": "contact_url", "ca_bundle": "ca_bundle", "resolve": "resolve",
                   "nameservers": "nameservers", "trust_anchors": "trust_anchors", "only": "only",
                   "skip": "skip"}


def exceeds_threshold(report: Report, fail_on: str) -> bool:
    """Did any control fail at or above the ``--fail-on`` severity?"""
    if fail_on == "never":
        return False
    floor = Severity(fail_on).rank
    return any(c.status == Status.FAIL and c.severity.rank >= floor
               for t in report.targets for c in t.controls)


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
        setting_option("per_host_connections", "--per-host-connections"),
        setting_option("rate_limit", "--rate-limit"),
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
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


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
        return load_settings(given, kw.get("config"))
    except ValidationError as exc:
        err = exc.errors()[0]
        ctx_error = (err.get("ctx") or {}).get("error")
        where = ".".join(str(x) for x in err["loc"][:1])
        raise InputProblem(str(ctx_error) if ctx_error else f"setting {where}: {err['msg']}") from None
    except (OSError, ValueError) as exc:
        raise InputProblem(f"settings: {exc}") from None


def check_output(formats: tuple[str, ...], output: Path | None) -> None:
    """Refuse an impossible output before scanning, not after a long scan."""
    if output is None:
        return
    if len(set(formats)) > 1 and output.exists() and not output.is_dir():
        raise InputProblem(f"-o {output}: is a file; with several formats --output must be a directory")
    parent = output if len(set(formats)) > 1 else output.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise InputProblem(f"-o {output}: {parent} is not a directory")


def execute_scan(targets: list[Target], settings: Settings, *, formats: tuple[str, ...],
                 output: Path | None, quiet: bool, fail_on: str, on_result: Any = None,
                 default_name: str = "pledgescan-report", render: bool = True) -> tuple[Report, list[Path]]:
    """Run the scan with a progress display, write the reports, print the summary."""
    from scanner.engine import Scanner, SelectionError

    try:
        scanner = Scanner(settings)
    except SelectionError as exc:
        raise InputProblem(str(exc)) from None
    from scanner.progress import ScanProgress
    from scanner.reporters import render_all
    from scanner.reporters.terminal import print_summary

    if render:
        check_output(formats or ("html",), output)
    progress = ScanProgress(len(targets), enabled=not quiet)

    async def result_cb(result: Any, snap: Any) -> None:
        progress.done(result)
        if on_result is not None:
            maybe = on_result(result, snap)
            if asyncio.iscoroutine(maybe):
                await maybe

    with progress:
        report = asyncio.run(scanner.run(targets, on_result=result_cb, on_start=progress.start))
    formats = formats or ("html",)
    out = output or (Path(f"{default_name}.{formats[0]}") if len(formats) == 1 else Path(default_name))
    try:
        paths = render_all(report, formats, out) if render else []
    except (OSError, ValueError) as exc:
        raise InputProblem(f"cannot write the report to {out}: {exc.strerror or exc}") from None
    if not quiet:
        print_summary(report)
        for p in paths:
            click.echo(f"report written: {p}", err=True)
    return report, paths


# -- history store (scanner.store / scanner.portfolio) ------------------------------------------------
EXIT_BUSY = 3  # another run holds the history store's lock


class StoreBusyProblem(click.ClickException):
    """The history store is locked by another run: one line, exit code 3."""

    exit_code = EXIT_BUSY


def store_option(func: Any) -> Any:
    return click.option("--store", "store_url", envvar="PLEDGESCAN_STORE", metavar="URL",
                        help="History store: an SQLAlchemy URL (sqlite:///path, postgresql+psycopg://...). "
                             "Default: $PLEDGESCAN_STORE, else SQLite in the user data directory.")(func)


def open_store(url: str | None) -> Any:
    from scanner.store import Store, StoreError

    try:
        return Store(url)
    except StoreError as exc:
        raise InputProblem(str(exc)) from None
    except OSError as exc:
        raise InputProblem(f"cannot open the history store: {exc}") from None


def listing_console() -> Any:
    """A console for listings: wide enough for whole IDs even when piped."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=160)
