"""The ``pledgescan`` command line: composes inventory, engine, baseline and reporters.

Exit codes: 0 scan completed and nothing at or above ``--fail-on`` failed; 1 the threshold was met
(or, with ``--fail-on-regression``, something got worse); 2 usage or input error (one line, no traceback).
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


def execute_scan(targets: list[Target], settings: Settings, *, formats: tuple[str, ...],
                 output: Path | None, quiet: bool, fail_on: str, on_result: Any = None,
                 default_name: str = "pledgescan-report") -> tuple[Report, list[Path]]:
    """Run the scan with a progress display, write the reports, print the summary."""
    from scanner.engine import Scanner, SelectionError

    try:
        scanner = Scanner(settings)
    except SelectionError as exc:
        raise InputProblem(str(exc)) from None
    from scanner.progress import ScanProgress
    from scanner.reporters import render_all
    from scanner.reporters.terminal import print_summary

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
        paths = render_all(report, formats, out)
    except OSError as exc:
        raise InputProblem(f"cannot write the report to {out}: {exc.strerror or exc}") from None
    if not quiet:
        print_summary(report)
        for p in paths:
            click.echo(f"report written: {p}", err=True)
    return report, paths


@cli.command()
@click.argument("targets", nargs=-1, metavar="[TARGET]...")
@click.option("--domain", "domains", multiple=True, metavar="NAME",
              help="Add a domain target alone (DNS and e-mail controls). Repeatable.")
@scan_options
def scan(targets: tuple[str, ...], domains: tuple[str, ...], **kw: Any) -> None:
    """Scan TARGETs: a URL is a web endpoint; a bare host name means its https:// endpoint and its domain.

    \b
    Examples:
      pledgescan scan https://learn.example.org/
      pledgescan scan example.org --format json -o report.json --fail-on high
    """
    from scanner.targets import InputError, from_cli

    if not targets and not domains:
        raise InputProblem("nothing to scan: give at least one TARGET or --domain NAME")
    try:
        target_list = from_cli(list(targets), list(domains))
    except InputError as exc:
        raise InputProblem(str(exc)) from None
    settings = build_settings(kw)
    report, _ = execute_scan(target_list, settings, formats=kw["formats"], output=kw["output"],
                             quiet=kw["quiet"], fail_on=kw["fail_on"])
    if exceeds_threshold(report, kw["fail_on"]):
        sys.exit(EXIT_THRESHOLD)


@cli.command(name="checks")
def list_checks() -> None:
    """List every registered check: ID, severity, controls it feeds, title."""
    from rich.console import Console
    from rich.table import Table

    from scanner.baseline import load_baseline
    from scanner.plugins import load_checks

    baseline = load_baseline()
    reg = load_checks(c.id for c in baseline.controls)
    table = Table(title=f"{len(reg.checks)} checks", show_lines=False)
    for col in ("ID", "Severity", "Controls", "Kind", "Title"):
        table.add_column(col)
    for chk in sorted(reg.checks, key=lambda c: (c.meta.controls[0][0], c.meta.controls, c.id)):
        m = chk.meta
        table.add_row(m.id, m.severity.value, ",".join(m.controls), m.target_kind, m.title)
    Console(soft_wrap=True).print(table)
    for msg in reg.refused:
        click.echo(f"refused: {msg}", err=True)


@cli.command(name="baseline")
def show_baseline() -> None:
    """List the baseline's controls (ID, severity, scope, title, checks)."""
    from rich.console import Console
    from rich.table import Table

    from scanner.baseline import load_baseline

    b = load_baseline()
    table = Table(title=f"{b.title}, version {b.version} ({b.id})")
    for col in ("ID", "Area", "Severity", "Scope", "Title", "Checks"):
        table.add_column(col)
    for c in b.controls:
        table.add_row(c.id, b.areas[c.area], c.severity.value, c.scope, c.title, ", ".join(c.checks))
    Console(soft_wrap=True).print(table)


@cli.command()
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("report.html"),
              show_default=True, help="Where to write the HTML report.")
@click.option("--keep-running", is_flag=True, help="Leave the demo servers up until Ctrl-C.")
def demo(output: Path, keep_running: bool) -> None:
    """Start a small local testbed (good and bad TLS/HTTP servers) and scan it: a real report."""
    from scanner.demo import run_demo

    path = run_demo(output, keep_running=keep_running)
    click.echo(f"demo report written: {path.resolve()}")


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
