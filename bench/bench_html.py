"""Memory of the single-run HTML report against the number of targets (issue 9): the report written as
it is rendered (``render_all`` on a ``ReportStream``, as a stored scan's report is) against the same
report rendered whole in memory (``HtmlReporter().render``). Not timed: peak memory (max RSS) of a
fresh process per size and mode, and the size of the file written.

    python bench/bench_html.py                      # 100, 1000 and 3000 targets
    python bench/bench_html.py --sizes 100 1000

The targets are built as a scan gives them (``tests/testbed/reports.py``: every status, nested evidence),
each a deep copy with its own name and member, produced one at a time by the stream's source as a
store's results are; in the whole mode the same source is read into one ``Report`` first.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scanner.models import TargetResult  # noqa: E402
from scanner.reporters import render_all  # noqa: E402
from scanner.reporters.html import HtmlReporter  # noqa: E402
from scanner.reporters.output import write_atomic  # noqa: E402
from scanner.reporters.stream import ReportStream  # noqa: E402
from tests.testbed.reports import default_targets, make_report  # noqa: E402


def targets(size: int) -> Iterator[TargetResult]:
    kinds = default_targets()
    for i in range(size):
        t = kinds[i % len(kinds)]
        yield t.model_copy(update={"target": f"{t.target}{i}", "member": f"m-{i // 3}",
                                   "member_name": f"Member {i // 3}"}, deep=True)


def one(size: int, mode: str, tmp: Path) -> dict[str, Any]:
    head = make_report().model_copy(update={"targets": ()})
    stream = ReportStream(head, lambda: targets(size))
    path = tmp / "report.html"
    if mode == "streamed":
        render_all(stream, ["html"], path)
    else:
        write_atomic(path, HtmlReporter().render(stream.materialize()))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"targets": size, "mode": mode, "peak_rss_mb": round(peak),
            "file_mb": round(path.stat().st_size / 2**20, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 3000])
    ap.add_argument("--modes", default="streamed,whole")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--tmp", help=argparse.SUPPRESS)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    if args.one:
        print(json.dumps(one(args.one, args.mode, Path(args.tmp))))
        return 0
    print("html: the single-run HTML report, peak memory (max RSS of a fresh process) by number of targets")
    print(f"{'targets':>8} {'mode':>9} {'peak MB':>8} {'file MB':>8}")
    for mode in args.modes.split(","):
        for size in args.sizes:
            with tempfile.TemporaryDirectory(prefix="bench-html-") as tmp:
                out = subprocess.run([sys.executable, __file__, "--one", str(size), "--mode", mode,
                                      "--tmp", tmp], capture_output=True, text=True)
            if out.returncode != 0:
                print(out.stderr[-2000:], file=sys.stderr)
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{r['targets']:>8} {r['mode']:>9} {r['peak_rss_mb']:>8} {r['file_mb']:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
