"""``--lang`` of the commands that render what members read (scan, report, notify)."""

from __future__ import annotations

import click

from scanner.cli.support import InputProblem

LANG_HELP = "Language of pages and messages (en, fr, es, ar); a member's 'language:' wins for its own."


def _check_lang(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from scanner.i18n import LanguageError, normalize

    try:
        return normalize(value)
    except LanguageError as exc:
        raise InputProblem(f"--lang: {exc}") from None


def lang_option(func):  # noqa: ANN001, ANN201 - a click decorator
    """``--lang LANG``: checked when parsed (one-line error), normalised (``fr-CA`` -> ``fr``)."""
    return click.option("--lang", default="en", show_default=True, metavar="LANG", help=LANG_HELP,
                        callback=_check_lang)(func)


def use_language(lang: str) -> None:
    """The rest of this command renders in ``lang`` (members with a ``language:`` keep theirs)."""
    from scanner.i18n import set_current

    set_current(lang)
