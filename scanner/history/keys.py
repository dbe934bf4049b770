"""Identities of runs: the inventory a run belongs to (lock and ``--resume`` scope) and its check
selection (results are compared only within one selection)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from scanner.models import Target
from scanner.settings import Settings


def selection_key(settings: Settings | None) -> str:
    """The check selection of a run: results are compared only with runs of the same selection (a run
    with ``--only``/``--skip`` grades on fewer controls, so its grades are not comparable)."""
    if settings is None or not (settings.only or settings.skip):
        return ""
    return fit(f"only:{','.join(sorted(settings.only))}|skip:{','.join(sorted(settings.skip))}")


def fit(text: str, size: int = 255) -> str:
    """``text``, or its hash when longer than the column (never truncated: two texts must not merge)."""
    return text if len(text) <= size else f"sha256:{hashlib.sha256(text.encode()).hexdigest()}"


def inventory_key(targets: Iterable[Target], settings: Settings | None = None) -> str:
    """A hash of the targets (and members) and the check selection: the identity of an ad hoc scan's
    inventory (a members file's runs are named by the file instead, so editing it keeps its history)."""
    lines = sorted(f"{t.member or ''}|{t.key}" for t in targets)
    if selection_key(settings):
        lines.append(selection_key(settings))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:32]


def members_inventory(path: Path) -> str:
    """The inventory identity of a members file: its absolute path."""
    return fit(f"members:{Path(path).expanduser().resolve()}")

