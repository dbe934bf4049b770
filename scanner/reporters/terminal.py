"""Terminal summary of a report (rich): one table of targets, then the failing controls.

Colours only on a terminal; piped output is plain text with ASCII borders.
"""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from scanner.models import Report, Status, TargetResult
from scanner.reporters import severity_counts, top_finding

GRADE_STYLE = {"A+": "bold green", "A": "green", "B": "yellow", "C": "dark_orange", "D": "red",
               "E": "bold red", "F": "bold red", "?": "dim"}
SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "dark_orange", "low": "yellow",
                  "info": "dim"}
MAX_FAILING_ROWS = 200
#: Width of a console that is not a terminal (a file, a pipe, a cron mail): lines are never cut or
#: wrapped there, and tables are as wide as their content (rich does not pad them to the width).
UNBOUNDED_WIDTH = 100_000


def plain_console(stderr: bool = False) -> Console:
    """The console for output: a terminal as it is; anything else with no width limit."""
    console = Console(stderr=stderr)
    return console if console.is_terminal else Console(stderr=stderr, width=UNBOUNDED_WIDTH)


def undecided_reasons(target: TargetResult) -> list[str]:
    """Why controls of ``target`` could not be decided: its collection errors (with their kind), then
    each other reason of its ``error`` findings, with the controls it left undecided and its kind."""
    lines = list(target.errors)
    reasons: dict[tuple[str, str], list[str]] = {}
    for c in target.controls:
        for f in c.findings if c.status == Status.ERROR else ():
            why = f.detail or f.title
            if f.status == Status.ERROR and not any(why in e for e in target.errors):
                reasons.setdefault((f.error_kind or "", why), []).append(c.id)
    for (kind, why), cids in reasons.items():
        lines.append(f"{', '.join(dict.fromkeys(cids))}{f' ({kind})' if kind else ''}: {why}")
    return lines


def _fails_text(counts: dict[str, int]) -> Text:
    out = Text()
    for sev, n in counts.items():
        if n:
            if out:
                out.append(" ")
            out.append(f"{n} {sev}", style=SEVERITY_STYLE.get(sev, ""))
    return out if out else Text("-", style="dim")


def print_summary(report: Report, console: Console | None = None) -> None:
    """Print the targets table and the failing controls to ``console`` (default: stdout)."""
    if console is None:
        console = plain_console()
    fancy = console.is_terminal
    table_box = box.ROUNDED if fancy else box.ASCII
    # keep URLs on one line where the width allows (they are what people copy)
    longest = max((len(t.target) for t in report.targets), default=10)
    url_width = max(12, min(longest, 48, console.width - 72)) if fancy else longest
    targets = Table(title="Scan summary", box=table_box, title_justify="left", highlight=False)
    targets.add_column("Target", overflow="fold", min_width=url_width)
    targets.add_column("Member", overflow="fold", max_width=24)
    targets.add_column("Grade", justify="center")
    targets.add_column("Score", justify="right")
    targets.add_column("Fails")
    targets.add_column("Warns", justify="right")
    targets.add_column("Errors", justify="right")
    for t in report.targets:
        statuses = [c.status for c in t.controls]
        not_assessed = statuses.count(Status.ERROR)
        targets.add_row(
            Text(t.target),
            Text(t.member_name or t.member or "-"),
            Text(t.grade, style=GRADE_STYLE.get(t.grade, "")),
            Text(str(t.score) if t.grade != "?" else "n/a"),
            _fails_text(severity_counts(t.controls, Status.FAIL)),
            Text(str(statuses.count(Status.WARN))),
            Text(str(not_assessed), style="magenta" if not_assessed else ""),
        )
    console.print(targets)
    errored = [(t, why) for t in report.targets if (why := undecided_reasons(t))]
    for t, why in errored[:MAX_FAILING_ROWS]:
        console.print(Text(f"{t.target}: ", style="magenta") + Text("; ".join(why)[:500]))

    failing = Table(title="Failing controls", box=table_box, title_justify="left", highlight=False)
    failing.add_column("Target", overflow="fold", min_width=url_width)
    failing.add_column("Control")
    failing.add_column("Severity")
    failing.add_column("Finding", overflow="fold")
    rows = [(t, c) for t in report.targets for c in t.controls if c.status == Status.FAIL]
    rows.sort(key=lambda tc: -tc[1].severity.rank)
    for t, c in rows[:MAX_FAILING_ROWS]:
        top = top_finding(c)
        failing.add_row(Text(t.target), Text(f"{c.id} {c.title}"),
                        Text(c.severity.value, style=SEVERITY_STYLE.get(c.severity.value, "")),
                        Text(top.title if top else ""))
    if rows:
        console.print(failing)
        if len(rows) > MAX_FAILING_ROWS:
            console.print(f"... and {len(rows) - MAX_FAILING_ROWS} more failing controls (see the report)")
    elif report.targets and all(t.decided == 0 for t in report.targets):
        console.print(Text("Nothing could be assessed: no control was decided on any target.",
                           style="magenta"))
    else:
        console.print(Text("No failing controls.", style="green"))
    console.print(Text(f"baseline {report.baseline.id} v{report.baseline.version} · "
                       f"{report.tool.name} {report.tool.version}", style="dim"))
