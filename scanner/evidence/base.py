"""Base of every family's evidence: errors are data."""

from __future__ import annotations

from scanner.models import Frozen


class Evidence(Frozen):
    """Evidence of one family for one target.

    ``error`` is set when collection could not decide anything (timeout, refused, unresolvable,
    deadline): checks then report ``error``, never ``fail``.
    """

    error: str | None = None
