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
