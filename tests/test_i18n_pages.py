"""Pages in the member's language: ``report --lang``, a member's ``language:`` for its own page, and the
Arabic member page right to left in a real headless Chromium (no horizontal overflow at 390 px,
``dir="rtl"``, mirrored tables)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanner.cli.main import main
from scanner.history.store import Store
from tests.testbed.browser import OVERFLOW_JS, Browser, chromium_path
from tests.testbed.portfolio import make_result, make_target

MEMBERS = [
    {"id": "madrasa", "name": "مدرسة النور", "contact": "amn@madrasa.example", "language": "ar",
     "exclusions": [{"target": "https://old.madrasa.example/", "until": "2027-06-30",
                     "reason": "platform migration", "active": True}]},
    {"id": "lycee", "name": "Lycée Ouvert", "contact": "rssi@lycee.example", "language": "fr"},
    {"id": "escuela", "name": "Escuela Abierta", "contact": "ti@escuela.example"},
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two runs of three members, rendered by ``pledgescan report --lang es``."""
    root = tmp_path_factory.mktemp("i18n-site")
    targets = [make_target("https://madrasa.example/", "madrasa"),
               make_target("https://learn.madrasa.example/a/rather/long/path/to/moodle/", "madrasa"),
               make_target("https://lycee.example/", "lycee"),
               make_target("https://escuela.example/", "escuela")]
    url = f"sqlite:///{root / 'h.sqlite3'}"
    store = Store(url)
    try:
        for statuses in ({"H2": "fail"}, {"H2": "fail", "T4": "fail", "C1": "fail", "H3": "warn"}):
            with store.start_run(targets, baseline_id="pledge4", baseline_version="1", tool_version="0",
                                 members=MEMBERS) as rec:
                for t in targets:
                    rec.on_result(make_result(t, statuses), None)
    finally:
        store.close()
    with pytest.raises(SystemExit) as done:
        main(["report", "latest", "--store", url, "-o", str(root / "site"), "--lang", "es"])
    assert done.value.code == 0
    return root / "site"


def test_member_pages_in_their_language_others_in_lang(site: Path) -> None:
    ar, fr, es = ((site / f"{m}.html").read_text("utf-8") for m in ("madrasa", "lycee", "escuela"))
    assert '<html lang="ar" dir="rtl">' in ar and "منذ الفحص الأخير" in ar and "ما يجب إصلاحه أولًا" in ar
    assert '<html lang="fr" dir="ltr">' in fr and "Depuis la dernière analyse" in fr
    assert "Certificat reconnu" in fr  # control titles translated (T4)
    assert '<html lang="es" dir="ltr">' in es and "Desde el último análisis" in es
    assert "Qué corregir primero" in es
    assert "T4" in es and "Certificado de confianza" in es  # control IDs as they are, titles translated
    assert '<html lang="es"' in (site / "index.html").read_text("utf-8")


def test_exclusions_are_shown_on_the_member_page(site: Path) -> None:
    ar = (site / "madrasa.html").read_text("utf-8")
    assert "لم يُفحص، بناءً على طلب العضو:" in ar and "https://old.madrasa.example/" in ar
    assert "2027-06-30" in ar and "platform migration" in ar


def test_report_refuses_an_unknown_language(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["report", "latest", "--lang", "tlh"])
    assert done.value.code == 2 and "unknown language 'tlh'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def browser():
    chromium_path()  # skip (locally) or fail (CI) before starting anything
    with Browser() as b:
        yield b


def test_arabic_member_page_is_right_to_left_and_fits_a_phone(browser: Browser, site: Path) -> None:
    browser.open(site / "madrasa.html", 390)
    got = browser.evaluate(OVERFLOW_JS)
    assert got["viewport"] == 390 and got["dir"] == "rtl" and got["lang"] == "ar"
    assert got["page"] <= 390 and got["wide"] == [], got


def test_arabic_tables_are_mirrored(browser: Browser, site: Path) -> None:
    browser.open(site / "madrasa.html", 1280)
    heads = browser.evaluate("[...document.querySelector('#since-last-scan table')"
                             ".querySelectorAll('thead th')]"
                             ".map(th => Math.round(th.getBoundingClientRect().left))")
    assert len(heads) == 5 and heads == sorted(heads, reverse=True)  # first column on the right
    assert browser.evaluate("getComputedStyle(document.querySelector('main')).direction") == "rtl"


def test_scan_report_in_the_language_of_lang() -> None:
    """What ``scan --lang es`` renders: the single-scan report (HtmlReporter) in the current language."""
    from scanner.i18n import using
    from scanner.reporters.html import HtmlReporter
    from tests.testbed.reports import make_report

    with using("es"):
        page = HtmlReporter().render(make_report())
    assert '<html lang="es" dir="ltr">' in page and "Informe de seguridad" in page
    assert "Cómo leer este informe" in page and "Qué corregir primero" in page
    assert "Security report" in HtmlReporter().render(make_report())  # back to English after the block


def test_scan_accepts_lang(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["scan", "--lang", "xx", "https://a.example/"])
    assert done.value.code == 2 and "--lang: unknown language 'xx'" in capsys.readouterr().err


# -- everything a member reads in Arabic: index, member page, diff page, report; RTL on a phone ------------
@pytest.fixture(scope="module")
def arabic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three runs of three members (a target fails, is fixed, stays failing), rendered with ``--lang ar``:
    the portfolio (``report``), the diff page (``diff --format html``) and a single-scan report."""
    from scanner.i18n import using
    from scanner.reporters.html import HtmlReporter
    from tests.testbed.reports import make_report

    root = tmp_path_factory.mktemp("ar-site")
    targets = [make_target(f"https://{m}.example/", m) for m in ("madrasa", "lycee", "escuela")]
    url = f"sqlite:///{root / 'h.sqlite3'}"
    store = Store(url)
    try:
        for statuses in ({"H2": "fail", "T4": "fail"}, {"H2": "fail", "C1": "fail"},
                         {"H2": "fail", "C1": "fail", "E1": "fail", "H3": "warn"}):
            with store.start_run(targets, baseline_id="pledge4", baseline_version="1", tool_version="0",
                                 members=[{**m, "language": None} for m in MEMBERS]) as rec:
                for t in targets:
                    rec.on_result(make_result(t, statuses), None)
    finally:
        store.close()
    for args in (["report", "latest", "--store", url, "-o", str(root / "site"), "--lang", "ar"],
                 ["diff", "--store", url, "--format", "html", "-o", str(root / "diff.html"), "--lang", "ar"]):
        with pytest.raises(SystemExit) as done:
            main(args)
        assert done.value.code == 0, args
    with using("ar"):
        (root / "report.html").write_text(HtmlReporter().render(make_report()), "utf-8")
    return root


def test_arabic_history_and_changes_are_translated(arabic: Path) -> None:
    member = (arabic / "site" / "madrasa.html").read_text("utf-8")
    assert "سجلّ الضوابط" in member and "راسب منذ" in member  # control history: failing since ...
    assert "أُصلح في" in member  # fixed on ... (T4 failed in run 1)
    assert "Control history" not in member and "failing since" not in member
    diff = (arabic / "diff.html").read_text("utf-8")
    assert '<html lang="ar" dir="rtl">' in diff and "ما الذي تغيّر" in diff and "إخفاق جديد" in diff
    for english in ("What changed", "newly failing", "Each target is compared", "From run"):
        assert english not in diff, english
    index = (arabic / "site" / "index.html").read_text("utf-8")
    assert "Changes compare each target" not in index and "تقارن التغييرات" in index


@pytest.mark.parametrize("page", ["site/index.html", "site/madrasa.html", "diff.html", "report.html"])
def test_arabic_pages_are_right_to_left_and_fit_a_phone(browser: Browser, arabic: Path, page: str) -> None:
    browser.open(arabic / page, 390)
    got = browser.evaluate(OVERFLOW_JS)
    assert got["dir"] == "rtl" and got["lang"] == "ar"
    assert got["page"] <= 390 and got["wide"] == [], got
