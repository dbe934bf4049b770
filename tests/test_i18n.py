"""Catalogues of what members read: complete for fr/es, compiled .mo in step with the .po, placeholders
and technical tokens (snippets between backticks) kept as they are."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from scanner import i18n

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "scanner" / "locale"


def _po(lang: str):
    with open(LOCALE / lang / "LC_MESSAGES" / "messages.po", "rb") as fh:
        return read_po(fh, locale=lang)


@pytest.fixture(scope="module")
def source_ids(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every message of the English source, extracted now with the Makefile's babel.cfg."""
    out = tmp_path_factory.mktemp("pot") / "messages.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "babel.cfg",
                    "--no-location", "-o", str(out), "."], cwd=ROOT, check=True, capture_output=True)
    with open(out, "rb") as fh:
        return {_key(m) for m in read_po(fh) if m.id}


def _seq(value) -> tuple:  # noqa: ANN001 - a plural message's forms are a list or a tuple
    return tuple(value) if isinstance(value, list | tuple) else (value,)


def _key(msg) -> str:  # noqa: ANN001
    return _seq(msg.id)[0]


def _translated(msg) -> bool:  # noqa: ANN001
    strings = _seq(msg.string)
    return all(strings) and "fuzzy" not in msg.flags


@pytest.mark.parametrize("lang", [lang for lang in i18n.COMPLETE if lang != "en"])
def test_complete_catalogues_translate_every_source_message(lang: str, source_ids: set[str]):
    cat = _po(lang)
    done = {_key(m) for m in cat if m.id and _translated(m)}
    missing = sorted(source_ids - done)
    assert missing == [], f"{lang}: {len(missing)} message(s) untranslated; run `make i18n-update`, " \
                          f"translate, `make i18n-compile`. First: {missing[:5]}"


def test_source_has_the_data_texts(source_ids: set[str]):
    """Check metadata and control titles are part of the source, not only template strings."""
    assert "Only current TLS protocol versions are offered" in source_ids  # check title (tls.yaml)
    assert "Current protocol versions only" in source_ids  # control T2 title (baseline JSON)
    assert "Encrypted transport" in source_ids  # area name
    # a check's own fix (checks/*.py, marked N_) and an exposure-catalogue entry's fix
    assert any(i.startswith("Offer TLS 1.3 beside TLS 1.2") for i in source_ids)
    assert "Delete phpinfo() pages from the server; they reveal paths, modules, configuration and " \
           "environment." in source_ids
    assert "Control history" in source_ids and "removed from the inventory" in source_ids  # member page, diff


@pytest.mark.parametrize("lang", [lang for lang in i18n.LANGUAGES if lang != "en"])
def test_compiled_catalogue_matches_its_po(lang: str):
    po = {_seq(m.id): _seq(m.string) for m in _po(lang) if m.id and _translated(m)}
    with open(LOCALE / lang / "LC_MESSAGES" / "messages.mo", "rb") as fh:
        mo = {_seq(m.id): _seq(m.string) for m in read_mo(fh) if m.id}
    # an untranslated plural entry is compiled with empty forms or the English ones: compare the others
    # (a translation equal to its source, such as "DNSSEC", is left out on both sides)
    po, mo = ({k: v for k, v in d.items() if any(x and x not in k for x in v)} for d in (po, mo))
    assert mo == po, f"{lang}: messages.mo is stale: run `make i18n-compile`"


@pytest.mark.parametrize("lang", [lang for lang in i18n.LANGUAGES if lang != "en"])
def test_translations_keep_placeholders_and_technical_tokens(lang: str):
    cat = _po(lang)
    problems = [f"{m.id!r}: {err}" for m, errs in cat.check() for err in errs]
    for m in cat:
        if not m.id or not _translated(m):
            continue
        for src, dst in zip(_seq(m.id), _seq(m.string), strict=False):
            for snippet in re.findall(r"`([^`]+)`", src):
                if f"`{snippet}`" not in dst:
                    problems.append(f"{src[:60]!r}: snippet `{snippet}` changed or missing")
            for token in re.findall(r"%\(\w+\)[sd]", src):
                if token not in dst:
                    problems.append(f"{src[:60]!r}: placeholder {token} missing")
    assert problems == []


def test_lookup_and_fallback():
    assert i18n.tr("HTTPS is enforced", "fr") == "HTTPS est imposé"
    assert i18n.tr("HTTPS is enforced", "es") == "Se exige HTTPS"
    assert i18n.tr("a finding's own wording", "fr") == "a finding's own wording"
    assert i18n.direction("ar") == "rtl" and i18n.direction("fr-CA") == "ltr"
    assert i18n.normalize("ES_es.UTF-8") == "es"
    with pytest.raises(i18n.LanguageError):
        i18n.normalize("xx")


def test_history_wording_follows_the_language():
    from datetime import datetime

    from scanner.history.control_history import ControlHistory
    from scanner.history.diff import TargetGrade, summary_line, target_state

    failing = ControlHistory("m:https://a.example/", "H2", "fail", datetime(2026, 9, 3), 2,
                             datetime(2026, 9, 1), None)
    assert failing.describe("en") == "failing since 2026-09-03, 2 scans (first seen failing 2026-09-01)"
    assert failing.describe("fr") == "en échec depuis le 2026-09-03, 2 analyses " \
                                     "(vu en échec pour la première fois le 2026-09-01)"
    fixed = ControlHistory("m:https://a.example/", "H2", "pass", None, 0, datetime(2026, 9, 1),
                           datetime(2026, 9, 8))
    assert fixed.describe("es").startswith("corregido el 2026-09-08")
    down = TargetGrade("https://a.example/", "A", None, 90, None, "unreachable", 1, datetime(2026, 8, 25),
                       datetime(2026, 9, 1))
    assert target_state(down, "en") == "unreachable since 2026-09-01 (last assessed 2026-08-25: grade A)"
    assert target_state(down, "fr") == "injoignable depuis le 2026-09-01 (dernière évaluation le " \
                                       "2026-08-25 : note A)"
    assert "2026-09-01" in target_state(down, "ar") and "A" in target_state(down, "ar")
    counts = dict.fromkeys(("newly_failing", "regressed", "fixed", "improved", "unreachable", "back",
                            "targets_added", "targets_removed", "members_worse", "members_better",
                            "members_added", "members_removed"), 0)
    assert summary_line({**counts, "fixed": 2}, "es").startswith(
        "0 nuevos fallos, 0 empeorados, 2 corregidos")
    with i18n.using("fr"):
        assert target_state(down).startswith("injoignable")  # default: the language being rendered


def test_a_fix_put_together_from_several_texts_is_translated_line_by_line():
    """An exposure's fix is its catalogue entry's text, then the server lines of its family."""
    from checks.exposure import SERVER_LINES

    own = "Delete editor swap files from the web root and deny *.swp."
    fix = "\n".join([own, *SERVER_LINES["source_secrets"]])
    fr = i18n.tr(fix, "fr").split("\n")
    assert fr[0] == "Supprimez les fichiers d'échange d'éditeur de la racine web et interdisez *.swp."
    assert fr[1].startswith("nginx : `location ~ /\\.(?!well-known/) { deny all; }` et ")
    assert fr[3].startswith("IIS : dans web.config, `<hiddenSegments>")
    assert i18n.tr("a finding's own\nwords", "fr") == "a finding's own\nwords"
