"""Languages of what members read: gettext catalogues (Babel) shipped in ``scanner/locale``.

The English text is the message ID everywhere, check metadata and control titles included (they are
extracted from ``checks/metadata/*.yaml`` and the baseline JSON by ``scanner.i18n_extract``), so any
text can be translated by looking it up, and a text with no translation is shown in English.
Technical tokens (header names, directives, snippets between backticks, control IDs) are left as they
are by the translators. ``make i18n-extract``, ``i18n-update`` and ``i18n-compile`` maintain the
catalogues; the compiled ``.mo`` files are committed so a plain ``pip install .`` ships them.
"""

from __future__ import annotations

import contextlib
import gettext
from collections.abc import Iterator
from contextvars import ContextVar
from functools import cache
from pathlib import Path

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "messages"
DEFAULT_LANGUAGE = "en"
#: Every language that has a catalogue; ``COMPLETE`` ones translate every message of the source.
LANGUAGES = ("en", "fr", "es", "ar")
COMPLETE = ("en", "fr", "es", "ar")
RTL = frozenset({"ar"})
NAMES = {"en": "English", "fr": "Français", "es": "Español", "ar": "العربية"}


_CURRENT: ContextVar[str] = ContextVar("pledgescan_language", default="en")


class LanguageError(ValueError):
    """A language pledgescan has no catalogue for (one line for the user)."""


def normalize(lang: str | None) -> str:
    """``fr``, ``FR``, ``fr-CA``, ``fr_FR.UTF-8`` -> ``fr``; ``None``/empty -> English. Unknown: error."""
    if not lang or not lang.strip():
        return DEFAULT_LANGUAGE
    code = lang.strip().replace("-", "_").split(".")[0].split("_")[0].lower()
    if code not in LANGUAGES:
        raise LanguageError(f"unknown language {lang!r} (one of: {', '.join(LANGUAGES)})")
    return code


def direction(lang: str) -> str:
    """``rtl`` for right-to-left scripts (Arabic), else ``ltr``: the HTML ``dir`` attribute."""
    return "rtl" if normalize(lang) in RTL else "ltr"


@cache
def translations(lang: str = DEFAULT_LANGUAGE) -> gettext.NullTranslations:
    """The compiled catalogue of ``lang`` (English: no catalogue, the source texts)."""
    from babel.support import NullTranslations, Translations  # when a text is rendered, not at --lang

    code = normalize(lang)
    if code == DEFAULT_LANGUAGE:
        return NullTranslations()
    return Translations.load(str(LOCALE_DIR), locales=[code], domain=DOMAIN)


def gettext_for(lang: str):  # noqa: ANN201 - a gettext callable
    """``_`` for ``lang``: ``_("Grade")`` -> ``"Note"`` in French."""
    return translations(lang).gettext


def ngettext_for(lang: str):  # noqa: ANN201 - an ngettext callable
    return translations(lang).ngettext


def tr(text: str | None, lang: str) -> str:
    """Translate a data text (check title, risk, remediation, control title) when the catalogue has it;
    otherwise return it unchanged (a finding's own wording, a third-party plugin's metadata). A text of
    several lines with no translation of its own is translated line by line."""
    if not text:
        return text or ""
    gettext_ = translations(lang).gettext
    whole = gettext_(text)
    if whole != text or "\n" not in text:
        return whole
    # a fix put together from several texts (an exposure's own fix, then its server lines): line by line
    return "\n".join(gettext_(line) if line.strip() else line for line in text.split("\n"))


def has_translation(text: str, lang: str) -> bool:
    return normalize(lang) == DEFAULT_LANGUAGE or translations(lang).gettext(text) != text


def current() -> str:
    """The language reports are rendered in now (``--lang``, or a member's own while its page renders)."""
    return _CURRENT.get()


def set_current(lang: str) -> None:
    """From now on (in this context), render in ``lang``: what a command's ``--lang`` does."""
    _CURRENT.set(normalize(lang))


@contextlib.contextmanager
def using(lang: str | None) -> Iterator[str]:
    """Render in ``lang`` inside the block (``None``: keep the current language)."""
    code = normalize(lang) if lang else current()
    token = _CURRENT.set(code)
    try:
        yield code
    finally:
        _CURRENT.reset(token)


__all__ = ["current", "set_current", "using", "LANGUAGES", "COMPLETE", "RTL", "NAMES", "LanguageError",
           "normalize", "direction", "translations", "gettext_for", "ngettext_for", "tr", "has_translation",
           "LOCALE_DIR"]
