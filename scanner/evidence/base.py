"""Base of every family's evidence: errors are data."""

from __future__ import annotations

from scanner.errors import ErrorKind
from scanner.models import Frozen


class Evidence(Frozen):
    """Evidence of one family for one target.

    ``error`` is set when collection could not decide anything (timeout, refused, unresolvable,
    deadline): checks then report ``error``, never ``fail``; ``error_kind`` says which, as data.
    """

    error: str | None = None
    error_kind: ErrorKind | None = None
