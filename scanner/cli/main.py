"""The ``pledgescan`` command line: composes inventory, engine, baseline and reporters.

Exit codes: 0 scan completed and nothing at or above ``--fail-on`` failed; 1 the threshold was met
(or, with ``--fail-on-regression``, something got worse); 2 usage or input error (one line, no traceback).
3 another run of the same inventory holds its lock for longer than ``--lock-wait`` (or an internal error).
4 the scan ran but no target could be assessed (every target unreachable or undecided).
"""

from __future__ import annotations

import contextvars
import gc
import logging
import sys
from pathlib import Path
from typing import Any

import click

from scanner import __version__
from scanner.cli import support
from scanner.cli.history import HISTORY_COMMANDS, PORTFOLIO_DIR, NoHistory, run_stored_scan
from scanner.cli.lang import lang_option, use_language
from scanner.cli.notify import notify as notify_command
from scanner.cli.reanalyse import reanalyse
from scanner.cli.support import (
    EXIT_OK,
    EXIT_THRESHOLD,
    EXIT_UNASSESSED,
    EXIT_USAGE,
    InputProblem,
    ScanInterrupted,
    build_settings,
    check_output,
    configure_logging,
    exceeds_threshold,
    execute_scan,
    listing_console,
    lock_wait_option,
    not_assessed,
    quiet_requested,
    scan_options,
    store_option,
    unassessed_message,
)
from scanner.cli.worker import run_distributed_scan, scan_broker_options, worker
from scanner.models import Target
from scanner.settings import Settings


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="pledgescan")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="No progress display or summary (scan); errors only.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """pledgescan: measure the Pledge 4 security baseline of public endpoints and domains."""
    # -v/-q may also follow the command (scan_options); the counts add up in ctx.obj
    ctx.obj = {**(ctx.obj or {}), "verbose": int((ctx.obj or {}).get("verbose", 0)) + verbose,
               "quiet": quiet}
    configure_logging(ctx.obj["verbose"])


@cli.command()
@click.argument("targets", nargs=-1, metavar="[TARGET]...")
@click.option("--domain", "domains", multiple=True, metavar="NAME",
              help="Add a domain target alone (DNS and e-mail controls). Repeatable.")
@click.option("--members", "members_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Members file (YAML or CSV): scan every member's domains and endpoints; "
                   "-o DIR then gets the portfolio (index.html, <member>.html, scan.json, scan.csv).")
@store_option
@click.option("--resume", is_flag=True, help="Finish the last interrupted run (no targets needed); with "
              "--members, that file's last run if it was interrupted, else a new run.")
@click.option("--fail-on-regression", is_flag=True,
              help="Exit 1 when anything got worse than in each target's last assessed result.")
@click.option("--fail-on-unreachable", is_flag=True,
              help="Exit 1 when a target that answered in an earlier run no longer does.")
@lock_wait_option
@click.option("--no-store", is_flag=True, help="Keep no history of this scan (a one-off check).")
@scan_broker_options
@scan_options
@lang_option
def scan(targets: tuple[str, ...], domains: tuple[str, ...], **kw: Any) -> None:
    """Scan TARGETs: a URL is a web endpoint; a bare host name means its https:// endpoint and its domain.

    \b
    Examples:
      pledgescan scan https://learn.example.org/
      pledgescan scan example.org --format json -o report.json --fail-on high
    """
    from scanner.targets import InputError, from_cli

    use_language(kw.pop("lang"))
    kw["quiet"] = quiet_requested(kw)
    if not targets and not domains and not kw["members_file"] and not kw["resume"]:
        raise InputProblem("nothing to scan: give at least one TARGET, --domain NAME or --members FILE")
    if kw["resume"] and (targets or domains):
        raise InputProblem("--resume finishes the last interrupted run with its own targets: give none "
                           "(or --members FILE: that file's last interrupted run)")
    inventory = None
    try:
        if kw["members_file"]:
            from scanner.history.members import load_members

            inventory = load_members(kw["members_file"])
        target_list = from_cli(list(targets), list(domains))
    except InputError as exc:
        raise InputProblem(str(exc)) from None
    if inventory is not None:
        check_output(("html",), kw["output"] or Path(PORTFOLIO_DIR), portfolio=True)
        if kw["formats"] and not kw["quiet"]:
            click.echo("pledgescan: note: --format is not used with --members: the portfolio directory "
                       "holds index.html, one page per member, scan.json, scan.csv and scan.xlsx", err=True)
    settings = build_settings(kw)
    if kw["broker_url"] or kw["detach"]:
        if not kw["broker_url"] or kw["no_store"]:
            raise InputProblem("--detach needs --broker" if not kw["broker_url"] else
                               "--no-store cannot go with --broker: the workers write results to the store")
        sys.exit(run_distributed_scan(target_list, inventory, settings, kw))
    needs_store = (kw["resume"] or kw["fail_on_regression"] or kw["fail_on_unreachable"]
                   or inventory is not None)
    if kw["no_store"]:
        if needs_store:
            raise InputProblem("--no-store cannot go with --members, --resume, --fail-on-regression or "
                               "--fail-on-unreachable, which need the history store")
        sys.exit(run_plain_scan(target_list, settings, kw))
    # The default store is a convenience: a laptop scan must not fail because it cannot keep history.
    kw["store_optional"] = kw["store_url"] is None and not needs_store
    try:
        code = run_stored_scan(target_list, inventory, settings, kw)
    except NoHistory as exc:
        click.echo(f"pledgescan: warning: history not kept ({exc}); use --store URL or --no-store", err=True)
        code = run_plain_scan(target_list, settings, kw)
    sys.exit(code)


def run_plain_scan(targets: list[Target], settings: Settings, kw: dict[str, Any]) -> int:
    """A scan that keeps no history: scan, write the reports, exit code by ``--fail-on``."""
    report, _ = execute_scan(targets, settings, formats=kw["formats"], output=kw["output"],
                             quiet=kw["quiet"], fail_on=kw["fail_on"])
    if not_assessed(report):
        click.echo(f"pledgescan: {unassessed_message(report)}", err=True)
        return EXIT_UNASSESSED
    return EXIT_THRESHOLD if exceeds_threshold(report, kw["fail_on"]) else EXIT_OK


@cli.command(name="checks")
def list_checks() -> None:
    """List every registered check: ID, severity, controls it feeds, evidence it reads, title."""
    from rich.table import Table

    from scanner.baseline import load_baseline
    from scanner.plugins import load_checks

    baseline = load_baseline()
    reg = load_checks(c.id for c in baseline.controls)
    table = Table(title=f"{len(reg.checks)} checks", show_lines=False)
    table.add_column("ID", no_wrap=True)
    for col in ("Severity", "Controls", "Kind", "Evidence", "Title"):
        table.add_column(col)
    for chk in sorted(reg.checks, key=lambda c: (c.meta.controls[0][0], c.meta.controls, c.id)):
        m = chk.meta
        table.add_row(m.id, m.severity.value, ",".join(m.controls), m.target_kind, chk.needs.family, m.title)
    listing_console().print(table)
    for msg in reg.refused:
        click.echo(f"refused: {msg}", err=True)


@cli.command(name="baseline")
def show_baseline() -> None:
    """List the baseline's controls (ID, severity, scope, title, checks)."""
    from rich.table import Table

    from scanner.baseline import load_baseline
    from scanner.plugins import load_checks

    b = load_baseline()
    feeding = load_checks(c.id for c in b.controls).by_control()
    table = Table(title=f"{b.title}, version {b.version} ({b.id})")
    table.add_column("ID", no_wrap=True)
    for col in ("Area", "Severity", "Scope", "Title", "Checks"):
        table.add_column(col)
    for c in b.controls:
        checks = ", ".join(feeding.get(c.id, ()))
        table.add_row(c.id, b.areas[c.area], c.severity.value, c.scope, c.title, checks)
    listing_console().print(table)


@cli.command()
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("report.html"),
              show_default=True, help="Where to write the HTML report.")
@click.option("--keep-running", is_flag=True, help="Leave the demo servers up until Ctrl-C.")
def demo(output: Path, keep_running: bool) -> None:
    """Start a small local testbed (good and bad TLS/HTTP servers) and scan it: a real report."""
    from scanner.demo import run_demo

    check_output(("html",), output)
    path = run_demo(output, keep_running=keep_running)
    click.echo(f"demo report written: {path.resolve()}")


for _command in (*HISTORY_COMMANDS, reanalyse):
    cli.add_command(_command)
cli.add_command(worker)
cli.add_command(notify_command)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: one-line errors, exit 2 for usage and input problems.

    Without ``argv`` it is this process's own command line (the console script, ``python -m scanner``):
    the objects of the imports, alive until the process ends, go to the cyclic collector's permanent
    generation (``support.own_process``), and so does everything alive at the end: the interpreter's
    teardown then frees them by reference counts without walking the whole heap in full collections
    (which took 0.7 s or more after a TLS scan of 16 hosts on this machine)."""
    if argv is not None:
        _main(argv)
        return
    support.own_process()
    try:
        _main(None)
    finally:
        gc.freeze()


def _main(argv: list[str] | None) -> None:
    try:
        # in a context of its own: --lang (scanner.i18n.set_current) ends with the command
        rv = contextvars.copy_context().run(cli.main, args=argv, prog_name="pledgescan",
                                            standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        code = EXIT_USAGE if isinstance(exc, click.UsageError | InputProblem) else exc.exit_code
        click.echo(f"pledgescan: error: {exc.format_message()}", err=True)
        sys.exit(code)
    except ScanInterrupted as exc:
        click.echo(f"pledgescan: interrupted; {exc}", err=True)
        sys.exit(130)
    except click.exceptions.Abort:
        click.echo("pledgescan: aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("pledgescan: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # never a traceback for users; -vv shows it
        logging.getLogger("pledgescan").debug("internal error", exc_info=True)
        click.echo(f"pledgescan: internal error: {type(exc).__name__}: {exc} (run with -vv for details)",
                   err=True)
        sys.exit(3)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
