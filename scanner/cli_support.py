"""Plumbing shared by the command-line modules: exit codes, one-line input errors, option parsing,
settings, the scan-and-render pipeline and opening the history store."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path
from typing import Any

import click

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
        click.option("--concurrency", type=click.IntRange(1, 1024), default=64, show_default=True,
                     help="Targets scanned at once (politeness is per address, whatever this is)."),
        click.option("--per-host-connections", type=click.IntRange(1, 64), default=4, show_default=True,
                     help="Politeness cap: open connections to one IP address, every prober together."),
        click.option("--rate-limit", type=click.FloatRange(0, 10000), default=100.0, show_default=True,
                     help="Politeness budget: requests and TLS handshakes per second to one IP address, "
                          "shared by the targets on it (5: gentle, for fragile servers; 0: unlimited)."),
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


def listing_console() -> Any:
    """A console for listings: wide enough for whole IDs even when piped."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=160)
