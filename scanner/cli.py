"""The ``pledgescan`` command line: composes inventory, engine, baseline and reporters.

Exit codes: 0 scan completed and nothing at or above ``--fail-on`` failed; 1 the threshold was met
(or, with ``--fail-on-regression``, something got worse); 2 usage or input error (one line, no traceback).
3 the history store is busy (another run holds its lock for longer than ``--lock-wait``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import sys
from pathlib import Path
from typing import Any

import click

from scanner import __version__
from scanner.models import Report, Severity, Status, Target
from scanner.settings import Settings

EXIT_OK, EXIT_THRESHOLD, EXIT_USAGE = 0, 1, 2
FORMATS = ("html", "json", "csv", "sarif")
FAIL_ON = ("critical", "high", "medium", "low", "never")


class InputProblem(click.ClickException):
    """A user-input error: printed as one line, exit code 2."""

    exit_code = EXIT_USAGE


def parse_resolve(values: tuple[str, ...]) -> dict[tuple[str, int], str]:
    """``HOST:PORT:ADDR`` (like curl; ADDR may be a bracketed IPv6 address)."""
    out: dict[tuple[str, int], str] = {}
    for v in values:
        host, sep, rest = v.partition(":")
        port_s, sep2, addr = rest.partition(":")
        addr = addr.strip("[]")
        if not (sep and sep2 and host and port_s.isdigit() and addr):
            raise InputProblem(f"--resolve {v!r}: expected HOST:PORT:ADDR, e.g. example.org:443:192.0.2.1")
        try:
            ipaddress.ip_address(addr)
        except ValueError:
            raise InputProblem(f"--resolve {v!r}: {addr!r} is not an IP address") from None
        port = int(port_s)
        if not 0 < port < 65536:
            raise InputProblem(f"--resolve {v!r}: port out of range")
        out[(host.lower().rstrip("."), port)] = addr
    return out


def parse_nameservers(values: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    """``ADDR[:PORT]``; IPv6 as ``[ADDR]:PORT`` or bare."""
    out = []
    for v in values:
        addr, port = v, 53
        if v.startswith("["):
            addr, _, tail = v[1:].partition("]")
            if tail.startswith(":"):
                port = _port(tail[1:], v)
        elif v.count(":") == 1:
            addr, _, p = v.partition(":")
            port = _port(p, v)
        try:
            ipaddress.ip_address(addr)
        except ValueError:
            raise InputProblem(f"--nameserver {v!r}: expected ADDR[:PORT] with an IP address") from None
        out.append((addr, port))
    return tuple(out)


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise InputProblem(f"--nameserver {whole!r}: bad port {text!r}")
    return int(text)


def _split_ids(values: tuple[str, ...]) -> frozenset[str]:
    return frozenset(x.strip() for v in values for x in v.split(",") if x.strip())


def exceeds_threshold(report: Report, fail_on: str) -> bool:
    """Did any control fail at or above the ``--fail-on`` severity?"""
    if fail_on == "never":
        return False
    floor = Severity(fail_on).rank
    return any(c.status == Status.FAIL and c.severity.rank >= floor
               for t in report.targets for c in t.controls)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="pledgescan")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """pledgescan: measure the Pledge 4 security baseline of public endpoints and domains."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    if not verbose:
        # Library deprecation chatter (e.g. cryptography on certifi's store via sslyze) is not for users.
        import warnings

        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*serial number.*")
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def scan_options(func: Any) -> Any:
    """Options shared by ``scan`` and ``demo`` (network, trust and politeness)."""
    opts = [
        click.option("--format", "formats", multiple=True, type=click.Choice(FORMATS),
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
        click.option("--timeout", type=click.FloatRange(0.1, 600), default=10.0, show_default=True,
                     help="Seconds for each network operation."),
        click.option("--target-deadline", type=click.FloatRange(1, 7200), default=120.0,
                     show_default=True,
                     help="Seconds for all the work on one target; undecided controls become error."),
        click.option("--concurrency", type=click.IntRange(1, 256), default=8, show_default=True,
                     help="Targets scanned at once."),
        click.option("--per-host-connections", type=click.IntRange(1, 64), default=4, show_default=True,
                     help="Politeness cap: simultaneous connections to one address."),
        click.option("--rate-limit", type=click.FloatRange(0, 10000), default=20.0, show_default=True,
                     help="Requests per second for the whole scan (0: unlimited)."),
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
    return Settings(
        timeout=kw["timeout"],
        target_deadline=kw["target_deadline"],
        concurrency=kw["concurrency"],
        per_host_connections=kw["per_host_connections"],
        rate_limit=kw["rate_limit"],
        contact_url=kw.get("contact"),
        ca_bundle=kw.get("ca_bundle"),
        resolve=parse_resolve(kw.get("resolve") or ()),
        nameservers=parse_nameservers(kw.get("nameservers") or ()),
        trust_anchors=tuple(kw.get("trust_anchors") or ()),
        only=_split_ids(kw.get("only") or ()),
        skip=_split_ids(kw.get("skip") or ()),
    )


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


def run_stored_scan(targets: list[Target], inventory: Any, settings: Settings, kw: dict[str, Any]) -> int:
    """``scan`` with history: record the run as targets finish, write reports from the store."""
    from scanner.diff import print_diff
    from scanner.members import combine
    from scanner.portfolio import StoredScan, run_report, write_portfolio
    from scanner.reporters import render_all
    from scanner.store import StoreBusy, StoreError

    quiet = kw["quiet"]
    if inventory is not None and not quiet:
        for w in inventory.warnings:
            click.echo(f"pledgescan: {w}", err=True)
    store = open_store(kw["store_url"])
    try:
        if kw["resume"]:
            stored = StoredScan.resume(store, kw["lock_wait"])
        else:
            stored = StoredScan.start(store, combine(inventory, targets), settings, inventory,
                                      kw["lock_wait"])
    except StoreBusy as exc:
        raise StoreBusyProblem(str(exc)) from None
    except StoreError as exc:
        raise InputProblem(str(exc)) from None
    run = store.run(stored.run_id)
    portfolio = bool(run.members)
    try:
        report, paths = execute_scan(stored.targets, stored.settings, formats=kw["formats"],
                                     output=kw["output"], quiet=quiet or kw["resume"], fail_on=kw["fail_on"],
                                     on_result=stored.on_result, render=not (portfolio or kw["resume"]))
    except BaseException:
        stored.abort()
        raise
    run = stored.finish(report.stats)
    if portfolio or kw["resume"]:
        report = run_report(store, run)
        out = kw["output"]
        try:
            if portfolio:
                paths = write_portfolio(store, run.id, out or Path("pledgescan-portfolio"))
            else:
                formats = kw["formats"] or ("html",)
                paths = render_all(report, formats, out or Path(f"pledgescan-report.{formats[0]}"
                                                              if len(formats) == 1 else "pledgescan-report"))
        except (OSError, ValueError) as exc:
            raise InputProblem(f"cannot write the reports: {getattr(exc, 'strerror', None) or exc}") from None
        if not quiet:
            for p in paths:
                click.echo(f"report written: {p}", err=True)
    if not quiet:
        click.echo(f"run {run.id} {run.status}: {run.targets_done}/{run.targets_total} targets "
                   f"(store {store.url.split('://')[0]})", err=True)
    code = EXIT_OK
    if exceeds_threshold(report, kw["fail_on"]):
        code = EXIT_THRESHOLD
    if kw["fail_on_regression"]:
        diff = stored.regression()
        if diff is not None and diff.regressed:
            if not quiet:
                from rich.console import Console

                console = Console(stderr=True)
                print_diff(diff, console if console.is_terminal else Console(stderr=True, width=200))
            click.echo(f"pledgescan: run {run.id} regressed since run {diff.run_a.id if diff.run_a else '-'}",
                       err=True)
            code = EXIT_THRESHOLD
    store.close()
    return code


@cli.command()
@click.argument("targets", nargs=-1, metavar="[TARGET]...")
@click.option("--domain", "domains", multiple=True, metavar="NAME",
              help="Add a domain target alone (DNS and e-mail controls). Repeatable.")
@click.option("--members", "members_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Members file (YAML or CSV): scan every member's domains and endpoints; "
                   "-o DIR then gets the portfolio (index.html, <member>.html, scan.json, scan.csv).")
@store_option
@click.option("--resume", is_flag=True, help="Finish the last interrupted run (no targets needed).")
@click.option("--fail-on-regression", is_flag=True,
              help="Exit 1 when anything got worse than in the previous run of the same inventory.")
@click.option("--lock-wait", type=click.FloatRange(0, 86400), default=30.0, show_default=True,
              help="Seconds to wait when another run holds the history store, then refuse (exit 3).")
@click.option("--no-store", is_flag=True, help="Keep no history of this scan (a one-off check).")
@scan_options
def scan(targets: tuple[str, ...], domains: tuple[str, ...], **kw: Any) -> None:
    """Scan TARGETs: a URL is a web endpoint; a bare host name means its https:// endpoint and its domain.

    \b
    Examples:
      pledgescan scan https://learn.example.org/
      pledgescan scan example.org --format json -o report.json --fail-on high
    """
    from scanner.targets import InputError, from_cli

    if not targets and not domains and not kw["members_file"] and not kw["resume"]:
        raise InputProblem("nothing to scan: give at least one TARGET, --domain NAME or --members FILE")
    if kw["resume"] and (targets or domains or kw["members_file"]):
        raise InputProblem("--resume finishes the last interrupted run with its own targets: give none")
    inventory = None
    try:
        if kw["members_file"]:
            from scanner.members import load_members

            inventory = load_members(kw["members_file"])
        target_list = from_cli(list(targets), list(domains))
    except InputError as exc:
        raise InputProblem(str(exc)) from None
    if inventory is not None:
        out = kw["output"]
        if out is not None and out.exists() and not out.is_dir():
            raise InputProblem(f"-o {out}: is a file; a members scan writes the portfolio into a directory "
                               "(index.html, <member>.html, scan.json, scan.csv)")
        if kw["formats"] and not kw["quiet"]:
            click.echo("pledgescan: note: --format is not used with --members: the portfolio directory "
                       "holds index.html, one page per member, scan.json and scan.csv", err=True)
    settings = build_settings(kw)
    needs_store = kw["resume"] or kw["fail_on_regression"] or inventory is not None
    if kw["no_store"]:
        if needs_store:
            raise InputProblem("--no-store cannot go with --members, --resume or --fail-on-regression, "
                               "which need the history store")
        sys.exit(run_plain_scan(target_list, settings, kw))
    if kw["store_url"] is None and not needs_store:
        # The default store is a convenience: a laptop scan must not fail because it cannot keep history.
        from scanner.store import Store, StoreError

        try:
            Store(None).close()
        except (StoreError, OSError) as exc:
            click.echo(f"pledgescan: warning: history not kept ({exc}); use --store URL or --no-store",
                       err=True)
            sys.exit(run_plain_scan(target_list, settings, kw))
    sys.exit(run_stored_scan(target_list, inventory, settings, kw))


def run_plain_scan(targets: list[Target], settings: Settings, kw: dict[str, Any]) -> int:
    """A scan that keeps no history: scan, write the reports, exit code by ``--fail-on``."""
    report, _ = execute_scan(targets, settings, formats=kw["formats"], output=kw["output"],
                             quiet=kw["quiet"], fail_on=kw["fail_on"])
    return EXIT_THRESHOLD if exceeds_threshold(report, kw["fail_on"]) else EXIT_OK


def _console() -> Any:
    """A console for listings: wide enough for whole IDs even when piped."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=160)


@cli.command(name="checks")
def list_checks() -> None:
    """List every registered check: ID, severity, controls it feeds, title."""
    from rich.table import Table

    from scanner.baseline import load_baseline
    from scanner.plugins import load_checks

    baseline = load_baseline()
    reg = load_checks(c.id for c in baseline.controls)
    table = Table(title=f"{len(reg.checks)} checks", show_lines=False)
    table.add_column("ID", no_wrap=True)
    for col in ("Severity", "Controls", "Kind", "Title"):
        table.add_column(col)
    for chk in sorted(reg.checks, key=lambda c: (c.meta.controls[0][0], c.meta.controls, c.id)):
        m = chk.meta
        table.add_row(m.id, m.severity.value, ",".join(m.controls), m.target_kind, m.title)
    _console().print(table)
    for msg in reg.refused:
        click.echo(f"refused: {msg}", err=True)


@cli.command(name="baseline")
def show_baseline() -> None:
    """List the baseline's controls (ID, severity, scope, title, checks)."""
    from rich.table import Table

    from scanner.baseline import load_baseline

    b = load_baseline()
    table = Table(title=f"{b.title}, version {b.version} ({b.id})")
    table.add_column("ID", no_wrap=True)
    for col in ("Area", "Severity", "Scope", "Title", "Checks"):
        table.add_column(col)
    for c in b.controls:
        table.add_row(c.id, b.areas[c.area], c.severity.value, c.scope, c.title, ", ".join(c.checks))
    _console().print(table)


@cli.command()
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("report.html"),
              show_default=True, help="Where to write the HTML report.")
@click.option("--keep-running", is_flag=True, help="Leave the demo servers up until Ctrl-C.")
def demo(output: Path, keep_running: bool) -> None:
    """Start a small local testbed (good and bad TLS/HTTP servers) and scan it: a real report."""
    from scanner.demo import run_demo

    path = run_demo(output, keep_running=keep_running)
    click.echo(f"demo report written: {path.resolve()}")


@cli.command()
@store_option
@click.option("--member", metavar="ID", help="Only runs that scanned this member, with its grade.")
@click.option("--limit", type=click.IntRange(1, 10000), default=30, show_default=True)
@click.option("--format", "fmt", type=click.Choice(("table", "json")), default="table", show_default=True)
def history(store_url: str | None, member: str | None, limit: int, fmt: str) -> None:
    """Past runs: date, status, baseline version, grades."""
    import json

    from rich.table import Table

    from scanner.portfolio import iter_history

    rows = list(iter_history(open_store(store_url), member=member, limit=limit))
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"{len(rows)} run(s)" + (f" of member {member}" if member else ""))
    for col in ("Run", "Started (UTC)", "Status", "Baseline", "Targets", "Score", "Grades"):
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
        table.add_row(str(r["run"]), r["started_at"].replace("+00:00", ""), r["status"], r["baseline"],
                      r["targets"], "" if r["score"] is None else str(r["score"]), shown)
    _console().print(table)


@cli.command()
@store_option
@click.argument("runs", nargs=-1, metavar="[RUN_A [RUN_B]]")
@click.option("--format", "fmt", type=click.Choice(("table", "json", "html")), default="table",
              show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the JSON or HTML here instead of standard output.")
@click.option("--fail-on-regression", is_flag=True, help="Exit 1 when anything got worse.")
def diff(store_url: str | None, runs: tuple[str, ...], fmt: str, output: Path | None,
         fail_on_regression: bool) -> None:
    """What changed between two runs (default: the latest and the previous run of the same inventory):
    per member, target and control, what newly fails, what was fixed, grade changes."""
    import json

    from scanner.diff import default_pair, diff_runs, print_diff
    from scanner.portfolio import render_diff
    from scanner.reporters import write_atomic
    from scanner.store import StoreError

    if len(runs) > 2:
        raise InputProblem("diff takes at most two run IDs")
    store = open_store(store_url)
    try:
        a, b = default_pair(store, *(runs + (None, None))[:2])
    except StoreError as exc:
        raise InputProblem(str(exc)) from None
    d = diff_runs(store, a, b)
    if fmt == "table":
        print_diff(d)
    else:
        text = json.dumps(d.to_json(), indent=2) + "\n" if fmt == "json" else render_diff(d)
        if output:
            try:
                write_atomic(output, text)
            except OSError as exc:
                raise InputProblem(f"cannot write {output}: {exc.strerror or exc}") from None
        else:
            click.echo(text, nl=False)
    if fail_on_regression and d.regressed:
        sys.exit(EXIT_THRESHOLD)


@cli.command()
@store_option
@click.argument("run", default="latest")
@click.option("--format", "formats", multiple=True, type=click.Choice(FORMATS),
              help="Formats for a run without members (default html). A members run gets the portfolio.")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Directory (portfolio, several formats) or file (one format).")
def report(store_url: str | None, run: str, formats: tuple[str, ...], output: Path | None) -> None:
    """Re-render the reports of a stored RUN (an ID or 'latest') without scanning."""
    from scanner.portfolio import run_report, write_portfolio
    from scanner.reporters import render_all
    from scanner.store import StoreError

    store = open_store(store_url)
    try:
        info = store.run(run)
    except StoreError as exc:
        raise InputProblem(str(exc)) from None
    out = output
    try:
        if info.members:
            out = output or Path(f"pledgescan-portfolio-{info.id}")
            paths = write_portfolio(store, info.id, out)
        else:
            formats = formats or ("html",)
            default = f"pledgescan-report-{info.id}" + (f".{formats[0]}" if len(formats) == 1 else "")
            out = output or Path(default)
            paths = render_all(run_report(store, info), formats, out)
    except (OSError, ValueError) as exc:
        raise InputProblem(f"cannot write the reports to {out}: {getattr(exc, 'strerror', None) or exc}"
                           ) from None
    for p in paths:
        click.echo(f"report written: {p}", err=True)


@cli.group()
def members() -> None:
    """Members files (the secretariat's inventory)."""


@members.command(name="check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def members_check(file: Path) -> None:
    """Validate a members FILE (YAML or CSV) without scanning: one line per problem."""
    from scanner.members import MembersError, load_members

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


def main(argv: list[str] | None = None) -> None:
    """Console entry point: one-line errors, exit 2 for usage and input problems."""
    try:
        rv = cli.main(args=argv, prog_name="pledgescan", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        code = EXIT_USAGE if isinstance(exc, click.UsageError | InputProblem) else exc.exit_code
        click.echo(f"pledgescan: error: {exc.format_message()}", err=True)
        sys.exit(code)
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
