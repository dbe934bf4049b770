"""``pledgescan reanalyse``: a stored run judged again from its evidence, as a new run, offline."""

from __future__ import annotations

from pathlib import Path

import click

from scanner.cli.support import InputProblem, StoreBusyProblem, lock_wait_option, open_store, store_option


@click.command()
@store_option
@click.argument("run", default="latest")
@click.option("--baseline", "baseline_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Baseline JSON file to judge under (default: the bundled baseline).")
@lock_wait_option
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
def reanalyse(store_url: str | None, run: str, baseline_file: Path | None, lock_wait: float,
              quiet: bool) -> None:
    """Re-run today's checks and the baseline over a stored RUN's evidence (an ID or 'latest'),
    without any network; the results are recorded as a new run (see `pledgescan report`, `diff`)."""
    from scanner.baseline import load_baseline
    from scanner.history.store import StoreBusy, StoreError
    from scanner.reanalyse import load_baseline_file, reanalyse_run

    try:
        baseline = load_baseline_file(baseline_file) if baseline_file else load_baseline()
    except ValueError as exc:
        raise InputProblem(str(exc)) from None
    store = open_store(store_url)
    try:
        old = store.run(run)
        new = reanalyse_run(store, old, baseline, wait=lock_wait)
    except StoreBusy as exc:
        raise StoreBusyProblem(str(exc)) from None
    except StoreError as exc:
        raise InputProblem(str(exc)) from None
    finally:
        store.close()
    if not quiet:
        click.echo(f"run {new.id} {new.status}: run {old.id} re-analysed under {baseline.id} version "
                   f"{baseline.version} ({new.targets_done} targets, no network)")
