"""Helpers shared by the built-in checks (parsers, matchers), pure like the checks themselves."""


def N_(text: str) -> str:  # noqa: N802 - gettext's conventional name
    """Mark a remediation text for the translators (``make i18n-extract``); reports translate it when
    they show it (``scanner.i18n.tr``). Returns ``text`` unchanged."""
    return text
