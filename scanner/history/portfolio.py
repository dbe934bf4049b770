"""The secretariat's portfolio: scans with history (members file, store, resume, regression) and the
reports of a stored run: ``index.html`` (one row per member, trend and grade distribution as inline
SVG, a sortable/filterable table), ``<member-id>.html`` per member, ``scan.json`` and ``scan.csv``.

Pages are rendered one member at a time from the store, so memory stays bounded with hundreds of
members; every file is written atomically (temporary file + ``os.replace``).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from markupsafe import Markup

from scanner.baseline import Baseline, load_baseline
from scanner.history.diff import GRADES, MemberDiff, RunDiff, diff_runs, summary_line, target_state
from scanner.history.store import ResultSummary, RunInfo, Store
from scanner.models import SCHEMA_VERSION, BaselineRef, Report, Status, TargetComparison, ToolInfo
from scanner.reporters.stream import ReportStream
from scanner.settings import usable_cores

log = logging.getLogger(__name__)
NO_MEMBER_PAGE = "_unassigned"
TREND_RUNS = 20

# Sorting and filtering of the portfolio table. Written by hand: a dozen lines, no library needed, and
# the page must stay one self-contained file. Allowed by a CSP hash, so no other script can run.
TABLE_JS = """
(function () {
  var table = document.getElementById('members');
  if (!table) return;
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var q = document.getElementById('filter'), g = document.getElementById('grade-filter');
  function apply() {
    var text = q.value.toLowerCase(), grade = g.value;
    rows.forEach(function (r) {
      var ok = r.textContent.toLowerCase().indexOf(text) >= 0 && (!grade || r.dataset.grade === grade);
      r.hidden = !ok;
    });
  }
  q.addEventListener('input', apply); g.addEventListener('change', apply);
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
    var btn = th.querySelector('button');
    if (!btn) return;
    btn.addEventListener('click', function () {
      var asc = th.getAttribute('aria-sort') !== 'ascending';
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) {
        c.removeAttribute('aria-sort');
      });
      th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
      rows.sort(function (a, b) {
        var x = a.cells[i].dataset.sort, y = b.cells[i].dataset.sort;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
})();
"""
TABLE_JS_HASH = "sha256-" + base64.b64encode(hashlib.sha256(TABLE_JS.encode()).digest()).decode()


# -- view data --------------------------------------------------------------------------------------------
@dataclass
class MemberRow:
    id: str | None
    page: str
    name: str
    contact: str | None
    grade: str
    score: float | None
    targets: int
    failing_by_area: dict[str, int]
    warnings: int
    not_assessed: int
    change: MemberDiff | None = None
    trend: list[float | None] = field(default_factory=list)

    @property
    def grade_rank(self) -> int:
        return GRADES.index(self.grade) if self.grade in GRADES else len(GRADES)


@dataclass
class TrendPoint:
    run_id: int
    when: datetime
    score: float | None
    x: float = 0.0
    y: float = 0.0


def page_name(member: str | None) -> str:
    return f"{member or NO_MEMBER_PAGE}.html"


def _rows(summaries: list[ResultSummary], run: RunInfo, areas: list[str]) -> dict[str | None, MemberRow]:
    info = {m.get("id"): m for m in run.members}
    out: dict[str | None, MemberRow] = {}
    acc: dict[str | None, list[ResultSummary]] = {}
    for s in summaries:
        acc.setdefault(s.member, []).append(s)
    for mid, rows in acc.items():
        m = info.get(mid, {})
        scores = [r.score for r in rows if r.decided]
        failing: dict[str, int] = {}  # areas with a decided control only: absent means "not assessed"
        warns = errors = 0
        for r in rows:
            for cid, (status, _sev) in r.controls.items():
                area = cid.rstrip("0123456789")
                if status in (Status.PASS.value, Status.WARN.value, Status.FAIL.value):
                    failing.setdefault(area, 0)
                if status == Status.FAIL.value:
                    failing[area] = failing.get(area, 0) + 1
                warns += status == Status.WARN.value
                errors += status == Status.ERROR.value
        out[mid] = MemberRow(
            id=mid, page=page_name(mid), name=m.get("name") or mid or "(no member)", contact=m.get("contact"),
            grade=Baseline.worst_grade(r.grade for r in rows),
            score=round(sum(scores) / len(scores), 1) if scores else None, targets=len(rows),
            failing_by_area=failing, warnings=warns, not_assessed=errors)
    return out


def comparable_runs(store: Store, run: RunInfo, limit: int = TREND_RUNS) -> list[RunInfo]:
    """The last complete runs of ``run``'s inventory and check selection (and ``run``), oldest first."""
    runs = [r for r in store.runs(limit=500) if r.inventory == run.inventory and r.selection == run.selection
            and r.id <= run.id and (r.status == "complete" or r.id == run.id)][:limit]
    runs.reverse()
    return runs


def chain_linked(per_run: list[dict[str | None, float | None]]) -> list[float | None]:
    """Mean member score per run, chain-linked: the first point is the mean of the members assessed in
    that run; each next point moves by the mean change of the members assessed now, each against its own
    last assessed score. Members that join, leave or do not answer never move the line by coming and
    going; one that comes back worse moves it by its own change."""
    out: list[float | None] = []
    level: float | None = None
    last: dict[str | None, float] = {}
    for scores in per_run:
        now = {m: s for m, s in scores.items() if s is not None}
        both = [m for m in now if m in last]
        if level is not None and both:
            level += sum(now[m] - last[m] for m in both) / len(both)
        elif now and level is None:  # the first assessed run
            level = sum(now.values()) / len(now)
        out.append(None if level is None or not now else round(min(100.0, max(0.0, level)), 1))
        last.update(now)
    return out


def _trend(store: Store, run: RunInfo, member: str | None = None, all_members: bool = True
           ) -> list[TrendPoint]:
    """Score of the portfolio (chain-linked mean, see ``chain_linked``) or of one member over the last
    complete runs of the same inventory; a member that was not reached has no point."""
    return _TrendData.read(store, run).points(member, all_members)


@dataclass(frozen=True)
class _TrendData:
    """The scores behind every trend of a portfolio (its runs, each member's score in each), read once
    per portfolio: read for each member page, they cost a query over every result of the compared runs
    per member (333 members x 1,000 results for one run of 1,000 endpoints, times the runs compared)."""

    runs: list[RunInfo]
    per: list[dict[str | None, float | None]]

    @classmethod
    def read(cls, store: Store, run: RunInfo) -> _TrendData:
        runs = comparable_runs(store, run)
        scores = store.member_scores([r.id for r in runs])
        return cls(runs, [{m: s for m, (_g, s) in scores.get(r.id, {}).items()} for r in runs])

    def points(self, member: str | None = None, all_members: bool = True) -> list[TrendPoint]:
        vals = chain_linked(self.per) if all_members else [p.get(member) for p in self.per]
        return _place([TrendPoint(r.id, r.started_at, v) for r, v in zip(self.runs, vals, strict=True)])


def _place(points: list[TrendPoint], width: float = 560, height: float = 140) -> list[TrendPoint]:
    """SVG coordinates: x spread over the runs, y from score 0 (bottom) to 100 (top)."""
    n = len(points)
    for i, p in enumerate(points):
        p.x = round(40 + (width - 60) * (i / (n - 1) if n > 1 else 0.5), 1)
        p.y = round(10 + (height - 30) * (1 - (p.score or 0) / 100), 1)
    return points


def _footer_report(run: RunInfo) -> Report:
    return Report(schema_version=SCHEMA_VERSION, tool=ToolInfo(version=run.tool_version),
                  baseline=BaselineRef(id=run.baseline_id, version=run.baseline_version),
                  generated_at=run.started_at, targets=(), run_id=str(run.id))


def _baseline(run: RunInfo) -> Baseline | None:
    try:
        return load_baseline(run.baseline)
    except (FileNotFoundError, ValueError, OSError):
        return None


def run_report(store: Store, run: RunInfo) -> Report:
    """A stored run as a ``Report`` (what the JSON/CSV/HTML reporters take), with each target's
    comparison with its own past. The whole run in memory: ``run_stream`` is the bounded form."""
    return run_stream(store, run).materialize()


def run_stream(store: Store, run: RunInfo, head: Report | None = None) -> ReportStream:
    """A stored run as a ``ReportStream``: targets read from the store in plan order, a batch at a
    time, on each pass. ``head`` replaces the run's own header (a scan's report as the engine made it)."""
    if head is None:
        keys = [(s.member, s.target) for s in _in_plan_order(store, run)]
        head = Report(schema_version=SCHEMA_VERSION, tool=ToolInfo(version=run.tool_version),
                      baseline=BaselineRef(id=run.baseline_id, version=run.baseline_version),
                      generated_at=run.started_at, targets=(), run_id=str(run.id),
                      stats={**run.stats, "run_status": run.status},
                      comparison=comparisons(store, run, keys))
    return ReportStream(head, lambda: store.results_in_plan_order(run.id))


def _in_plan_order(store: Store, run: RunInfo) -> list[ResultSummary]:
    order = {k: i for i, (_m, k) in enumerate(store.plan_keys(run.id))}
    summaries = store.summaries(run.id)
    return sorted(summaries, key=lambda s: order.get(s.target_key, len(order)))


def comparisons(store: Store, run: RunInfo, targets: Iterable[Any]) -> tuple[TargetComparison, ...]:
    """Every target of the run (and those that left the inventory) with its state against its past;
    ``targets``: the run's (member, target) pairs, or its results."""
    prev = reference_run(store, run)
    if prev is None:
        return ()
    notable = {(md.member, t.target): t for md in diff_runs(store, prev, run).members for t in md.targets}
    out = []
    removed = [k for k, t in notable.items() if t.state == "removed"]
    keys = [t if isinstance(t, tuple) else (t.member, t.target) for t in targets]
    for key in [*keys, *removed]:
        t = notable.get(key)
        if t is None:
            out.append(TargetComparison(member=key[0], target=key[1], state="assessed", summary="compared"))
            continue
        out.append(TargetComparison(
            member=key[0], target=key[1], state=t.state, grade_before=t.grade_before,
            compared_run=str(t.compared_run) if t.compared_run is not None else None,
            last_assessed=t.last_assessed, unreachable_since=t.unreachable_since, summary=target_state(t)))
    return tuple(out)


# -- rendering --------------------------------------------------------------------------------------------
def _env() -> Any:
    """The environment of the current language (``scanner.i18n.using``)."""
    from scanner.i18n import current

    return _lang_env(current())


@functools.cache
def _lang_env(lang: str) -> Any:
    """One Jinja2 environment per language and process: templates compile once, not once per page."""
    from scanner.reporters.html import make_environment

    env = make_environment(lang)
    env.globals["GRADES"] = GRADES
    return env


def N_(text: str) -> str:  # noqa: N802 - gettext's conventional name: marks a text for extraction
    return text


DOWNLOADS = {"json": N_("every result, machine-readable"), "csv": N_("one row per target and control"),
             "xlsx": N_("spreadsheet: members, targets, findings")}


def render_index(store: Store, run: RunInfo, prev: RunInfo | None, downloads: tuple[str, ...] = ()
                 ) -> tuple[str, list[MemberRow]]:
    baseline = _baseline(run)
    areas = list(baseline.areas) if baseline else ["T", "H", "C", "E", "D"]
    after = store.summaries(run.id)
    rows = _rows(after, run, areas)
    diff = diff_runs(store, prev, run) if prev is not None else None
    for md in diff.members if diff else []:
        if md.member in rows:
            rows[md.member].change = md
    from scanner.history.portfolio_fixes import common_failures

    fixes = common_failures(after, {c.id: c.title for c in baseline.controls} if baseline else {},
                            {r.id: (r.name, r.page) for r in rows.values()})
    del after
    # worst grade first; members that could not be assessed after every graded one
    members = sorted(rows.values(), key=lambda r: (r.grade not in GRADES, -r.grade_rank, r.score or 0,
                                                   r.name.lower()))
    dist = {g: 0 for g in [*GRADES, "?"]}
    for m in members:
        dist[m.grade if m.grade in dist else "?"] += 1
    top = max(dist.values()) or 1
    bars = [{"grade": g, "count": n, "height": round(100 * n / top, 1)} for g, n in dist.items()]
    trend = _trend(store, run)
    html = _env().get_template("portfolio.html").render(
        run=run, prev=prev, members=members, areas=areas, target_state=target_state,
        left=[md for md in (diff.members if diff else []) if md.state == "removed"],
        summary=summary_line(diff.counts()) if diff else None,
        area_names=dict(baseline.areas) if baseline else {}, bars=bars, trend=trend,
        report=_footer_report(run), script=Markup(TABLE_JS), script_hash=TABLE_JS_HASH,
        downloads=[(f"scan.{fmt}", DOWNLOADS.get(fmt, fmt)) for fmt in downloads], fixes=fixes,
        now=datetime.now(UTC))
    return html, members


@dataclass(frozen=True)
class MemberPages:
    """What every member page of a portfolio shares, worked out once per portfolio, not once per member:
    the baseline, control titles, the members file entries and the trend data."""

    baseline: Baseline | None
    titles: dict[str, str]
    info: dict[str | None, dict[str, Any]]
    trend: _TrendData

    @classmethod
    def read(cls, store: Store, run: RunInfo) -> MemberPages:
        baseline = _baseline(run)
        return cls(baseline, {c.id: c.title for c in baseline.controls} if baseline else {},
                   {m.get("id"): m for m in run.members}, _TrendData.read(store, run))


def render_member(store: Store, run: RunInfo, row: MemberRow, pages: MemberPages | None = None) -> str:
    from scanner.history.control_history import member_histories
    from scanner.reporters.html import fix_first, target_view, worst_first

    pages = pages or MemberPages.read(store, run)
    baseline = pages.baseline
    results = worst_first(t for t in store.results(run.id, member=row.id) if t.member == row.id)
    views = [target_view(t, i, baseline) for i, t in enumerate(results, 1)]
    info = pages.info.get(row.id, {})
    exclusions = [x for x in info.get("exclusions") or [] if x.get("active", True)]
    return _env().get_template("member.html").render(
        run=run, member=row, targets=views, fixes=fix_first(views), change=row.change,
        trend=pages.trend.points(row.id, all_members=False), report=_footer_report(run),
        exclusions=exclusions, target_state=target_state, histories=member_histories(store, run, row.id),
        titles=pages.titles)


def render_diff(diff: RunDiff) -> str:
    return _env().get_template("diff.html").render(diff=diff, counts=diff.counts(), target_state=target_state,
                                                   summary=summary_line(diff.counts()),
                                                   report=_footer_report(diff.run_b))


PAGE_HELPER_MIN = 40  # members from which a second process helps render the member pages


def write_portfolio(store: Store, run_ref: int | str, outdir: Path,
                    formats: tuple[str, ...] = ("json", "csv", "xlsx"), processes: int | None = None
                    ) -> list[Path]:
    """Write the portfolio of a stored run into ``outdir``; return the paths written.

    ``processes``: how many processes write it. By default (``None``) a portfolio of at least
    ``PAGE_HELPER_MIN`` members, on a machine with two cores or more, gets a helper process (spawned)
    that renders member pages while this one writes scan.json, scan.csv and scan.xlsx, then takes
    member pages too (the two claim them from a shared counter); ``1`` writes everything here. The
    files are the same either way; index.html is written last."""
    from scanner.reporters import builtin_reporters, write_atomic

    run = store.run(run_ref)
    prev = reference_run(store, run)
    outdir.mkdir(parents=True, exist_ok=True)
    index, members = render_index(store, run, prev, formats)
    helper = _PageHelper.start(store, run, members, outdir, processes)
    try:
        paths = []
        if formats:
            reporters = builtin_reporters()
            stream = run_stream(store, run)
            one_pass = [fmt for fmt in formats if fmt in ONE_PASS_FORMATS]
            written = dict(zip(one_pass, fan_out(stream, [  # one reading of the store for all of them
                functools.partial(_one_pass_job, fmt, reporters[fmt], outdir, members) for fmt in one_pass
            ]), strict=True))
            for fmt in formats:
                rep = reporters[fmt]
                if fmt in written:
                    paths.append(written[fmt])
                    continue
                data: Any = (functools.partial(rep.write, stream) if hasattr(rep, "write") else
                             rep.render(stream.materialize()))
                paths.append(write_atomic(outdir / f"scan.{rep.extension}", data))
        pages = MemberPages.read(store, run)
        order = iter(range(len(members)))
        claim = helper.claim if helper else lambda: next(order, None)
        while (i := claim()) is not None:  # one member in memory at a time, in its own language
            _write_member(store, run, members[i], pages, outdir)
            if helper:
                helper.done[i] = 1
        for i in helper.finish() if helper else ():  # what the helper claimed and did not write (it died)
            _write_member(store, run, members[i], pages, outdir)
    except BaseException:
        if helper:
            helper.stop()
        raise
    paths[:0] = [outdir / row.page for row in members]
    paths.insert(len(members), write_atomic(outdir / "index.html", index))
    return paths


def _write_member(store: Store, run: RunInfo, row: MemberRow, pages: MemberPages, outdir: Path) -> None:
    """Render and write one member's page, in the member's language when it has one."""
    from scanner.i18n import using
    from scanner.reporters import write_atomic

    with using(pages.info.get(row.id, {}).get("language")):
        write_atomic(outdir / row.page, render_member(store, run, row, pages))


ONE_PASS_FORMATS = ("json", "csv", "xlsx")  # built-in writers that read a stream's targets once, in order


class _ReadFailed(Exception):
    """Given to the writers in place of the next target when reading the store failed: each stops with
    an error, so that none commits a file cut short."""


def _one_pass_job(fmt: str, rep: Any, outdir: Path, members: list[MemberRow], stream: ReportStream
                  ) -> Path:
    from scanner.reporters import write_atomic

    path = outdir / f"scan.{rep.extension}"
    if fmt == "xlsx":
        return write_atomic(path, xlsx_workbook(stream, members))
    return write_atomic(path, functools.partial(rep.write, stream))


def fan_out(stream: ReportStream, jobs: list[Callable[[ReportStream], Any]], depth: int = 4) -> list[Any]:
    """Run ``jobs`` (each given a ``ReportStream`` whose targets it reads once, in order) over one reading
    of ``stream``'s targets: every job gets every target, read and decoded from the store once for all
    (a pass of its own per format decoded each stored result again: 1.9 s of CPU per pass at 1,000
    endpoints). Each job runs in a thread fed through a queue of ``depth`` targets, so memory holds a
    few targets whatever the size of the run. Returns the jobs' results in order; an error of a job, or
    of reading the store, is raised once every job has stopped (a job then never sees the end of the
    targets, so it commits nothing)."""
    import queue
    import threading

    end = object()
    feeds: list[queue.Queue[Any]] = [queue.Queue(depth) for _ in jobs]
    stopped = [threading.Event() for _ in jobs]
    results: list[Any] = [None] * len(jobs)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        def targets() -> Iterator[Any]:
            while (t := feeds[i].get()) is not end:
                if isinstance(t, _ReadFailed):
                    raise t
                yield t

        try:
            results[i] = jobs[i](ReportStream(stream.head, targets))
        except BaseException as exc:  # noqa: BLE001 - raised by the caller below
            errors.append(exc)
        finally:
            stopped[i].set()  # the reader stops feeding it (and never waits on its full queue)

    def put(i: int, item: Any) -> None:
        while not stopped[i].is_set():
            try:
                feeds[i].put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    threads = [threading.Thread(target=run, args=(i,), name=f"pledgescan-writer-{i}", daemon=True)
               for i in range(len(jobs))]
    for t in threads:
        t.start()
    last: Any = end
    try:
        for target in stream.targets():
            for i in range(len(jobs)):
                put(i, target)
            if all(e.is_set() for e in stopped):
                break
    except BaseException as exc:
        last = _ReadFailed(f"reading the run's results failed: {exc}")
        errors.insert(0, exc)
    finally:
        for i in range(len(jobs)):
            put(i, last)
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
    return results


class _PageHelper:
    """A spawned process that renders member pages of a portfolio beside the writing process: both claim
    the next page from a shared counter and mark the pages they wrote in a shared array, so the writer
    knows what is left to do if the helper dies."""

    def __init__(self, process: Any, counter: Any, done: Any, total: int) -> None:
        self.process, self.counter, self.done, self.total = process, counter, done, total

    @classmethod
    def start(cls, store: Store, run: RunInfo, members: list[MemberRow], outdir: Path,
              processes: int | None) -> _PageHelper | None:
        wanted = processes if processes is not None else (
            2 if len(members) >= PAGE_HELPER_MIN and usable_cores() >= 2 else 1)
        url = store.url
        if wanted < 2 or not members or url.startswith("sqlite://") and (
                url in ("sqlite://", "sqlite:///:memory:") or "mode=memory" in url):
            return None  # nothing to share, or a store another process cannot open
        import multiprocessing

        mp = multiprocessing.get_context("spawn")
        counter = mp.Value("i", 0)
        done = mp.Array("b", len(members), lock=False)
        process = mp.Process(target=_page_helper_main, args=(url, run.id, members, outdir, counter, done),
                             name="pledgescan-pages", daemon=True)
        try:
            process.start()
        except OSError as exc:  # no process to be had (limits): this one writes every page
            log.info("member pages written by one process: %s", exc)
            return None
        return cls(process, counter, done, len(members))

    def claim(self) -> int | None:
        return _claim(self.counter, self.total)

    def finish(self) -> list[int]:
        """Wait for the helper; the pages it claimed and did not write."""
        self.process.join()
        claimed = min(self.counter.value, self.total)
        return [i for i in range(claimed) if not self.done[i]] if self.process.exitcode else []

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join()


def _claim(counter: Any, total: int) -> int | None:
    with counter.get_lock():
        i = counter.value
        if i >= total:
            return None
        counter.value = i + 1
    return i


def _page_helper_main(url: str, run_id: int, members: list[MemberRow], outdir: Path, counter: Any,
                      done: Any) -> None:
    store = Store(url, upgrade=False)
    try:
        run = store.run(run_id)
        pages = MemberPages.read(store, run)
        while (i := _claim(counter, len(members))) is not None:
            _write_member(store, run, members[i], pages, outdir)
            done[i] = 1
    finally:
        store.close()


def reference_run(store: Store, run: RunInfo) -> RunInfo | None:
    """What a run is compared with: the previous complete run of its inventory, else the previous one
    with the same check selection (each target then meets its own past, whichever run holds it)."""
    return store.previous_run(run.id) or store.previous_run(run.id, same_inventory=False)


def xlsx_workbook(report: Report | ReportStream, members: list[MemberRow]) -> bytes:
    """The portfolio's spreadsheet, with each member's contact and change since the last run."""
    from scanner.reporters.xlsx_report import MemberExtra, workbook

    def change(row: MemberRow) -> str:
        ch = row.change
        if ch is None:
            return "first run"
        if ch.state == "new":
            return "new member"
        if ch.state == "unreachable":
            return "; ".join(f"{t.target}: {target_state(t)}" for t in ch.unreachable)
        parts = []
        if ch.grade_before and ch.grade_after and ch.grade_before != ch.grade_after:
            parts.append(f"grade {ch.grade_before} -> {ch.grade_after}")
        parts += [f"{len(ch.newly_failing)} newly failing"] if ch.newly_failing else []
        parts += [f"{len(ch.fixed)} fixed"] if ch.fixed else []
        parts += [f"{t.target}: {target_state(t)}" for t in ch.targets
                  if t.state in ("unreachable", "back", "new", "removed")]
        return "; ".join(parts) or "no change"

    return workbook(report, {r.id: MemberExtra(contact=r.contact, change=change(r)) for r in members})


def write_diff(diff: RunDiff, path: Path) -> Path:
    from scanner.reporters import write_atomic

    return write_atomic(path, render_diff(diff))


# -- scanning with history --------------------------------------------------------------------------------
class StoredScan:
    """The store side of ``pledgescan scan``: lock, run record, resume, regression check.

    ``targets`` and ``settings`` are what to scan now (the rest of the run when resuming);
    ``on_result`` is the engine callback that stores each finished target.
    """

    def __init__(self, store: Store, recorder: Any, settings: Any, inventory: Any = None) -> None:
        self.store = store
        self.recorder = recorder
        self.settings = settings
        self.inventory = inventory

    @property
    def run_id(self) -> int:
        return int(self.recorder.run_id)

    @property
    def targets(self) -> list[Any]:
        return list(self.recorder.pending)

    @property
    def on_result(self) -> Any:
        return self.recorder.on_result

    @classmethod
    def start(cls, store: Store, targets: list[Any], settings: Any, inventory: Any = None,
              wait: float = 0.0, inventory_id: str | None = None, resume_unfinished: bool = False
              ) -> StoredScan:
        """A new run (``inventory_id``: the members file's identity, see ``members_inventory``); with
        ``resume_unfinished``, the inventory's last run instead when it was interrupted."""
        from scanner import __version__
        from scanner.settings import settings_from_json

        b = load_baseline()
        members = [m.model_dump(mode="json", exclude={"line"})
                   for m in inventory.members] if inventory else []
        rec = store.start_run(targets, baseline_id=b.id, baseline_version=b.version, tool_version=__version__,
                              settings=settings, members=members, wait=wait, inventory=inventory_id,
                              resume_unfinished=resume_unfinished)
        if rec.resumed:  # the run goes on with its own targets and settings
            return cls(store, rec, settings_from_json(store.run(rec.run_id).options))
        return cls(store, rec, settings, inventory)

    @classmethod
    def resume(cls, store: Store, wait: float = 0.0) -> StoredScan:
        from scanner.settings import settings_from_json

        rec = store.resume_run(wait=wait)
        return cls(store, rec, settings_from_json(store.run(rec.run_id).options))

    def finish(self, stats: dict[str, Any] | None = None) -> RunInfo:
        return self.recorder.finish(stats)

    def abort(self) -> None:
        self.recorder.__exit__(KeyboardInterrupt, None, None)

    def regression(self) -> RunDiff | None:
        """Each target against its own last decided result (see ``reference_run``), when there is one."""
        run = self.store.run(self.run_id)
        prev = reference_run(self.store, run)
        return diff_runs(self.store, prev, run) if prev else None


def iter_history(store: Store, member: str | None = None, limit: int = 30) -> Iterator[dict[str, Any]]:
    """Rows of ``pledgescan history``: run, date, status, baseline, targets, grades, the plain mean
    score of the run's members (``score``) and the portfolio's chain-linked score (``trend``, see
    ``chain_linked``: members that join, leave or do not answer do not move it), linked over the listed
    runs of the same inventory and check selection only (other runs do not compare)."""
    runs = store.runs(member=member, limit=limit)
    scores = store.member_scores([r.id for r in runs])
    trend: dict[int, float | None] = {}
    if member is None:
        series: dict[tuple[Any, Any], list[RunInfo]] = {}
        for r in reversed(runs):  # oldest first
            series.setdefault((r.inventory, r.selection), []).append(r)
        for chain in series.values():
            per = [{m: s for m, (_g, s) in scores.get(r.id, {}).items()} for r in chain]
            trend.update(zip((r.id for r in chain), chain_linked(per), strict=True))
    for r in runs:
        per = scores.get(r.id, {})
        if member is not None:
            grade, score = per.get(member, ("?", None))
            grades = {member: grade}
        else:
            grades = {m or "(no member)": g for m, (g, _s) in per.items()}
            vals = [s for _g, s in per.values() if s is not None]
            score = round(sum(vals) / len(vals), 1) if vals else None
        yield {"run": r.id, "started_at": r.started_at.isoformat(timespec="seconds"), "status": r.status,
               "baseline": r.baseline, "targets": f"{r.targets_done}/{r.targets_total}",
               "score": score, **({"trend": trend.get(r.id)} if member is None else {}), "grades": grades}
