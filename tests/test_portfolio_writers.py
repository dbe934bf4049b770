"""The portfolio's writers made fast (issue 9: writing 1,000 endpoints took ~20 s after the scan) write
what they wrote before: the JSON text as ``json.dumps`` lays it out, the JSON-safe data as the general
path gives it, the spreadsheet's cells (write-only mode) as the rows say, a member's results from the
store as the run holds them, and a member page with the per-portfolio data shared."""

from __future__ import annotations

import enum
import io
import json
import math
import os
import re

import pytest

from scanner.history.portfolio import (
    MemberPages,
    _claim,
    _page_helper_main,
    _PageHelper,
    fan_out,
    render_index,
    render_member,
    write_portfolio,
)
from scanner.history.store import Store
from scanner.reporters import jsonable
from scanner.reporters.stream import ReportStream, dump_indented
from scanner.reporters.xlsx_report import MemberExtra, sheet_rows, workbook
from tests.testbed.portfolio import make_result, record_run
from tests.testbed.portfolio import make_target as stored_target
from tests.testbed.reports import finding, make_report, make_target


class Colour(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


VALUES = [
    None, True, False, 0, -7, 2**70, 0.1, -0.0, 1e-7, 1.5e300, "", "plain", 'quote " and \\ back',
    "line\nbreak\ttab\x00nul\x1f", "Académie 東京 ☃ \u2028 \ud7ff", [], {}, [[]], [{}], {"a": []},
    {"a": {"b": {"c": [1, 2.5, "x", None, True, {"d": {}}]}}},
    {7: "int key", 2.5: "float key", False: "bool key", None: "none key", "s": "str key"},
    (1, "tuple", (2, 3)), [Colour.RED, Level.HIGH, {"e": Colour.RED}], {"k": (1, {"n": (2,)})},
    [{"hop": i, "headers": {"Location": f"/p{i}", "Set-Cookie": ["a=1", "b=2"]}} for i in range(3)],
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
@pytest.mark.parametrize("pad", ["", "    "])
def test_dump_indented_writes_the_json_and_layout_json_dumps_writes(value, pad) -> None:
    text = dump_indented(value, pad)
    expected = json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False).replace("\n", "\n" + pad)
    # the same JSON, laid out the same; only a float's exponent may be spelt otherwise (1e-7 for 1e-07,
    # 1e300 for 1e+300)
    assert json.loads(text) == json.loads(expected)

    def exponent(t: str) -> str:
        return re.sub(r"(\d)e(-?)\+?0*(\d)", r"\1e\2\3", t)

    assert exponent(text) == exponent(expected)


def test_dump_indented_writes_integers_beyond_64_bits_exactly() -> None:
    serial = 2**159 + 12345  # a certificate serial number: orjson refuses it, json writes it
    assert json.loads(dump_indented({"serial": serial})) == {"serial": serial}


def test_jsonable_plain_types_as_the_general_path_gives_them() -> None:
    # Given data 70 levels deep (the general path cuts below depth 64), with keys of every kind
    deep: object = "leaf"
    for _ in range(70):
        deep = {"k": deep, 3: [b"\xffraw", math.nan, (1, 2), {"s"}]}
    out = jsonable(deep)
    # Then every level above depth 62 is converted whole, and the cut falls where it fell before
    levels = 0
    node = out
    while isinstance(node, dict) and "k" in node:
        assert list(node) == ["k", "3"]
        assert node["3"] == {62: ["\ufffdraw", None, ["…", "…"], ["…"]],
                             63: ["…"] * 4}.get(levels, ["\ufffdraw", None, [1, 2], ["s"]])
        levels += 1
        node = node["k"]
    assert levels == 64 and node == {"…": "…"}  # depth 64: even its keys are cut (and so collapse)
    # and enums, dates, models and odd types still take the general path
    assert jsonable({"c": Colour.RED, "l": Level.HIGH, "f": 1.5}) == {"c": Colour.RED, "l": Level.HIGH,
                                                                    "f": 1.5}
    assert jsonable({"e": enum.Enum("E", {"A": "a"}).A}) == {"e": "a"}


def test_xlsx_cells_read_back_are_the_rows_in_write_only_mode() -> None:
    from openpyxl import load_workbook

    # Given targets of three members whose findings quote server text that looks like a formula
    formula = '=HYPERLINK("http://evil.example","x")'
    targets = [make_target("endpoint", f"https://{m}{i}.example/", {
        "H4": [finding("http-framing", "H4", "fail", formula if i == 0 else "No framing", severity="medium")],
        "H7": [finding("http-referrer-policy", "H7", "warn", "No Referrer-Policy", detail="=1+1")]},
        member=m, member_name=f"Member {m}") for m in ("a", "b", "c") for i in range(4)]
    report = make_report(*targets)
    extras = {"a": MemberExtra("sec@a.example", "=grade A -> B")}
    # When the workbook is written
    wb = load_workbook(io.BytesIO(workbook(report, extras)))
    # Then each sheet holds the header and exactly the rows sheet_rows gives, server text as text
    from scanner.reporters.xlsx_report import _cell

    expected = sheet_rows(report, ["T", "H", "C", "E", "D"], extras)
    assert wb.sheetnames == ["Members", "Targets", "Findings"]
    for ws, rows in zip(wb.worksheets, expected, strict=True):
        got = [list(r) for r in ws.iter_rows(min_row=2, values_only=True)]
        want = [[_cell(v) if v != "" else None for v in r] for r in rows]
        assert got == want
        assert all(c.font.b for c in ws[1]) and ws.freeze_panes == "A2"
        assert ws.auto_filter.ref == f"A1:{ws.cell(1, ws.max_column).column_letter}{len(rows) + 1}"
        formulas = [c for row in ws.iter_rows(min_row=2) for c in row
                    if isinstance(c.value, str) and c.value.startswith("=")]
        assert all(c.data_type == "s" for c in formulas)
    assert len(expected[1]) == 12 and any(r[7] == formula for r in expected[2])
    assert wb["Members"]["A2"].value and wb["Targets"].column_dimensions["D"].width == 44
    assert wb["Findings"].column_dimensions["J"].width == 70


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'h.sqlite3'}")
    yield s
    s.close()


def test_member_results_are_the_runs_own_and_in_row_order(store: Store) -> None:
    members = [{"id": m, "name": m.title()} for m in ("alpha", "beta")]
    first = [make_result(stored_target(f"https://{m}{i}.example/", m)) for m in ("alpha", "beta")
             for i in range(3)]
    record_run(store, first, members)
    second = [make_result(stored_target(f"https://{m}{i}.example/", m), {"H2": "fail"} if i == 1 else None)
              for i in range(3) for m in ("beta", "alpha")]
    run2 = record_run(store, second, members)
    got = list(store.results(run2, member="alpha", batch=2))
    assert [t.target for t in got] == [t.target for t in second if t.member == "alpha"]
    assert [t.grade for t in got] == [t.grade for t in second if t.member == "alpha"]
    assert list(store.results(run2, member="nobody")) == []


def test_member_page_with_shared_data_is_the_page_without(store: Store, tmp_path) -> None:
    members = [{"id": m, "name": m.title(), "contact": f"sec@{m}.example"} for m in ("alpha", "beta")]
    for statuses in (None, {"H2": "fail", "T4": "fail"}, {"H2": "fail"}):
        run_id = record_run(store, [make_result(stored_target(f"https://{m}{i}.example/", m), statuses)
                                 for m in ("alpha", "beta") for i in range(2)], members)
    run = store.run(run_id)
    _html, rows = render_index(store, run, store.run(run_id - 1))
    pages = MemberPages.read(store, run)
    for row in rows:
        alone = render_member(store, run, row)
        assert alone == render_member(store, run, row, pages)
        assert "#1" in alone and "#3" in alone  # the member's trend over the three runs
    paths = write_portfolio(store, run_id, tmp_path / "out")
    assert {p.name for p in paths} >= {"alpha.html", "beta.html", "scan.xlsx", "scan.json"}
    doc = json.loads((tmp_path / "out" / "scan.json").read_text())
    assert len(doc["targets"]) == 4
    # formats beside the one-pass ones keep their place and their own writer
    other = write_portfolio(store, run_id, tmp_path / "other", formats=("sarif", "csv"), processes=1)
    assert [p.name for p in other[-2:]] == ["scan.sarif", "scan.csv"]
    assert json.loads(other[-2].read_text())["runs"] and other[-1].read_text().count("https://") > 4


def test_pages_written_with_a_helper_process_are_the_pages_written_alone(store: Store, tmp_path) -> None:
    # Given a run of 12 members with a previous run (changes, trends, histories on every page)
    members = [{"id": f"m{i}", "name": f"Member {i}", "contact": f"sec@m{i}.example",
                **({"language": "fr"} if i == 3 else {})} for i in range(12)]
    for statuses in (None, {"H2": "fail"}):
        run_id = record_run(store, [make_result(stored_target(f"https://h{i}.m{m}.example/", f"m{m}"),
                                             statuses if (m + i) % 3 else None)
                                 for m in range(12) for i in range(2)], members)
    # When the portfolio is written by this process alone, and with a helper process
    alone = write_portfolio(store, run_id, tmp_path / "alone", processes=1)
    shared = write_portfolio(store, run_id, tmp_path / "shared", processes=2)
    # Then the same files come back in the same order, with the same bytes (index.html: but its time)
    assert [p.name for p in alone] == [p.name for p in shared]
    assert alone[-4].name == "index.html" and len(alone) == 12 + 4
    for a, b in zip(alone, shared, strict=True):
        if a.name == "scan.xlsx":
            continue  # a zip with its own timestamps; its cells are tested above
        x, y = a.read_bytes(), b.read_bytes()
        if a.name == "index.html":
            x, y = (re.sub(rb"\d{4}-\d\d-\d\d \d\d:\d\d UTC", b"", v) for v in (x, y))
        assert x == y, a.name
    assert "lang=\"fr\"" in (tmp_path / "shared" / "m3.html").read_text()
    # and what the helper process runs, run here (whoever took which page above depends on timing)
    import multiprocessing

    _html, rows = render_index(store, store.run(run_id), store.run(run_id - 1), ("json", "csv", "xlsx"))
    counter, done = multiprocessing.Value("i", 0), multiprocessing.Array("b", len(rows), lock=False)
    _page_helper_main(store.url, run_id, rows, tmp_path / "helper", counter, done)
    assert list(done) == [1] * 12 and counter.value == 12
    for a in alone[:12]:
        assert (tmp_path / "helper" / a.name).read_bytes() == a.read_bytes(), a.name


def _claims_two_and_dies(counter, total) -> None:
    _claim(counter, total)
    _claim(counter, total)
    os._exit(3)


def test_pages_a_dead_helper_claimed_are_left_to_the_writer() -> None:
    import multiprocessing

    mp = multiprocessing.get_context("spawn")
    counter, done = mp.Value("i", 0), mp.Array("b", 5, lock=False)
    process = mp.Process(target=_claims_two_and_dies, args=(counter, 5))
    process.start()
    process.join()
    helper = _PageHelper(process, counter, done, 5)
    mine = list(iter(helper.claim, None))
    for i in mine:
        done[i] = 1
    assert mine == [2, 3, 4] and helper.finish() == [0, 1]


def _stream(n: int, fail_at: int | None = None) -> ReportStream:
    def source():
        for i in range(n):
            if i == fail_at:
                raise OSError("disk gone")
            yield i
    return ReportStream(make_report(), source)


def test_fan_out_gives_every_job_every_target_once_read() -> None:
    reads = []

    def source():
        for i in range(50):
            reads.append(i)
            yield i

    def first_only(s):
        return next(iter(s.targets()))  # stops reading at once: the others must not wait for it

    got = fan_out(ReportStream(make_report(), source), [lambda s: list(s.targets()), first_only,
                                                         lambda s: sum(1 for _ in s.targets())], depth=1)
    assert got == [list(range(50)), 0, 50] and reads == list(range(50))


def test_fan_out_raises_a_jobs_error_and_commits_nothing_cut_short(tmp_path) -> None:
    from scanner.reporters import write_atomic

    def broken(s):
        for i in s.targets():
            if i == 3:
                raise ValueError("writer bug")
        return "never"

    with pytest.raises(ValueError, match="writer bug"):
        fan_out(_stream(20), [lambda s: list(s.targets()), broken])
    # a failed read: the writers stop with an error, so no file is committed with part of the targets
    jobs = [lambda s, n=n: write_atomic(tmp_path / n, lambda out: out.write(",".join(map(str, s.targets()))))
            for n in ("a.csv", "b.json")]
    with pytest.raises(OSError, match="disk gone"):
        fan_out(_stream(20, fail_at=7), jobs)
    assert list(tmp_path.iterdir()) == []
    assert [p.name for p in fan_out(_stream(5), jobs)] == ["a.csv", "b.json"]
    assert (tmp_path / "a.csv").read_text() == "0,1,2,3,4"
